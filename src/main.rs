//! The edgeflags edge app on Fastly Compute: a thin adapter between a Fastly request and
//! the engine. It loads the flag snapshot (config store, else the embedded copy), builds
//! the user's context, decides every flag, and forwards the request to the origin the
//! routes table picks, with the decisions as headers.

mod auth;
mod config;
mod context;
mod events;
mod geo;
mod header;
mod ofrep;
mod origin;
mod response;
mod target;
mod traits;

use std::time::{Duration, Instant};

use fastly::http::serve::Serve;
use fastly::{Request, Response};

/// The name of the config store that holds the packed flag snapshot.
pub const CONFIG_STORE: &str = "edgeflags";
/// The name of the secret store (snapshot signing key, preview-token key).
pub const SECRET_STORE: &str = "edgeflags_secrets";
/// The log endpoint for operator messages (config problems, ignored tokens).
pub const OPS_LOG: &str = "edgeflags_ops";

/// What one instance keeps between the requests it serves: the compiled snapshot and a
/// request counter. Nothing of a request's own state (user, context, cookies, preview)
/// is kept.
#[derive(Default)]
struct Instance {
    cache: config::Cache,
    requests: u64,
}

fn main() {
    // Reusable sandboxes: one instance may serve several requests, so a compiled
    // snapshot is loaded once and then revalidated by the pointer lookup alone.
    let mut instance = Instance::default();
    Serve::new()
        .with_max_requests(10_000)
        .with_max_lifetime(Duration::from_secs(300))
        .with_timeout(Duration::from_secs(5))
        .run_with_context(handle, &mut instance);
}

/// The size of the instance's linear memory, in KiB.
fn heap_kib() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) * 64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// Sends a request whose URL is known to be good to the endpoint its path names.
fn route(req: Request, loaded: &config::Loaded) -> Response {
    let path = req.get_path().to_string();
    if path == "/.edgeflags/health" {
        response::health(loaded)
    } else if path == "/.edgeflags/explain" {
        response::explain(req, loaded)
    } else if path == "/.edgeflags/track" {
        response::track(req, loaded)
    } else if path.starts_with(ofrep::PREFIX) {
        ofrep::handle(req, loaded)
    } else {
        // A server holding the ofrep_token may name its user with `edgeflags-user`.
        let server = auth::caller(&req, "ofrep_token") == auth::Caller::Authenticated;
        let ctx = context::from_request(&req, loaded, server);
        origin::forward(req, loaded, ctx, server)
    }
}

/// Handles one request. Never fails: every problem becomes a response with the right
/// status (see [`response::status_page`]).
fn handle(req: Request, instance: &mut Instance) -> Response {
    let started = Instant::now();
    instance.requests += 1;
    traits::reset_lookups();
    let loaded = config::load(&mut instance.cache);
    let config_done = Instant::now();
    let mut resp = match target::check(&req) {
        // Checked before anything parses the URL through the SDK, which would panic.
        Err(why) => response::bad_target(&why),
        Ok(()) => route(req, &loaded),
    };
    let eval_done = Instant::now();
    header::set_on(&mut resp, "edgeflags-snapshot", &loaded.version);
    // Debug: the ordinal of this request in its instance (2 and up prove reuse).
    resp.set_header("edgeflags-instance-request", instance.requests.to_string());
    // Debug: the instance's linear memory (KiB), so a load run can see whether reuse grows it.
    resp.set_header("edgeflags-instance-heap-kib", heap_kib().to_string());
    resp.set_header(
        "server-timing",
        format!(
            "config;dur={:.3};desc=\"lookups={} source={} cached={}\", edge;dur={:.3}, traits;desc=\"lookups={}\"",
            (config_done - started).as_secs_f64() * 1000.0,
            loaded.lookups,
            loaded.source.name(),
            loaded.reused,
            (eval_done - config_done).as_secs_f64() * 1000.0,
            traits::lookups(),
        ),
    );
    resp
}
