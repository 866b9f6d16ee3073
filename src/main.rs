//! The edgeflags edge app on Fastly Compute: a thin adapter between a Fastly request and
//! the engine. It loads the flag snapshot (config store, else the embedded copy), builds
//! the user's context, decides every flag, and forwards the request to the origin the
//! routes table picks, with the decisions as headers.
//!
//! Arrows point one way: `main` routes to the handlers (`endpoints`, `ofrep`, `origin`,
//! `console`) and sends what they answer through `page` (which streams a page through the
//! cache, the rewriter and the preview toolbar as it is sent); the handlers use `context`, `traits` and `events`; those use `config`, `auth`, `geo` and
//! `target`; everything uses `platform` (the Fastly I/O), which uses nothing of the edge.
//! Every rule that needs no host call is the engine's.

mod auth;
mod config;
mod console;
mod context;
mod endpoints;
mod events;
mod geo;
mod ofrep;
mod origin;
mod page;
mod platform;
mod target;
mod traits;

use std::time::{Duration, Instant};

use fastly::Request;
use fastly::http::serve::Serve;

use crate::platform::secrets;

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
fn route(req: Request, loaded: &config::Loaded) -> page::Outgoing {
    // The `fastly` crate's first read of the URL (later reads are its own copy).
    platform::count(platform::Call::Meta, 1);
    let path = req.get_path().to_string();
    if path == "/.edgeflags/health" {
        endpoints::health(loaded).into()
    } else if path == "/.edgeflags/explain" {
        endpoints::explain(req, loaded).into()
    } else if path == "/.edgeflags/track" {
        endpoints::track(req, loaded).into()
    } else if path.starts_with(edgeflags_engine::ofrep::PREFIX) {
        ofrep::handle(req, loaded).into()
    } else if console::owns(&path) {
        console::handle(req, loaded).into()
    } else {
        // A server holding the ofrep_token may name its user with `edgeflags-user`.
        let server = auth::caller(&req, secrets::OFREP_TOKEN) == auth::Caller::Authenticated;
        let ctx = traits::request_context(&req, loaded, server);
        // While a preview is active, HTML pages get the toolbar that says so.
        let fragment = console::toolbar(&req, &ctx);
        let mut out = origin::forward(req, loaded, ctx, server);
        if let Some(fragment) = fragment {
            out.toolbar(fragment);
        }
        out
    }
}

/// Whether the request may see the edge's internals (instance ordinals, memory, store
/// and profile lookups): it carries a valid preview token or the explain token. A
/// request with neither costs no secret read.
fn debug_allowed(req: &Request) -> bool {
    // The token is checked once per request: the context reuses this check.
    if context::preview(req).is_some_and(|p| p.checked.is_ok()) {
        return true;
    }
    auth::presented(req).is_some()
        && auth::caller(req, secrets::EXPLAIN_TOKEN) == auth::Caller::Authenticated
}

/// Handles one request and sends the response (a page streams through the cache and
/// the rewriter as it is sent). Never fails: every problem becomes a response with the
/// right status.
fn handle(req: Request, instance: &mut Instance) {
    let started = Instant::now();
    instance.requests += 1;
    traits::reset_lookups();
    platform::reset_calls();
    context::forget_preview();
    let loaded = config::load(&mut instance.cache);
    let config_done = Instant::now();
    // Checked before anything parses the URL through the SDK, which would panic.
    let checked = target::check(&req);
    let debug = checked.is_ok() && debug_allowed(&req);
    let mut out = match checked {
        Err(why) => endpoints::bad_target(&why).into(),
        Ok(()) => route(req, &loaded),
    };
    let resp = &mut out.resp;
    let eval_done = Instant::now();
    platform::set_response_header(resp, "edgeflags-snapshot", &loaded.version);
    let config_ms = (config_done - started).as_secs_f64() * 1000.0;
    let edge_ms = (eval_done - config_done).as_secs_f64() * 1000.0;
    // Every response says how long the edge took (operators and browsers' devtools read
    // it); only a request allowed to debug sees how: the store and profile lookups, the
    // snapshot's source, and the instance it ran on.
    if debug {
        // These three writes are counted before the count is taken, so the count covers
        // every call up to the response's head (its body is sent after it: see
        // docs/host-calls.md).
        platform::count(platform::Call::HeaderWrite, 3);
        let (calls, kinds) = platform::calls();
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
        // The ordinal of this request in its instance (2 and up prove reuse).
        resp.set_header("edgeflags-instance-request", instance.requests.to_string());
        // The instance's linear memory (KiB), so a load run can see whether reuse grows it.
        resp.set_header("edgeflags-instance-heap-kib", heap_kib().to_string());
        resp.set_header(
            "server-timing",
            format!(
                "config;dur={config_ms:.3};desc=\"lookups={} source={} cached={}\", edge;dur={edge_ms:.3}, traits;desc=\"lookups={}\", host;desc=\"calls={calls} {}\"",
                loaded.lookups,
                loaded.source.name(),
                loaded.reused,
                traits::lookups(),
                kinds.join(" "),
            ),
        );
    } else {
        platform::count(platform::Call::HeaderWrite, 1);
        resp.set_header(
            "server-timing",
            format!("config;dur={config_ms:.3}, edge;dur={edge_ms:.3}"),
        );
    }
    out.send();
}
