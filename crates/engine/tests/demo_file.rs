//! The demo flag file shipped in `config-store/` compiles, and decides as its comments say.

use chrono::{DateTime, Utc};
use edgeflags_engine::{Context, Reason, compile_str};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

fn demo() -> edgeflags_engine::Snapshot {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config-store/flags.json");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match compile_str(&text) {
        Ok(s) => s,
        Err(e) => panic!("the demo flag file does not compile:\n{e}"),
    }
}

#[test]
fn demo_weekend_sale_follows_the_shoppers_zone() {
    let snap = demo();
    // Friday 2026-11-27 20:00 UTC is Saturday 05:00 in Tokyo and Friday 15:00 in New York.
    let now = at("2026-11-27T20:00:00Z");
    let tokyo = Context::with_key("u1").with("timezone", "Asia/Tokyo");
    let ny = Context::with_key("u1").with("timezone", "America/New_York");
    assert_eq!(
        snap.evaluate("banner", &tokyo, now).variant,
        Some("weekend_sale")
    );
    assert_eq!(snap.evaluate("banner", &ny, now).variant, Some("standard"));
}

#[test]
fn demo_routes_by_locale_and_continent() {
    let snap = demo();
    let now = at("2026-11-25T12:00:00Z");
    let jp = Context::with_key("u1")
        .with("country", "JP")
        .with("continent", "AS");
    let fr = Context::with_key("u1")
        .with("country", "FR")
        .with("continent", "EU");
    let au = Context::with_key("u1")
        .with("country", "AU")
        .with("continent", "OC");
    let us = Context::with_key("u1")
        .with("country", "US")
        .with("continent", "NA");
    let r = |c: &Context| {
        let r = snap.route(c, now);
        (r.backend.clone(), r.path_prefix.clone().unwrap_or_default())
    };
    assert_eq!(r(&jp), ("origin_apac".into(), "/ja".into()));
    assert_eq!(r(&fr), ("origin_eu".into(), "/fr".into()));
    assert_eq!(r(&au), ("origin_apac".into(), "/en".into()));
    assert_eq!(r(&us), ("origin_us".into(), "/en".into()));
    let e = snap.evaluate("checkout", &Context::with_key("u-beta-1"), now);
    assert_eq!(
        (e.variant, e.reason),
        (
            Some("v2"),
            Reason::RuleMatch {
                index: 0,
                id: "beta"
            }
        )
    );
}

#[test]
fn demo_checkout_splits_ten_thousand_users_within_one_point_of_its_weights() {
    // This statistical check ran through Viceroy as 10,000 requests; the edge decides with
    // these same engine calls (the end-to-end test `the_same_user_key_always_gets_the_same
    // _variant` checks edge and engine agree user by user), so it runs natively here.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config-store/flags.json"
    ))
    .unwrap_or_default();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let split = file["flags"]["checkout"]["default"]["split"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |v: &str| {
        split
            .iter()
            .find(|s| s["variant"] == v)
            .and_then(|s| s["weight"].as_f64())
            .unwrap_or(0.0)
    };
    let v2_weight = weight("v2") * 100.0 / (weight("v1") + weight("v2"));
    let snap = demo();
    let now = at("2026-11-25T12:00:00Z");
    let n = 10_000;
    // A visitor from 127.0.0.1 (New York) with no User-Agent, as the edge sees one.
    let v2 = (0..n)
        .filter(|i| {
            let ctx = Context::with_key(&format!("split-user-{i}"))
                .with("country", "US")
                .with("region", "NY")
                .with("continent", "NA")
                .with("device", "bot");
            snap.evaluate("checkout", &ctx, now).variant == Some("v2")
        })
        .count();
    let share = v2 as f64 * 100.0 / f64::from(n);
    assert!(
        v2_weight > 0.0 && (share - v2_weight).abs() <= 1.0,
        "v2 share {share:.2}% is not within 1 point of its weight {v2_weight}%"
    );
}
