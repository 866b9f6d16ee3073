//! Every visitor's own clock: places whose region spans several zones (Lord Howe Island and
//! Broken Hill in New South Wales, Punta Arenas in Magallanes) and a single-zone country
//! (Nepal), by client address (geolocation) and by preview token (the place named, no
//! offset, no coordinates). The demo's `banner` serves `night` from 20:00 local time on
//! weekdays, so each instant below falls on one side of 20:00 in the right zone and on
//! the other in the zone a region-only table would give (Sydney, Santiago) or in the fixed
//! offset of the local geolocation data (which never changes with the seasons).

use edgeflags_e2e::{AppSpec, Req, app};
use edgeflags_engine::place::{self, Record};
use edgeflags_engine::preview::{Claims, mint};

const DEV_KEY: &[u8] = b"dev-preview-key-not-for-production";

const LORD_HOWE: &str = "203.0.113.60";
const BROKEN_HILL: &str = "203.0.113.61";
const PUNTA_ARENAS: &str = "203.0.113.62";
const KATHMANDU: &str = "203.0.113.63";

/// A token that pins the clock and, when `place` is given, names the place.
fn token(at: &str, place: Option<(&str, &str, &str)>) -> String {
    let mut claims = Claims {
        exp: 4_000_000_000,
        at: Some(at.into()),
        ..Claims::default()
    };
    if let Some((country, region, city)) = place {
        claims.country = Some(country.into());
        claims.region = Some(region.into());
        claims.city = Some(city.into());
    }
    mint(&claims, DEV_KEY)
}

/// The place of a client address in the local geolocation data.
fn record_of(ip: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(edgeflags_e2e::root().join("config-store/geolocation.json"))
        .unwrap_or_default();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    all[ip].clone()
}

/// What the engine (and so `edgeflags explain`) resolves for the same record at `at`.
fn engine_zone(ip: &str, at: &str) -> Option<String> {
    let r = record_of(ip);
    let now = chrono::DateTime::parse_from_rfc3339(at)
        .map(|d| d.with_timezone(&chrono::Utc))
        .ok()?;
    let record = Record {
        country: r["country_code"].as_str(),
        region: r["region"].as_str(),
        city: r["city"].as_str(),
        latitude: r["latitude"].as_f64(),
        longitude: r["longitude"].as_f64(),
        utc_offset: r["utc_offset"].as_i64().and_then(|o| i32::try_from(o).ok()),
    };
    place::resolve(&record, now).map(|z| z.zone.name())
}

#[test]
fn local_time_rules_follow_each_places_own_clock_across_transitions() {
    let app = app(AppSpec::demo());
    let places = [
        // Lord Howe Island: +11:00 until 2026-04-04 15:00 UTC, then +10:30 (Sydney: +10).
        (
            LORD_HOWE,
            ("AU", "NSW", "Lord Howe Island"),
            "Australia/Lord_Howe",
            [
                ("2026-04-03T09:15:00Z", "night"),    // Fri 20:15 (+11)
                ("2026-04-06T09:15:00Z", "standard"), // Mon 19:45 (+10:30); a stale +11 says night
                ("2026-04-06T09:40:00Z", "night"),    // Mon 20:10; Sydney 19:40
            ],
        ),
        // Broken Hill: Adelaide's clock, +10:30 until 2026-04-04 16:30 UTC, then +09:30.
        (
            BROKEN_HILL,
            ("AU", "NSW", "Broken Hill"),
            "Australia/Broken_Hill",
            [
                ("2026-04-03T09:20:00Z", "standard"), // Fri 19:50; Sydney 20:20
                ("2026-04-06T10:20:00Z", "standard"), // Mon 19:50; a stale +10:30 says 20:50
                ("2026-04-06T10:40:00Z", "night"),    // Mon 20:10
            ],
        ),
        // Punta Arenas keeps -03:00 while Santiago goes from -03:00 to -04:00 on
        // 2026-04-05 03:00 UTC.
        (
            PUNTA_ARENAS,
            ("CL", "MA", "Punta Arenas"),
            "America/Punta_Arenas",
            [
                ("2026-04-02T23:10:00Z", "night"),    // Thu 20:10
                ("2026-04-06T23:10:00Z", "night"),    // Mon 20:10; Santiago 19:10
                ("2026-04-06T22:50:00Z", "standard"), // Mon 19:50
            ],
        ),
        // Nepal, +05:45 all year: by token (no offset) it had no zone at all before.
        (
            KATHMANDU,
            ("NP", "P3", "Kathmandu"),
            "Asia/Kathmandu",
            [
                ("2026-04-03T14:10:00Z", "standard"), // Fri 19:55
                ("2026-04-03T14:20:00Z", "night"),    // Fri 20:05
                ("2026-04-06T14:20:00Z", "night"),    // Mon 20:05
            ],
        ),
    ];
    for (ip, named, zone, checks) in places {
        for (at, banner) in checks {
            // By client address: the token only pins the clock.
            let r = app.send(
                Req::get("/")
                    .from(ip)
                    .user("u-zone")
                    .header("edgeflags-preview", &token(at, None)),
            );
            let saw = r.origin_saw();
            assert_eq!(saw["headers"]["edgeflags-timezone"], zone, "{ip} at {at}");
            assert_eq!(
                engine_zone(ip, at).as_deref(),
                Some(zone),
                "explain differs for {ip} at {at}"
            );
            assert_eq!(
                r.decision("banner").as_deref(),
                Some(banner),
                "{ip} at {at}"
            );
            // By token naming the place, from a client in New York.
            let r = app.send(
                Req::get("/")
                    .user("u-zone")
                    .header("edgeflags-preview", &token(at, Some(named))),
            );
            assert_eq!(
                r.origin_saw()["headers"]["edgeflags-timezone"],
                zone,
                "{named:?} at {at}"
            );
            assert_eq!(
                r.decision("banner").as_deref(),
                Some(banner),
                "{named:?} at {at}"
            );
        }
    }
}

#[test]
fn explain_and_ofrep_say_how_the_zone_was_chosen() {
    let app = app(AppSpec::demo());
    let at = "2026-07-15T10:00:00Z";
    let explained = app
        .send(
            Req::get("/.edgeflags/explain")
                .from(BROKEN_HILL)
                .user("u-zone")
                .header("edgeflags-preview", &token(at, None)),
        )
        .json();
    assert_eq!(explained["context"]["timezone"], "Australia/Broken_Hill");
    assert_eq!(explained["timezone_source"], "city");
    // A token naming a zone uses it, and says so.
    let named = mint(
        &Claims {
            exp: 4_000_000_000,
            country: Some("NP".into()),
            zone: Some("-09:30".into()),
            ..Claims::default()
        },
        DEV_KEY,
    );
    let explained = app
        .send(
            Req::get("/.edgeflags/explain")
                .user("u-zone")
                .header("edgeflags-preview", &named),
        )
        .json();
    assert_eq!(explained["context"]["timezone"], "-09:30");
    assert_eq!(explained["timezone_source"], "token");
    // OFREP metadata: flat keys, string values.
    let r = app.send(
        Req::post(
            "/ofrep/v1/evaluate/flags/banner",
            r#"{"context": {"targetingKey": "u-zone"}}"#,
        )
        .from(LORD_HOWE)
        .header("content-type", "application/json"),
    );
    let body = r.json();
    assert_eq!(
        body["metadata"]["timezone"], "Australia/Lord_Howe",
        "{body}"
    );
    assert_eq!(body["metadata"]["timezoneSource"], "city", "{body}");
}
