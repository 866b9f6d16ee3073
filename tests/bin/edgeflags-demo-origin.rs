//! The demo origin that `scripts/serve` puts behind the edge: localized pages (ja, fr,
//! en, pt) that also show what the edge told the origin (path, decisions, geo, device),
//! so `curl` shows personalization end to end. The pages are `edgeflags_e2e::demo`'s,
//! which the end-to-end tests also serve.
//!
//! It listens on one port per region backend of fastly.toml (7701 us, 7702 eu,
//! 7703 apac, 7704 sa by default; `--base-port N` moves them) and stops on Ctrl-C.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Server};

const REGIONS: [&str; 4] = ["us", "eu", "apac", "sa"];

#[tokio::main]
async fn main() -> Result<()> {
    let mut base: u16 = 7701;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--base-port" {
            base = args
                .next()
                .context("--base-port needs a value")?
                .parse()
                .context("bad --base-port")?;
        }
    }
    let mut servers = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        let addr: SocketAddr = ([127, 0, 0, 1], base + i as u16).into();
        let make = make_service_fn(move |_| async move {
            Ok::<_, Infallible>(service_fn(move |req: Request<Body>| async move {
                Ok::<_, Infallible>(edgeflags_e2e::demo::respond(region, &req))
            }))
        });
        let server = Server::try_bind(&addr)
            .with_context(|| format!("cannot listen on {addr}"))?
            .serve(make);
        println!("demo origin `{region}` on http://{addr}");
        servers.push(tokio::spawn(server));
    }
    tokio::signal::ctrl_c().await.ok();
    println!("demo origin: stopped");
    for s in servers {
        s.abort();
    }
    Ok(())
}
