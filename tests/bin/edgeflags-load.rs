//! Throughput through Viceroy: serves the edge app and a pass-through wasm (built the same
//! way, same origin) over loopback HTTP, and drives each with the same bounded load.
//! `edgeflags-load EDGE_WASM PASSTHROUGH_WASM [REQUESTS] [CONCURRENCY] [VARIANT]`; prints
//! a markdown table (requests/s, p50, p99) and the ratio. The variant `lean` serves the
//! demo flags without the trait rule (no profile lookup) and without exposure logging, to
//! show what those cost; `no-trait` and `no-exposure` leave out one of the two. Run by
//! `scripts/bench`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use edgeflags_e2e::{AppSpec, runtime};

async fn drive(
    addr: std::net::SocketAddr,
    requests: usize,
    concurrency: usize,
) -> (f64, Vec<Duration>) {
    let client = hyper::Client::new();
    let started = Instant::now();
    let per = requests / concurrency;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let req = hyper::Request::get(format!("http://{addr}/products"))
                    .header("cookie", format!("ef_uid=load-{w}-{i}"))
                    .body(hyper::Body::empty());
                let Ok(req) = req else { continue };
                let t = Instant::now();
                if let Ok(resp) = client.request(req).await {
                    let ok = resp.status().is_success();
                    let _ = hyper::body::to_bytes(resp.into_body()).await;
                    if ok {
                        lat.push(t.elapsed());
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, all)
}

fn pct(l: &[Duration], p: f64) -> f64 {
    l.get(((l.len() as f64 - 1.0) * p) as usize)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let edge = args
        .next()
        .context("usage: edgeflags-load EDGE_WASM PASSTHROUGH_WASM [REQUESTS] [CONCURRENCY] [lean|no-trait|no-exposure]")?;
    let pass = args.next().context("missing PASSTHROUGH_WASM")?;
    let requests: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let variant = args.next().unwrap_or_default();
    let (no_trait, no_exposure, label) = match variant.as_str() {
        "" => (false, false, ""),
        "lean" => (true, true, " (lean: no trait rule, no exposure logging)"),
        "no-trait" => (true, false, " (no trait rule)"),
        "no-exposure" => (false, true, " (no exposure logging)"),
        other => anyhow::bail!("unknown variant {other:?}: lean, no-trait or no-exposure"),
    };
    let mut flags = edgeflags_e2e::demo_flags();
    if let Some(f) = flags["flags"].as_object_mut() {
        if no_trait {
            f.remove("recommendations");
        }
        if no_exposure {
            for flag in f.values_mut() {
                if let Some(o) = flag.as_object_mut() {
                    o.remove("exposure_sample");
                }
            }
        }
    }
    let edge_app = edgeflags_e2e::app(AppSpec {
        wasm: Some(edge.into()),
        stock_epoch: true,
        ..AppSpec::demo().store(edgeflags_e2e::Store::Flags(flags, None))
    });
    let pass_app = edgeflags_e2e::app(AppSpec {
        wasm: Some(pass.into()),
        stock_epoch: true,
        ..AppSpec::demo()
    });
    let (edge_addr, pass_addr) = (edge_app.serve_http()?, pass_app.serve_http()?);
    let rt = runtime();
    // Warm up both, then alternate two measured rounds each and keep the better.
    rt.block_on(drive(pass_addr, requests / 4, concurrency));
    rt.block_on(drive(edge_addr, requests / 4, concurrency));
    let mut best = [(0.0, Vec::new()), (0.0, Vec::new())];
    for _ in 0..2 {
        for (i, addr) in [pass_addr, edge_addr].into_iter().enumerate() {
            let r = rt.block_on(drive(addr, requests, concurrency));
            if r.0 > best[i].0 {
                best[i] = r;
            }
        }
    }
    println!("| wasm | requests/s | p50 (ms) | p99 (ms) | ok responses |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, (rps, lat)) in ["pass-through", "edgeflags"].iter().zip(&best) {
        println!(
            "| {name} | {rps:.0} | {:.2} | {:.2} | {} |",
            pct(lat, 0.5),
            pct(lat, 0.99),
            lat.len()
        );
    }
    println!();
    println!(
        "edgeflags{label} / pass-through throughput: {:.2} ({requests} requests per round, {concurrency} concurrent, best of 2 rounds)",
        best[1].0 / best[0].0.max(1e-9)
    );
    Ok(())
}
