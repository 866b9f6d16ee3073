//! Exposure and conversion events: sampled JSON lines of the engine's versioned record
//! (read back here with its type) with a keyed hash of the user, exposures carrying the
//! split behind them, and conversions carrying the variants the edge serves that user.

use std::collections::BTreeMap;

use edgeflags_e2e::{AppSpec, Req, app, dev_user_hash};
use edgeflags_engine::events::{Event, Kind, SCHEMA_VERSION, Served, Weight};

#[test]
fn exposures_and_conversions_are_logged_without_the_raw_user_key() {
    let app = app(AppSpec::demo());
    let user = "u-events-7";
    let r = app.send(Req::get("/").from("203.0.113.10").user(user));
    let served = r.decision("checkout");
    let events = app.log_json("edgeflags_events");
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e["user"] == dev_user_hash(user).as_str())
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
    // The record, typed: version 2, with the demo's 50/50 default split behind it.
    let typed: Event = serde_json::from_value(e.clone()).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        (typed.schema_version, typed.kind),
        (SCHEMA_VERSION, Kind::Exposure)
    );
    let half = |v: &str| Weight {
        variant: v.into(),
        weight: 50_000,
    };
    assert_eq!(
        (typed.rule, typed.split),
        (None, vec![half("v1"), half("v2")])
    );
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
        .filter(|e| e["kind"] == "conversion" && e["user"] == dev_user_hash(user).as_str())
        .collect();
    assert_eq!(conv.len(), 1);
    assert_eq!(
        (conv[0]["event"].as_str(), conv[0]["value"].as_f64()),
        (Some("purchase"), Some(42.5))
    );
    let typed: Event =
        serde_json::from_value(conv[0].clone()).unwrap_or_else(|err| panic!("{err}"));
    // Every tracked flag's variant as a {flag, variant} entry: the demo tracks checkout.
    assert_eq!(
        typed.variants,
        vec![Served {
            flag: "checkout".into(),
            variant: served.clone().unwrap_or_default(),
        }]
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
    let app = app(AppSpec::demo());
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

#[test]
fn report_on_the_captured_log_reproduces_the_counts_of_the_run() {
    let app = app(AppSpec::demo());
    // 80 users from Tokyo and Paris; each converts by a rule of its own, so the expected
    // counts come from what the edge actually served.
    let mut expected: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for i in 0..80 {
        let user = format!("u-report-{i}");
        let (ip, country) = if i % 2 == 0 {
            ("203.0.113.10", "JP")
        } else {
            ("203.0.113.20", "FR")
        };
        let r = app.send(Req::get("/").from(ip).user(&user));
        let variant = r
            .decision("checkout")
            .unwrap_or_else(|| panic!("no checkout decision: {}", r.body));
        let converts = if variant == "v2" {
            i % 3 != 0
        } else {
            i % 3 == 0
        };
        let e = expected
            .entry((variant.clone(), country.to_string()))
            .or_default();
        e.0 += 1;
        if converts {
            e.1 += 1;
            let t = app.send(
                Req::post("/.edgeflags/track", r#"{"event": "purchase", "value": 10}"#)
                    .from(ip)
                    .user(&user),
            );
            assert_eq!(t.status, 204);
        }
    }
    // The demo app is shared with other tests: the report reads this run's users' lines.
    let mine: std::collections::BTreeSet<String> = (0..80)
        .map(|i| dev_user_hash(&format!("u-report-{i}")))
        .collect();
    let lines: Vec<String> = app
        .logs()
        .into_iter()
        .filter(|l| {
            l.strip_prefix("edgeflags_events :: ")
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                .is_some_and(|e| e["user"].as_str().is_some_and(|u| mine.contains(u)))
        })
        .collect();
    let log = std::env::temp_dir().join(format!("edgeflags-report-{}.log", std::process::id()));
    std::fs::write(&log, lines.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(edgeflags_e2e::cli_binary())
        .args([
            "report",
            &log.to_string_lossy(),
            "--event",
            "purchase",
            "--json",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run edgeflags: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let checkout = &doc["flags"]["checkout"];
    for variant in ["v1", "v2"] {
        let (mut n, mut c) = (0, 0);
        for country in ["JP", "FR"] {
            let (en, ec) = expected
                .get(&(variant.to_string(), country.to_string()))
                .copied()
                .unwrap_or_default();
            let got = &checkout[variant]["countries"][country];
            assert_eq!(
                (
                    got["exposed"].as_u64().unwrap_or(0),
                    got["converted"].as_u64().unwrap_or(0)
                ),
                (en, ec),
                "{variant} in {country}"
            );
            n += en;
            c += ec;
        }
        let v = &checkout[variant];
        assert_eq!(
            (v["exposed"].as_u64(), v["converted"].as_u64()),
            (Some(n), Some(c))
        );
        let rate = v["rate"].as_f64().unwrap_or(-1.0);
        assert!(
            (rate - c as f64 / n as f64).abs() < 1e-12,
            "{variant}: {rate}"
        );
        assert_eq!(v["value"].as_f64(), Some(10.0 * c as f64));
    }
    assert_eq!(doc["skipped"].as_u64(), Some(0));
}
