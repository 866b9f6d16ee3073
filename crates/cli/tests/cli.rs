//! The built `edgeflags` binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeflags-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

#[test]
fn validate_accepts_the_demo_file() {
    let out = edgeflags(&["validate", "config-store/flags.json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid, 9 flags"));
}

#[test]
fn validate_lists_every_problem_with_its_path() {
    let bad = r#"{
      "flags": {
        "promo": {
          "type": "boolean",
          "variants": { "on": true, "off": "no" },
          "off_variant": "of",
          "rules": [
            { "clauses": [ { "attribute": "country", "op": "within", "values": ["JP"] } ], "serve": "on" },
            { "clauses": [ { "op": "segment", "values": ["vips"] } ], "serve": "on" },
            { "clauses": [ { "attribute": "email", "op": "matches", "values": ["(unclosed"] } ], "serve": "on" },
            { "clauses": [ { "op": "local_time", "zone": "Mars/Olympus" } ], "serve": "on" }
          ],
          "default": { "split": [ { "variant": "on", "weight": 60 }, { "variant": "off", "weight": 30 } ] },
          "prerequisites": [ { "flag": "other", "variants": ["on"] } ]
        },
        "other": {
          "type": "boolean", "variants": { "on": true, "off": false }, "off_variant": "off", "default": "off",
          "prerequisites": [ { "flag": "promo", "variants": ["on"] } ]
        }
      }
    }"#;
    let file = scratch("bad.json");
    std::fs::write(&file, bad).unwrap_or_else(|e| panic!("{e}"));
    let out = edgeflags(&["validate", &file.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "$.flags.promo.variants.off: a boolean flag's variant must be a boolean",
        "$.flags.promo.off_variant: unknown variant `of`",
        "$.flags.promo.rules[0].clauses[0].op: unknown operator `within`",
        "$.flags.promo.rules[1].clauses[0].values[0]: unknown segment `vips`",
        "$.flags.promo.rules[2].clauses[0].values[0]: bad regular expression",
        "$.flags.promo.rules[3].clauses[0].zone: unknown time zone `Mars/Olympus`",
        "$.flags.promo.default.split: weights add up to 90%, not 100%",
        "prerequisite cycle",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    let json = edgeflags(&["validate", "--json", &file.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_default();
    assert_eq!(v["valid"], false);
    assert!(
        v["problems"].as_array().map(|a| a.len()).unwrap_or(0) >= 8,
        "{v}"
    );
}

#[test]
fn validate_refuses_redirect_loops_conflicting_changes_and_bad_selectors() {
    let bad = r##"{
      "flags": {
        "a": { "type": "string", "variants": { "x": "x", "y": "y" }, "off_variant": "x", "default": "y",
          "edge": { "y": { "redirect": { "from": "/cart", "to": "/basket" },
                           "changes": [ { "selector": "#banner h2", "action": "text", "value": "A" } ] } } },
        "b": { "type": "string", "variants": { "x": "x", "y": "y" }, "off_variant": "x", "default": "y",
          "edge": { "x": { "redirect": { "from": "/basket", "to": "/cart?from=b" },
                           "changes": [ { "selector": "#banner h2", "action": "text", "value": "B" },
                                        { "selector": "div[", "action": "remove" } ] } } }
      }
    }"##;
    let file = scratch("edge-bad.json");
    std::fs::write(&file, bad).unwrap_or_else(|e| panic!("{e}"));
    let out = edgeflags(&["validate", &file.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "redirects form a loop: /cart -> /basket -> /cart",
        "$.flags.b.edge.x.changes[0]: conflicts with $.flags.a.edge.y.changes[0]",
        "$.flags.b.edge.x.changes[1].selector: `div[` is not a selector the edge can run",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn explain_lists_the_page_changes_and_redirects_a_request_gets() {
    let out = edgeflags(&[
        "explain",
        "config-store/flags.json",
        "--user",
        "visitor-4",
        "--country",
        "US",
        "--city",
        "New York",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "change   store-banner=local: text `#banner h2` \"Hello, shoppers in New York!\"",
        "change   product-tile=spotlight: prepend `#tile-1`",
        "change   store-recs=fragment: fragment `#recs` \"/fragments/recs\"",
        "redirect store-checkout=v2: /store/checkout -> /store/checkout-v2 (302)",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn pack_writes_a_readable_store_and_alternates_slots() {
    let store = packed_store(Path::new("config-store/flags.json"), "store.json");
    let text = std::fs::read_to_string(&store).unwrap_or_default();
    let entries: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&text).unwrap_or_default();
    let loaded = edgeflags_engine::pack::read(|k| entries.get(k).cloned(), None).result;
    let loaded = loaded.unwrap_or_else(|e| panic!("unreadable store: {e:?}"));
    let source = edgeflags_engine::payload::source(&loaded.payload).unwrap_or_default();
    assert!(edgeflags_engine::compile_str(&source).is_ok());
    let snapshot = edgeflags_engine::payload::load(&loaded.payload, &loaded.version);
    assert_eq!(
        snapshot.map(|s| s.fingerprint().to_string()).ok(),
        Some(loaded.version.clone())
    );
    assert_eq!(loaded.slot, edgeflags_engine::pack::Slot::A);
    let again = edgeflags(&[
        "pack",
        "config-store/flags.json",
        "--store",
        &store.to_string_lossy(),
    ]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already active"));
}

#[test]
fn preview_token_mints_a_token_the_engine_accepts() {
    let key = scratch("preview.key");
    std::fs::write(&key, "k-123\n").unwrap_or_else(|e| panic!("{e}"));
    let out = edgeflags(&[
        "preview-token",
        "--country",
        "jp",
        "--at",
        "2026-11-28T21:00+09:00",
        "--variant",
        "checkout=v2",
        "--key-file",
        &key.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let claims = edgeflags_engine::preview::verify(&token, Some(b"k-123"), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims.country.as_deref(), Some("JP"));
    assert_eq!(claims.at.as_deref(), Some("2026-11-28T21:00:00+09:00"));
    assert_eq!(
        claims.variants.get("checkout").map(String::as_str),
        Some("v2")
    );
    let bad = edgeflags(&[
        "preview-token",
        "--at",
        "tomorrow",
        "--key-file",
        &key.to_string_lossy(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

#[test]
fn console_link_mints_a_login_link_the_engine_accepts() {
    let key = scratch("console.key");
    std::fs::write(&key, "k-456\n").unwrap_or_else(|e| panic!("{e}"));
    let key = key.to_string_lossy();
    let out = edgeflags(&[
        "console-link",
        "--ttl",
        "8h",
        "--user",
        "qa@example.com",
        "--base",
        "https://shop.example/",
        "--key-file",
        &key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let token = link
        .strip_prefix("https://shop.example/.edgeflags/console/login?t=")
        .unwrap_or_else(|| panic!("not a login link: {link}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let login = edgeflags_engine::console::verify_login(token, Some(b"k-456"), now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(login.sub, "qa@example.com");
    assert!(
        (login.exp - now - 8 * 3600).abs() <= 5,
        "{}",
        login.exp - now
    );
    // Not a preview token; and a week is the longest.
    assert!(edgeflags_engine::preview::verify(token, Some(b"k-456"), now).is_err());
    let long = edgeflags(&["console-link", "--ttl", "8d", "--key-file", &key]);
    assert_eq!(long.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&long.stderr).contains("7 days at most"));
}

#[test]
fn explain_prints_each_decision_and_the_same_json_as_the_engine() {
    let out = edgeflags(&[
        "explain",
        "config-store/flags.json",
        "--user",
        "u42",
        "--country",
        "JP",
        "--device",
        "mobile",
        "--at",
        "2026-11-28T21:00+09:00",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "banner",
        "weekend_sale",
        "rule `weekend`",
        "new-search",
        "rule `jp-mobile`",
        "route    japan -> backend origin_apac /ja",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let json = edgeflags(&[
        "explain",
        "config-store/flags.json",
        "--user",
        "u42",
        "--attr",
        "plan=pro",
        "--attr",
        "age=31",
        "--at",
        "2026-11-25T12:00:00Z",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_default();
    assert_eq!(doc["context"]["plan"], "pro");
    assert_eq!(doc["context"]["age"], 31.0);
    let checkout = doc["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == "checkout"))
        .cloned()
        .unwrap_or_default();
    // u42's bucket for `checkout`, from the bucketing reference: 94252, the second half.
    assert_eq!(
        (checkout["variant"].as_str(), checkout["bucket"].as_u64()),
        (Some("v2"), Some(94252))
    );
}

#[test]
fn simulate_shows_distributions_within_half_a_point_of_the_weights() {
    let out = edgeflags(&[
        "simulate",
        "config-store/flags.json",
        "--users",
        "100000",
        "--countries",
        "FR=1",
        "--at",
        "2026-11-25T12:00:00Z",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let share = |flag: &str, variant: &str| {
        doc[flag]["counts"]["*"][variant].as_f64().unwrap_or(0.0) / 1000.0
    };
    assert!(
        (share("checkout", "v2") - 50.0).abs() < 0.5,
        "{}",
        share("checkout", "v2")
    );
    // new-search: 20% of EU visitors.
    assert!(
        (share("new-search", "on") - 20.0).abs() < 0.5,
        "{}",
        share("new-search", "on")
    );
    assert_eq!(share("locale", "fr"), 100.0);
    assert_eq!(doc["checkout"]["configured_default_split"]["v1"], 50.0);
}

#[test]
fn report_summarises_exposures_and_conversions_with_intervals() {
    let mut log = String::from("garbage line\n");
    for i in 0..200 {
        let variant = if i < 100 { "v1" } else { "v2" };
        let country = if i % 2 == 0 { "JP" } else { "US" };
        log.push_str(&format!(
            "edgeflags_events :: {{\"kind\":\"exposure\",\"flag\":\"checkout\",\"variant\":\"{variant}\",\"user\":\"h{i}\",\"country\":\"{country}\"}}\n"
        ));
        // Exposed twice: users are counted once.
        log.push_str(&format!("{{\"kind\":\"exposure\",\"flag\":\"checkout\",\"variant\":\"{variant}\",\"user\":\"h{i}\",\"country\":\"{country}\"}}\n"));
        let converts = (i < 100 && i % 10 == 0) || (i >= 100 && i % 5 == 0);
        if converts {
            log.push_str(&format!(
                "{{\"kind\":\"conversion\",\"event\":\"purchase\",\"value\":10,\"user\":\"h{i}\",\"variants\":{{\"checkout\":\"{variant}\"}}}}\n"
            ));
        }
        if i == 0 {
            log.push_str("{\"kind\":\"conversion\",\"event\":\"signup\",\"user\":\"h0\",\"variants\":{\"checkout\":\"v1\"}}\n");
        }
    }
    let file = scratch("events.log");
    std::fs::write(&file, log).unwrap_or_else(|e| panic!("{e}"));
    let out = edgeflags(&[
        "report",
        &file.to_string_lossy(),
        "--event",
        "purchase",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let v1 = &doc["flags"]["checkout"]["v1"];
    let v2 = &doc["flags"]["checkout"]["v2"];
    assert_eq!(
        (v1["exposed"].as_u64(), v1["converted"].as_u64()),
        (Some(100), Some(10))
    );
    assert_eq!(
        (v2["exposed"].as_u64(), v2["converted"].as_u64()),
        (Some(100), Some(20))
    );
    assert_eq!(v2["value"].as_f64(), Some(200.0));
    assert_eq!(v1["countries"]["JP"]["exposed"].as_u64(), Some(50));
    // Users 100..200 alternate JP/US; every fifth converts: 10 in JP (even), 10 in US.
    assert_eq!(v2["countries"]["JP"]["converted"].as_u64(), Some(10));
    // v2 against the control v1: +10 points, Newcombe's interval [0.015, 19.95] points.
    let d = &v2["vs_control"];
    assert_eq!(d["control"], "v1");
    assert!((d["diff"].as_f64().unwrap_or(0.0) - 0.10).abs() < 1e-9);
    let (dlo, dhi) = (
        d["ci95"][0].as_f64().unwrap_or(9.0),
        d["ci95"][1].as_f64().unwrap_or(9.0),
    );
    assert!(
        (dlo - 0.000149).abs() < 1e-5 && (dhi - 0.199474).abs() < 1e-5,
        "{dlo} {dhi}"
    );
    assert!(v1.get("vs_control").is_none());
    // Wilson 95% interval of 10/100: 5.52% to 17.44%.
    let (lo, hi) = (
        v1["ci95"][0].as_f64().unwrap_or(0.0),
        v1["ci95"][1].as_f64().unwrap_or(0.0),
    );
    assert!(
        (lo - 0.0552).abs() < 0.0005 && (hi - 0.1744).abs() < 0.0005,
        "{lo} {hi}"
    );
    assert_eq!(doc["skipped"].as_u64(), Some(0));
    let chart = scratch("report.svg");
    let human = edgeflags(&[
        "report",
        &file.to_string_lossy(),
        "--event",
        "purchase",
        "--by-country",
        "--chart",
        &chart.to_string_lossy(),
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("checkout")
            && text.contains("10.00%")
            && text.contains("20.00%")
            && text.contains("+10.00 pts [+0.01, +19.95]")
            && text.contains("in JP: v1 10/50 (20.00%), v2 10/50 (20.00%)")
            && text.contains('█'),
        "{text}"
    );
    let svg = std::fs::read_to_string(&chart).unwrap_or_default();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">checkout</text>") && svg.contains("20.00% [13.34, 28.88] n=100"));
}

#[test]
fn lint_finds_each_kind_of_stale_flag_and_nothing_in_the_demo() {
    let at = "2026-12-01T00:00:00Z";
    let stale = "crates/cli/tests/data/stale-flags.json";
    let out = edgeflags(&["lint", stale, "--at", at]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("4 things stale at 2026-12-01T00:00:00Z"),
        "{shown}"
    );
    for expected in [
        "temporary flag `holiday-banner` expired on 2026-10-31",
        "`dark-mode` serves `on` to everyone (every target, rule and the default serve it)",
        "`nav-tooltips` has a prerequisite on `new-nav`, which expires on 2026-12-10",
        "segment `spring-sale-2025` is used by no flag rule or route",
    ] {
        assert!(
            shown.contains(expected),
            "missing `{expected}` in:\n{shown}"
        );
    }
    let json = edgeflags(&["lint", stale, "--at", at, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_default();
    let found: Vec<(&str, &str, &str)> = v["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or_default();
                    (s("kind"), s("subject"), s("path"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        found,
        [
            ("one_variant", "dark-mode", "$.flags.dark-mode"),
            (
                "expired",
                "holiday-banner",
                "$.flags.holiday-banner.expires"
            ),
            (
                "stale_prerequisite",
                "nav-tooltips",
                "$.flags.nav-tooltips.prerequisites[0]"
            ),
            (
                "unused_segment",
                "spring-sale-2025",
                "$.segments.spring-sale-2025"
            ),
        ]
    );
    // A shorter look-ahead: new-nav is not about to go yet.
    let short = edgeflags(&["lint", stale, "--at", at, "--soon", "5"]);
    assert!(!String::from_utf8_lossy(&short.stdout).contains("nav-tooltips"));

    let demo = edgeflags(&["lint", "config-store/flags.json", "--at", at]);
    assert_eq!(
        demo.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&demo.stdout)
    );
    assert!(
        String::from_utf8_lossy(&demo.stdout).contains("nothing stale at 2026-12-01T00:00:00Z")
    );
    // The instant matters: the demo's checkout experiment is due on 2027-03-31.
    let later = edgeflags(&[
        "lint",
        "config-store/flags.json",
        "--at",
        "2027-04-01T00:00:00Z",
    ]);
    assert_eq!(later.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&later.stdout).contains("`checkout` expired on 2027-03-31"));

    let bad = scratch("lint-bad.json");
    std::fs::write(&bad, r#"{"flags": {"f": {"type": "boolean"}}}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = edgeflags(&["lint", &bad.to_string_lossy(), "--at", at]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fix these first"));
}

/// A flag file with `checkout` under a 50/50 split, packed into a local store file.
fn guarded_store(name: &str) -> PathBuf {
    let flags = scratch(&format!("{name}-flags.json"));
    std::fs::write(
        &flags,
        r#"{"flags": {"checkout": {"type": "string", "variants": {"v1": "classic", "v2": "one-page"},
            "off_variant": "v1", "exposure_sample": 1.0,
            "default": {"split": [{"variant": "v1", "weight": 50}, {"variant": "v2", "weight": 50}]}}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    packed_store(&flags, &format!("{name}-store.json"))
}

/// `flags` packed by `edgeflags pack` into a new local store file `name` (scratch).
fn packed_store(flags: &Path, name: &str) -> PathBuf {
    let store = scratch(name);
    let _ = std::fs::remove_file(&store);
    let out = edgeflags(&[
        "pack",
        &flags.to_string_lossy(),
        "--store",
        &store.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store
}

/// 20 users a variant; every v2 user (and no v1 user) gets an origin error when `failing`.
fn guard_log(name: &str, failing: bool) -> PathBuf {
    let mut log = String::new();
    for u in 0..40 {
        let variant = if u % 2 == 0 { "v1" } else { "v2" };
        log.push_str(&format!(
            "edgeflags_events :: {{\"schema_version\":3,\"kind\":\"exposure\",\"ts\":1000,\"flag\":\"checkout\",\"variant\":\"{variant}\",\"user\":\"u{u}\"}}\n"
        ));
        if failing && variant == "v2" {
            log.push_str(&format!(
                "edgeflags_events :: {{\"schema_version\":3,\"kind\":\"error\",\"ts\":1000,\"variants\":[{{\"flag\":\"checkout\",\"variant\":\"v2\"}}],\"user\":\"u{u}\",\"error\":\"status\",\"status\":500}}\n"
            ));
        }
    }
    let file = scratch(&format!("{name}.log"));
    std::fs::write(&file, log).unwrap_or_else(|e| panic!("{e}"));
    file
}

fn live_checkout(store: &PathBuf) -> serde_json::Value {
    let items: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(store).unwrap_or_default())
            .unwrap_or_default();
    let loaded = edgeflags_engine::pack::read(|k| items.get(k).cloned(), None)
        .result
        .unwrap_or_else(|e| panic!("{e:?}"));
    let source = edgeflags_engine::payload::source(&loaded.payload).unwrap_or_default();
    let file: serde_json::Value = serde_json::from_str(&source).unwrap_or_default();
    file["flags"]["checkout"].clone()
}

#[test]
fn guard_turns_a_flag_whose_variant_fails_off_through_the_two_slots_and_says_why() {
    let store = guarded_store("guard-harm");
    let log = guard_log("guard-harm", true);
    let (store_s, log_s) = (store.to_string_lossy(), log.to_string_lossy());
    let before = std::fs::read_to_string(&store).unwrap_or_default();
    let dry = edgeflags(&["guard", &log_s, "--local", &store_s, "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(1), "{text}");
    assert!(
        text.contains("origin errors: v2 20 of 20 (100.0%), v1 0 of 20 (0.0%); always-valid p = "),
        "{text}"
    );
    assert!(text.contains("dry run: would push version"), "{text}");
    assert_eq!(std::fs::read_to_string(&store).unwrap_or_default(), before);

    let out = edgeflags(&["guard", &log_s, "--local", &store_s]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("pushed version"), "{text}");
    assert_eq!(live_checkout(&store)["on"], serde_json::json!(false));
    // An ordinary push: into the other slot, recorded with the reason.
    let items: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap_or_default())
            .unwrap_or_default();
    let kept = edgeflags_engine::history::read(&items);
    let last = kept
        .records
        .last()
        .unwrap_or_else(|| panic!("no history in {items:?}"));
    assert_eq!(
        (last.action.name(), last.author.as_str()),
        ("push", "edgeflags guard")
    );
    assert_eq!(last.changes, ["~ flag checkout: on"], "{last:?}");
    assert!(
        last.message.starts_with(
            "guard: `checkout` off (serves v1): origin errors v2 20 of 20 (100.0%), v1 0 of 20 (0.0%), always-valid p = "
        ),
        "{}",
        last.message
    );
    // The next run finds the flag off: nothing to guard.
    let again = edgeflags(&["guard", &log_s, "--local", &store_s]);
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to guard"));
}

#[test]
fn guard_leaves_healthy_variants_alone() {
    let store = guarded_store("guard-healthy");
    let log = guard_log("guard-healthy", false);
    let before = std::fs::read_to_string(&store).unwrap_or_default();
    let out = edgeflags(&[
        "guard",
        &log.to_string_lossy(),
        "--local",
        &store.to_string_lossy(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "origin errors: v2 0 of 20 (0.0%), v1 0 of 20 (0.0%); always-valid p = 1.000e0"
        ),
        "{text}"
    );
    assert!(
        text.contains("no variant is worse than its control: nothing done"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&store).unwrap_or_default(), before);
}
