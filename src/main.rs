//! The edgeflags edge app on Fastly Compute: a thin adapter between a Fastly request and
//! the engine. It loads the flag snapshot (config store, else the embedded copy), builds
//! the user's context, decides every flag, and forwards the request to the origin the
//! routes table picks, with the decisions as headers.

mod config;
mod context;
mod geo;
mod origin;
mod response;

use std::time::Instant;

use fastly::{Request, Response};

/// The name of the config store that holds the packed flag snapshot.
pub const CONFIG_STORE: &str = "edgeflags";
/// The name of the secret store (snapshot signing key, preview-token key).
pub const SECRET_STORE: &str = "edgeflags_secrets";
/// The log endpoint for operator messages (config problems, ignored tokens).
pub const OPS_LOG: &str = "edgeflags_ops";

fn main() {
    let req = Request::from_client();
    let resp = handle(req);
    resp.send_to_client();
}

/// Handles one request. Never fails: every problem becomes a response with the right
/// status (see [`response::status_page`]).
fn handle(req: Request) -> Response {
    let started = Instant::now();
    let loaded = config::load();
    let config_done = Instant::now();
    let path = req.get_path().to_string();
    let mut resp = if path == "/.edgeflags/health" {
        response::health(&loaded)
    } else {
        let ctx = context::from_request(&req, &loaded);
        origin::forward(req, &loaded, ctx)
    };
    let eval_done = Instant::now();
    resp.set_header("edgeflags-snapshot", loaded.version.as_str());
    resp.set_header(
        "server-timing",
        format!(
            "config;dur={:.3};desc=\"lookups={} source={}\", edge;dur={:.3}",
            (config_done - started).as_secs_f64() * 1000.0,
            loaded.lookups,
            loaded.source.name(),
            (eval_done - config_done).as_secs_f64() * 1000.0,
        ),
    );
    resp
}
