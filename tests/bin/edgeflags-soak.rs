//! Load and soak through Viceroy while the flags change: a burst (REQUESTS at
//! CONCURRENCY), then a steady rate for a while, over loopback HTTP against the edge app
//! reading a live store file that is repacked with a new flag version every few seconds.
//! Checks every response: no 5xx, and its `edgeflags-snapshot` is a version that was live
//! at some moment between the request's start and end. Reports requests, errors, p50/p99,
//! the wasm instances' linear memory by request ordinal (does reuse grow it?) and the
//! process's resident memory. Exits 1 when a check fails.
//!
//! `edgeflags-soak [REQUESTS] [CONCURRENCY] [STEADY_SECS] [RATE_PER_SEC] [CHANGE_EVERY_SECS]`
//! (defaults 20000 32 180 200 15). Run by `scripts/soak`, which writes docs/soak-results.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use edgeflags_e2e::{AppSpec, Store, demo_flags, runtime};
use edgeflags_engine::pack;

/// One response, as the checker needs it.
struct Outcome {
    start: Duration,
    end: Duration,
    status: u16,
    version: String,
    ordinal: u32,
    heap_kib: u32,
}

/// The flag versions pushed in turn: the demo file with the checkout split moved.
fn versions(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let mut f = demo_flags();
            let w = 50 + 5 * i as i64;
            f["flags"]["checkout"]["default"] =
                serde_json::json!({"split": [{"variant": "v1", "weight": 100 - w}, {"variant": "v2", "weight": w}]});
            let json = f.to_string();
            match edgeflags_engine::compile(&f) {
                Ok(s) => (
                    edgeflags_engine::payload::envelope(&s, &json),
                    s.fingerprint().to_string(),
                ),
                Err(_) => (json, String::new()),
            }
        })
        .collect()
}

/// Packs `payload` into the store file, atomically (write, then rename).
fn push(
    file: &Path,
    store: &mut BTreeMap<String, String>,
    payload: &str,
    version: &str,
) -> Result<()> {
    let packed = pack::pack(payload, version, store, None)?;
    packed.apply(store);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string(store)?)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

async fn one(
    client: &hyper::Client<hyper::client::HttpConnector>,
    addr: std::net::SocketAddr,
    user: String,
    t0: Instant,
    debug: &str,
) -> Outcome {
    let start = t0.elapsed();
    // The debug token (a preview token that changes nothing) shows the instance ordinal
    // and memory, which the soak tracks.
    let req = hyper::Request::get(format!("http://{addr}/products"))
        .header("cookie", format!("ef_uid={user}"))
        .header("edgeflags-preview", debug)
        .body(hyper::Body::empty());
    let mut out = Outcome {
        start,
        end: start,
        status: 0,
        version: String::new(),
        ordinal: 0,
        heap_kib: 0,
    };
    let Ok(req) = req else { return out };
    if let Ok(resp) = client.request(req).await {
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        out.status = resp.status().as_u16();
        out.version = h("edgeflags-snapshot");
        out.ordinal = h("edgeflags-instance-request").parse().unwrap_or(0);
        out.heap_kib = h("edgeflags-instance-heap-kib").parse().unwrap_or(0);
        let _ = hyper::body::to_bytes(resp.into_body()).await;
    }
    out.end = t0.elapsed();
    out
}

fn pct(l: &[f64], p: f64) -> f64 {
    l.get(((l.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("arguments are numbers"))
        .collect::<Result<_>>()?;
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (requests, concurrency, steady_secs, rate, change_every) = (
        arg(0, 20_000) as usize,
        arg(1, 32) as usize,
        arg(2, 180),
        arg(3, 200),
        arg(4, 15),
    );
    let dir = std::env::temp_dir().join(format!("edgeflags-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file: PathBuf = dir.join("store.json");
    let all = versions(8);
    let mut store = BTreeMap::new();
    push(&file, &mut store, &all[0].0, &all[0].1)?;
    let app = edgeflags_e2e::app(AppSpec {
        stock_epoch: true,
        ..AppSpec::demo().store(Store::File(file.clone()))
    });
    let addr = app.serve_http()?;
    let rt = runtime();
    let t0 = Instant::now();
    let rss_start = rss_kib();
    // The live timeline: (from, version, switched), appended by the changer. A version
    // may be served from `from` (just before its file is renamed into place) until the
    // next version's `switched` (just after that rename).
    let live: Arc<Mutex<Vec<(Duration, String, Duration)>>> = Arc::new(Mutex::new(vec![(
        Duration::ZERO,
        all[0].1.clone(),
        Duration::ZERO,
    )]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changer = {
        let (live, stop, file) = (live.clone(), stop.clone(), file.clone());
        std::thread::spawn(move || -> Result<usize> {
            let mut pushes = 0;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(change_every));
                i = (i + 1) % all.len();
                let at = t0.elapsed();
                push(&file, &mut store, &all[i].0, &all[i].1)?;
                let switched = t0.elapsed();
                live.lock().unwrap_or_else(|p| p.into_inner()).push((
                    at,
                    all[i].1.clone(),
                    switched,
                ));
                pushes += 1;
            }
            Ok(pushes)
        })
    };
    let client = hyper::Client::new();
    // Burst.
    let burst_started = Instant::now();
    let debug = edgeflags_e2e::debug_token();
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let per = requests / concurrency;
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let client = client.clone();
            let debug = debug.clone();
            tasks.push(tokio::spawn(async move {
                let mut v = Vec::with_capacity(per);
                for i in 0..per {
                    v.push(one(&client, addr, format!("soak-{w}-{i}"), t0, &debug).await);
                }
                v
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all
    });
    let burst_secs = burst_started.elapsed().as_secs_f64();
    let rss_burst = rss_kib();
    // Steady rate.
    let steady: Vec<Outcome> = rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let mut tasks = Vec::new();
        let end = Instant::now() + Duration::from_secs(steady_secs);
        let mut i = 0u64;
        while Instant::now() < end {
            tick.tick().await;
            let client = client.clone();
            let debug = debug.clone();
            i += 1;
            tasks.push(tokio::spawn(async move {
                one(&client, addr, format!("steady-{}", i % 5000), t0, &debug).await
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            if let Ok(o) = t.await {
                all.push(o);
            }
        }
        all
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rss_end = rss_kib();
    let pushes = changer
        .join()
        .map_err(|_| anyhow::anyhow!("changer panicked"))??;
    let timeline = live.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // A version is acceptable for a response if it was live at some moment of the request.
    let live_during = |o: &Outcome| -> bool {
        timeline.iter().enumerate().any(|(k, (from, v, _))| {
            let until = timeline
                .get(k + 1)
                .map(|(_, _, switched)| *switched)
                .unwrap_or(Duration::MAX);
            *v == o.version && *from <= o.end && until >= o.start
        })
    };
    let mut failed = false;
    println!(
        "| phase | requests | 5xx | other non-200 | no answer | not a live version | p50 (ms) | p99 (ms) | requests/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, set, secs) in [
        ("burst", &outcomes, burst_secs),
        ("steady", &steady, steady_secs as f64),
    ] {
        let five = set.iter().filter(|o| o.status >= 500).count();
        let other = set
            .iter()
            .filter(|o| o.status != 0 && o.status != 200 && o.status < 500)
            .count();
        let none = set.iter().filter(|o| o.status == 0).count();
        let stale = set
            .iter()
            .filter(|o| o.status == 200 && !live_during(o))
            .count();
        let mut lat: Vec<f64> = set
            .iter()
            .filter(|o| o.status != 0)
            .map(|o| (o.end - o.start).as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        failed |= five > 0 || other > 0 || none > 0 || stale > 0;
        println!(
            "| {name} | {} | {five} | {other} | {none} | {stale} | {:.2} | {:.2} | {:.0} |",
            set.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            set.len() as f64 / secs
        );
    }
    let versions_seen: std::collections::BTreeSet<&str> = outcomes
        .iter()
        .chain(&steady)
        .map(|o| o.version.as_str())
        .collect();
    println!();
    println!(
        "flag versions pushed during the run: {pushes} (one every {change_every} s); distinct versions served: {}",
        versions_seen.len()
    );
    // Linear memory by request ordinal: reuse must not grow it.
    let mut by_ordinal: BTreeMap<&str, (u32, u32, usize)> = BTreeMap::new();
    for o in outcomes.iter().chain(&steady).filter(|o| o.ordinal > 0) {
        let bucket = match o.ordinal {
            1 => "1",
            2..=10 => "2-10",
            11..=100 => "11-100",
            101..=1000 => "101-1000",
            _ => "over 1000",
        };
        let e = by_ordinal.entry(bucket).or_insert((u32::MAX, 0, 0));
        e.0 = e.0.min(o.heap_kib);
        e.1 = e.1.max(o.heap_kib);
        e.2 += 1;
    }
    println!();
    println!(
        "| request ordinal in its instance | responses | linear memory min (KiB) | max (KiB) |"
    );
    println!("| --- | --- | --- | --- |");
    for b in ["1", "2-10", "11-100", "101-1000", "over 1000"] {
        if let Some((lo, hi, n)) = by_ordinal.get(b) {
            println!("| {b} | {n} | {lo} | {hi} |");
        }
    }
    let first_max = by_ordinal.get("2-10").map(|e| e.1).unwrap_or(0);
    let late_max = by_ordinal
        .iter()
        .filter(|(b, _)| ["101-1000", "over 1000"].contains(b))
        .map(|(_, e)| e.1)
        .max()
        .unwrap_or(0);
    let grows = late_max > first_max.max(by_ordinal.get("1").map(|e| e.1).unwrap_or(0)) + 64;
    failed |= grows;
    println!();
    println!(
        "process resident memory (Viceroy in-process): {} MiB at start, {} MiB after the burst, {} MiB at the end",
        rss_start / 1024,
        rss_burst / 1024,
        rss_end / 1024
    );
    println!(
        "verdict: {}",
        if failed {
            "FAILED"
        } else {
            "passed (no 5xx, every version live when served, no growth of instance memory with reuse)"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
