//! Where the prebuilt DuckDB library is: `DUCKDB_LIB_DIR` (scripts/env.sh sets it to the
//! copy it installs from npm), else that copy's place in the default cache. The binaries
//! get it as their run path, so `edgeflags` runs from a plain shell with no variables.

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
    let Some(dir) = dir else {
        return;
    };
    if !dir.join("libduckdb.so").exists() {
        println!(
            "cargo:warning=libduckdb.so is not in {}: run scripts/test (or `source scripts/env.sh && ensure_duckdb`) once to install it",
            dir.display()
        );
        return;
    }
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("libduckdb.so").display()
    );
    if std::env::var_os("DUCKDB_LIB_DIR").is_none() {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
