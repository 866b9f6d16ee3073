//! Forwarding to the origin: the routes table picks the backend and path prefix; the
//! decisions and trusted geo/device attributes go along as headers, after removing any
//! header of those names the client sent.

use edgeflags_engine::AttrValue;
use fastly::http::StatusCode;
use fastly::{Request, Response};

use crate::config::Loaded;
use crate::context::{ID_COOKIE, RequestContext, USER_HEADER};
use crate::response::{log_ops, status_page};

/// Header prefix reserved for what the edge tells the origin.
pub const HEADER_PREFIX: &str = "edgeflags-";
/// The decisions header: `flag=variant; flag=variant`.
pub const DECISIONS_HEADER: &str = "edgeflags-decisions";

/// Attributes passed to the origin as trusted headers.
const TRUSTED: [&str; 7] = [
    "country",
    "region",
    "city",
    "continent",
    "timezone",
    "device",
    "language",
];

/// Decides every flag, picks the route and forwards the request.
pub fn forward(mut req: Request, loaded: &Loaded, rc: RequestContext) -> Response {
    let Some(snapshot) = loaded.snapshot.as_ref() else {
        return status_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No flag configuration is available.",
        );
    };
    // A client cannot forge decisions or trusted attributes.
    let forged: Vec<String> = req
        .get_header_names_str()
        .into_iter()
        .filter(|n| {
            n.to_ascii_lowercase().starts_with(HEADER_PREFIX)
                && !n.eq_ignore_ascii_case(USER_HEADER)
        })
        .map(str::to_string)
        .collect();
    for name in forged {
        req.remove_header(name);
    }
    let mut decisions = String::new();
    for e in snapshot.evaluate_all(&rc.ctx, rc.now) {
        if let Some(v) = e.variant {
            if !decisions.is_empty() {
                decisions.push_str("; ");
            }
            decisions.push_str(e.key);
            decisions.push('=');
            decisions.push_str(v);
        }
    }
    req.set_header(DECISIONS_HEADER, decisions);
    for name in TRUSTED {
        if let Some(AttrValue::Str(v)) = rc.ctx.get(name) {
            req.set_header(format!("{HEADER_PREFIX}{name}"), v.as_str());
        }
    }
    req.set_header("edgeflags-snapshot", loaded.version.as_str());
    let route = snapshot.route(&rc.ctx, rc.now);
    req.set_header("edgeflags-route", route.id.as_str());
    if let Some(prefix) = &route.path_prefix {
        let path = req.get_path().to_string();
        req.set_path(&format!("{prefix}{path}"));
    }
    if let Some(host) = &route.host {
        req.set_header("host", host.as_str());
    }
    let backend = route.backend.clone();
    let mut resp = match req.send(backend.as_str()) {
        Ok(r) if r.get_status().is_server_error() => {
            log_ops(
                "origin",
                &format!("backend {backend} answered {}", r.get_status().as_u16()),
            );
            status_page(
                StatusCode::BAD_GATEWAY,
                "The origin could not answer this request.",
            )
        }
        Ok(r) => r,
        Err(e) => {
            log_ops(
                "origin",
                &format!("backend {backend} failed: {:?}", e.root_cause()),
            );
            status_page(StatusCode::BAD_GATEWAY, "The origin could not be reached.")
        }
    };
    if let Some(id) = &rc.new_id {
        resp.append_header(
            "set-cookie",
            format!("{ID_COOKIE}={id}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax"),
        );
        // A response that sets a new id must never be stored in a shared cache.
        resp.set_header("cache-control", "private, no-store");
    }
    resp
}
