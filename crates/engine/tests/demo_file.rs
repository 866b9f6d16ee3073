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
