//! The edge's own endpoints: `/.edgeflags/health`, `/.edgeflags/explain` and
//! `/.edgeflags/track`, and the answer to a request whose URL the edge refuses.

use fastly::Response;
use fastly::http::{Method, StatusCode};

use crate::auth::{self, Caller};
use crate::config::Loaded;
use crate::platform::{self, json_response, log_ops, read_body, secrets, status_page};

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
    json_response(StatusCode::OK, body.to_string())
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
    let caller = auth::caller(&req, secrets::EXPLAIN_TOKEN);
    let server = caller == Caller::Authenticated;
    let mut rc = crate::traits::request_context(&req, loaded, server);
    let allowed = match caller {
        Caller::Authenticated => true,
        Caller::Refused => false,
        Caller::Anonymous => rc.preview,
    };
    if !allowed {
        log_ops("explain", "explain refused: no valid token");
        return status_page(StatusCode::FORBIDDEN, "Explain needs a valid token.");
    }
    if req.get_method() == Method::POST {
        let bytes = match read_body(&mut req, 64 * 1024) {
            Ok(b) => b,
            Err(e) => return e.page(),
        };
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Some(obj) = body.get("context").and_then(|c| c.as_object()) {
            rc.ctx = edgeflags_engine::Context::from_json(obj);
            rc.traits = edgeflags_engine::traits::Report::from_body(&rc.ctx);
            crate::context::zone_from_attributes(&mut rc.ctx, rc.now);
        }
    }
    let mut doc = edgeflags_engine::explain::explain(snapshot, &rc.ctx, rc.now);
    doc["traits"] = rc.traits.to_json();
    json_response(StatusCode::OK, doc.to_string())
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
    if req.get_method() != Method::POST {
        return status_page(StatusCode::METHOD_NOT_ALLOWED, "Use POST.")
            .with_header("allow", "POST");
    }
    let server = auth::caller(&req, secrets::OFREP_TOKEN) == Caller::Authenticated;
    let rc = crate::traits::request_context(&req, loaded, server);
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
        platform::set_id_cookie(&mut resp, id);
    }
    resp
}
