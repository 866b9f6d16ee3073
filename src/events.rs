//! Exposure and conversion events: JSON lines to the `edgeflags_events` log endpoint, one
//! `write` per line. A user is sampled per flag by a hash of flag and user (so a sampled
//! user's every exposure is logged), and appears only as a keyed hash of the user key
//! (HMAC-SHA256 with the `user_hash_key` secret, 16 bytes in hex, computed once per
//! request by [`RequestContext::hashed_user`]), never raw.

use edgeflags_engine::{AttrValue, Evaluation, Snapshot, bucket::bucket_of};
use serde_json::{Map, Value, json};

use crate::context::RequestContext;

/// Whether this user's exposures to `flag` are logged, at `rate` (0 to 1).
fn sampled(flag: &str, user: Option<&str>, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    let b = bucket_of(&format!("exposure:{flag}"), user.unwrap_or(""));
    f64::from(b) < rate * f64::from(edgeflags_engine::BUCKETS)
}

fn text_attr(rc: &RequestContext, name: &str) -> Value {
    match rc.ctx.get(name) {
        Some(AttrValue::Str(s)) => json!(s),
        _ => Value::Null,
    }
}

fn write_line(line: &Value) {
    crate::platform::log_event(&line.to_string());
}

/// Logs the exposures of one request: every evaluated flag whose `exposure_sample`
/// selects this user.
pub fn exposures(snapshot: &Snapshot, version: &str, rc: &RequestContext, evals: &[Evaluation]) {
    for e in evals {
        let Some(flag) = snapshot.flag(e.key) else {
            continue;
        };
        let rate = flag.metadata().exposure_sample;
        if !sampled(e.key, rc.ctx.key(), rate) {
            continue;
        }
        write_line(&json!({
            "kind": "exposure",
            "ts": rc.now.timestamp_millis(),
            "flag": e.key,
            "variant": e.variant,
            "reason": e.reason.kind(),
            "snapshot": version,
            "user": rc.hashed_user(),
            "country": text_attr(rc, "country"),
            "device": text_attr(rc, "device"),
        }));
    }
}

/// Logs a conversion with the variants the user is served now (recomputed here, never
/// taken from the client).
pub fn conversion(
    snapshot: &Snapshot,
    version: &str,
    rc: &RequestContext,
    event: &str,
    value: Option<f64>,
) {
    let mut variants = Map::new();
    for e in snapshot.evaluate_all(&rc.ctx, rc.now) {
        let tracked = snapshot
            .flag(e.key)
            .is_some_and(|f| f.metadata().exposure_sample > 0.0);
        if let (true, Some(v)) = (tracked, e.variant) {
            variants.insert(e.key.to_string(), json!(v));
        }
    }
    write_line(&json!({
        "kind": "conversion",
        "ts": rc.now.timestamp_millis(),
        "event": event,
        "value": value,
        "snapshot": version,
        "user": rc.hashed_user(),
        "variants": variants,
        "country": text_attr(rc, "country"),
        "device": text_attr(rc, "device"),
    }));
}
