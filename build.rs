//! Embeds the flag file in the wasm as the last good snapshot, after checking it compiles:
//! a flag file with problems fails the build with every problem listed.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = std::env::var("EDGEFLAGS_FLAG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("config-store/flags.json"));
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rerun-if-env-changed=EDGEFLAGS_FLAG_FILE");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read the flag file {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let snapshot = match edgeflags_engine::compile_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let compact = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let write = |name: &str, body: &str| {
        if let Err(e) = std::fs::write(out.join(name), body) {
            eprintln!("cannot write {name}: {e}");
            std::process::exit(1);
        }
    };
    write("embedded-flags.json", &compact);
    write("embedded-version.txt", snapshot.fingerprint());
}
