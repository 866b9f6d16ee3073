//! Entry points for the fuzz targets in `fuzz/` (and for `tests/fuzz_corpus.rs`, which
//! replays their corpora under `cargo test`). Each takes arbitrary bytes and must neither
//! panic nor hang; they return nothing.

use std::collections::BTreeMap;

use chrono::DateTime;

use crate::{Context, Zone, attributes, compile_str, explain, pack, place, preview};

const DEMO: &str = include_str!("../../../config-store/flags.json");

fn demo() -> Option<&'static crate::Snapshot> {
    static DEMO_SNAPSHOT: std::sync::OnceLock<Option<crate::Snapshot>> = std::sync::OnceLock::new();
    DEMO_SNAPSHOT
        .get_or_init(|| compile_str(DEMO).ok())
        .as_ref()
}

/// Flag-file parse and compile.
pub fn compile(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = compile_str(text);
    }
}

/// Snapshot decode: the bytes as a store (a JSON object of entries, or `key=value`
/// lines), read through the pointer and loaded as the edge does; and the bytes as a
/// compiled snapshot (a format-3 body), which, whatever indexes it holds, must evaluate without
/// a panic.
pub fn snapshot_decode(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let store: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    for key in [None, Some(&b"k"[..])] {
        let outcome = pack::read(|k| store.get(k).cloned(), key);
        if let Ok(l) = outcome.result {
            let _ = crate::binary::load(&l.payload, &l.version);
            let _ = crate::binary::source(&l.payload);
        }
    }
    if let Ok(snapshot) = crate::binary::decode(&text) {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let ctx = Context::with_key("u1")
            .with("country", "JP")
            .with("plan", "pro");
        for e in snapshot.evaluate_all(&ctx, now) {
            let _ = explain::evaluation_json(&e);
        }
        let _ = snapshot.route(&ctx, now);
    }
}

/// Evaluation of every flag of the demo file, its routes and its explanation, for an
/// arbitrary context (the bytes as a JSON object) at an arbitrary instant.
pub fn evaluate(data: &[u8]) {
    let Some(snapshot) = demo() else { return };
    let (head, rest) = data.split_at(data.len().min(8));
    let mut secs = [0u8; 8];
    secs[..head.len()].copy_from_slice(head);
    let now =
        DateTime::from_timestamp(i64::from_le_bytes(secs) % 100_000_000_000, 0).unwrap_or_default();
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(rest) else {
        return;
    };
    let ctx = Context::from_json(&obj);
    for e in snapshot.evaluate_all(&ctx, now) {
        let _ = e.variant;
    }
    let _ = snapshot.route(&ctx, now);
    let _ = explain::explain(snapshot, &ctx, now);
}

/// What the edge derives from request fields: the bytes split on NUL into User-Agent,
/// Accept-Language, a zone name, a country and region, a preview token, a traits cookie,
/// a stored profile, a request path, and the rest of a geolocation record (city,
/// latitude, longitude, UTC offset) with an instant in seconds, which the zone resolver
/// reads.
pub fn request_fields(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut next = || parts.next().unwrap_or("");
    let (ua, lang, zone, country, region, token) = (next(), next(), next(), next(), next(), next());
    let (traits_cookie, profile, path) = (next(), next(), next());
    let (city, lat, lon, offset, secs) = (next(), next(), next(), next(), next());
    let record = place::Record {
        country: Some(country),
        region: Some(region),
        city: Some(city),
        latitude: lat.trim().parse().ok(),
        longitude: lon.trim().parse().ok(),
        utc_offset: offset.trim().parse().ok(),
    };
    let now = DateTime::from_timestamp(secs.trim().parse().unwrap_or(1_795_000_000), 0)
        .unwrap_or_default();
    if let Some(r) = place::resolve(&record, now) {
        let mut ctx = Context::new();
        ctx.set_resolved_zone(&r);
        let _ = explain::context_json(&ctx);
        let _ = r.zone.local(now);
    }
    let _ = crate::traits::verify_cookie(traits_cookie, Some(b"key"), ua, 0);
    let _ = crate::traits::parse_profile(profile.as_bytes(), 0);
    let _ = crate::route::safe_path(path);
    let _ = attributes::device_class_from_user_agent(ua);
    let _ = attributes::language_from_accept_language(lang);
    let _ = Zone::parse(zone);
    let _ = attributes::continent_for(country);
    let _ = preview::verify(token, Some(b"key"), 0);
    let mut ctx = Context::with_key(ua);
    ctx.set("timezone", zone);
    if let Some(z) = ctx.zone() {
        let _ = z.local(DateTime::from_timestamp(0, 0).unwrap_or_default());
    }
}

/// An OFREP request body, read as the edge reads it, then evaluated.
pub fn ofrep_body(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Some(obj) = body.get("context").and_then(|c| c.as_object()) else {
        return;
    };
    let ctx = Context::from_json(obj);
    if let Some(snapshot) = demo() {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        for e in snapshot.evaluate_all(&ctx, now) {
            let _ = explain::evaluation_json(&e);
        }
    }
}
