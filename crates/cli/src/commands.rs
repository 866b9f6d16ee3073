//! The subcommands. Each reads its inputs, calls the engine, and prints for people (or
//! JSON with `--json`); problems are errors that say what to do next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use edgeflags_engine::{CompileError, compile_str, pack};

/// Feature flags, rollouts and localized content at the edge: the flag-file tool.
#[derive(Debug, Parser)]
#[command(name = "edgeflags", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a flag file and list every problem with its JSON path.
    ///
    /// Exits 0 when the file is valid, 1 when it has problems.
    ///
    /// Example: edgeflags validate config-store/flags.json
    Validate {
        /// The flag file.
        file: PathBuf,
        /// Print the problems as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pack a flag file into config-store entries (pointer and two slots).
    ///
    /// Writes the snapshot into the idle slot of the store file and flips the pointer, as
    /// `push` does against a live store. Refuses anything over Fastly's limits.
    ///
    /// Example: edgeflags pack config-store/flags.json --store config-store/edgeflags.json
    Pack {
        /// The flag file.
        file: PathBuf,
        /// The store file (a JSON object of entries) to update; created if missing.
        #[arg(long)]
        store: PathBuf,
        /// Sign the snapshot with the key in this file (HMAC-SHA256).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate { file, json } => validate(&file, json),
        Command::Pack {
            file,
            store,
            key_file,
        } => pack_file(&file, &store, key_file.as_deref()),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn validate(file: &Path, json: bool) -> Result<ExitCode> {
    let text = read(file)?;
    match compile_str(&text) {
        Ok(snapshot) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "flags": snapshot.len(), "version": snapshot.fingerprint(), "problems": []})
                );
            } else {
                println!(
                    "{}: valid, {} flags, version {}",
                    file.display(),
                    snapshot.len(),
                    snapshot.fingerprint()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let problems = e.problems();
            if json {
                let list: Vec<_> = problems
                    .iter()
                    .map(|p| serde_json::json!({"path": p.path, "message": p.message}))
                    .collect();
                println!("{}", serde_json::json!({"valid": false, "problems": list}));
            } else {
                eprintln!("{}: {} problem(s)", file.display(), problems.len());
                for p in &problems {
                    eprintln!("  {}: {}", p.path, p.message);
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Compiles a flag file and returns its compact JSON and version, or every problem.
pub fn compile_file(file: &Path) -> Result<(String, String)> {
    let text = read(file)?;
    let snapshot = compile_str(&text).map_err(|e: CompileError| {
        anyhow::anyhow!(
            "{}: {e}\nfix these, then run the command again (`edgeflags validate {}` lists them)",
            file.display(),
            file.display()
        )
    })?;
    let compact = serde_json::from_str::<serde_json::Value>(&text)?.to_string();
    Ok((compact, snapshot.fingerprint().to_string()))
}

fn pack_file(file: &Path, store_path: &Path, key_file: Option<&Path>) -> Result<ExitCode> {
    let (payload, version) = compile_file(file)?;
    let mut store: BTreeMap<String, String> = match std::fs::read_to_string(store_path) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{} is not a JSON object of strings", store_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", store_path.display())),
    };
    let key = match key_file {
        Some(k) => Some(
            std::fs::read(k)
                .with_context(|| format!("cannot read the key file {}", k.display()))?,
        ),
        None => None,
    };
    let packed = pack::pack(&payload, &version, &store, key.as_deref())?;
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
    std::fs::rename(&tmp, store_path)
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
