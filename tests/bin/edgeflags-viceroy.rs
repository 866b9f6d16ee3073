//! A Viceroy for `fastly compute serve --viceroy-path`, built on `viceroy-lib` so the
//! local server shares the one wasmtime build with the end-to-end tests.
//!
//! It accepts the arguments the Fastly CLI passes to Viceroy
//! (`-v -C <fastly.toml> --addr <ip:port> <wasm>`), answers `--version`, and serves the
//! wasm with the `[local_server]` of the manifest. Log endpoints print to stdout as
//! `endpoint :: message`, as Viceroy's do. Stops cleanly on Ctrl-C.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use viceroy_lib::config::{FastlyConfig, UnknownImportBehavior};
use viceroy_lib::{ExecuteCtx, ProfilingConfig, ViceroyService, WasmFeatures};

/// The Viceroy release whose library this binary embeds.
const VICEROY_VERSION: &str = "0.22.0";

struct Args {
    config: Option<PathBuf>,
    addr: SocketAddr,
    wasm: PathBuf,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = std::env::args().skip(1).peekable();
    let mut config = None;
    let mut addr: SocketAddr = ([127, 0, 0, 1], 7676).into();
    let mut wasm = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--version" | "-V" => {
                println!("viceroy {VICEROY_VERSION} (edgeflags-viceroy)");
                return Ok(None);
            }
            "--help" | "-h" => {
                println!(
                    "usage: edgeflags-viceroy [serve] [-v] [-C fastly.toml] [--addr 127.0.0.1:7676] <wasm>"
                );
                return Ok(None);
            }
            "serve" if wasm.is_none() && config.is_none() => {}
            "-C" | "--config" => config = args.next().map(PathBuf::from),
            "--addr" => {
                let v = args.next().context("--addr needs a value")?;
                addr = v.parse().with_context(|| format!("bad --addr {v}"))?;
            }
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            s if s.starts_with("--addr=") => {
                addr = s["--addr=".len()..]
                    .parse()
                    .with_context(|| format!("bad {s}"))?;
            }
            // Verbosity and the flags this build does not implement are accepted and ignored.
            s if s.starts_with('-') => eprintln!("edgeflags-viceroy: ignoring {s}"),
            s => wasm = Some(PathBuf::from(s)),
        }
    }
    let Some(wasm) = wasm else {
        bail!(
            "no wasm file given (usage: edgeflags-viceroy -C fastly.toml --addr 127.0.0.1:7676 bin/main.wasm)"
        );
    };
    Ok(Some(Args { config, addr, wasm }))
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let mut builder = ExecuteCtx::build(
        &args.wasm,
        ProfilingConfig::None,
        HashSet::new(),
        UnknownImportBehavior::LinkError,
        false,
        WasmFeatures::default(),
    )?;
    if let Some(path) = &args.config {
        let cfg =
            FastlyConfig::from_file(path).with_context(|| format!("loading {}", path.display()))?;
        builder = builder
            .with_acls(cfg.acls().clone())
            .with_backends(cfg.backends().clone())
            .with_device_detection(cfg.device_detection().clone())
            .with_geolocation(cfg.geolocation().clone())
            .with_dictionaries(cfg.dictionaries().clone())
            .with_object_stores(cfg.object_stores().clone())
            .with_secret_stores(cfg.secret_stores().clone())
            .with_config_path(path.clone());
    }
    let ctx = builder.finish().context("compiling the wasm")?;
    println!("edgeflags-viceroy: listening on http://{}", args.addr);
    // On 127.0.0.1, also answer on [::1] at the same port: the local geolocation data
    // makes ::1 a second city, so `curl -g http://[::1]:7676/` is another visitor.
    if args.addr.ip() == std::net::Ipv4Addr::LOCALHOST {
        let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, args.addr.port()).into();
        if std::net::TcpListener::bind(v6).is_ok() {
            println!("edgeflags-viceroy: listening on http://{v6}");
            tokio::spawn(ViceroyService::new(ctx.clone()).serve(v6));
        }
    }
    let server = ViceroyService::new(ctx).serve(args.addr);
    tokio::select! {
        r = server => r.context("serving")?,
        _ = tokio::signal::ctrl_c() => println!("edgeflags-viceroy: stopped"),
    }
    Ok(())
}
