//! Runs a WASI command module (such as the engine's `wasm_bench` example built for
//! wasm32-wasip1) in Viceroy's wasmtime, with the same optimised cranelift the tests use:
//! `edgeflags-wasm-run module.wasm [args...]`. Its standard output is the module's.
//! With `EDGEFLAGS_GUEST_PROFILE=FILE` set, the guest is sampled every 5 µs and the
//! profile written to FILE (Firefox profiler JSON, with the guest's function names when
//! it was built with symbols).

use std::collections::HashSet;

use anyhow::{Context, Result};
use viceroy_lib::config::UnknownImportBehavior;
use viceroy_lib::{ExecuteCtx, ProfilingConfig, WasmFeatures};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let module = args
        .next()
        .context("usage: edgeflags-wasm-run module.wasm [args...]")?;
    let rest: Vec<String> = args.collect();
    let ctx = ExecuteCtx::new(
        &module,
        match std::env::var_os("EDGEFLAGS_GUEST_PROFILE") {
            Some(path) => ProfilingConfig::Guest {
                path: path.into(),
                sample_period: std::time::Duration::from_micros(5),
            },
            None => ProfilingConfig::None,
        },
        HashSet::new(),
        UnknownImportBehavior::LinkError,
        false,
        WasmFeatures::default(),
    )?;
    ctx.run_main(&module, &rest).await
}
