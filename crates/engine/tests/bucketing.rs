//! Bucketing is a contract (docs/bucketing.md): golden vectors pin it, property tests
//! check stickiness, uniformity and monotone rollouts.

use chrono::{DateTime, Utc};
use edgeflags_engine::bucket::{bucket_of, hash64};
use edgeflags_engine::{Context, compile};
use proptest::prelude::*;
use serde_json::json;

/// (salt, value, hash, bucket), from docs/bucketing.md, computed there by an independent
/// Python implementation.
const VECTORS: &[(&str, &str, u64, u32)] = &[
    ("checkout", "user-1", 0x5d72c180203d0ebe, 36503),
    ("checkout", "user-2", 0x46b2094f80794bbd, 27615),
    ("checkout", "user-42", 0xf647c81f23395ded, 96203),
    ("checkout", "", 0x0724022a179b89a3, 2789),
    ("banner", "user-1", 0xcdac257003f72453, 80340),
    ("new-search", "u-beta-1", 0x9801851731be6a7a, 59377),
    ("rollout", "42", 0xf761b03ebac317b4, 96633),
    ("rollout", "-7", 0xccdae2afaa9b99f9, 80021),
    ("s", "東京", 0x9e048fb4c948f858, 61725),
    ("salt.with.dots", "a.b", 0xccaba98d5a3eb590, 79949),
    ("", "only-value", 0x3baa630470e80161, 23306),
    ("", "", 0x3ffd506124e05ded, 24995),
    ("checkout", "user-29264", 0x00002de5bcf42fc0, 0),
    ("checkout", "user-29831", 0x199934619eb1cdad, 9999),
    ("checkout", "user-42471", 0x199a0a8061f2776d, 10000),
    ("checkout", "user-123521", 0x7fffaef2d0e956c0, 49999),
    ("checkout", "user-18992", 0x8000794e84a53ef2, 50000),
    ("checkout", "user-12447", 0xffffb3c42c115958, 99999),
];

#[test]
fn golden_vectors() {
    let mut failures = Vec::new();
    for &(salt, value, hash, bucket) in VECTORS {
        let (h, b) = (hash64(salt, value), bucket_of(salt, value));
        if (h, b) != (hash, bucket) {
            failures.push(format!(
                "({salt:?}, {value:?}): got {h:016x}/{b}, want {hash:016x}/{bucket}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "bucketing moved:\n{}",
        failures.join("\n")
    );
}

/// (layer salt, value, slots, bucket, slot) and (holdout salt, value, weight in percent,
/// bucket, held out), from docs/bucketing.md, computed there by the Python reference.
const SLOT_VECTORS: &[(&str, &str, u32, u32, u32)] = &[
    ("layer:pricing", "user-1", 100, 88615, 88),
    ("layer:pricing", "user-2", 100, 33619, 33),
    ("layer:pricing", "user-42", 100, 90462, 90),
    ("layer:pricing", "user-1", 1000, 88615, 886),
    ("layer:pricing", "user-1", 10, 88615, 8),
    ("layer:search", "user-1", 100, 57820, 57),
    ("layer:pricing", "user-124993", 100, 49999, 49),
    ("layer:pricing", "user-101580", 100, 50000, 50),
];
const HOLDOUT_VECTORS: &[(&str, &str, f64, u32, bool)] = &[
    ("holdout:q4-2026", "user-1", 5.0, 11583, false),
    ("holdout:q4-2026", "user-2", 5.0, 14445, false),
    ("holdout:q4-2026", "user-42", 5.0, 33552, false),
    ("holdout:q4-2026", "user-7", 5.0, 34432, false),
    ("holdout:q4-2026", "user-20", 5.0, 1328, true),
    ("holdout:q4-2026", "user-43", 5.0, 2751, true),
    ("holdout:q4-2026", "user-15519", 5.0, 4999, true),
    ("holdout:q4-2026", "user-28544", 5.0, 5000, false),
    ("holdout:global", "user-1", 10.0, 23481, false),
];

/// The layer slots and holdouts of the vectors, through the engine with the default
/// salts (`layer:NAME`, `holdout:NAME`): what explain reports for each user.
#[test]
fn layer_slots_and_holdouts_follow_the_vectors() {
    use edgeflags_engine::explain::standing;
    let mut failures = Vec::new();
    for &(salt, value, slots, bucket, slot) in SLOT_VECTORS {
        let name = salt.trim_start_matches("layer:");
        let file = json!({"layers": {name: {"slots": slots}}, "flags": {"f": {
            "type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
            "layer": {"name": name, "slots": [0, 1]}, "default": "on"}}});
        let snap = compile(&file).unwrap_or_else(|e| panic!("{e}"));
        let got = standing(&snap, "f", &Context::with_key(value), now())
            .and_then(|s| s.layer)
            .and_then(|l| l.slot);
        if (bucket_of(salt, value), got) != (bucket, Some(slot)) {
            failures.push(format!(
                "{salt} {value} /{slots}: slot {got:?}, want {slot}"
            ));
        }
    }
    for &(salt, value, weight, bucket, held) in HOLDOUT_VECTORS {
        let name = salt.trim_start_matches("holdout:");
        let file = json!({"holdouts": {name: {"weight": weight}}, "flags": {"f": {
            "type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
            "holdout": name, "default": "on"}}});
        let snap = compile(&file).unwrap_or_else(|e| panic!("{e}"));
        let e = snap.evaluate("f", &Context::with_key(value), now());
        let got_held = e.reason == edgeflags_engine::Reason::Holdout { id: name };
        if bucket_of(salt, value) != bucket || got_held != held {
            failures.push(format!("{salt} {value}: held {got_held}, want {held}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

fn split_flag(on_weight: f64) -> edgeflags_engine::Snapshot {
    let flags = json!({"flags": {"checkout": {
        "type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
        "default": {"split": [{"variant": "on", "weight": on_weight}, {"variant": "off", "weight": 100.0 - on_weight}]}
    }}});
    compile(&flags).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn boundary_keys_land_where_the_vectors_say() {
    let ten = split_flag(10.0);
    let half = split_flag(50.0);
    let variant = |s: &edgeflags_engine::Snapshot, k: &str| {
        s.evaluate("checkout", &Context::with_key(k), now())
            .variant
            .map(str::to_string)
    };
    assert_eq!(variant(&ten, "user-29831").as_deref(), Some("on"));
    assert_eq!(variant(&ten, "user-42471").as_deref(), Some("off"));
    assert_eq!(variant(&half, "user-123521").as_deref(), Some("on"));
    assert_eq!(variant(&half, "user-18992").as_deref(), Some("off"));
}

#[test]
fn buckets_are_uniform_by_chi_square() {
    // 100 000 keys into 100 cells of 1 000 buckets each: chi-square with 99 degrees of
    // freedom; 148.2 is its 0.999 quantile, so a sound hash fails this 1 time in 1000
    // (and these keys are fixed, so the result is too).
    let mut cells = [0u32; 100];
    for i in 0..100_000 {
        cells[(bucket_of("uniformity", &format!("key-{i}")) / 1000) as usize] += 1;
    }
    let chi2: f64 = cells
        .iter()
        .map(|&c| (f64::from(c) - 1000.0).powi(2) / 1000.0)
        .sum();
    assert!(
        chi2 < 148.2,
        "chi-square {chi2:.1} over 99 degrees of freedom"
    );
}

proptest! {
    #[test]
    fn buckets_are_in_range_and_sticky(salt in "\\PC{0,20}", value in "\\PC{0,40}") {
        let b = bucket_of(&salt, &value);
        prop_assert!(b < 100_000);
        prop_assert_eq!(b, bucket_of(&salt, &value));
    }

    #[test]
    fn widening_a_rollout_never_moves_a_user_out(key in "[a-z0-9-]{1,24}", from in 0u32..=100, extra in 0u32..=100) {
        let to = (from + extra).min(100);
        let before = split_flag(f64::from(from));
        let after = split_flag(f64::from(to));
        let ctx = Context::with_key(&key);
        let was_in = before.evaluate("checkout", &ctx, now()).variant == Some("on");
        let is_in = after.evaluate("checkout", &ctx, now()).variant == Some("on");
        prop_assert!(!was_in || is_in, "{key} left the rollout when it widened from {from}% to {to}%");
    }

    #[test]
    fn evaluation_is_total_for_any_context(key in "\\PC{0,30}", country in "\\PC{0,5}", n in proptest::num::f64::ANY) {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config-store/flags.json")).unwrap_or_default();
        let snap = edgeflags_engine::compile_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::with_key(&key).with("country", country.as_str()).with("score", n).with("timezone", country.as_str());
        for e in snap.evaluate_all(&ctx, now()) {
            prop_assert!(e.variant.is_some());
        }
    }
}
