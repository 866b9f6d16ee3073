//! The edge's host calls with none of its logic: for the demo page request, the calls a
//! reused instance makes (docs/host-calls.md: the config store's pointer, the headers it
//! reads, the client address, geolocation, device detection, the exposure line, the
//! headers it sets on the request and the response, the send) in the same order, with
//! fixed values where the edge computes them (the decisions, the zone, the cache key).
//! Served against the pass-through (`scripts/bench`), its rate is the most any edge logic
//! could reach on the same host with the same calls. Links only for wasm32-wasip1.

use std::io::Write;
use std::time::Duration;

use fastly::http::serve::Serve;
use fastly::http::{StatusCode, Version};
use fastly::{ConfigStore, Request, Response};

/// An exposure line of the length the edge writes for the demo's `checkout` flag.
const LINE: &str = r#"{"schema_version":3,"kind":"exposure","ts":1796044339424,"flag":"checkout","variant":"v1","reason":"SPLIT","split":[{"variant":"v1","weight":50000},{"variant":"v2","weight":50000}],"snapshot":"219fdbc1027e6fd6","user":"7993d056e3d0ab9196acbb1ba55a9bac","country":"US","device":"bot"}"#;

/// The demo page request's host calls, then the origin's response with the edge's
/// three response headers.
fn handle(mut req: Request) -> Response {
    let store = ConfigStore::try_open("edgeflags").ok();
    let pointer = store
        .as_ref()
        .and_then(|s| s.try_get("pointer").ok().flatten())
        .unwrap_or_default();
    let _ = req.get_url_str().len();
    let path = req.get_path().to_string();
    for h in [
        "edgeflags-preview",
        "authorization",
        "x-api-key",
        "edgeflags-user",
        "cookie",
    ] {
        let _ = req.get_header_str(h);
    }
    let ip = req.get_client_ip_addr();
    let geo = ip.and_then(fastly::geo::geo_lookup);
    let ua = req.get_header_str("user-agent").unwrap_or("").to_string();
    let dev = fastly::device_detection::lookup(&ua);
    let _ = req.get_header_str("accept-language");
    let names: Vec<String> = req
        .get_header_names_str()
        .into_iter()
        .map(str::to_string)
        .collect();
    let _ = names.len();
    req.remove_header("edgeflags-preview");
    if let Ok(mut ep) = fastly::log::Endpoint::try_from_name("edgeflags_events") {
        let _ = ep.write_all(LINE.as_bytes());
    }
    let _ = req.get_method();
    req.set_header("accept-encoding", "identity");
    req.set_header("edgeflags-decisions", "banner=standard; checkout=v1; locale=en; new-search=off; product-tile=spotlight; recommendations=trending_row; store-banner=local; store-checkout=v2; store-recs=none");
    let city = geo
        .as_ref()
        .map(|g| g.city().to_string())
        .unwrap_or_default();
    req.set_header("edgeflags-city", city);
    req.set_header("edgeflags-region", "NY");
    req.set_header("edgeflags-country", "US");
    req.set_header("edgeflags-continent", "NA");
    req.set_header("edgeflags-timezone", "America/New_York");
    req.set_header(
        "edgeflags-device",
        if dev.is_some() { "desktop" } else { "bot" },
    );
    req.set_header("edgeflags-snapshot", &pointer[..pointer.len().min(16)]);
    req.set_version(Version::HTTP_11);
    let _ = req.get_header_str("transfer-encoding");
    let _ = req.get_header_str("content-length");
    req.set_header("edgeflags-route", "default");
    req.set_path(&format!("/en{path}"));
    req.set_header(
        "edgeflags-cache-key",
        "5f0c0d9f6a5c3e2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a09f8e7d6c5b4a39",
    );
    req.set_cache_key(vec![7u8; 32]);
    req.set_pass(true);
    let mut resp = match req.send("origin_us") {
        Ok(r) => r,
        Err(_) => return Response::from_status(StatusCode::BAD_GATEWAY),
    };
    let _ = resp.get_status();
    let _ = resp.get_header_str("content-type");
    let _ = resp.get_header_str("content-encoding");
    resp.set_header("edgeflags-cache", "hit-for-pass (no max-age or s-maxage)");
    resp.set_header("edgeflags-snapshot", "219fdbc1027e6fd6");
    resp.set_header("server-timing", "config;dur=0.010, edge;dur=1.234");
    resp
}

fn main() {
    Serve::new()
        .with_max_requests(10_000)
        .with_max_lifetime(Duration::from_secs(300))
        .with_timeout(Duration::from_secs(5))
        .run(handle);
}
