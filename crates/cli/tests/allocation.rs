//! Layers, holdouts and ramps through the built `edgeflags` binary: explain says where a
//! user stands, simulate shows each layer's occupancy and a ramp's shares over time.
//! Buckets and slots come from the reference implementation
//! (`python3 docs/bucketing_reference.py SALT VALUE [SLOTS]`).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn edgeflags(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap_or_else(|e| panic!("cannot run edgeflags: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A flag file with a layer of two experiments, a holdout over both, and a ramp.
fn flag_file() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeflags-alloc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("flags.json");
    let text = r#"{
      "layers": {"checkout-tests": {}},
      "holdouts": {"q4-2026": {"weight": 5}},
      "flags": {
        "one-page": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
          "layer": {"name": "checkout-tests", "slots": [0, 50]}, "holdout": "q4-2026",
          "default": {"split": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}},
        "express-pay": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
          "layer": {"name": "checkout-tests", "slots": [50, 80]}, "holdout": "q4-2026",
          "default": {"split": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}},
        "new-search": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
          "default": "off",
          "ramp": {"variant": "on", "start": "2026-12-01T09:00:00Z", "every_hours": 24, "weights": [5, 25, 50, 100]}}
      }
    }"#;
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn explain_shows_the_holdout_the_layer_slot_and_the_live_ramp_step() {
    let file = flag_file();
    let file = file.to_string_lossy();
    let args = [
        "explain",
        &file,
        "--user",
        "user-43",
        "--at",
        "2026-12-02T10:00Z",
    ];
    let text = String::from_utf8_lossy(&edgeflags(&args).stdout).to_string();
    // user-43: bucket 2751 of holdout:q4-2026 (under 5%), slot 18 of layer:checkout-tests,
    // bucket 11456 of new-search (under 25%, the second step's weight).
    for line in [
        "HOLDOUT `q4-2026` bucket 2751",
        "RAMP step #1 bucket 11456",
        "layer checkout-tests: slot 18 of 100, in the flag's slots [0, 50)",
        "layer checkout-tests: slot 18 of 100, not in the flag's slots [50, 80)",
        "holdout q4-2026 (5%): bucket 2751, held out",
        "ramp to `on`: step #1 of 4 live since 2026-12-02T09:00:00Z, 25% (next 50% at 2026-12-03T09:00:00Z); bucket 11456, in",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let doc: Value = serde_json::from_slice(&edgeflags(&json_args).stdout).unwrap_or_default();
    let flag = |key: &str| {
        doc["flags"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["key"] == key))
            .cloned()
            .unwrap_or_default()
    };
    let one_page = flag("one-page");
    assert_eq!(one_page["reason"], "HOLDOUT");
    assert_eq!(one_page["openfeature_reason"], "SPLIT");
    assert_eq!(one_page["holdout"], "q4-2026");
    assert_eq!(one_page["allocation"]["layer"]["slot"], 18);
    assert_eq!(one_page["allocation"]["holdouts"][0]["held_out"], true);
    let ramp = &flag("new-search")["allocation"]["ramp"];
    assert_eq!(
        (ramp["step"].as_u64(), ramp["weight"].as_f64()),
        (Some(1), Some(25.0))
    );
    assert_eq!(ramp["next"]["at"], "2026-12-03T09:00:00Z");
}

#[test]
fn simulate_shows_layer_occupancy_and_ramp_shares_over_time() {
    let file = flag_file();
    let out = edgeflags(&[
        "simulate",
        &file.to_string_lossy(),
        "--users",
        "100000",
        "--at",
        "2026-11-30T00:00:00Z",
        "--at",
        "2026-12-01T09:00:00Z",
        "--at",
        "2026-12-02T09:00:00Z",
        "--json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let share = |n: &Value| n.as_f64().unwrap_or(-1.0) / 1000.0;
    // The ramp's shares over time are its weights: 0 before its start, then 5% and 25%.
    let over_time = doc["new-search"]["over_time"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(over_time.len(), 3);
    for (point, want) in over_time.iter().zip([0.0, 5.0, 25.0]) {
        let on = share(&point["counts"]["*"]["on"]).max(0.0);
        assert!((on - want).abs() < 0.5, "{point}: {on}% on, want {want}%");
    }
    assert_eq!(over_time[2]["ramp"]["step"], 1);
    // Each flag's slots hold its share of the layer; nobody is in both experiments.
    let layer = &doc["$layers"][0];
    assert_eq!(layer["layer"], "checkout-tests");
    assert_eq!(layer["in_two_experiments"], 0);
    for (flag, want) in [(0, 50.0), (1, 30.0)] {
        let got = share(&layer["flags"][flag]["in_slots"]);
        assert!((got - want).abs() < 0.5, "{}: {got}%", layer["flags"][flag]);
    }
    assert!((share(&layer["free"]) - 20.0).abs() < 0.5, "{layer}");
    let held = share(&doc["$holdouts"][0]["held"][0]["users"]);
    assert!((held - 5.0).abs() < 0.5, "held out: {held}%");
}
