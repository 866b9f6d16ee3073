//! Engine benchmarks: the typical flag (one `country in` rule and a 50/50 split, context
//! built beforehand), a bulk evaluation of 100 flags, and the compile of a 100-flag file.
//!
//! cargo bench -p edgeflags-engine --bench engine

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use edgeflags_engine::{Context, compile};
use serde_json::{Value, json};

/// A flag like most rollouts: one country rule, then a 50/50 split.
fn typical_flag(i: usize) -> Value {
    json!({
        "type": "string",
        "description": format!("benchmark flag {i}"),
        "variants": {"control": "control", "treatment": "treatment", "eu": "eu"},
        "off_variant": "control",
        "rules": [{"id": "eu", "clauses": [{"attribute": "country", "op": "in", "values": ["DE", "FR", "IT", "ES", "NL"]}], "serve": "eu"}],
        "default": {"split": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}
    })
}

/// `n` typical flags.
pub fn flag_file(n: usize) -> Value {
    let flags: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("flag-{i:03}"), typical_flag(i)))
        .collect();
    json!({ "flags": flags })
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

fn benches(c: &mut Criterion) {
    let one = compile(&flag_file(1)).unwrap_or_else(|e| panic!("{e}"));
    let hundred_file = flag_file(100);
    let hundred = compile(&hundred_file).unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::with_key("user-4242")
        .with("country", "US")
        .with("device", "mobile");
    let eu = Context::with_key("user-4242").with("country", "FR");
    let t = now();

    c.bench_function("typical flag: split (no rule matches)", |b| {
        b.iter(|| {
            black_box(
                one.evaluate(black_box("flag-000"), black_box(&ctx), t)
                    .variant,
            )
        })
    });
    c.bench_function("typical flag: country rule matches", |b| {
        b.iter(|| {
            black_box(
                one.evaluate(black_box("flag-000"), black_box(&eu), t)
                    .variant,
            )
        })
    });
    c.bench_function("100 flags: evaluate all", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for e in hundred.evaluate_all(black_box(&ctx), t) {
                n += e.variant.map(str::len).unwrap_or(0);
            }
            black_box(n)
        })
    });
    let text = hundred_file.to_string();
    c.bench_function("100 flags: parse and compile", |b| {
        b.iter(|| {
            black_box(
                edgeflags_engine::compile_str(black_box(&text))
                    .map(|s| s.len())
                    .unwrap_or(0),
            )
        })
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
