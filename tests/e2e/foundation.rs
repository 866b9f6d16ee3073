//! The first slice: geo routing, sticky bucketing, the id cookie, and fail-safe config.

use std::collections::BTreeMap;

use edgeflags_e2e::{AppSpec, Req, Store, app};

const TOKYO: &str = "203.0.113.10";
const PARIS: &str = "203.0.113.20";
const NEW_YORK: &str = "203.0.113.30";
const SAO_PAULO: &str = "203.0.113.40";

#[test]
fn clients_in_different_countries_reach_their_regional_backends() {
    let app = app(AppSpec::demo());
    let cases = [
        (TOKYO, "origin_apac", "/ja/products"),
        (PARIS, "origin_eu", "/fr/products"),
        (NEW_YORK, "origin_us", "/en/products"),
        (SAO_PAULO, "origin_sa", "/pt/products"),
    ];
    for (ip, backend, path) in cases {
        let r = app.send(Req::get("/products").from(ip).user("u-route"));
        assert_eq!(r.status, 200, "{ip}: {}", r.body);
        let saw = r.origin_saw();
        assert_eq!(saw["backend"], backend, "{ip}");
        assert_eq!(saw["path"], path, "{ip}");
    }
}

#[test]
fn origin_gets_trusted_geo_with_negative_offsets_resolved_to_a_zone() {
    let app = app(AppSpec::demo());
    let r = app.send(Req::get("/").from(NEW_YORK).user("u-geo"));
    let h = &r.origin_saw()["headers"];
    assert_eq!(h["edgeflags-country"], "US");
    assert_eq!(h["edgeflags-region"], "NY");
    assert_eq!(h["edgeflags-city"], "New York");
    assert_eq!(h["edgeflags-timezone"], "America/New_York");
    // Chicago's entry has no region: its coordinates and offset name the zone.
    let r = app.send(Req::get("/").from("198.51.100.8").user("u-geo"));
    assert_eq!(
        r.origin_saw()["headers"]["edgeflags-timezone"],
        "America/Chicago"
    );
}

#[test]
fn the_same_user_key_always_gets_the_same_variant() {
    let app = app(AppSpec::demo());
    // The edge buckets as the engine does, user by user: the split's accuracy over many
    // users is then the engine's (crates/engine/tests/demo_file.rs checks 10,000).
    let snap = edgeflags_engine::compile(&edgeflags_e2e::demo_flags())
        .unwrap_or_else(|e| panic!("the demo flags do not compile: {e}"));
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let mut seen = BTreeMap::new();
    for i in 0..40 {
        let user = format!("sticky-{i}");
        let first = app
            .send(Req::get("/").from(NEW_YORK).user(&user))
            .decision("checkout");
        let engine = snap
            .evaluate("checkout", &edgeflags_engine::Context::with_key(&user), now)
            .variant
            .map(str::to_string);
        assert_eq!(first, engine, "user {user}: the edge and the engine differ");
        for ip in [NEW_YORK, PARIS, TOKYO] {
            let again = app
                .send(Req::get("/").from(ip).user(&user))
                .decision("checkout");
            assert_eq!(again, first, "user {user} from {ip}");
        }
        *seen.entry(first.unwrap_or_default()).or_insert(0) += 1;
    }
    // Both variants of the 50/50 split occur among 40 users.
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn a_new_visitor_gets_an_id_cookie_that_sticks() {
    let app = app(AppSpec::demo());
    let r = app.send(Req::get("/").from(PARIS));
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").unwrap_or_default().to_string();
    assert!(cookie.starts_with("ef_uid="), "{cookie}");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let id = cookie
        .trim_start_matches("ef_uid=")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(id.len(), 32);
    let first = r.decision("checkout");
    let again = app.send(
        Req::get("/")
            .from(PARIS)
            .header("cookie", &format!("ef_uid={id}")),
    );
    assert!(
        again.header("set-cookie").is_none(),
        "a known visitor gets no new cookie"
    );
    assert_eq!(again.decision("checkout"), first);
    // Two new visitors get two different ids.
    let other = app.send(Req::get("/").from(PARIS));
    assert_ne!(other.header("set-cookie").map(str::to_string), Some(cookie));
}

#[test]
fn a_missing_store_serves_the_embedded_flags_with_200() {
    let app = app(AppSpec::demo().store(Store::Missing));
    let r = app.send(Req::get("/").from(TOKYO).user("u1"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.decision("locale").as_deref(), Some("ja"));
    let h = app.send(Req::get("/.edgeflags/health"));
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["source"], "embedded");
    assert_eq!(h.json()["status"], "degraded");
    assert!(
        app.logs()
            .iter()
            .any(|l| l.starts_with("edgeflags_ops :: ") && l.contains("could not be found")),
        "{:?}",
        app.logs()
    );
}

#[test]
fn a_broken_flag_entry_serves_the_embedded_flags_with_200() {
    let mut entries = edgeflags_e2e::packed(&edgeflags_e2e::demo_flags(), None);
    for v in entries.values_mut().filter(|v| !v.starts_with('{')) {
        v.push_str("garbage");
    }
    let app = app(AppSpec::demo().store(Store::Entries(entries)));
    let r = app.send(Req::get("/").from(PARIS).user("u1"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.decision("locale").as_deref(), Some("fr"));
    let h = app.send(Req::get("/.edgeflags/health")).json();
    assert_eq!(h["source"], "embedded");
    assert!(h["problems"].to_string().contains("checksum"), "{h}");
}

#[test]
fn a_client_cannot_forge_decisions_or_geo() {
    let app = app(AppSpec::demo());
    let r = app.send(
        Req::get("/")
            .from(TOKYO)
            .user("u-forge")
            .header("edgeflags-decisions", "checkout=v9")
            .header("edgeflags-country", "ZZ")
            .header("EdgeFlags-Route", "evil"),
    );
    let h = &r.origin_saw()["headers"];
    assert_eq!(h["edgeflags-country"], "JP");
    assert!(
        !h["edgeflags-decisions"]
            .as_str()
            .unwrap_or_default()
            .contains("v9")
    );
    assert_eq!(h["edgeflags-route"], "japan");
}
