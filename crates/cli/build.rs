//! Where the prebuilt DuckDB library is: `DUCKDB_LIB_DIR` (scripts/env.sh sets it to the
//! copy it installs from npm), else that copy's place in the default cache. The binaries
//! get it as their run path, so `edgeflags` runs from a plain shell with no variables.
//! Without it the build stops here, saying what to run, rather than at the linker.

use std::path::PathBuf;

/// The npm package (`@duckdb/node-bindings-linux-x64`) whose `libduckdb.so` is linked,
/// and where scripts/env.sh installs it under the cache.
const PACKAGE_DIR: &str = "libduckdb-1.5.6/node_modules/@duckdb/node-bindings-linux-x64";

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=EDGEFLAGS_CACHE");
    let dir = std::env::var_os("DUCKDB_LIB_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("EDGEFLAGS_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/edgeflags"))
                })?;
            Some(cache.join(PACKAGE_DIR))
        });
    let Some(dir) = dir.clone().filter(|d| d.join("libduckdb.so").exists()) else {
        let looked = dir.map_or_else(
            || "the cache (no HOME, EDGEFLAGS_CACHE or DUCKDB_LIB_DIR)".to_string(),
            |d| d.display().to_string(),
        );
        println!(
            "cargo::error=libduckdb.so (DuckDB 1.5.6, which `edgeflags report` links) is not in {looked}. \
             Run scripts/test, scripts/serve or scripts/edgeflags once (each installs it from npm), \
             or `source scripts/env.sh && ensure_duckdb`; or set DUCKDB_LIB_DIR to a directory \
             holding libduckdb.so 1.5.6."
        );
        return;
    };
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("libduckdb.so").display()
    );
    if std::env::var_os("DUCKDB_LIB_DIR").is_none() {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
