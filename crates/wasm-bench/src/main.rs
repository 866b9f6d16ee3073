//! Per-request config cost as the guest sees it: built for wasm32-wasip1 and run in
//! Viceroy's wasmtime by `scripts/bench` (through `edgeflags-wasm-run`), it times, inside
//! the wasm, what a fresh instance does (read both store entries' worth of parts from the
//! packed store, verify the checksum, parse and compile the snapshot, evaluate every flag)
//! and what a reused instance does (compare the pointer, evaluate every flag), for 10,
//! 100 and 300 flags. Prints one markdown table row per size, then a second table of
//! where a fresh instance's time goes (read the parts and check the checksum; base64;
//! decode the compiled snapshot; evaluate every flag).
//!
//! It also runs on the host: `cargo run --release -p edgeflags-wasm-bench`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use edgeflags_engine::{Context, binary, compile_str, pack};
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

/// Where a fresh load's time goes, in µs (medians): read, base64, decode, evaluate.
fn breakdown(
    store: &BTreeMap<String, String>,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
    rounds: usize,
) -> Option<[f64; 4]> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let loaded = pack::read(|k| store.get(k).cloned(), None).result.ok()?;
    let compiled = loaded
        .payload
        .strip_prefix(binary::MAGIC)?
        .split('.')
        .next()?
        .to_string();
    let bytes = b64.decode(&compiled).ok()?;
    let mut t = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut kept = Vec::new();
    for _ in 0..rounds {
        let s = Instant::now();
        black_box(pack::read(|k| store.get(k).cloned(), None).result.is_ok());
        t[0].push(s.elapsed().as_secs_f64() * 1e6);
        let s = Instant::now();
        black_box(b64.decode(&compiled).map(|b| b.len()).unwrap_or(0));
        t[1].push(s.elapsed().as_secs_f64() * 1e6);
        let s = Instant::now();
        let snap = binary::decode(&bytes).ok()?;
        t[2].push(s.elapsed().as_secs_f64() * 1e6);
        let s = Instant::now();
        black_box(snap.evaluate_all(ctx, now).count());
        t[3].push(s.elapsed().as_secs_f64() * 1e6);
        // Kept, so that freeing the previous snapshot is not timed (a fresh instance
        // frees nothing).
        kept.push(snap);
    }
    let [a, b, c, d] = t;
    Some([median(a), median(b), median(c), median(d)])
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
    let mut profile = Vec::new();
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
                .and_then(|l| binary::load(&l.payload, &l.version).ok());
            let count = snap.as_ref().map(|s| {
                s.evaluate_all(&ctx, now)
                    .filter(|e| e.variant.is_some())
                    .count()
            });
            black_box(count);
            fresh.push(t.elapsed().as_secs_f64() * 1e6);
        }
        profile.push((n, breakdown(&store, &ctx, now, rounds)));
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
    println!();
    println!(
        "| flags | fresh: read parts + checksum (µs) | base64 (µs) | decode (µs) | evaluate all (µs) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (n, p) in profile {
        if let Some([r, b, d, e]) = p {
            println!("| {n} | {r:.1} | {b:.1} | {d:.1} | {e:.1} |");
        }
    }
}
