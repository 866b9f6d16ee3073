//! Time zones in the CLI: `--zone -09:30` parses as a value, and `explain` resolves the
//! same zone as the edge for the same geolocation record (the records of
//! `config-store/geolocation.json`, which the end-to-end tests send through the edge).

use std::path::PathBuf;
use std::process::{Command, Output};

use edgeflags_engine::place::{self, Record};

fn edgeflags(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run edgeflags: {e}"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn explain_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["explain", "config-store/flags.json", "--json"];
    all.extend_from_slice(args);
    let out = edgeflags(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn a_negative_zone_is_a_value_with_or_without_the_equals_sign() {
    for args in [
        &["--zone", "-09:30"][..],
        &["--zone=-09:30"],
        &["--zone", "-0930"],
    ] {
        let doc = explain_json(args);
        assert_eq!(doc["context"]["timezone"], "-09:30", "{args:?}");
        assert_eq!(doc["timezone_source"], "given", "{args:?}");
    }
    for args in [&["--zone", "-09:30"][..], &["--zone=-09:30"]] {
        let mut all = vec!["preview-token", "--country", "PF"];
        all.extend_from_slice(args);
        let out = edgeflags(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let claims = edgeflags_engine::preview::verify(
            &token,
            Some(b"dev-preview-key-not-for-production"),
            0,
        );
        assert_eq!(
            claims.ok().and_then(|c| c.zone).as_deref(),
            Some("-09:30"),
            "{args:?}"
        );
    }
    // A value that is not a zone is still refused, with what to use instead.
    let bad = edgeflags(&["explain", "config-store/flags.json", "--zone", "-25:00"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown time zone"));
}

#[test]
fn explain_resolves_the_same_zone_as_the_engine_for_each_local_geolocation_record() {
    let text =
        std::fs::read_to_string(root().join("config-store/geolocation.json")).unwrap_or_default();
    let records: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_default();
    let at = "2026-07-15T12:00:00Z";
    let now = chrono::DateTime::parse_from_rfc3339(at)
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let mut seen = std::collections::BTreeMap::new();
    for (ip, r) in &records {
        let s = |k: &str| r[k].as_str().map(str::to_string);
        let (country, region, city) = (s("country_code"), s("region"), s("city"));
        let (lat, lon) = (r["latitude"].as_f64(), r["longitude"].as_f64());
        let offset = r["utc_offset"].as_i64().and_then(|o| i32::try_from(o).ok());
        let record = Record {
            country: country.as_deref(),
            region: region.as_deref(),
            city: city.as_deref(),
            latitude: lat,
            longitude: lon,
            utc_offset: offset,
        };
        let expected = place::resolve(&record, now).map(|r| (r.zone.name(), r.source.as_str()));
        let mut args: Vec<String> = vec!["--at".into(), at.into()];
        for (flag, value) in [
            ("--country", country),
            ("--region", region),
            ("--city", city),
            ("--latitude", lat.map(|v| v.to_string())),
            ("--longitude", lon.map(|v| v.to_string())),
            ("--utc-offset", offset.map(|v| v.to_string())),
        ] {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v);
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let doc = explain_json(&refs);
        let got = doc["context"]["timezone"]
            .as_str()
            .map(|z| (z.to_string(), doc["timezone_source"].as_str().unwrap_or("")));
        assert_eq!(
            got.as_ref().map(|(z, s)| (z.as_str(), *s)),
            expected.as_ref().map(|(z, s)| (z.as_str(), *s)),
            "{ip}"
        );
        seen.insert(ip.clone(), got.map(|g| g.0).unwrap_or_default());
    }
    // The places the end-to-end tests visit by client address.
    for (ip, zone) in [
        ("203.0.113.60", "Australia/Lord_Howe"),
        ("203.0.113.61", "Australia/Broken_Hill"),
        ("203.0.113.62", "America/Punta_Arenas"),
        ("203.0.113.63", "Asia/Kathmandu"),
        ("198.51.100.8", "America/Chicago"),
    ] {
        assert_eq!(seen.get(ip).map(String::as_str), Some(zone), "{ip}");
    }
}

#[test]
fn explain_says_how_the_zone_was_chosen() {
    let out = edgeflags(&[
        "explain",
        "config-store/flags.json",
        "--country",
        "AU",
        "--region",
        "NSW",
        "--city",
        "Broken Hill",
        "--at",
        "2026-07-15T12:00:00Z",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("zone     Australia/Broken_Hill  chosen by: city"),
        "{text}"
    );
    let fixed = edgeflags(&[
        "explain",
        "config-store/flags.json",
        "--country",
        "NP",
        "--utc-offset",
        "+05:00",
        "--at",
        "2026-07-15T12:00:00Z",
    ]);
    let text = String::from_utf8_lossy(&fixed.stdout);
    assert!(
        text.contains("zone     +05:00  chosen by: fixed offset (no zone of the country"),
        "{text}"
    );
    // Without a region, simulate's country-only users get the country's zone: Nepal's.
    let sim = edgeflags(&[
        "simulate",
        "config-store/flags.json",
        "--users",
        "200",
        "--countries",
        "NP=1",
        "--at",
        "2026-11-28T12:00:00Z",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap_or_default();
    // Saturday 17:45 in Kathmandu: every user gets the weekend sale.
    assert_eq!(doc["banner"]["counts"]["NP"]["weekend_sale"], 200, "{doc}");
}
