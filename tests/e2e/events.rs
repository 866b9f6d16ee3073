//! Exposure and conversion events: sampled JSON lines with a keyed hash of the user, and
//! conversions carrying the variants the edge serves that user.

use edgeflags_e2e::{AppSpec, Req, app};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hashed(user: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"dev-user-hash-key-not-for-production")
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(user.as_bytes());
    mac.finalize().into_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn exposures_and_conversions_are_logged_without_the_raw_user_key() {
    let app = app("events", AppSpec::demo);
    let user = "u-events-7";
    let r = app.send(Req::get("/").from("203.0.113.10").user(user));
    let served = r.decision("checkout");
    let events = app.log_json("edgeflags_events");
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e["user"] == hashed(user).as_str())
        .collect();
    // checkout has exposure_sample 1.0; the other demo flags have none.
    assert_eq!(mine.len(), 1, "{events:?}");
    let e = mine[0];
    assert_eq!(
        (e["kind"].as_str(), e["flag"].as_str()),
        (Some("exposure"), Some("checkout"))
    );
    assert_eq!(e["variant"].as_str().map(str::to_string), served);
    assert_eq!(
        (e["country"].as_str(), e["reason"].as_str()),
        (Some("JP"), Some("SPLIT"))
    );
    assert!(e["snapshot"].is_string() && e["ts"].is_i64());
    assert!(
        !app.logs()
            .iter()
            .any(|l| l.starts_with("edgeflags_events") && l.contains(user)),
        "a raw user key was logged"
    );

    let t = app.send(
        Req::post(
            "/.edgeflags/track",
            r#"{"event": "purchase", "value": 42.5}"#,
        )
        .from("203.0.113.10")
        .user(user),
    );
    assert_eq!(t.status, 204);
    let conv: Vec<_> = app
        .log_json("edgeflags_events")
        .into_iter()
        .filter(|e| e["kind"] == "conversion" && e["user"] == hashed(user).as_str())
        .collect();
    assert_eq!(conv.len(), 1);
    assert_eq!(
        (conv[0]["event"].as_str(), conv[0]["value"].as_f64()),
        (Some("purchase"), Some(42.5))
    );
    assert_eq!(
        conv[0]["variants"]["checkout"].as_str().map(str::to_string),
        served
    );
    // The client cannot claim variants: only the edge's own decision is logged.
    let forged = app.send(
        Req::post(
            "/.edgeflags/track",
            r#"{"event": "purchase", "variants": {"checkout": "v9"}}"#,
        )
        .user(user),
    );
    assert_eq!(forged.status, 204);
    assert!(!app.logs().iter().any(|l| l.contains("v9")));
    let bad =
        app.send(Req::post("/.edgeflags/track", r#"{"event": "no spaces allowed"}"#).user(user));
    assert_eq!(bad.status, 400);
    let get = app.send(Req::get("/.edgeflags/track").user(user));
    assert_eq!(get.status, 405);
}

#[test]
fn every_event_is_one_json_line() {
    let app = app("events", AppSpec::demo);
    for i in 0..5 {
        app.send(Req::get("/").user(&format!("u-lines-{i}")));
    }
    for line in app
        .logs()
        .iter()
        .filter(|l| l.starts_with("edgeflags_events :: "))
    {
        let json = line.trim_start_matches("edgeflags_events :: ");
        assert!(
            serde_json::from_str::<serde_json::Value>(json).is_ok(),
            "not one JSON line: {line}"
        );
    }
}
