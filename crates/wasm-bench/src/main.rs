//! Per-request config cost as the guest sees it: built for wasm32-wasip1 and run in
//! Viceroy's wasmtime by `scripts/bench` (through `edgeflags-wasm-run`), it times, inside
//! the wasm, what a fresh instance does (read both store entries' worth of parts from the
//! packed store, verify the checksum, parse and compile the snapshot, evaluate every flag)
//! and what a reused instance does (compare the pointer, evaluate every flag), for 10,
//! 100 and 300 flags. A fresh instance is timed twice: in memory it has never touched
//! (every page of the payload and the snapshot is a first touch, a page fault, as in a
//! new instance) and in memory already touched (the same work without the faults).
//! Prints one markdown table row per size, then a second table of where a fresh
//! instance's time goes (read the parts and check the checksum; decode the compiled
//! snapshot; evaluate every flag; untouched memory), with the heap allocations each part
//! makes and the bytes it asks for (counted by this program's global allocator), which
//! is the memory a fresh instance touches for the first time.
//!
//! It also runs on the host: `cargo run --release -p edgeflags-wasm-bench`. With `prof`
//! (and `distinct` for flags that share no rules) it only repeats a fresh load of 100
//! flags, for a sampled profile of the guest.

mod page;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use edgeflags_engine::{Context, codec, compile_str, pack, payload};
use serde_json::{Value, json};

/// `n` typical flags (one `country in` rule, then a 50/50 split). With `distinct`, every
/// flag's rule is its own (its own id, and one of 16 country lists), so no two flags
/// share their rules (which the packed snapshot decodes once when adjacent flags have the
/// same) and the lists are shared only as often as real files repeat one.
fn flag_file(n: usize, distinct: bool) -> Value {
    const COUNTRIES: [&str; 20] = [
        "DE", "FR", "IT", "ES", "NL", "BE", "AT", "PL", "SE", "DK", "FI", "IE", "PT", "GR", "CZ",
        "HU", "RO", "BG", "HR", "SK",
    ];
    let flags: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            let (id, values) = if distinct {
                let values: Vec<&str> = (0..5).map(|k| COUNTRIES[(i % 16 + k * 3) % 20]).collect();
                (format!("rule-{i}"), values)
            } else {
                ("eu".to_string(), COUNTRIES[..5].to_vec())
            };
            (
                format!("flag-{i:03}"),
                json!({
                    "type": "string",
                    "description": format!("rollout number {i} of the spring release"),
                    "owner": "web-team",
                    "variants": {"control": "control", "treatment": "treatment", "eu": "eu"},
                    "off_variant": "control",
                    "rules": [{"id": id, "clauses": [{"attribute": "country", "op": "in", "values": values}], "serve": "eu"}],
                    "default": {"split": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}
                }),
            )
        })
        .collect();
    json!({ "flags": flags })
}

/// A verbose flag file, like the one the bar was set with: every flag documented, with
/// two rules and a split (about 67 KB for 100 flags).
fn verbose_file(n: usize) -> Value {
    let flags: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            (
                format!("checkout-redesign-{i:03}"),
                json!({
                    "type": "string",
                    "description": format!("Rollout {i} of the checkout redesign"),
                    "owner": "payments-web-team@example.com",
                    "temporary": true,
                    "expires": "2027-03-31",
                    "variants": {"control": "control", "treatment": "treatment", "eu": "eu"},
                    "off_variant": "control",
                    "rules": [
                        {"id": "eu", "clauses": [{"attribute": "country", "op": "in", "values": ["DE", "FR", "IT", "ES", "NL"]}], "serve": "eu"},
                        {"id": "mobile", "clauses": [{"attribute": "device", "op": "in", "values": ["mobile", "tablet"]}, {"attribute": "version", "op": "semver_gte", "values": ["4.2.0"]}], "serve": {"split": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}
                    ],
                    "default": {"split": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]}
                }),
            )
        })
        .collect();
    json!({ "flags": flags })
}

/// The system allocator, counting while [`counted`] runs: allocations (a growing
/// `realloc` counts as one) and the bytes asked for. Outside it, one relaxed load per
/// allocation, so that the timed parts (and the native page run) pay next to nothing.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; the counters only add.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            BYTES.fetch_add(layout.size(), Relaxed);
        }
        // SAFETY: the caller's promises about `layout` are passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) && new_size > layout.size() {
            ALLOCATIONS.fetch_add(1, Relaxed);
            BYTES.fetch_add(new_size - layout.size(), Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `f`'s result, with the allocations it made and the bytes it asked for.
fn counted<T>(f: impl FnOnce() -> T) -> (T, [usize; 2]) {
    let (a, b) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    COUNTING.store(true, Relaxed);
    let out = f();
    COUNTING.store(false, Relaxed);
    (
        out,
        [ALLOCATIONS.load(Relaxed) - a, BYTES.load(Relaxed) - b],
    )
}

/// The allocations and bytes of one fresh load, by part: read the parts and check the
/// checksum, decode, evaluate every flag.
fn heap_of_load(
    store: &BTreeMap<String, String>,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
) -> [[usize; 2]; 3] {
    let (loaded, read) = counted(|| pack::read(|k| store.get(k).cloned(), None).result.ok());
    let body = loaded
        .as_ref()
        .and_then(|l| l.payload.strip_prefix(payload::MAGIC)?.split_once('.'))
        .map(|(_, body)| body)
        .unwrap_or_default();
    let (snap, decode) = counted(|| codec::decode(body).ok());
    let (_, evaluate) = counted(|| {
        snap.as_ref()
            .map(|s| black_box(s.evaluate_all(ctx, now).count()))
    });
    [read, decode, evaluate]
}

/// How many times the whole measurement runs.
const REPEATS: usize = 5;
/// Pages touched by [`first_touch`].
const TOUCHED_PAGES: usize = 2048;

/// `median (min to max)` of the repeats.
fn spread(v: Vec<f64>) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{:.1} ({lo:.1} to {hi:.1})", median(v))
}

/// The cost of one page fault inside the guest: fresh memory written one byte per
/// 4 KiB page, less the same writes again once the pages are there.
fn first_touch() -> f64 {
    let mut block = Vec::<u8>::with_capacity(TOUCHED_PAGES * 4096);
    let base = block.as_mut_ptr();
    let pass = || {
        let t = Instant::now();
        for page in 0..TOUCHED_PAGES {
            // SAFETY: `page * 4096` is inside the block's capacity; the vector's length
            // stays 0, so these bytes are never read as its elements.
            unsafe { base.add(page * 4096).write_volatile(1) };
        }
        t.elapsed().as_secs_f64() * 1e6 / TOUCHED_PAGES as f64
    };
    let first = pass();
    let again = pass();
    first - again
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Where a fresh load's time goes, in µs (medians): read, decode, evaluate.
fn breakdown(
    store: &BTreeMap<String, String>,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
    rounds: usize,
) -> Option<[f64; 3]> {
    let loaded = pack::read(|k| store.get(k).cloned(), None).result.ok()?;
    let body = loaded
        .payload
        .strip_prefix(payload::MAGIC)?
        .split_once('.')?
        .1
        .to_string();
    let mut t = [Vec::new(), Vec::new(), Vec::new()];
    let mut kept = Vec::new();
    for _ in 0..rounds {
        let s = Instant::now();
        black_box(pack::read(|k| store.get(k).cloned(), None).result.is_ok());
        t[0].push(s.elapsed().as_secs_f64() * 1e6);
        let s = Instant::now();
        let snap = codec::decode(&body).ok()?;
        t[1].push(s.elapsed().as_secs_f64() * 1e6);
        let s = Instant::now();
        black_box(snap.evaluate_all(ctx, now).count());
        t[2].push(s.elapsed().as_secs_f64() * 1e6);
        // Kept and never freed, so that every round works in untouched memory, as a
        // fresh instance does.
        kept.push(snap);
    }
    std::mem::forget(kept);
    let [a, b, c] = t;
    Some([median(a), median(b), median(c)])
}

/// A config store holding `json` compiled and packed, as `edgeflags pack` writes it.
fn packed_store(json: &str) -> BTreeMap<String, String> {
    let (packed_payload, version) = compile_str(json)
        .map(|s| (payload::envelope(&s, json), s.fingerprint().to_string()))
        .unwrap_or_default();
    let mut store = BTreeMap::new();
    if let Ok(p) = pack::pack(&packed_payload, &version, &store, None) {
        p.apply(&mut store);
    }
    store
}

/// `prof [distinct]`: 4000 fresh loads of 100 flags (read, checksum, decode, evaluate
/// all), each in untouched memory, and their mean: a steady workload to sample with
/// `EDGEFLAGS_GUEST_PROFILE` (see docs/benchmarks.md).
fn fresh_loads(distinct: bool) {
    let json = flag_file(100, distinct).to_string();
    let store = packed_store(&json);
    let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let ctx = Context::with_key("user-4242")
        .with("country", "US")
        .with("device", "mobile");
    let mut kept = Vec::new();
    let t = Instant::now();
    for _ in 0..4000 {
        let loaded = pack::read(|k| store.get(k).cloned(), None).result.ok();
        let snap = loaded
            .as_ref()
            .and_then(|l| payload::load(&l.payload, &l.version).ok());
        black_box(snap.as_ref().map(|s| {
            s.evaluate_all(&ctx, now)
                .filter(|e| e.variant.is_some())
                .count()
        }));
        kept.push((loaded, snap));
    }
    println!("{:.1} us each", t.elapsed().as_secs_f64() * 1e6 / 4000.0);
    std::mem::forget(kept);
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("page") {
        page::header();
        page::run("native (release)");
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("prof") {
        fresh_loads(std::env::args().nth(2).is_some());
        return;
    }
    let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let ctx = Context::with_key("user-4242")
        .with("country", "US")
        .with("device", "mobile");
    println!(
        "| flags | flag file bytes | packed payload bytes | store parts | fresh: load + evaluate all, untouched memory (µs) | the same in memory already touched (µs) | reused: pointer check (µs) | reused: pointer check + evaluate all (µs) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut profile = Vec::new();
    for (n, distinct) in [(10usize, false), (100, false), (300, false), (100, true)] {
        let label = if distinct {
            format!("{n}, each its own rule")
        } else {
            n.to_string()
        };
        let file = flag_file(n, distinct);
        let json = file.to_string();
        let store = packed_store(&json);
        let pointer = store.get(pack::POINTER_KEY).cloned().unwrap_or_default();
        let parts = store.len() - 1;
        let packed = pack::read(|k| store.get(k).cloned(), None)
            .result
            .map(|l| l.payload.len())
            .unwrap_or(0);
        let rounds = if n >= 300 { 30 } else { 100 };
        let fresh = |keep: bool| {
            let mut times = Vec::new();
            let mut kept = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                let loaded = pack::read(|k| store.get(k).cloned(), None).result.ok();
                let snap = loaded
                    .as_ref()
                    .and_then(|l| payload::load(&l.payload, &l.version).ok());
                let count = snap.as_ref().map(|s| {
                    s.evaluate_all(&ctx, now)
                        .filter(|e| e.variant.is_some())
                        .count()
                });
                black_box(count);
                times.push(t.elapsed().as_secs_f64() * 1e6);
                // Kept, so that each round, like a fresh instance, works in memory it has
                // never touched (and frees nothing); or dropped, so that the next round
                // reuses pages already mapped.
                if keep {
                    kept.push((loaded, snap));
                }
            }
            // Never freed, so that no later round reuses these pages.
            std::mem::forget(kept);
            median(times)
        };
        let snap = compile_str(&json).ok();
        // A reused instance: the pointer looked up and compared (the config work), then
        // every flag evaluated.
        let reused = || {
            let (mut check, mut warm) = (Vec::new(), Vec::new());
            for _ in 0..rounds * 10 {
                let t = Instant::now();
                let current = store.get(pack::POINTER_KEY).cloned().unwrap_or_default();
                let same = black_box(&current) == &pointer;
                check.push(t.elapsed().as_secs_f64() * 1e6);
                let count = snap.as_ref().filter(|_| same).map(|s| {
                    s.evaluate_all(&ctx, now)
                        .filter(|e| e.variant.is_some())
                        .count()
                });
                black_box(count);
                warm.push(t.elapsed().as_secs_f64() * 1e6);
            }
            (median(check), median(warm))
        };
        // The whole measurement REPEATS times: this shared machine's speed drifts from
        // minute to minute, so each figure is the median of the repeats, with their range.
        let (mut new, mut touched, mut parts_of) = (vec![], vec![], vec![]);
        let (mut check, mut warm) = (vec![], vec![]);
        for _ in 0..REPEATS {
            new.push(fresh(true));
            parts_of.push(breakdown(&store, &ctx, now, rounds));
            touched.push(fresh(false));
            let (c, w) = reused();
            check.push(c);
            warm.push(w);
        }
        let split = |i: usize| parts_of.iter().flatten().map(|p| p[i]).collect::<Vec<_>>();
        profile.push((
            label.clone(),
            [split(0), split(1), split(2)],
            heap_of_load(&store, &ctx, now),
        ));
        println!(
            "| {label} | {} | {packed} | {parts} | {} | {} | {} | {} |",
            json.len(),
            spread(new),
            spread(touched),
            spread(check),
            spread(warm)
        );
    }
    // The yardstick: a plain serde_json parse of about 67 KB of verbose flags took
    // about 1 ms in wasm where the bar was set. The same parse here, timed the same way.
    let verbose = verbose_file(100).to_string();
    let mut parse = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        black_box(serde_json::from_str::<Value>(&verbose).is_ok());
        parse.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!();
    println!(
        "Yardstick: serde_json parse of {} bytes of verbose flags (100): {:.0} µs.",
        verbose.len(),
        median(parse)
    );
    println!();
    println!(
        "| flags | fresh, untouched memory: read parts + checksum (µs) | decode (µs) | evaluate all (µs) | heap allocations: read / decode / evaluate | bytes asked for: read / decode / evaluate |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (n, [r, d, e], [hr, hd, he]) in profile {
        println!(
            "| {n} | {} | {} | {} | {} / {} / {} | {} / {} / {} |",
            spread(r),
            spread(d),
            spread(e),
            hr[0],
            hd[0],
            he[0],
            hr[1],
            hd[1],
            he[1]
        );
    }
    println!();
    println!(
        "First touch of a 4 KiB page of guest memory (a page fault): {:.2} µs (mean of {} pages).",
        first_touch(),
        TOUCHED_PAGES
    );
    zones();
    println!();
    println!("Rewriting a page (`page::run`; the native row: `edgeflags-wasm-bench page`):");
    println!();
    page::header();
    page::run("wasm32-wasip1, in the guest");
}

/// The time zone a fresh instance resolves per request (`place::resolve` over the
/// generated tables, which are static data: nothing is built at instance start). The
/// first pass is the instance's first touch of the tables' pages.
fn zones() {
    use edgeflags_engine::place::{Record, resolve};
    let rec = |c, r, city, lat, lon, off| Record {
        country: Some(c),
        region: r,
        city: Some(city),
        latitude: Some(lat),
        longitude: Some(lon),
        utc_offset: Some(off),
    };
    let records = [
        rec("AU", Some("NSW"), "Lord Howe Island", -31.55, 159.08, 1100),
        rec("AU", Some("NSW"), "Broken Hill", -31.95, 141.45, 1030),
        rec("CL", Some("MA"), "Punta Arenas", -53.16, -70.91, -300),
        rec("NP", Some("P3"), "Kathmandu", 27.7, 85.32, 545),
        rec("US", Some("NY"), "New York", 40.71, -74.01, -500),
        rec("US", None, "Chicago", 41.88, -87.63, -600),
    ];
    let now = chrono::DateTime::from_timestamp(1_784_073_600, 0).unwrap_or_default();
    let pass = || {
        let t = Instant::now();
        for r in &records {
            black_box(resolve(black_box(r), now));
        }
        t.elapsed().as_secs_f64() * 1e6 / records.len() as f64
    };
    let t = Instant::now();
    black_box(resolve(black_box(&records[0]), now));
    let first = t.elapsed().as_secs_f64() * 1e6;
    let warm: Vec<f64> = (0..200).map(|_| pass()).collect();
    println!();
    println!(
        "Time zone from a geolocation record (place::resolve; {} records: Lord Howe Island, \
         Broken Hill, Punta Arenas, Kathmandu, New York, Chicago without a region): the \
         instance's first resolution (Lord Howe Island, tables untouched) {first:.1} µs; \
         then {} µs per record.",
        records.len(),
        spread(warm)
    );
}
