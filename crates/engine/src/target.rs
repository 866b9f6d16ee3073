//! The request target as the edge receives it: the URL the host hands over (checked
//! before anything parses it into the SDK's `Url`, which panics on what it rejects), the
//! path (refused when a dot segment could climb out of a route's path prefix), and the
//! query (with the edge's own parameters taken out before it is forwarded).
//!
//! The URL check uses the `url` crate, the parser the `fastly` crate itself uses (one
//! version in the lock file), so a URL this module accepts is one the SDK parses.

use crate::header_value::percent_decode;

/// The longest URL accepted, in bytes.
pub const MAX_URL: usize = 16 * 1024;

/// The query parameter that may carry a preview token (also a cookie of that name).
pub const PREVIEW_PARAM: &str = "ef_preview";

/// Why a request URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The host could not hand the URL over.
    #[error("the URL could not be read")]
    Unreadable,
    /// Longer than [`MAX_URL`].
    #[error("the URL is over {MAX_URL} bytes")]
    TooLong,
    /// Not UTF-8.
    #[error("the URL is not UTF-8")]
    NotUtf8,
    /// Not a URL at all: a bad port (`x:99999`, `x:abc`), a bad IPv4 address
    /// (`300.1.1.1`), an asterisk-form target (`OPTIONS *`) glued to a port, ...
    #[error("the URL cannot be parsed: {0}")]
    Unparseable(url::ParseError),
    /// Not `http` or `https`.
    #[error("the URL's scheme is not http or https")]
    Scheme,
    /// The host is not a DNS name (letters, digits, `-`, `_`, `.`) or an IP address.
    #[error("the host is not a DNS name or an IP address")]
    Host,
}

/// Checks the URL of an incoming request (`http://HOST[:PORT]/PATH?QUERY`, built by the
/// host from the `Host` header and the request target) and parses it.
pub fn check(raw: &[u8]) -> Result<url::Url, TargetError> {
    if raw.len() > MAX_URL {
        return Err(TargetError::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| TargetError::NotUtf8)?;
    let url = url::Url::parse(text).map_err(TargetError::Unparseable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    match url.host() {
        Some(url::Host::Domain(d)) if valid_dns_name(d) => Ok(url),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Ok(url),
        _ => Err(TargetError::Host),
    }
}

fn valid_dns_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How many rounds of percent-decoding a path is checked through: an origin (or a chain of
/// them) that decodes more often than this still meets no dot segment, because a path that
/// would still change after these rounds is refused.
const DECODE_ROUNDS: usize = 3;

/// Whether a request path is safe to put behind a route's path prefix: it starts with `/`
/// and has no dot segment (`.` or `..`) that could climb out of the prefix at the origin,
/// however it is written: plainly, percent-encoded (`%2e`, also twice: `%252e`), behind an
/// encoded slash or a backslash (`%2f`, `%5c`, `\`), or with path parameters or a NUL that
/// some servers drop (`..;`, `.;x=1`, `%2e%2e%3b`, `..%00`).
pub fn safe_path(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    let mut stage = path.as_bytes().to_vec();
    for _ in 0..=DECODE_ROUNDS {
        if has_dot_segment(&stage) {
            return false;
        }
        let next = percent_decode(&stage);
        if next == stage {
            return true;
        }
        stage = next;
    }
    // Still encoded after every round: more layers than any origin should peel.
    false
}

/// Whether a segment, cut at its first `;` or NUL, is `.` or `..`.
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/' || b == b'\\').any(|seg| {
        let name = seg.split(|&b| b == b';' || b == 0).next().unwrap_or(seg);
        name == b"." || name == b".."
    })
}

/// The query without any `name` parameter (written `name`, `name=...`, or with the name
/// percent- or `+`-encoded): `Some(rest)` when one was taken out (`rest` may be empty),
/// `None` when there was none.
pub fn without_param(query: &str, name: &str) -> Option<String> {
    let is_it = |part: &str| {
        let raw = part.split_once('=').map_or(part, |(n, _)| n);
        raw == name || percent_decode(raw.replace('+', " ").as_bytes()) == name.as_bytes()
    };
    if !query.split('&').any(is_it) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !is_it(p)).collect();
    Some(kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_the_sdk_would_panic_on_are_refused() {
        for ok in [
            "http://edge.test/",
            "http://edge.test/products?x=1",
            "https://shop.example:8443/a;b/c",
            "http://127.0.0.1:7676/",
            "http://[::1]:7676/",
            "http://my_host.local/",
        ] {
            assert!(check(ok.as_bytes()).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://x:99999/", "cannot be parsed"),
            ("http://x:abc/", "cannot be parsed"),
            ("http://x:-1/", "cannot be parsed"),
            ("http://300.1.1.1/", "cannot be parsed"),
            ("http://127.0.0.1:7676*", "cannot be parsed"),
            ("http://edge.test*", "not a DNS name"),
            ("http://edge.test*/products", "not a DNS name"),
            ("ftp://edge.test/", "scheme"),
            ("/relative", "cannot be parsed"),
        ] {
            let err = check(bad.as_bytes()).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains(why)),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(check(b"http://a/\xff"), Err(TargetError::NotUtf8));
        let long = format!("http://a/{}", "x".repeat(MAX_URL));
        assert_eq!(check(long.as_bytes()), Err(TargetError::TooLong));
    }

    #[test]
    fn dot_segments_are_refused_however_written() {
        for ok in [
            "/",
            "/ja/products",
            "/a.b/c..d/.hidden",
            "/files/a%2fb",
            "/v1.2/x",
            "/a;v=1/b..c",
            "/..a/b;..",
            "/100%25/off",
            "/%zz/x",
        ] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in [
            "/../etc/passwd",
            "/a/..",
            "/./a",
            "/%2e%2e/admin",
            "/%2E%2e/admin",
            "/a/%2e%2e%2fadmin",
            "/a/..%2fadmin",
            "/a\\..\\admin",
            "/a/..%5cadmin",
            "/..;/admin",
            "/.;/admin",
            "/a/..;x=1/admin",
            "/%2e%2e;/admin",
            "/%2e%2e%3b/admin",
            "/..%3B/admin",
            "/..%00/admin",
            "/%252e%252e/admin",
            "/%25252e%25252e/admin",
            "/%2525252525252e/admin",
            "relative",
            "",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn the_preview_parameter_is_taken_out_of_the_query() {
        let p = PREVIEW_PARAM;
        assert_eq!(without_param("q=1&x=2", p), None);
        assert_eq!(
            without_param("q=1&ef_preview=abc.def&x=2", p).as_deref(),
            Some("q=1&x=2")
        );
        assert_eq!(without_param("ef_preview=abc", p).as_deref(), Some(""));
        assert_eq!(
            without_param("ef_preview&ef%5Fpreview=a&ef_preview=b&keep=ef_preview", p).as_deref(),
            Some("keep=ef_preview")
        );
        assert_eq!(without_param("ef_previewx=1", p), None);
    }
}
