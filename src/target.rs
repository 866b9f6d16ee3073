//! The client request's URL, read through the raw hostcall before anything touches the
//! SDK's parsed `Url`. The `fastly` crate parses the URL the host built (from `Host` and
//! the request target) lazily, on the first `get_path`, `get_url` or `send`, and panics
//! (`host provided invalid request url`) on one it rejects: `Host: x:99999`, `x:abc`,
//! `300.1.1.1`, or `OPTIONS *` glued to a port. The SDK offers no fallible way to read
//! it (`RequestHandle::get_url` has the same `expect`), so the bytes come from
//! `fastly_http_req::uri_get` and the engine checks them with the SDK's own parser;
//! a request it refuses is answered 400 (414 when too long) and never parsed by the SDK.

use edgeflags_engine::target::{self, MAX_URL, TargetError};
use fastly::Request;

/// The first buffer tried; a longer URL is read again at its size, up to [`MAX_URL`].
const FIRST_TRY: usize = 2048;

/// Checks the URL of the client request without parsing it through the SDK.
pub fn check(req: &Request) -> Result<(), TargetError> {
    target::check(&raw_url(req)?).map(|_| ())
}

/// The URL bytes as the host holds them.
fn raw_url(req: &Request) -> Result<Vec<u8>, TargetError> {
    let handle = req.as_handles().0.as_u32();
    let mut size = FIRST_TRY;
    for _ in 0..2 {
        let mut buf = vec![0u8; size];
        let mut written = 0usize;
        crate::platform::count(crate::platform::Call::Meta, 1);
        // SAFETY: the pointer and length describe a live buffer owned by this function;
        // the host writes at most `buf.len()` bytes and reports how many (or, when the
        // buffer is too small, how many it needs) in `written`.
        let status = unsafe {
            fastly_sys::fastly_http_req::uri_get(handle, buf.as_mut_ptr(), buf.len(), &mut written)
        };
        if status.is_ok() && written <= buf.len() {
            buf.truncate(written);
            return Ok(buf);
        }
        if written > MAX_URL {
            return Err(TargetError::TooLong);
        }
        if written <= buf.len() {
            return Err(TargetError::Unreadable);
        }
        size = written;
    }
    Err(TargetError::Unreadable)
}
