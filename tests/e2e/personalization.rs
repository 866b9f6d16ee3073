//! Personalization scenarios: localized routing for visitors around the world, time-zone
//! rules at one instant, DST, and origin failures. (Split accuracy over 10,000 users is
//! an engine test, `crates/engine/tests/demo_file.rs`; `foundation.rs` checks the edge
//! decides as the engine does.)

use std::time::Duration;

use edgeflags_e2e::{AppSpec, Behaviour, Req, Store, app, demo_flags};
use edgeflags_engine::preview::{Claims, mint};
use serde_json::json;

const DEV_KEY: &[u8] = b"dev-preview-key-not-for-production";

fn at(instant: &str) -> String {
    let claims = Claims {
        exp: 4_000_000_000,
        at: Some(instant.into()),
        ..Claims::default()
    };
    mint(&claims, DEV_KEY)
}

#[test]
fn a_weekend_rule_differs_for_tokyo_and_new_york_at_the_same_instant() {
    let app = app(AppSpec::demo());
    let banner = |ip: &str, instant: &str| {
        let r = app.send(
            Req::get("/")
                .from(ip)
                .user("u-wk")
                .header("edgeflags-preview", &at(instant)),
        );
        r.decision("banner").unwrap_or_default()
    };
    let (tokyo, new_york) = ("203.0.113.10", "203.0.113.30");
    // Friday 2026-11-27 16:00 UTC: Saturday 01:00 in Tokyo, Friday 11:00 in New York.
    assert_eq!(banner(tokyo, "2026-11-27T16:00:00Z"), "weekend_sale");
    assert_eq!(banner(new_york, "2026-11-27T16:00:00Z"), "standard");
    // Monday 2026-11-30 03:30 UTC: Monday 12:30 in Tokyo, still Sunday 22:30 in New York.
    assert_eq!(banner(tokyo, "2026-11-30T03:30:00Z"), "standard");
    assert_eq!(banner(new_york, "2026-11-30T03:30:00Z"), "weekend_sale");
}

#[test]
fn the_night_theme_follows_daylight_saving_time_in_new_york() {
    let app = app(AppSpec::demo());
    // 00:30 UTC is 20:30 EDT (night) on Friday 2026-10-30, but 19:30 EST (not yet night)
    // on Friday 2026-11-06, after clocks went back on 2026-11-01. The geolocation offset
    // alone (-05:00) would get October wrong: the edge uses America/New_York.
    let before = app.send(
        Req::get("/")
            .from("203.0.113.30")
            .user("u-dst")
            .header("edgeflags-preview", &at("2026-10-31T00:30:00Z")),
    );
    let after = app.send(
        Req::get("/")
            .from("203.0.113.30")
            .user("u-dst")
            .header("edgeflags-preview", &at("2026-11-07T00:30:00Z")),
    );
    assert_eq!(before.decision("banner").as_deref(), Some("night"));
    assert_eq!(after.decision("banner").as_deref(), Some("standard"));
}

fn flags_with_fallback(backend: &str) -> serde_json::Value {
    let mut f = demo_flags();
    f["routes"]["fallback"] = json!({ "backend": backend, "path_prefix": "/en" });
    f
}

/// Every regional origin failing its own way, so that the origin-failure tests share one
/// Viceroy context: `origin_us` (New York) answers 500, `origin_eu` (Paris) hangs past
/// the backends' 1.2 s first-byte timeout (the edge counts a failure after 1 s as a
/// timeout), `origin_apac` (Tokyo) answers 503 and `origin_sa` (Sao Paulo) refuses.
pub(crate) fn failing_origins() -> AppSpec {
    let mut spec = AppSpec::demo()
        .origin("origin_us", Behaviour::Status(500))
        .origin("origin_eu", Behaviour::Hang(Duration::from_secs(4)))
        .origin("origin_apac", Behaviour::Status(503))
        .origin("origin_sa", Behaviour::Refuse);
    spec.first_byte_timeout = Duration::from_millis(1200);
    spec
}

/// The 503 and refusing origins again, behind a route fallback to the echoing
/// `origin_us`.
pub(crate) fn failing_origins_with_fallback() -> AppSpec {
    AppSpec::demo()
        .origin("origin_apac", Behaviour::Status(503))
        .origin("origin_sa", Behaviour::Refuse)
        .store(Store::Flags(flags_with_fallback("origin_us"), None))
}

#[test]
fn a_refusing_origin_falls_back_then_errors_cleanly() {
    let with_fallback = app(failing_origins_with_fallback());
    let r = with_fallback.send(Req::get("/checkout").from("203.0.113.40").user("u-fb"));
    assert_eq!(r.status, 200);
    assert_eq!(r.origin_saw()["backend"], "origin_us");
    assert_eq!(r.origin_saw()["path"], "/en/checkout");
    assert_eq!(r.origin_saw()["headers"]["edgeflags-route"], "fallback");

    let without = app(failing_origins());
    let r = without.send(Req::get("/checkout").from("203.0.113.40").user("u-fb"));
    assert_eq!(r.status, 502);
    assert!(r.body.contains("could not be reached"), "{}", r.body);
    assert!(
        !r.body.contains("127.0.0.1") && !r.body.contains("origin_sa"),
        "no internals: {}",
        r.body
    );
    assert!(without.log_json("edgeflags_ops").iter().any(|l| {
        l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("origin_sa failed")
    }));
}

#[test]
fn a_hanging_origin_times_out_with_504() {
    let app = app(failing_origins());
    let r = app.send(Req::get("/").from("203.0.113.20").user("u-hang"));
    assert_eq!(r.status, 504, "{} {:?}", r.body, app.logs());
    assert!(r.body.contains("did not answer in time"));
}

#[test]
fn an_origin_503_is_a_clean_503_or_the_fallback() {
    let app = app(failing_origins());
    let r = app.send(Req::get("/").from("203.0.113.10").user("u-503"));
    assert_eq!(r.status, 503);
    assert!(
        !r.body.contains("failing with"),
        "the origin's own error body is not passed on: {}",
        r.body
    );
    let fb = edgeflags_e2e::app(failing_origins_with_fallback());
    let r = fb.send(Req::get("/").from("203.0.113.10").user("u-503"));
    assert_eq!(
        (r.status, r.origin_saw()["backend"].as_str()),
        (200, Some("origin_us"))
    );
}

fn cache_key(r: &edgeflags_e2e::Reply) -> String {
    r.origin_saw()["headers"]["edgeflags-cache-key"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_cache_key_carries_the_content_decisions_never_the_user() {
    let app = app(AppSpec::demo());
    // user-1 and user-2 both get checkout v1 (buckets 36503 and 27615, docs/bucketing.md);
    // user-42 gets v2 (bucket 96203).
    let a = app.send(
        Req::get("/shoes?page=2")
            .from("203.0.113.30")
            .user("user-1"),
    );
    let b = app.send(
        Req::get("/shoes?page=2")
            .from("203.0.113.30")
            .user("user-2"),
    );
    let c = app.send(
        Req::get("/shoes?page=2")
            .from("203.0.113.30")
            .user("user-42"),
    );
    let d = app.send(
        Req::get("/shoes?page=3")
            .from("203.0.113.30")
            .user("user-1"),
    );
    let e = app.send(
        Req::get("/shoes?page=2")
            .from("203.0.113.20")
            .user("user-1"),
    );
    assert_eq!(cache_key(&a).len(), 64);
    assert_eq!(
        cache_key(&a),
        cache_key(&b),
        "same variants, same object, whoever the user"
    );
    assert_ne!(
        cache_key(&a),
        cache_key(&c),
        "another checkout variant is another object"
    );
    assert_ne!(
        cache_key(&a),
        cache_key(&d),
        "another URL is another object"
    );
    assert_ne!(
        cache_key(&a),
        cache_key(&e),
        "another locale and origin is another object"
    );
}

/// The demo flags with custom attributes allowed from a header, a cookie and a query
/// parameter, and a flag with a rule on each (`bad_input.rs` sends CR/LF through them).
pub(crate) fn custom_attributes() -> AppSpec {
    let mut f = demo_flags();
    f["context"] = json!({"headers": {"x-plan": "plan"}, "cookies": {"plan_cookie": "plan"}, "query": {"utm_source": "source"}});
    f["flags"]["pro-feature"] = json!({
        "type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "off",
        "rules": [
            {"id": "pro", "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}], "serve": "on"},
            {"id": "newsletter", "clauses": [{"attribute": "source", "op": "in", "values": ["newsletter"]}], "serve": "on"},
            {"id": "other", "clauses": [{"attribute": "x-other", "op": "exists"}], "serve": "on"}
        ]
    });
    AppSpec::demo().store(Store::Flags(f, None))
}

#[test]
fn custom_attributes_come_only_from_the_allow_list_and_are_bounded() {
    let app = app(custom_attributes());
    let pro = |r: Req| app.send(r).decision("pro-feature");
    assert_eq!(
        pro(Req::get("/").user("u").header("x-plan", "pro")).as_deref(),
        Some("on")
    );
    assert_eq!(
        pro(Req::get("/").header("cookie", "ef_uid=u; plan_cookie=pro")).as_deref(),
        Some("on")
    );
    assert_eq!(
        pro(Req::get("/?utm_source=newsletter").user("u")).as_deref(),
        Some("on")
    );
    assert_eq!(
        pro(Req::get("/").user("u").header("x-other", "1")).as_deref(),
        Some("off"),
        "not on the allow-list"
    );
    assert_eq!(
        pro(Req::get("/").user("u").header("x-plan", &"pro".repeat(100))).as_deref(),
        Some("off"),
        "oversized values are ignored"
    );
    assert_eq!(pro(Req::get("/").user("u")).as_deref(), Some("off"));
}

#[test]
fn device_class_comes_from_device_detection_then_the_user_agent() {
    let app = app(AppSpec::demo());
    let device = |ua: &str| {
        app.send(Req::get("/").user("u-dev").header("user-agent", ua))
            .origin_saw()["headers"]["edgeflags-device"]
            .as_str()
            .map(str::to_string)
    };
    // Known to the (local) device-detection data.
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    let tv = "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0 Safari/537.36 WebAppManager";
    assert_eq!(device(iphone).as_deref(), Some("mobile"));
    assert_eq!(device(tv).as_deref(), Some("tv"));
    // Unknown to device detection: the User-Agent fallback.
    assert_eq!(
        device("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36")
            .as_deref(),
        Some("mobile")
    );
    assert_eq!(
        device("Mozilla/5.0 (Linux; Android 14; SM-X700) AppleWebKit/537.36 Safari/537.36")
            .as_deref(),
        Some("tablet")
    );
    assert_eq!(
        device("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0").as_deref(),
        Some("desktop")
    );
    assert_eq!(
        device("Googlebot/2.1 (+http://www.google.com/bot.html)").as_deref(),
        Some("bot")
    );
    // A huge User-Agent is ignored (no device from it), not an error.
    let r = app.send(
        Req::get("/")
            .user("u-dev")
            .header("user-agent", &"x".repeat(5000)),
    );
    assert_eq!(r.status, 200);
    // And a JP mobile visitor gets the new search, by rule.
    let jp = app.send(
        Req::get("/")
            .from("203.0.113.10")
            .user("u-dev")
            .header("user-agent", iphone)
            .header("accept-language", "ja-JP,ja;q=0.9,en;q=0.5"),
    );
    assert_eq!(jp.decision("new-search").as_deref(), Some("on"));
    assert_eq!(jp.origin_saw()["headers"]["edgeflags-language"], "ja");
}
