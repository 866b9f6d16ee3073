//! What the edge sends back: a response as it is, or an HTML response with a fragment
//! (the preview toolbar) inserted before `</body>` as the body streams from the origin
//! to the client (`edgeflags_engine::inject`), never held whole. Only an uncompressed
//! `text/html` body is changed; a changed one is marked `private, no-store`. The content
//! changes of the edge-content work can reuse this as their sending end.

use std::io::{Read, Write};

use edgeflags_engine::inject::BeforeBodyEnd;
use fastly::Response;
use fastly::http::serve::HandlerResult;

/// A response and the fragment to insert into it, if any.
pub struct Reply {
    /// The response.
    pub resp: Response,
    /// The fragment to put before `</body>` of an HTML body.
    pub fragment: Option<String>,
}

impl Reply {
    /// A response sent as it is.
    pub fn plain(resp: Response) -> Reply {
        Reply {
            resp,
            fragment: None,
        }
    }
}

/// Whether the edge may insert into this response's body: `text/html`, not encoded.
fn rewritable(resp: &Response) -> bool {
    let html = resp
        .get_header("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
        });
    let encoded = resp
        .get_header("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
    html && !encoded && resp.get_status().is_success()
}

impl HandlerResult for Reply {
    type Error = std::convert::Infallible;

    fn send(self) -> Result<(), Self::Error> {
        let Reply { mut resp, fragment } = self;
        let Some(fragment) = fragment.filter(|_| rewritable(&resp)) else {
            resp.send_to_client();
            return Ok(());
        };
        let mut body = resp.take_body();
        resp.remove_header("content-length");
        resp.set_header("cache-control", "private, no-store");
        let mut out = resp.stream_to_client();
        let mut inject = BeforeBodyEnd::new(fragment);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut sent = Vec::with_capacity(chunk.len() + 1024);
        loop {
            let n = match body.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sent.clear();
            inject.push(chunk.get(..n).unwrap_or_default(), &mut sent);
            if out.write_all(&sent).is_err() {
                return Ok(());
            }
        }
        sent.clear();
        inject.finish(&mut sent);
        let _ = out.write_all(&sent);
        let _ = out.finish();
        Ok(())
    }
}
