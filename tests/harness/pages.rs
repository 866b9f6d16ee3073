//! Test pages for the edge's page handling (`/t/...`): a binary body, a gzip-encoded
//! page, pages that set a cookie or are private (one of them slow), an ISO-8859-1 page, and hostile HTML (a
//! 1 MB attribute, 100,000 elements of which 10,000 match a change's selector, invalid
//! UTF-8). Every path outside `/t/` and the fragment is the demo origin's
//! ([`Behaviour::Site`](crate::Behaviour::Site)).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::{Body, Request, Response};

/// The binary body served at `/t/binary`: every byte value, and markup that a rewriter
/// would change if it (wrongly) read it.
pub fn binary() -> Vec<u8> {
    let mut b: Vec<u8> = (0..=255u8).collect();
    b.extend_from_slice(b"<html><head></head><div id=\"banner\"><h2>x</h2></div>");
    b.extend((0..=255u8).rev());
    b
}

/// The HTML behind `/t/gzip`, before compression.
pub const GZIP_PAGE: &str =
    "<html><head></head><body><div id=\"banner\"><h2>Compressed</h2></div></body></html>";

/// The gzip bytes served at `/t/gzip`.
pub fn gzip() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(GZIP_PAGE.as_bytes());
    e.finish().unwrap_or_default()
}

/// The hostile page with a 1 MB attribute on the banner.
pub fn big_attribute() -> String {
    format!(
        "<html><head></head><body><div id=\"banner\" data-x=\"{}\"><h2>Big</h2></div></body></html>",
        "a".repeat(1 << 20)
    )
}

/// The hostile page with 100,000 elements, 10,000 of them `#tile-1 h3` (duplicate ids).
pub fn many_elements() -> String {
    let mut s = String::from("<html><head></head><body><ul>");
    for i in 0..10_000 {
        s.push_str("<li id=\"tile-1\"><h3>t</h3><p>a</p><p>b</p><p>c</p><p>d</p><p>e</p><p>f</p><p>g</p><b>h</b></li>");
        if i == 0 {
            s.push_str("<div id=\"banner\"><h2>Many</h2></div>");
        }
    }
    s.push_str("</ul></body></html>");
    s
}

/// Malformed markup with bytes that are not UTF-8.
pub fn invalid_utf8() -> Vec<u8> {
    let mut b =
        b"<html><head></head><body><div id=\"banner\"><h2>\xff\xfe bad</h2></div><p <<".to_vec();
    b.extend_from_slice(b"\x00\xc3</i></b><div class=\"x\" =\"\"> \xe9t\xe9 <!-- unclosed");
    b
}

/// An ISO-8859-1 page (é and ü as single bytes).
pub fn latin1() -> Vec<u8> {
    b"<html><head></head><body><div id=\"banner\"><h2>Caf\xe9</h2></div><p>M\xfcnchen</p></body></html>".to_vec()
}

fn page(ct: &str, cache: &str, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .header("content-type", ct)
        .header("cache-control", cache)
        .body(body.into())
        .unwrap_or_default()
}

const HTML: &str = "text/html; charset=utf-8";

const SHARED: &str = "public, max-age=300";

/// The two `Content-Security-Policy` values of `/t/csp`.
pub const CSP_PAGE_POLICIES: [&str; 2] = [
    "default-src 'self'",
    "img-src 'self' https://café.example; report-uri /csp-reports",
];

/// Requests for `/t/slow-private` the origin is answering now, and the most it has
/// answered at once.
static SLOW_NOW: AtomicUsize = AtomicUsize::new(0);
static SLOW_PEAK: AtomicUsize = AtomicUsize::new(0);

/// How long the origin holds each request for `/t/slow-private`.
pub const SLOW_HOLD: Duration = Duration::from_millis(600);

/// The most requests for `/t/slow-private` the origin has held at once since the last
/// [`slow_peak_reset`].
pub fn slow_peak() -> usize {
    SLOW_PEAK.load(Ordering::SeqCst)
}

/// Starts counting [`slow_peak`] afresh.
pub fn slow_peak_reset() {
    SLOW_PEAK.store(0, Ordering::SeqCst);
}

/// The answer for a test path, or `None` for the demo origin's paths.
pub async fn respond(req: &Request<Body>) -> Option<Response<Body>> {
    let path = req.uri().path();
    let path = path.strip_prefix("/en").unwrap_or(path);
    Some(match path {
        "/t/binary" => page("application/octet-stream", SHARED, binary()),
        "/t/json" => page(
            "application/json",
            SHARED,
            r#"{"banner":"<div id=\"banner\"><h2>x</h2></div>"}"#,
        ),
        "/t/gzip" => {
            let mut r = page(HTML, SHARED, gzip());
            r.headers_mut().insert(
                "content-encoding",
                hyper::header::HeaderValue::from_static("gzip"),
            );
            r
        }
        "/t/cookie" => {
            let mut r = page(
                HTML,
                SHARED,
                "<html><head></head><body><div id=\"banner\"><h2>c</h2></div></body></html>",
            );
            r.headers_mut().insert(
                "set-cookie",
                hyper::header::HeaderValue::from_static("session=abc"),
            );
            r
        }
        "/t/private" => page(
            HTML,
            "private, max-age=300",
            "<html><head></head><body><div id=\"banner\"><h2>p</h2></div></body></html>",
        ),
        "/t/slow-private" => {
            // A page never stored, answered slowly: requests the edge sends side by side
            // are held here together.
            let now = SLOW_NOW.fetch_add(1, Ordering::SeqCst) + 1;
            SLOW_PEAK.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(SLOW_HOLD).await;
            SLOW_NOW.fetch_sub(1, Ordering::SeqCst);
            page(
                HTML,
                "private",
                "<html><head></head><body><div id=\"banner\"><h2>s</h2></div></body></html>",
            )
        }
        "/t/big-attribute" => page(HTML, SHARED, big_attribute()),
        "/t/many" => page(HTML, SHARED, many_elements()),
        "/t/invalid-utf8" => page(HTML, SHARED, invalid_utf8()),
        "/t/latin1" => page("text/html; charset=ISO-8859-1", SHARED, latin1()),
        "/t/csp" => {
            // Two policies: one that blocks inline styles, one (with a character a
            // header value can carry but the edge's own encoding would escape) that
            // does not restrict styles at all.
            let mut resp = page(
                HTML,
                SHARED,
                "<!doctype html><title>csp</title><p>policy</p></body>",
            );
            for policy in CSP_PAGE_POLICIES {
                if let Ok(v) = hyper::header::HeaderValue::from_str(policy) {
                    resp.headers_mut().append("content-security-policy", v);
                }
            }
            resp
        }
        "/fragments/recs" => {
            // A request marked by the test decides how the fragment origin behaves; the
            // answer varies on the mark, so the cached fragment never stands in for it.
            let mark = req
                .headers()
                .get("x-test-fragment")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            match mark.as_str() {
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    page(HTML, SHARED, "too late")
                }
                "fail" => Response::builder()
                    .status(503)
                    .body(Body::from("fragment origin failing"))
                    .unwrap_or_default(),
                _ => {
                    let mut r = page(HTML, SHARED, crate::store::RECS);
                    r.headers_mut().insert(
                        "vary",
                        hyper::header::HeaderValue::from_static("x-test-fragment"),
                    );
                    r
                }
            }
        }
        _ => return None,
    })
}
