//! The one checked encoder for values the edge writes into HTTP headers (decisions, geo,
//! device, language, the route, the snapshot version, echoed CORS origins): whatever a
//! preview token's claims, the geolocation data or a flag file hold, the result is a
//! valid header value, or nothing. Never a panic in the `fastly` crate's conversion.
//!
//! Visible ASCII other than `%` passes as written, and so does a space between other
//! characters, so ordinary values (`New York`, `weekend_sale`) are unchanged. Every other
//! byte of the value's UTF-8 (control characters, DEL, letters outside ASCII, `%`, a space
//! at either end) becomes `%XX`, upper-case hex, as in a URL (RFC 3986 section 2.1): a
//! city `Zürich` arrives as `Z%C3%BCrich`, and [`decode`] gives it back. A value whose
//! encoding would be over [`MAX_LEN`] bytes is dropped.

use std::borrow::Cow;

/// The longest encoded value written (16 KiB: twice what common servers take in one
/// header, and room for the decisions of several hundred flags); a longer one is dropped.
pub const MAX_LEN: usize = 16 * 1024;

/// Whether a byte at this position passes unencoded.
fn plain(b: u8, at_end: bool) -> bool {
    match b {
        b' ' => !at_end,
        b'%' => false,
        0x21..=0x7e => true,
        _ => false,
    }
}

/// The header value for `value`: unchanged when every byte may stand as written,
/// percent-encoded otherwise, `None` when the result would be over [`MAX_LEN`] bytes.
pub fn encode(value: &str) -> Option<Cow<'_, str>> {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let ok = |i: usize, b: u8| plain(b, i == 0 || i == last);
    if bytes.iter().enumerate().all(|(i, &b)| ok(i, b)) {
        return (bytes.len() <= MAX_LEN).then_some(Cow::Borrowed(value));
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() + 16);
    for (i, &b) in bytes.iter().enumerate() {
        if ok(i, b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        if out.len() > MAX_LEN {
            return None;
        }
    }
    Some(Cow::Owned(out))
}

/// Whether `bytes` is a header value that every HTTP library accepts as written:
/// visible ASCII and spaces, not starting or ending with a space. What [`encode`]
/// produces always is.
pub fn is_valid(bytes: &[u8]) -> bool {
    let last = bytes.len().saturating_sub(1);
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'%' || plain(b, i == 0 || i == last))
}

/// Undoes [`encode`] (for origins and tests): `%XX` becomes its byte; other text is kept;
/// bytes that are not UTF-8 become U+FFFD.
pub fn decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = percent_decode(value.as_bytes());
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

/// Replaces every `%XX` (two hex digits, either case) by its byte; a `%` not followed by
/// two hex digits stays as it is.
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = bytes
            .get(i + 1)
            .and_then(|&h| hex(h))
            .zip(bytes.get(i + 2).and_then(|&l| hex(l)));
        match (bytes[i], pair) {
            (b'%', Some((h, l))) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ordinary_values_pass_unchanged() {
        for v in [
            "New York",
            "weekend_sale",
            "banner=night; checkout=v1",
            "Asia/Tokyo",
            "+05:30",
            "",
        ] {
            assert_eq!(encode(v).as_deref(), Some(v));
            assert!(matches!(encode(v), Some(Cow::Borrowed(_))));
        }
    }

    #[test]
    fn what_is_not_a_header_value_is_percent_encoded() {
        let cases = [
            ("To\r\nkyo", "To%0D%0Akyo"),
            ("1\u{0}3", "1%003"),
            ("mo\nbile", "mo%0Abile"),
            ("Zürich", "Z%C3%BCrich"),
            ("São Paulo", "S%C3%A3o Paulo"),
            ("100%", "100%25"),
            (" padded ", "%20padded%20"),
            ("tab\there", "tab%09here"),
            ("del\u{7f}", "del%7F"),
            ("東京", "%E6%9D%B1%E4%BA%AC"),
        ];
        for (raw, want) in cases {
            let got = encode(raw);
            assert_eq!(got.as_deref(), Some(want), "{raw:?}");
            assert!(is_valid(want.as_bytes()));
            assert_eq!(decode(want), raw);
        }
    }

    #[test]
    fn oversized_values_are_dropped() {
        assert!(encode(&"a".repeat(MAX_LEN)).is_some());
        assert_eq!(encode(&"a".repeat(MAX_LEN + 1)), None);
        // A letter outside ASCII is 2 bytes, 6 characters encoded.
        assert!(encode(&"ü".repeat(MAX_LEN / 6)).is_some());
        assert_eq!(encode(&"ü".repeat(MAX_LEN / 6 + 1)), None);
    }

    #[test]
    fn validity_matches_the_rules() {
        assert!(is_valid(b"a b"));
        assert!(!is_valid(b" a"));
        assert!(!is_valid(b"a\r\nb"));
        assert!(!is_valid("ü".as_bytes()));
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
        assert_eq!(percent_decode(b"%2e%2E"), b"..");
    }

    proptest! {
        #[test]
        fn any_text_encodes_to_a_valid_value_that_decodes_back(s in any::<String>()) {
            match encode(&s) {
                Some(e) => {
                    prop_assert!(is_valid(e.as_bytes()), "{:?} -> {:?}", s, e);
                    prop_assert!(e.len() <= MAX_LEN);
                    prop_assert_eq!(decode(&e), s.as_str());
                }
                None => prop_assert!(s.len() > MAX_LEN / 3),
            }
        }
    }
}
