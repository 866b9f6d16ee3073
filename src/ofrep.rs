//! OFREP at the edge: reads the request (body, credentials, the browser's `Origin`),
//! builds the user's context and reads traits for a verified identity, and writes the
//! answer. What a body may say, whose context wins and the protocol's bodies are the
//! engine's (`edgeflags_engine::ofrep`). Traits are read only for a verified identity
//! (`edgeflags_engine::identity`): the user a server call names, or a browser's signed
//! identity cookie; never for a key the browser chooses.

use edgeflags_engine::identity::{Identity, USER_HEADER};
use edgeflags_engine::ofrep::{self, Endpoint, Failure};
use fastly::http::{Method, StatusCode};
use fastly::{Request, Response};
use serde_json::{Value, json};

use crate::auth::{self, Caller};
use crate::config::Loaded;
use crate::context;
use crate::platform::{self, BodyError, header, secrets};

/// Handles a request under `/ofrep/v1/`.
pub fn handle(mut req: Request, loaded: &Loaded) -> Response {
    let Some(snapshot) = loaded.snapshot.as_deref() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorDetails": "no flag configuration"}),
        );
    };
    let cors = ofrep::cors_origin(snapshot.ofrep(), header(&req, "origin"));
    let path = req.get_path().to_string();
    let endpoint = ofrep::endpoint(&path);
    let mut resp = if endpoint == Endpoint::Unknown {
        answer(
            StatusCode::NOT_FOUND,
            json!({"errorDetails": "unknown OFREP path"}),
        )
    } else if req.get_method() == Method::OPTIONS {
        Response::from_status(StatusCode::NO_CONTENT)
    } else if req.get_method() != Method::POST {
        answer(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"errorDetails": "use POST"}),
        )
        .with_header("allow", "POST, OPTIONS")
    } else {
        evaluate(&mut req, loaded, endpoint)
    };
    if let Some(o) = cors {
        platform::set_response_header(&mut resp, "access-control-allow-origin", &o);
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

fn evaluate(req: &mut Request, loaded: &Loaded, endpoint: Endpoint) -> Response {
    let Some(snapshot) = loaded.snapshot.as_deref() else {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    };
    let key = match endpoint {
        Endpoint::Single(k) => Some(k),
        _ => None,
    };
    let authenticated = match auth::caller(req, secrets::OFREP_TOKEN) {
        Caller::Refused => return Response::from_status(StatusCode::FORBIDDEN),
        Caller::Anonymous if snapshot.ofrep().require_auth => {
            return Response::from_status(StatusCode::UNAUTHORIZED);
        }
        c => c == Caller::Authenticated,
    };
    let refuse = |f: Failure| answer(StatusCode::BAD_REQUEST, f.body(key));
    let bytes = match platform::read_body(req, ofrep::MAX_BODY) {
        Ok(b) => b,
        Err(e @ BodyError::Broken(_)) => {
            e.log();
            return refuse(Failure::unreadable());
        }
        Err(BodyError::TooLarge) => return refuse(Failure::too_large()),
    };
    let asked = match ofrep::parse(&bytes, authenticated) {
        Ok(r) => r,
        Err(f) => return refuse(f),
    };
    // A server names its user in `targetingKey`, which it vouches for; a browser's
    // `edgeflags-user` is ignored (and logged) like any key it chooses.
    let server_user = asked.targeting_key.as_deref().filter(|_| authenticated);
    let named = match server_user {
        Some(_) => None,
        None => header(req, USER_HEADER),
    };
    let mut rc = context::build(req, loaded, false, named);
    if let Some(k) = server_user {
        rc.identity = Identity::server(k);
    }
    if let Some(resolved) = ofrep::merge(&mut rc.ctx, &asked.context, authenticated, rc.now)
        && let Some(why) = resolved.fallback
    {
        context::log_fixed_offset(&resolved.zone.name(), &rc.ctx, &why.to_string());
    }
    if asked.targeting_key.is_some() {
        rc.new_id = None;
    }
    // Traits are read once, for the user the answer is for, and only when that user is
    // the request's verified identity.
    crate::traits::apply(&mut rc, req, snapshot);
    ofrep::merge_traits(&mut rc.ctx, &asked.context, authenticated);
    let metadata = ofrep::metadata(&loaded.version, &rc.ctx);
    let mut resp = match key {
        Some(key) => {
            let (status, body) = ofrep::single(snapshot, key, &rc.ctx, rc.now, &metadata);
            answer(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
        }
        None => {
            let bulk = ofrep::bulk(snapshot, &rc.ctx, rc.now, &metadata);
            if ofrep::if_none_match(header(req, "if-none-match"), &bulk.etag) {
                Response::from_status(StatusCode::NOT_MODIFIED).with_header("etag", bulk.etag)
            } else {
                Response::from_status(StatusCode::OK)
                    .with_header("content-type", "application/json")
                    .with_header("etag", bulk.etag)
                    .with_body(bulk.body)
            }
        }
    };
    if let Some(id) = &rc.new_id {
        platform::set_id_cookie(&mut resp, id);
    }
    resp
}

fn answer(status: StatusCode, body: Value) -> Response {
    Response::from_status(status)
        .with_header("content-type", "application/json")
        .with_body(body.to_string())
}
