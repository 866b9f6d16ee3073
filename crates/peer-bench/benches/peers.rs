//! edgeflags against unleash-yggdrasil 0.21.7 and launchdarkly-server-sdk-evaluation 2.2.1
//! on equivalent flags (one `country in` rule serving a variant, then a 50/50 split on the
//! user key), contexts built beforehand, one criterion run:
//! `cargo bench -p edgeflags-peer-bench --bench peers`. Beside them, the floor: one
//! SipHash-2-4 of the bytes a split decision hashes (`salt ‖ 0x1F ‖ user key`, see
//! docs/bucketing.md) per flag, with the engine's hasher and key: issue 25's yardstick
//! for evaluation. (The engine starts each split's hash from the state after `salt ‖
//! 0x1F`, kept since compile, so its hash is about one compression cheaper than this.)

use std::collections::HashMap;
use std::hash::Hasher;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use launchdarkly_server_sdk_evaluation::{ContextBuilder, Flag, Segment, Store, evaluate};
use serde_json::{Value, json};
use siphasher::sip::SipHasher24;
use unleash_types::client_features::{ClientFeatures, Context as UnleashContext};
use unleash_yggdrasil::{EngineState, UpdateMessage};

const EU: [&str; 5] = ["DE", "FR", "IT", "ES", "NL"];

fn ours(n: usize) -> edgeflags_engine::Snapshot {
    edgeflags_engine::compile_str(&ours_text(n)).unwrap_or_else(|e| panic!("{e}"))
}

/// The edgeflags flag file of `n` flags.
fn ours_text(n: usize) -> String {
    let flags: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            (format!("flag-{i:03}"), json!({
                "type": "string", "variants": {"control": "control", "treatment": "treatment", "eu": "eu"},
                "off_variant": "control",
                "rules": [{"id": "eu", "clauses": [{"attribute": "country", "op": "in", "values": EU}], "serve": "eu"}],
                "default": {"split": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}
            }))
        })
        .collect();
    json!({"flags": flags}).to_string()
}

fn unleash(n: usize) -> EngineState {
    unleash_load(&unleash_text(n))
}

/// Unleash's client-features document, as its SDKs receive it, loaded into an engine.
fn unleash_load(text: &str) -> EngineState {
    let state: ClientFeatures = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    let engine = EngineState::default();
    engine.take_state(UpdateMessage::FullResponse(state));
    engine
}

/// The Unleash client-features document of `n` toggles.
fn unleash_text(n: usize) -> String {
    let features: Vec<Value> = (0..n)
        .map(|i| {
            let name = format!("flag-{i:03}");
            json!({
                "name": name, "enabled": true, "type": "release", "project": "default",
                "strategies": [
                    {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": name},
                     "constraints": [{"contextName": "country", "operator": "IN", "values": EU}],
                     "variants": [{"name": "eu", "weight": 1000, "weightType": "variable", "stickiness": "default"}]},
                    {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": name},
                     "variants": [{"name": "control", "weight": 500, "weightType": "variable", "stickiness": "default"},
                                  {"name": "treatment", "weight": 500, "weightType": "variable", "stickiness": "default"}]}
                ]
            })
        })
        .collect();
    json!({"version": 2, "features": features}).to_string()
}

struct LdStore(HashMap<String, Flag>);
impl Store for LdStore {
    fn flag(&self, key: &str) -> Option<Flag> {
        self.0.get(key).cloned()
    }
    fn segment(&self, _key: &str) -> Option<Segment> {
        None
    }
}

fn launchdarkly(n: usize) -> LdStore {
    launchdarkly_load(&launchdarkly_text(n))
}

/// LaunchDarkly flags as its SDKs receive them (`{"flags": {key: flag}}`), parsed into
/// its evaluation model.
fn launchdarkly_load(text: &str) -> LdStore {
    #[derive(serde::Deserialize)]
    struct All {
        flags: HashMap<String, Flag>,
    }
    let all: All = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    LdStore(all.flags)
}

/// The LaunchDarkly flags document of `n` flags.
fn launchdarkly_text(n: usize) -> String {
    let flags: serde_json::Map<String, Value> = (0..n)
            .map(|i| {
                let key = format!("flag-{i:03}");
                let flag = json!({
                    "key": key, "version": 1, "on": true, "salt": key, "deleted": false,
                    "variations": ["control", "treatment", "eu"], "offVariation": 0,
                    "targets": [], "contextTargets": [], "prerequisites": [],
                    "rules": [{"id": "eu", "variation": 2, "trackEvents": false,
                               "clauses": [{"attribute": "country", "op": "in", "values": EU, "negate": false}]}],
                    "fallthrough": {"rollout": {"variations": [{"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]}},
                    "clientSide": false, "trackEvents": false, "trackEventsFallthrough": false
                });
                (key, flag)
            })
            .collect();
    json!({"flags": flags}).to_string()
}

/// The bytes the engine hashes to place `user` in the default split of flag `key` (whose
/// salt is its key): `salt ‖ 0x1F ‖ user`.
fn split_input(key: &str, user: &str) -> Vec<u8> {
    let mut input = key.as_bytes().to_vec();
    input.push(edgeflags_engine::bucket::SEPARATOR);
    input.extend_from_slice(user.as_bytes());
    input
}

/// One SipHash-2-4 of `input` under the bucketing key, from a fresh hasher, in one write:
/// the least work that decides a split.
#[inline(always)]
fn siphash(input: &[u8]) -> u64 {
    let mut h = SipHasher24::new_with_key(&edgeflags_engine::bucket::BUCKET_KEY);
    h.write(input);
    h.finish()
}

fn benches(c: &mut Criterion) {
    let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let names: Vec<String> = (0..100).map(|i| format!("flag-{i:03}")).collect();

    let (e1, e100) = (ours(1), ours(100));
    let ctx = edgeflags_engine::Context::with_key("user-4242").with("country", "US");

    let (u1, u100) = (unleash(1), unleash(100));
    let uctx = UnleashContext {
        user_id: Some("user-4242".into()),
        properties: Some(HashMap::from([("country".to_string(), "US".to_string())])),
        ..UnleashContext::default()
    };

    let (l1, l100) = (launchdarkly(1), launchdarkly(100));
    let lctx = ContextBuilder::new("user-4242")
        .set_value(
            "country",
            launchdarkly_server_sdk_evaluation::AttributeValue::String("US".into()),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let l1_flag =
        l1.0.get("flag-000")
            .cloned()
            .unwrap_or_else(|| panic!("no flag"));
    let l100_flags: Vec<Flag> = names
        .iter()
        .filter_map(|n| l100.0.get(n).cloned())
        .collect();

    // Each engine answers (a variant, not an error) before it is timed.
    assert!(e1.evaluate("flag-000", &ctx, now).variant.is_some());
    assert!(
        u1.get_variant("flag-000", &uctx, &None).enabled,
        "yggdrasil returned no variant"
    );
    assert!(evaluate(&l1, &l1_flag, &lctx, None).value.is_some());

    // The floor hashes what the engine hashes: its bucket of each input is the one the
    // evaluation reports.
    let one = split_input("flag-000", "user-4242");
    let hundred: Vec<Vec<u8>> = names.iter().map(|n| split_input(n, "user-4242")).collect();
    let floor_bucket = |input: &[u8]| ((u128::from(siphash(input)) * 100_000) >> 64) as u32;
    assert_eq!(
        e1.evaluate("flag-000", &ctx, now).bucket,
        Some(floor_bucket(&one))
    );
    let buckets: Vec<Option<u32>> = e100.evaluate_all(&ctx, now).map(|e| e.bucket).collect();
    let floor_buckets: Vec<Option<u32>> = hundred.iter().map(|i| Some(floor_bucket(i))).collect();
    assert_eq!(buckets, floor_buckets);

    let mut g = c.benchmark_group("typical flag");
    g.bench_function("edgeflags", |b| {
        b.iter(|| {
            black_box(
                e1.evaluate(black_box("flag-000"), black_box(&ctx), now)
                    .variant,
            )
        })
    });
    // Like for like with LaunchDarkly's call below, which is handed its flag: the flag
    // looked up once, beforehand.
    let e1_flag = e1.flag("flag-000").unwrap_or_else(|| panic!("no flag"));
    assert_eq!(
        e1.evaluate_flag(e1_flag, &ctx, now),
        e1.evaluate("flag-000", &ctx, now)
    );
    g.bench_function("edgeflags (flag in hand)", |b| {
        b.iter(|| {
            black_box(
                e1.evaluate_flag(black_box(e1_flag), black_box(&ctx), now)
                    .variant,
            )
        })
    });
    g.bench_function("unleash-yggdrasil", |b| {
        b.iter(|| black_box(u1.get_variant(black_box("flag-000"), black_box(&uctx), &None)))
    });
    g.bench_function("launchdarkly", |b| {
        b.iter(|| {
            black_box(
                evaluate(&l1, black_box(&l1_flag), black_box(&lctx), None)
                    .value
                    .is_some(),
            )
        })
    });
    g.bench_function("siphash-2-4 floor", |b| {
        b.iter(|| black_box(siphash(black_box(&one))))
    });
    g.finish();

    let mut g = c.benchmark_group("100 flags");
    g.bench_function("edgeflags", |b| {
        b.iter(|| {
            e100.evaluate_all(black_box(&ctx), now)
                .filter(|e| e.variant.is_some())
                .count()
        })
    });
    g.bench_function("unleash-yggdrasil", |b| {
        b.iter(|| {
            names
                .iter()
                .filter(|n| u100.get_variant(n, black_box(&uctx), &None).enabled)
                .count()
        })
    });
    g.bench_function("launchdarkly", |b| {
        b.iter(|| {
            l100_flags
                .iter()
                .filter(|f| evaluate(&l100, f, black_box(&lctx), None).value.is_some())
                .count()
        })
    });
    g.bench_function("siphash-2-4 floor", |b| {
        b.iter(|| {
            black_box(&hundred)
                .iter()
                .fold(0u64, |acc, input| acc ^ siphash(input))
        })
    });
    g.finish();
}

fn compile_benches(c: &mut Criterion) {
    let (ot, ut, lt) = (ours_text(100), unleash_text(100), launchdarkly_text(100));
    let compiled = ours(100);
    let version = compiled.fingerprint().to_string();
    let packed = edgeflags_engine::payload::envelope(&compiled, &ot);
    let mut g = c.benchmark_group("compile 100 flags");
    g.bench_function("edgeflags (flag file)", |b| {
        b.iter(|| edgeflags_engine::compile_str(black_box(&ot)).map(|s| s.len()))
    });
    g.bench_function("edgeflags (packed, as the edge loads it)", |b| {
        b.iter(|| edgeflags_engine::payload::load(black_box(&packed), &version).map(|s| s.len()))
    });
    g.bench_function("unleash-yggdrasil", |b| {
        b.iter(|| unleash_load(black_box(&ut)))
    });
    g.bench_function("launchdarkly", |b| {
        b.iter(|| launchdarkly_load(black_box(&lt)).0.len())
    });
    g.finish();
}

criterion_group!(peers, benches, compile_benches);
criterion_main!(peers);
