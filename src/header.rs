//! Writing header values: every value that is not a fixed string of the edge's own goes
//! through the engine's checked encoder (`edgeflags_engine::header_value`), then through
//! the fallible conversions of the `http` types, so a value from a token, the geolocation
//! data, a flag file or a client never reaches the `fastly` crate's panicking
//! conversion. A value that cannot be written is left out.

use edgeflags_engine::header_value;
use fastly::http::{HeaderName, HeaderValue};
use fastly::{Request, Response};

/// The checked name and value, or `None` when either cannot be a header.
fn checked(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(&header_value::encode(value)?).ok()?;
    Some((name, value))
}

/// Sets a request header to a value the engine has already encoded (such as
/// `edgeflags_engine::forward`'s), checked again but not encoded twice.
pub fn set_encoded(req: &mut Request, name: &str, encoded: &str) {
    let name = HeaderName::from_bytes(name.as_bytes()).ok();
    let value = header_value::is_valid(encoded.as_bytes())
        .then(|| HeaderValue::from_str(encoded).ok())
        .flatten();
    if let (Some(n), Some(v)) = (name, value) {
        req.set_header(n, v);
    }
}

/// Sets a request header to `value`, encoded; leaves it unset when it cannot be written.
pub fn set(req: &mut Request, name: &str, value: &str) {
    if let Some((n, v)) = checked(name, value) {
        req.set_header(n, v);
    }
}

/// Sets a response header to `value`, encoded; leaves it unset when it cannot be written.
pub fn set_on(resp: &mut Response, name: &str, value: &str) {
    if let Some((n, v)) = checked(name, value) {
        resp.set_header(n, v);
    }
}
