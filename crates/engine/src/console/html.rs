//! HTML escaping for every text the console and the toolbar show: whatever a person typed,
//! a flag file holds or a request carried goes through [`escape`] (text and quoted
//! attribute values alike), so nothing is ever reflected as markup.

use std::fmt::Write as _;

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references, and control
/// characters other than tab and newline dropped: safe in element text and in a quoted
/// attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A page under construction: markup the console writes itself ([`Page::raw`], only
/// ever given literals of this crate) and text from anywhere else ([`Page::text`],
/// always escaped).
#[derive(Debug, Default)]
pub struct Page {
    out: String,
}

impl Page {
    /// An empty page.
    pub fn new() -> Page {
        Page::default()
    }
    /// Appends markup written by the console itself.
    pub fn raw(&mut self, markup: &str) -> &mut Page {
        self.out.push_str(markup);
        self
    }
    /// Appends text, escaped.
    pub fn text(&mut self, text: &str) -> &mut Page {
        self.out.push_str(&escape(text));
        self
    }
    /// Appends `<tag>text</tag>` (the tag is the console's, the text escaped).
    pub fn element(&mut self, tag: &str, text: &str) -> &mut Page {
        let _ = write!(self.out, "<{tag}>{}</{tag}>", escape(text));
        self
    }
    /// A table row of escaped cells.
    pub fn row(&mut self, cells: &[&str]) -> &mut Page {
        self.out.push_str("<tr>");
        for c in cells {
            self.element("td", c);
        }
        self.out.push_str("</tr>\n");
        self
    }
    /// The finished markup.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("a\u{0}b\u{1b}c\td\ne"), "abc\td\ne");
        assert_eq!(escape("東京 ok"), "東京 ok");
    }

    #[test]
    fn text_and_cells_are_escaped_raw_markup_is_not() {
        let mut p = Page::new();
        p.raw("<p>").text("<b>").raw("</p>").row(&["<i>", "\"q\""]);
        assert_eq!(
            p.finish(),
            "<p>&lt;b&gt;</p><tr><td>&lt;i&gt;</td><td>&quot;q&quot;</td></tr>\n"
        );
    }
}
