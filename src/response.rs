//! Responses the edge makes itself: health, error pages, and operator log lines. The one
//! place where an edge problem becomes an HTTP status.

use std::io::Write;

use fastly::Response;
use fastly::http::StatusCode;

use crate::OPS_LOG;
use crate::config::Loaded;

/// A plain error page: the status and a sentence for people, never internals.
pub fn status_page(status: StatusCode, message: &str) -> Response {
    Response::from_status(status)
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_header("cache-control", "no-store")
        .with_body(format!(
            "{} {}\n{message}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ))
}

/// The answer to a request whose URL the edge refuses (a bad `Host`, `OPTIONS *`, a URL
/// over the limit): a 400 (414 when too long), logged as a client error.
pub fn bad_target(why: &edgeflags_engine::target::TargetError) -> Response {
    log_ops("client", &format!("request refused: {why}"));
    match why {
        edgeflags_engine::target::TargetError::TooLong => {
            status_page(StatusCode::URI_TOO_LONG, "The request URL is too long.")
        }
        _ => status_page(
            StatusCode::BAD_REQUEST,
            "The request's host or target is not valid.",
        ),
    }
}

/// `/.edgeflags/health`: the snapshot in use, where it came from and any problems.
pub fn health(loaded: &Loaded) -> Response {
    let body = serde_json::json!({
        "status": if loaded.problems.is_empty() { "ok" } else { "degraded" },
        "version": loaded.version,
        "source": loaded.source.name(),
        "slot": loaded.slot,
        "flags": loaded.snapshot.as_ref().map(|s| s.len()).unwrap_or(0),
        "lookups": loaded.lookups,
        "cached": loaded.reused,
        "problems": loaded.problems,
    });
    Response::from_status(StatusCode::OK)
        .with_header("content-type", "application/json")
        .with_header("cache-control", "no-store")
        .with_body(body.to_string())
}

/// `/.edgeflags/explain`: every decision for this request (GET) or for a given context
/// (POST `{"context": {...}}`), with reasons, rules and buckets. Allowed only with the
/// `explain_token` secret as a bearer token, or a valid preview token.
pub fn explain(mut req: fastly::Request, loaded: &Loaded) -> Response {
    let Some(snapshot) = loaded.snapshot.as_deref() else {
        return status_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No flag configuration is available.",
        );
    };
    // An operator holding the explain_token may name the user with `edgeflags-user`.
    let caller = crate::auth::caller(&req, "explain_token");
    let server = caller == crate::auth::Caller::Authenticated;
    let mut rc = crate::context::from_request(&req, loaded, server);
    let allowed = match caller {
        crate::auth::Caller::Authenticated => true,
        crate::auth::Caller::Refused => false,
        crate::auth::Caller::Anonymous => rc.preview,
    };
    if !allowed {
        log_ops("explain", "explain refused: no valid token");
        return status_page(StatusCode::FORBIDDEN, "Explain needs a valid token.");
    }
    if req.get_method() == fastly::http::Method::POST {
        let bytes = match read_body(&mut req, 64 * 1024) {
            Ok(b) => b,
            Err(e) => return e.page(),
        };
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Some(obj) = body.get("context").and_then(|c| c.as_object()) {
            rc.ctx = edgeflags_engine::Context::from_json(obj);
            rc.traits = crate::traits::Report::from_body(&rc.ctx);
            crate::context::zone_from_attributes(&mut rc.ctx, rc.now);
        }
    }
    let mut doc = edgeflags_engine::explain::explain(snapshot, &rc.ctx, rc.now);
    doc["traits"] = rc.traits.to_json();
    Response::from_status(StatusCode::OK)
        .with_header("content-type", "application/json")
        .with_header("cache-control", "no-store")
        .with_body(doc.to_string())
}

/// `POST /.edgeflags/track` with `{"event": "purchase", "value": 42.5}`: logs a
/// conversion with the variants this user is served now, and answers 204.
pub fn track(mut req: fastly::Request, loaded: &Loaded) -> Response {
    let Some(snapshot) = loaded.snapshot.as_deref() else {
        return status_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No flag configuration is available.",
        );
    };
    if req.get_method() != fastly::http::Method::POST {
        return status_page(StatusCode::METHOD_NOT_ALLOWED, "Use POST.")
            .with_header("allow", "POST");
    }
    let server = crate::auth::caller(&req, "ofrep_token") == crate::auth::Caller::Authenticated;
    let rc = crate::context::from_request(&req, loaded, server);
    let bytes = match read_body(&mut req, 4096) {
        Ok(b) => b,
        Err(e) => return e.page(),
    };
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let event = body.get("event").and_then(|e| e.as_str()).filter(|e| {
        !e.is_empty()
            && e.len() <= 64
            && e.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    });
    let Some(event) = event else {
        return status_page(
            StatusCode::BAD_REQUEST,
            "Send {\"event\": \"name\", \"value\": number} (name: letters, digits, _ - .).",
        );
    };
    let value = body
        .get("value")
        .and_then(|v| v.as_f64())
        .filter(|v| v.is_finite());
    crate::events::conversion(snapshot, &loaded.version, &rc, event, value);
    let mut resp =
        Response::from_status(StatusCode::NO_CONTENT).with_header("cache-control", "no-store");
    if let Some(id) = &rc.new_id {
        resp.append_header(
            "set-cookie",
            format!(
                "{}={id}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax",
                crate::context::ID_COOKIE
            ),
        );
    }
    resp
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the endpoint takes.
    TooLarge,
    /// The client broke it off or mangled it (a bad chunk, a connection cut mid-body).
    Broken(String),
}

impl BodyError {
    /// The client's 4xx page for it; a broken body is also logged as a client error.
    pub fn page(&self) -> Response {
        match self {
            BodyError::TooLarge => status_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ),
            BodyError::Broken(_) => {
                self.log();
                status_page(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                )
            }
        }
    }

    /// Logs a broken body as the client's error (never an origin's).
    pub fn log(&self) {
        if let BodyError::Broken(why) = self {
            log_ops("client", &format!("request body could not be read: {why}"));
        }
    }
}

/// Reads a request body of at most `limit` bytes. Never reads more than `limit + 1`
/// bytes, whatever the client sends.
pub fn read_body(req: &mut fastly::Request, limit: usize) -> Result<Vec<u8>, BodyError> {
    use std::io::Read;
    let mut out = Vec::new();
    let body = req.take_body();
    body.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Broken(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// Writes one JSON line to the operator log endpoint (one `write` per line).
pub fn log_ops(area: &str, message: &str) {
    let line = serde_json::json!({ "kind": "ops", "area": area, "message": message }).to_string();
    if let Ok(mut ep) = fastly::log::Endpoint::try_from_name(OPS_LOG) {
        let _ = ep.write_all(line.as_bytes());
    }
}
