//! The throughput baseline: forwards every request to `origin_us` and returns the answer,
//! with the same reusable-sandbox loop as the edge app and nothing else. It links only for
//! wasm32-wasip1 (like the edge app, it is not a default workspace member).

use std::time::Duration;

use fastly::http::StatusCode;
use fastly::http::serve::Serve;
use fastly::{Request, Response};

fn main() {
    Serve::new()
        .with_max_requests(10_000)
        .with_max_lifetime(Duration::from_secs(300))
        .with_timeout(Duration::from_secs(5))
        .run(|req: Request| match req.send("origin_us") {
            Ok(r) => r,
            Err(_) => Response::from_status(StatusCode::BAD_GATEWAY),
        });
}
