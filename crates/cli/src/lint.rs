//! `edgeflags lint`: the stale flags of a flag file as of an instant (the rules are the
//! engine's `lint`): flags past `expires`, flags serving one variant to everyone,
//! prerequisites on flags about to be removed, unused segments. Exits 1 when it finds
//! any, for CI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use edgeflags_engine::lint::{self, Options};

use crate::input::{instant, read};

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// The flag file.
    file: PathBuf,
    /// Judge as of this instant (RFC 3339) instead of now: tests and CI pin it.
    #[arg(long)]
    at: Option<String>,
    /// A temporary flag expiring within this many days counts as about to be removed
    /// (for prerequisites on it).
    #[arg(long, default_value_t = 14, value_name = "DAYS")]
    soon: u32,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `lint`: exits 0 when nothing is stale, 1 when something is.
pub fn lint(a: LintArgs) -> Result<ExitCode> {
    let at = instant(a.at.as_deref())?;
    let text = read(&a.file)?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", a.file.display()))?;
    let options = Options {
        at,
        soon: chrono::Duration::days(i64::from(a.soon)),
    };
    let findings = lint::lint(&doc, &options).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}\nfix these first (`edgeflags validate {}` lists them)",
            a.file.display(),
            a.file.display()
        )
    })?;
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"at": at, "findings": findings}))?
        );
    } else if findings.is_empty() {
        println!("{}: nothing stale at {at}", a.file.display());
    } else {
        println!(
            "{}: {} stale at {at}",
            a.file.display(),
            match findings.len() {
                1 => "1 thing".to_string(),
                n => format!("{n} things"),
            }
        );
        for f in &findings {
            println!("  {:<18}  {}", f.kind.name(), f.path);
            println!("  {:<18}  {}", "", f.message);
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
