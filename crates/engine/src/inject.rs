//! Streaming insertion of a fragment into an HTML page just before its first `</body`
//! (or at its end when it has none), chunk by chunk: the page is never held whole, only
//! the last five bytes of a chunk, in case the tag straddles two chunks. The edge uses it
//! for the preview toolbar; it reads bytes, so any ASCII-compatible charset passes
//! through unchanged. It does not parse HTML: a `</body` inside a script or a comment
//! before the real one takes the fragment.

/// The tag the fragment goes before, matched without regard to case.
const TAG: &[u8] = b"</body";

/// Inserts one fragment into a stream of HTML chunks.
#[derive(Debug, Clone)]
pub struct BeforeBodyEnd {
    fragment: Vec<u8>,
    held: Vec<u8>,
    done: bool,
}

impl BeforeBodyEnd {
    /// Will insert `fragment`.
    pub fn new(fragment: impl Into<Vec<u8>>) -> BeforeBodyEnd {
        BeforeBodyEnd {
            fragment: fragment.into(),
            held: Vec::new(),
            done: false,
        }
    }

    /// Takes the next chunk of the page and appends what can be sent to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.done {
            out.extend_from_slice(chunk);
            return;
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        if let Some(i) = buf
            .windows(TAG.len())
            .position(|w| w.eq_ignore_ascii_case(TAG))
        {
            out.extend_from_slice(buf.get(..i).unwrap_or_default());
            out.extend_from_slice(&self.fragment);
            out.extend_from_slice(buf.get(i..).unwrap_or_default());
            self.done = true;
            return;
        }
        let keep = buf.len().min(TAG.len() - 1);
        let split = buf.len() - keep;
        out.extend_from_slice(buf.get(..split).unwrap_or_default());
        self.held = buf.get(split..).unwrap_or_default().to_vec();
    }

    /// Ends the page: what was held back, and the fragment when no `</body` came.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        if !self.done {
            out.extend_from_slice(&self.fragment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> String {
        let mut inj = BeforeBodyEnd::new("<X>");
        let mut out = Vec::new();
        for c in chunks {
            inj.push(c, &mut out);
        }
        inj.finish(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn goes_before_the_first_body_end_at_every_chunk_boundary() {
        let page = "<html><body><p>hi</p></BODY></html><!-- </body> -->";
        let want = "<html><body><p>hi</p><X></BODY></html><!-- </body> -->";
        for cut in 0..=page.len() {
            let (a, b) = page.as_bytes().split_at(cut);
            assert_eq!(run(&[a, b]), want, "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = page.as_bytes().chunks(1).collect();
        assert_eq!(run(&bytes), want);
    }

    #[test]
    fn a_page_without_a_body_end_gets_it_at_the_end_and_keeps_every_byte() {
        assert_eq!(run(&[b"<p>x</bod", b"y>"]), "<p>x<X></body>");
        assert_eq!(run(&[b"<p>x</bo", b"x>"]), "<p>x</box><X>");
        assert_eq!(run(&[b""]), "<X>");
        let utf8 = "東京</body>".as_bytes();
        let (a, b) = utf8.split_at(2);
        assert_eq!(run(&[a, b]), "東京<X></body>");
    }
}
