//! Forwarding to the origin: the routes table picks the backend and path prefix; the
//! decisions and trusted geo/device attributes go along as headers, after removing any
//! header of those names the client sent. A failing origin (refused, timed out, 5xx)
//! gets one try of the fallback route, then a plain error page with the right status.

use edgeflags_engine::{AttrValue, Route, attributes};
use fastly::http::StatusCode;
use fastly::http::request::SendErrorCause;
use fastly::{Request, Response};

use crate::config::Loaded;
use crate::context::{ID_COOKIE, RequestContext, USER_HEADER};
use crate::response::{log_ops, status_page};

/// Header prefix reserved for what the edge tells the origin.
pub const HEADER_PREFIX: &str = "edgeflags-";
/// The decisions header: `flag=variant; flag=variant`.
pub const DECISIONS_HEADER: &str = "edgeflags-decisions";

/// The cache key sent to the origin (hex), so it can see what the edge caches by.
pub const CACHE_KEY_HEADER: &str = "edgeflags-cache-key";

/// SHA-256 of the backend, method, URL (with the routed path) and content decisions.
fn cache_key(backend: &str, req: &Request, content: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"edgeflags-cache-v1\n");
    h.update(backend.as_bytes());
    h.update(b"\n");
    h.update(req.get_method_str().as_bytes());
    h.update(b"\n");
    h.update(req.get_url_str().as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    h.finalize().into()
}

/// A failed send that took at least this long is reported as a timeout (504).
const SLOW_FAILURE: std::time::Duration = std::time::Duration::from_secs(1);

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
    // A dot segment could climb out of a route's path prefix at the origin.
    if !edgeflags_engine::route::safe_path(req.get_path()) {
        return status_page(StatusCode::BAD_REQUEST, "The request path is not valid.");
    }
    let evals: Vec<_> = snapshot.evaluate_all(&rc.ctx, rc.now).collect();
    let mut decisions = String::new();
    let mut content = String::new();
    for e in &evals {
        if let Some(v) = e.variant {
            let is_content = snapshot.flag(e.key).is_some_and(|f| f.metadata().content);
            for out in [Some(&mut decisions), is_content.then_some(&mut content)]
                .into_iter()
                .flatten()
            {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(e.key);
                out.push('=');
                out.push_str(v);
            }
        }
    }
    crate::events::exposures(snapshot, &loaded.version, &rc, &evals);
    req.set_header(DECISIONS_HEADER, decisions);
    for name in attributes::PLATFORM.iter().chain(&["language"]) {
        if let Some(AttrValue::Str(v)) = rc.ctx.get(name) {
            req.set_header(format!("{HEADER_PREFIX}{name}"), v.as_str());
        }
    }
    req.set_header("edgeflags-snapshot", loaded.version.as_str());
    let original_path = req.get_path().to_string();
    let route = snapshot.route(&rc.ctx, rc.now);
    let fallback = snapshot
        .fallback_route()
        .filter(|f| f.backend != route.backend);
    let retry = fallback.map(|_| req.clone_with_body());
    let mut resp = match send(req, route, &original_path, &content) {
        Ok(r) => r,
        Err(first) => match (fallback, retry) {
            (Some(fb), Some(again)) => match send(again, fb, &original_path, &content) {
                Ok(r) => r,
                Err(_) => first.page(),
            },
            _ => first.page(),
        },
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

/// How an origin failed.
enum Failure {
    Unreachable,
    Timeout,
    Status(StatusCode),
}

impl Failure {
    fn page(&self) -> Response {
        match self {
            Failure::Unreachable => {
                status_page(StatusCode::BAD_GATEWAY, "The origin could not be reached.")
            }
            Failure::Timeout => status_page(
                StatusCode::GATEWAY_TIMEOUT,
                "The origin did not answer in time.",
            ),
            Failure::Status(s)
                if *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::GATEWAY_TIMEOUT =>
            {
                status_page(*s, "The origin is unavailable.")
            }
            Failure::Status(_) => status_page(
                StatusCode::BAD_GATEWAY,
                "The origin could not answer this request.",
            ),
        }
    }
}

fn send(
    mut req: Request,
    route: &Route,
    original_path: &str,
    content: &str,
) -> Result<Response, Failure> {
    req.set_header("edgeflags-route", route.id.as_str());
    let path = match &route.path_prefix {
        Some(prefix) => format!("{prefix}{original_path}"),
        None => original_path.to_string(),
    };
    req.set_path(&path);
    if let Some(host) = &route.host {
        req.set_header("host", host.as_str());
    }
    let backend = route.backend.as_str();
    // The cache key: the backend, the request as sent, and the decisions that change
    // content, never the user. One cached object serves every user of the same variants.
    let key = cache_key(backend, &req, content);
    req.set_header(CACHE_KEY_HEADER, edgeflags_engine::pack::hex(&key));
    req.set_cache_key(key.to_vec());
    let started = std::time::Instant::now();
    match req.send(backend) {
        Ok(r) if r.get_status().is_server_error() => {
            log_ops(
                "origin",
                &format!("backend {backend} answered {}", r.get_status().as_u16()),
            );
            Err(Failure::Status(r.get_status()))
        }
        Ok(r) => Ok(r),
        Err(e) => {
            let cause = e.root_cause();
            log_ops("origin", &format!("backend {backend} failed: {cause:?}"));
            // Viceroy reports a first-byte timeout as an internal error, so a failure that
            // took a second or more (a refusal takes milliseconds) also counts as one.
            let slow = started.elapsed() >= SLOW_FAILURE;
            match cause {
                SendErrorCause::HttpResponseTimeout
                | SendErrorCause::ConnectionTimeout
                | SendErrorCause::DnsTimeout => Err(Failure::Timeout),
                SendErrorCause::ConnectionRefused => Err(Failure::Unreachable),
                _ if slow => Err(Failure::Timeout),
                _ => Err(Failure::Unreachable),
            }
        }
    }
}
