//! The OpenFeature Remote Evaluation Protocol (OFREP 0.3.0) as rules: which endpoint a
//! path names, what a request body may say and the protocol's error for what it may not,
//! whose context wins (a browser's call cannot override what the edge knows of it: geo,
//! device, traits; a call with the server token speaks for its own end user, so its body
//! wins), and the success, bulk and error bodies, with the ETag over a bulk answer. The
//! edge reads the request and the credentials and writes the response; the decisions are
//! here, tested natively.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::attributes::{self, PLATFORM, TRAITS_PREFIX};
use crate::context::Context;
use crate::eval::{ErrorCode, Evaluation, Reason};
use crate::explain::evaluation_json;
use crate::model::{OfrepSettings, Snapshot};
use crate::place::Resolution;

/// The protocol's path prefix.
pub const PREFIX: &str = "/ofrep/v1/";
/// The largest request body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest `targetingKey` accepted.
const MAX_TARGETING_KEY: usize = 1024;

/// The endpoint a path under [`PREFIX`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'p> {
    /// `/ofrep/v1/evaluate/flags/{key}`.
    Single(&'p str),
    /// `/ofrep/v1/evaluate/flags`.
    Bulk,
    /// Anything else.
    Unknown,
}

/// The endpoint of `path`.
pub fn endpoint(path: &str) -> Endpoint<'_> {
    if path == "/ofrep/v1/evaluate/flags" {
        return Endpoint::Bulk;
    }
    match path.strip_prefix("/ofrep/v1/evaluate/flags/") {
        Some(key) => Endpoint::Single(key),
        None => Endpoint::Unknown,
    }
}

/// The `Origin` to allow for a browser's call (CORS), when the flag file allows it.
pub fn cors_origin(settings: &OfrepSettings, origin: Option<&str>) -> Option<String> {
    let o = origin?;
    settings
        .cors_origins
        .iter()
        .any(|a| a == "*" || a == o)
        .then(|| o.to_string())
}

/// A request the protocol refuses (HTTP 400): its error code and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `PARSE_ERROR`, `INVALID_CONTEXT` or `TARGETING_KEY_MISSING`.
    pub code: &'static str,
    /// What was wrong, for people.
    pub details: String,
}

impl Failure {
    fn new(code: &'static str, details: impl Into<String>) -> Failure {
        Failure {
            code,
            details: details.into(),
        }
    }

    /// A body over [`MAX_BODY`].
    pub fn too_large() -> Failure {
        Failure::new(
            "PARSE_ERROR",
            format!("the request body is over {MAX_BODY} bytes"),
        )
    }

    /// A body the client broke off or mangled.
    pub fn unreadable() -> Failure {
        Failure::new("PARSE_ERROR", "the request body could not be read")
    }

    /// The error body, with the flag key for a single evaluation.
    pub fn body(&self, key: Option<&str>) -> Value {
        let mut body = json!({"errorCode": self.code, "errorDetails": self.details});
        if let Some(k) = key {
            body["key"] = json!(k);
        }
        body
    }
}

/// What an evaluation request asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The body's context (`targetingKey` is the attribute `key`).
    pub context: Context,
    /// The `targetingKey`, when the body names one.
    pub targeting_key: Option<String>,
}

/// Reads a request body. `authenticated`: the caller presented the server token, and
/// must then name its user in `targetingKey`.
pub fn parse(bytes: &[u8], authenticated: bool) -> Result<Request, Failure> {
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| Failure::new("PARSE_ERROR", format!("the body is not JSON: {e}")))?
    };
    let Value::Object(body) = body else {
        return Err(Failure::new(
            "PARSE_ERROR",
            "the body must be a JSON object, such as {\"context\": {}}",
        ));
    };
    let given = match body.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(Failure::new(
                "INVALID_CONTEXT",
                "`context` must be an object",
            ));
        }
    };
    let targeting_key = match given.get("targetingKey") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_TARGETING_KEY => Some(s.clone()),
        Some(_) => {
            return Err(Failure::new(
                "INVALID_CONTEXT",
                format!(
                    "`targetingKey` must be a non-empty string of at most {MAX_TARGETING_KEY} characters"
                ),
            ));
        }
    };
    if authenticated && targeting_key.is_none() {
        return Err(Failure::new(
            "TARGETING_KEY_MISSING",
            "an authenticated call names its user in `targetingKey`",
        ));
    }
    Ok(Request {
        context: Context::from_json(&given),
        targeting_key,
    })
}

/// Merges a body's context into the edge's by caller: a browser's (`authenticated`
/// false) cannot override what the edge knows (the platform attributes and traits); a
/// server's body wins in everything but traits, which [`merge_traits`] sets once the
/// profile is read. A server body that names a country but no zone gets that place's
/// zone, not the zone of the caller's address: the resolution is returned (its
/// `fallback` says why an offset was fixed).
pub fn merge(
    edge: &mut Context,
    body: &Context,
    authenticated: bool,
    now: DateTime<Utc>,
) -> Option<Resolution> {
    for (k, v) in body.attributes() {
        let edge_knows = PLATFORM.contains(&k) || k.starts_with(TRAITS_PREFIX);
        if (authenticated && !k.starts_with(TRAITS_PREFIX)) || !edge_knows {
            edge.set(k, v.clone());
        }
    }
    if authenticated && body.get("country").is_some() {
        return attributes::zone_from_attributes(edge, now);
    }
    None
}

/// A server's body traits win over the stored profile's; a browser's are never used.
pub fn merge_traits(edge: &mut Context, body: &Context, authenticated: bool) {
    if !authenticated {
        return;
    }
    for (k, v) in body.attributes() {
        if k.starts_with(TRAITS_PREFIX) {
            edge.set(k, v.clone());
        }
    }
}

/// The metadata of every answer: the snapshot version, and the zone the decisions were
/// made in and how it was chosen (flat keys: OFREP metadata values are only booleans,
/// strings and numbers).
pub fn metadata(version: &str, ctx: &Context) -> Value {
    let mut m = json!({"snapshot": version});
    if let (Some(zone), Some(source)) = (ctx.zone(), ctx.zone_source()) {
        m["timezone"] = json!(zone.name());
        m["timezoneSource"] = json!(source.as_str());
    }
    m
}

/// An evaluation in the protocol's success shape.
pub fn success(e: &Evaluation, metadata: &Value) -> Value {
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

/// A single evaluation: the HTTP status and the body (404 `FLAG_NOT_FOUND` for a key the
/// snapshot does not have).
pub fn single(
    snapshot: &Snapshot,
    key: &str,
    ctx: &Context,
    now: DateTime<Utc>,
    metadata: &Value,
) -> (u16, Value) {
    let e = snapshot.evaluate(key, ctx, now);
    match e.reason {
        Reason::Error(ErrorCode::FlagNotFound) => (
            404,
            json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("no flag `{key}`")}),
        ),
        _ => (200, success(&e, metadata)),
    }
}

/// A bulk answer: the body and its ETag (a hash of the body, so it changes with the
/// snapshot and with the context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulk {
    /// The JSON body.
    pub body: String,
    /// The strong ETag, quoted.
    pub etag: String,
}

/// Every flag's evaluation for `ctx` at `now`.
pub fn bulk(snapshot: &Snapshot, ctx: &Context, now: DateTime<Utc>, metadata: &Value) -> Bulk {
    let flags: Vec<Value> = snapshot
        .evaluate_all(ctx, now)
        .map(|e| success(&e, metadata))
        .collect();
    let body = json!({"flags": flags, "metadata": metadata}).to_string();
    let etag = format!("\"{:016x}\"", crate::bucket::hash64("ofrep-etag", &body));
    Bulk { body, etag }
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, RFC 9110 13.1.2).
pub fn if_none_match(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_str;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn paths_name_endpoints() {
        assert_eq!(endpoint("/ofrep/v1/evaluate/flags"), Endpoint::Bulk);
        assert_eq!(
            endpoint("/ofrep/v1/evaluate/flags/checkout"),
            Endpoint::Single("checkout")
        );
        assert_eq!(endpoint("/ofrep/v1/other"), Endpoint::Unknown);
    }

    #[test]
    fn bodies_are_parsed_with_the_protocols_errors() {
        let code = |b: &[u8], auth: bool| parse(b, auth).err().map(|f| f.code);
        assert_eq!(code(b"", false), None);
        assert_eq!(code(b"{}", false), None);
        assert_eq!(code(b"{\"context\": null}", false), None);
        assert_eq!(code(b"not json", false), Some("PARSE_ERROR"));
        assert_eq!(code(b"[1, 2]", false), Some("PARSE_ERROR"));
        assert_eq!(code(b"{\"context\": 3}", false), Some("INVALID_CONTEXT"));
        assert_eq!(
            code(b"{\"context\": {\"targetingKey\": \"\"}}", false),
            Some("INVALID_CONTEXT")
        );
        let long = format!(
            "{{\"context\": {{\"targetingKey\": \"{}\"}}}}",
            "k".repeat(1025)
        );
        assert_eq!(code(long.as_bytes(), false), Some("INVALID_CONTEXT"));
        assert_eq!(code(b"{}", true), Some("TARGETING_KEY_MISSING"));
        let ok = parse(
            b"{\"context\": {\"targetingKey\": \"u7\", \"plan\": \"pro\"}}",
            true,
        );
        let ok = ok.unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(ok.targeting_key.as_deref(), Some("u7"));
        assert_eq!(ok.context.key(), Some("u7"));
        assert_eq!(ok.context.get("plan"), Some(&"pro".into()));
        assert_eq!(
            Failure::too_large().body(Some("f")),
            json!({"errorCode": "PARSE_ERROR", "errorDetails": "the request body is over 65536 bytes", "key": "f"})
        );
    }

    #[test]
    fn a_browser_cannot_override_what_the_edge_knows_and_a_server_can() {
        let edge = || {
            Context::with_key("own")
                .with("country", "JP")
                .with("device", "mobile")
                .with("traits.plan", "basic")
        };
        let body = Context::with_key("other")
            .with("country", "FR")
            .with("device", "desktop")
            .with("traits.plan", "pro")
            .with("beta", true);
        let mut browser = edge();
        merge(&mut browser, &body, false, now());
        merge_traits(&mut browser, &body, false);
        assert_eq!(browser.get("country"), Some(&"JP".into()));
        assert_eq!(browser.get("device"), Some(&"mobile".into()));
        assert_eq!(browser.get("traits.plan"), Some(&"basic".into()));
        assert_eq!(browser.get("beta"), Some(&true.into()));
        assert_eq!(browser.key(), Some("other"), "the key decides splits only");
        let mut server = edge();
        merge(&mut server, &body, true, now());
        assert_eq!(server.get("country"), Some(&"FR".into()));
        assert_eq!(server.get("device"), Some(&"desktop".into()));
        assert_eq!(
            server.get("traits.plan"),
            Some(&"basic".into()),
            "traits come later"
        );
        assert_eq!(
            server.zone().map(|z| z.name()).as_deref(),
            Some("Europe/Paris"),
            "the body's country decides the zone"
        );
        merge_traits(&mut server, &body, true);
        assert_eq!(server.get("traits.plan"), Some(&"pro".into()));
    }

    #[test]
    fn answers_carry_reasons_metadata_and_a_changing_etag() {
        let file = r#"{"flags":{"f":{"type":"string","variants":{"a":"x","b":"y"},"off_variant":"a","rules":[{"id":"jp","clauses":[{"attribute":"country","op":"in","values":["JP"]}],"serve":"b"}],"default":"a"}}}"#;
        let snap = compile_str(file).unwrap_or_else(|e| panic!("{e}"));
        let jp = Context::with_key("u").with("country", "JP");
        let meta = metadata("v1", &jp);
        let (status, body) = single(&snap, "f", &jp, now(), &meta);
        assert_eq!(status, 200);
        assert_eq!(body["variant"], "b");
        assert_eq!(body["reason"], "TARGETING_MATCH");
        assert_eq!(body["metadata"]["ruleId"], "jp");
        assert_eq!(body["metadata"]["snapshot"], "v1");
        let (missing, body) = single(&snap, "nope", &jp, now(), &meta);
        assert_eq!(
            (missing, body["errorCode"].as_str()),
            (404, Some("FLAG_NOT_FOUND"))
        );
        let a = bulk(&snap, &jp, now(), &meta);
        let b = bulk(&snap, &Context::with_key("u"), now(), &meta);
        assert_ne!(a.etag, b.etag);
        assert!(if_none_match(Some(&format!("W/{}", a.etag)), &a.etag));
        assert!(if_none_match(Some("\"zzz\", *"), &a.etag));
        assert!(!if_none_match(Some(&b.etag), &a.etag));
        assert!(!if_none_match(None, &a.etag));
        let cors = OfrepSettings {
            cors_origins: vec!["https://shop.example".into()],
            require_auth: false,
        };
        assert_eq!(
            cors_origin(&cors, Some("https://shop.example")).as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(cors_origin(&cors, Some("https://evil.example")), None);
        assert_eq!(cors_origin(&cors, None), None);
    }

    #[test]
    fn a_holdout_and_a_ramp_answer_split_with_the_engines_reason_beside_it() {
        // Everyone is held out of `held` (weight 100); everyone is in `ramped`'s one step.
        let file = r#"{"holdouts":{"all":{"weight":100}},"flags":{
            "held":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on","holdout":"all"},
            "ramped":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"off",
                "ramp":{"variant":"on","steps":[{"at":"2020-01-01T00:00:00Z","weight":100}]}}}}"#;
        let snap = compile_str(file).unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::with_key("u");
        let meta = metadata("v1", &ctx);
        for (key, variant, reason) in [("held", "off", "HOLDOUT"), ("ramped", "on", "RAMP")] {
            let (status, body) = single(&snap, key, &ctx, now(), &meta);
            assert_eq!(status, 200, "{key}");
            assert_eq!(body["variant"], variant, "{key}");
            assert_eq!(body["reason"], "SPLIT", "{key}");
            assert_eq!(body["metadata"]["edgeflagsReason"], reason, "{key}");
        }
    }
}
