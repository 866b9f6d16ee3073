//! `edgeflags pack`: pack a flag file into a local store file (the pointer and two slots),
//! as `push` does against a live store, within Fastly's limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::pack;

use crate::flagfile::compile_file;
use crate::keys::key_of;

#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// The flag file.
    file: PathBuf,
    /// The store file (a JSON object of entries) to update; created if missing.
    #[arg(long)]
    store: PathBuf,
    /// Sign the snapshot with the key in this file (HMAC-SHA256).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// Runs `pack`: writes the snapshot into the idle slot of the store file and flips the
/// pointer; refuses anything over Fastly's limits.
pub fn pack_file(a: PackArgs) -> Result<ExitCode> {
    let PackArgs {
        file,
        store: store_path,
        key_file,
    } = a;
    let compiled = compile_file(&file)?;
    let version = compiled.version;
    let mut store: BTreeMap<String, String> = match std::fs::read_to_string(&store_path) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{} is not a JSON object of strings", store_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", store_path.display())),
    };
    let key = key_of(key_file.as_deref())?;
    let packed = pack::pack(&compiled.payload, &version, &store, key.as_deref())?;
    if packed.upserts.is_empty() {
        println!(
            "{}: version {version} is already active",
            store_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    packed.apply(&mut store);
    for (k, v) in &store {
        if v.chars().count() > pack::MAX_VALUE_CHARS || k.chars().count() > pack::MAX_KEY_CHARS {
            bail!(
                "entry {k} is over Fastly's limits (key {} chars, value {} chars)",
                k.len(),
                v.chars().count()
            );
        }
    }
    let text = serde_json::to_string_pretty(&store)?;
    let tmp = store_path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &store_path)
        .with_context(|| format!("cannot write {}", store_path.display()))?;
    let slot = packed.slot.map(|s| s.name()).unwrap_or("?");
    println!(
        "{}: version {version} written to slot {slot} ({} parts), pointer flipped; {} entries in the store",
        store_path.display(),
        packed.upserts.len() - 1,
        store.len()
    );
    Ok(ExitCode::SUCCESS)
}
