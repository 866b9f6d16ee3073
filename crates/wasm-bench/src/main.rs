//! Per-request config cost as the guest sees it: built for wasm32-wasip1 and run in
//! Viceroy's wasmtime by `scripts/bench` (through `edgeflags-wasm-run`), it times, inside
//! the wasm, what a fresh instance does (read both store entries' worth of parts from the
//! packed store, verify the checksum, parse and compile the snapshot, evaluate every flag)
//! and what a reused instance does (compare the pointer, evaluate every flag), for 10,
//! 100 and 300 flags. Prints one markdown table row per size.
//!
//! It also runs on the host: `cargo run --release -p edgeflags-wasm-bench`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use edgeflags_engine::{Context, compile_packed, compile_str, pack};
use serde_json::{Value, json};

fn flag_file(n: usize) -> Value {
    let flags: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            (
                format!("flag-{i:03}"),
                json!({
                    "type": "string",
                    "description": format!("rollout number {i} of the spring release"),
                    "owner": "web-team",
                    "variants": {"control": "control", "treatment": "treatment", "eu": "eu"},
                    "off_variant": "control",
                    "rules": [{"id": "eu", "clauses": [{"attribute": "country", "op": "in", "values": ["DE", "FR", "IT", "ES", "NL"]}], "serve": "eu"}],
                    "default": {"split": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}
                }),
            )
        })
        .collect();
    json!({ "flags": flags })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let ctx = Context::with_key("user-4242")
        .with("country", "US")
        .with("device", "mobile");
    println!(
        "| flags | payload bytes | store parts | fresh: load + evaluate all (µs) | reused: pointer check + evaluate all (µs) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for n in [10usize, 100, 300] {
        let file = flag_file(n);
        let payload = file.to_string();
        let version = compile_str(&payload)
            .map(|s| s.fingerprint().to_string())
            .unwrap_or_default();
        let mut store = BTreeMap::new();
        if let Ok(p) = pack::pack(&payload, &version, &store, None) {
            p.apply(&mut store);
        }
        let pointer = store.get(pack::POINTER_KEY).cloned().unwrap_or_default();
        let parts = store.len() - 1;
        let rounds = if n >= 300 { 30 } else { 100 };
        let mut fresh = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let loaded = pack::read(|k| store.get(k).cloned(), None);
            let snap = loaded
                .result
                .ok()
                .and_then(|l| compile_packed(&l.payload, &l.version).ok());
            let count = snap.as_ref().map(|s| {
                s.evaluate_all(&ctx, now)
                    .filter(|e| e.variant.is_some())
                    .count()
            });
            black_box(count);
            fresh.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let snap = compile_str(&payload).ok();
        let mut warm = Vec::new();
        for _ in 0..rounds * 10 {
            let t = Instant::now();
            let current = store.get(pack::POINTER_KEY).cloned().unwrap_or_default();
            let same = black_box(&current) == &pointer;
            let count = snap.as_ref().filter(|_| same).map(|s| {
                s.evaluate_all(&ctx, now)
                    .filter(|e| e.variant.is_some())
                    .count()
            });
            black_box(count);
            warm.push(t.elapsed().as_secs_f64() * 1e6);
        }
        println!(
            "| {n} | {} | {parts} | {:.1} | {:.1} |",
            payload.len(),
            median(fresh),
            median(warm)
        );
    }
}
