//! The demo origin that `scripts/serve` puts behind the edge: localized pages (ja, fr,
//! en, pt) that also show what the edge told the origin (path, decisions, geo, device),
//! so `curl` shows personalization end to end.
//!
//! It listens on one port per region backend of fastly.toml (7701 us, 7702 eu,
//! 7703 apac, 7704 sa by default; `--base-port N` moves them) and stops on Ctrl-C.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};

const REGIONS: [&str; 4] = ["us", "eu", "apac", "sa"];

fn greeting(lang: &str) -> &'static str {
    match lang {
        "ja" => "ようこそ、エッジフラッグのデモストアへ",
        "fr" => "Bienvenue dans la boutique de démonstration",
        "pt" => "Bem-vindo à loja de demonstração",
        _ => "Welcome to the demo store",
    }
}

fn banner(lang: &str, variant: &str) -> &'static str {
    match (lang, variant) {
        ("ja", "weekend_sale") => "週末セール：全品20%オフ",
        ("ja", "night") => "夜のお得なセール（午前6時まで）",
        ("ja", _) => "いらっしゃいませ",
        ("fr", "weekend_sale") => "Soldes du week-end : -20 % sur tout",
        ("fr", "night") => "Offres nocturnes jusqu'à 6 h",
        ("fr", _) => "Bonjour",
        ("pt", "weekend_sale") => "Promoção de fim de semana: 20% de desconto",
        ("pt", "night") => "Ofertas da madrugada até as 6h",
        ("pt", _) => "Olá",
        (_, "weekend_sale") => "Weekend sale: 20% off everything",
        (_, "night") => "Night owl deals until 06:00",
        _ => "Hello",
    }
}

fn page(region: &str, req: &Request<Body>) -> String {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let lang = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|l| ["ja", "fr", "en", "pt"].contains(l))
        .unwrap_or("en");
    let decisions = h("edgeflags-decisions");
    let variant = |flag: &str| {
        decisions
            .split("; ")
            .find_map(|d| d.strip_prefix(flag).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "{greeting}\n\
         banner:    {banner}\n\
         checkout:  {checkout}\n\
         ---- what the edge sent to origin `{region}` ----\n\
         path:      {path}\n\
         decisions: {decisions}\n\
         visitor:   {city}, {region_code}, {country} ({continent}), zone {zone}\n\
         device:    {device}, language {language}\n\
         route:     {route}, snapshot {snapshot}\n",
        greeting = greeting(lang),
        banner = banner(lang, &variant("banner")),
        checkout = variant("checkout"),
        city = h("edgeflags-city"),
        region_code = h("edgeflags-region"),
        country = h("edgeflags-country"),
        continent = h("edgeflags-continent"),
        zone = h("edgeflags-timezone"),
        device = h("edgeflags-device"),
        language = h("edgeflags-language"),
        route = h("edgeflags-route"),
        snapshot = h("edgeflags-snapshot"),
    )
}

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
                let body = page(region, &req);
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/plain; charset=utf-8")
                        .header("vary", "edgeflags-decisions")
                        .body(Body::from(body))
                        .unwrap_or_default(),
                )
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
