//! The OpenFeature Remote Evaluation Protocol (OFREP 0.3.0): single and bulk evaluation,
//! with the protocol's bodies, reasons, error codes and statuses, an ETag over the bulk
//! response (so it changes with the snapshot and with the context), CORS for browsers,
//! and context precedence: a browser's call cannot override the edge's geo and device; a
//! call with the `ofrep_token` secret speaks for its own end user, so its body wins.
//! Traits are read only for a verified identity (`edgeflags_engine::identity`): the user
//! a server call names, or a browser's signed identity cookie; never for a key the
//! browser chooses.

use edgeflags_engine::explain::evaluation_json;
use edgeflags_engine::identity::Identity;
use edgeflags_engine::{Context, ErrorCode, Evaluation, Reason, attributes, traits};
use fastly::http::{Method, StatusCode};
use fastly::{Request, Response};
use serde_json::{Value, json};

use crate::auth::{self, Caller};
use crate::config::Loaded;
use crate::context::{self, ID_COOKIE, USER_HEADER};
use crate::response::BodyError;

/// Path prefix of the protocol.
pub const PREFIX: &str = "/ofrep/v1/";
/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Handles a request under `/ofrep/v1/`.
pub fn handle(mut req: Request, loaded: &Loaded) -> Response {
    let Some(snapshot) = loaded.snapshot.as_deref() else {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorDetails": "no flag configuration"}),
        );
    };
    let settings = snapshot.ofrep();
    let cors_origin = crate::context::header(&req, "origin").and_then(|o| {
        settings
            .cors_origins
            .iter()
            .any(|a| a == "*" || a == o)
            .then(|| o.to_string())
    });
    let path = req.get_path().to_string();
    let single = path
        .strip_prefix("/ofrep/v1/evaluate/flags/")
        .map(str::to_string);
    let bulk = path == "/ofrep/v1/evaluate/flags";
    let mut resp = if single.is_none() && !bulk {
        json_response(
            StatusCode::NOT_FOUND,
            json!({"errorDetails": "unknown OFREP path"}),
        )
    } else if req.get_method() == Method::OPTIONS {
        Response::from_status(StatusCode::NO_CONTENT)
    } else if req.get_method() != Method::POST {
        json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"errorDetails": "use POST"}),
        )
        .with_header("allow", "POST, OPTIONS")
    } else {
        evaluate(&mut req, loaded, single.as_deref())
    };
    if let Some(o) = cors_origin {
        crate::header::set_on(&mut resp, "access-control-allow-origin", &o);
        resp.set_header("access-control-allow-methods", "POST, OPTIONS");
        resp.set_header(
            "access-control-allow-headers",
            "content-type, authorization, x-api-key, if-none-match",
        );
        resp.set_header("access-control-expose-headers", "etag");
        resp.set_header("access-control-max-age", "600");
        resp.append_header("vary", "origin");
    }
    resp.set_header("cache-control", "no-store");
    resp
}

fn evaluate(req: &mut Request, loaded: &Loaded, single: Option<&str>) -> Response {
    let Some(snapshot) = loaded.snapshot.as_deref() else {
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    };
    let caller = match auth::caller(req, "ofrep_token") {
        Caller::Refused => return Response::from_status(StatusCode::FORBIDDEN),
        Caller::Anonymous if snapshot.ofrep().require_auth => {
            return Response::from_status(StatusCode::UNAUTHORIZED);
        }
        c => c,
    };
    let failure = |code: &str, details: String| {
        let mut body = json!({"errorCode": code, "errorDetails": details});
        if let Some(k) = single {
            body["key"] = json!(k);
        }
        json_response(StatusCode::BAD_REQUEST, body)
    };
    let bytes = match crate::response::read_body(req, MAX_BODY) {
        Ok(b) => b,
        Err(e @ BodyError::Broken(_)) => {
            e.log();
            return failure("PARSE_ERROR", "the request body could not be read".into());
        }
        Err(BodyError::TooLarge) => {
            return failure(
                "PARSE_ERROR",
                format!("the request body is over {MAX_BODY} bytes"),
            );
        }
    };
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return failure("PARSE_ERROR", format!("the body is not JSON: {e}")),
        }
    };
    if !body.is_object() {
        return failure(
            "PARSE_ERROR",
            "the body must be a JSON object, such as {\"context\": {}}".into(),
        );
    }
    let given = match body.get("context") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return failure("INVALID_CONTEXT", "`context` must be an object".into()),
    };
    let targeting_key = match given.get("targetingKey") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Some(s.clone()),
        Some(_) => {
            return failure(
                "INVALID_CONTEXT",
                "`targetingKey` must be a non-empty string of at most 1024 characters".into(),
            );
        }
    };
    let body_ctx = Context::from_json(&given);
    let authenticated = matches!(caller, Caller::Authenticated);
    let server_user = match (authenticated, targeting_key.as_deref()) {
        (true, Some(k)) => Some(k),
        (true, None) => {
            return failure(
                "TARGETING_KEY_MISSING",
                "an authenticated call names its user in `targetingKey`".into(),
            );
        }
        (false, _) => None,
    };
    // A browser's `edgeflags-user` is ignored (and logged) like any chosen key; a server
    // names its user in `targetingKey`, which it vouches for.
    let named = match server_user {
        Some(_) => None,
        None => context::header(req, USER_HEADER),
    };
    let mut rc = context::without_traits(req, loaded, false, named);
    if let Some(k) = server_user {
        rc.identity = Identity::server(k);
    }
    for (k, v) in body_ctx.attributes() {
        // A browser cannot override what the edge knows (geo, device, traits).
        if authenticated || !(attributes::PLATFORM.contains(&k) || k.starts_with(traits::PREFIX)) {
            rc.ctx.set(k, v.clone());
        }
    }
    // A server-side call that names its user's country but no zone: the zone follows
    // from the body's place, not from the caller's address.
    if authenticated && body_ctx.get("country").is_some() {
        context::zone_from_attributes(&mut rc.ctx, rc.now);
    }
    if targeting_key.is_some() {
        rc.new_id = None;
    }
    // Traits are read once, for the user the answer is for, and only when that user is
    // the request's verified identity: a server call's `targetingKey`, or the browser's
    // signed identity cookie. A key the browser chooses (its id cookie, a `targetingKey`)
    // gets none, so it cannot learn another user's trait-based decisions.
    crate::traits::apply(&mut rc, req, snapshot);
    if authenticated {
        for (k, v) in body_ctx.attributes() {
            if k.starts_with(traits::PREFIX) {
                rc.ctx.set(k, v.clone());
            }
        }
    }
    let mut metadata = json!({"snapshot": loaded.version});
    // The zone the decisions were made in and how it was chosen: flat keys, strings only.
    if let (Some(zone), Some(source)) = (rc.ctx.zone(), rc.ctx.zone_source()) {
        metadata["timezone"] = json!(zone.name());
        metadata["timezoneSource"] = json!(source.as_str());
    }
    let mut resp = match single {
        Some(key) => {
            let e = snapshot.evaluate(key, &rc.ctx, rc.now);
            match e.reason {
                Reason::Error(ErrorCode::FlagNotFound) => json_response(
                    StatusCode::NOT_FOUND,
                    json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("no flag `{key}`")}),
                ),
                _ => json_response(StatusCode::OK, success(&e, &metadata)),
            }
        }
        None => {
            let flags: Vec<Value> = snapshot
                .evaluate_all(&rc.ctx, rc.now)
                .map(|e| success(&e, &metadata))
                .collect();
            let body = json!({"flags": flags, "metadata": metadata}).to_string();
            let etag = format!(
                "\"{:016x}\"",
                edgeflags_engine::bucket::hash64("ofrep-etag", &body)
            );
            if if_none_match(req, &etag) {
                Response::from_status(StatusCode::NOT_MODIFIED).with_header("etag", etag)
            } else {
                Response::from_status(StatusCode::OK)
                    .with_header("content-type", "application/json")
                    .with_header("etag", etag)
                    .with_body(body)
            }
        }
    };
    if let Some(id) = &rc.new_id {
        resp.append_header(
            "set-cookie",
            format!("{ID_COOKIE}={id}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax"),
        );
    }
    resp
}

/// An evaluation in OFREP's success shape.
fn success(e: &Evaluation, metadata: &Value) -> Value {
    let explained = evaluation_json(e);
    let mut meta = metadata.clone();
    if let Some(rule) = explained.get("rule_id") {
        meta["ruleId"] = rule.clone();
    }
    meta["edgeflagsReason"] = json!(e.reason.kind());
    json!({
        "key": e.key,
        "value": e.value.cloned().unwrap_or(Value::Null),
        "variant": e.variant,
        "reason": e.reason.openfeature(),
        "metadata": meta,
    })
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 13.1.2).
fn if_none_match(req: &Request, etag: &str) -> bool {
    let Some(h) = crate::context::header(req, "if-none-match") else {
        return false;
    };
    h.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::from_status(status)
        .with_header("content-type", "application/json")
        .with_body(body.to_string())
}
