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
    /// Mint a signed preview token that sets a visitor's geo, clock and variants.
    ///
    /// Send it as the `edgeflags-preview` header (or the `ef_preview` cookie or query
    /// parameter). The key comes from --key-file, else $EDGEFLAGS_PREVIEW_KEY, else the
    /// local dev key in config-store/secrets.json.
    ///
    /// Example: edgeflags preview-token --country JP --at 2026-11-28T21:00+09:00 --variant checkout=v2
    PreviewToken(PreviewArgs),
}

#[derive(Debug, clap::Args)]
struct PreviewArgs {
    /// Country code (JP, FR, US, BR ...).
    #[arg(long)]
    country: Option<String>,
    /// Region code (the part of ISO 3166-2 after the dash: NY, 13, SP ...).
    #[arg(long)]
    region: Option<String>,
    /// City name.
    #[arg(long)]
    city: Option<String>,
    /// Continent code (AS, EU, NA, SA, OC, AF, AN).
    #[arg(long)]
    continent: Option<String>,
    /// Time zone: an IANA name (Asia/Tokyo) or ±HH:MM. Derived from the country and
    /// region when not given.
    #[arg(long)]
    zone: Option<String>,
    /// Device class: mobile, tablet, desktop, tv or bot.
    #[arg(long)]
    device: Option<String>,
    /// The instant the edge evaluates at, RFC 3339 (2026-11-28T21:00+09:00).
    #[arg(long)]
    at: Option<String>,
    /// Force a variant: FLAG=VARIANT (repeatable).
    #[arg(long = "variant", value_name = "FLAG=VARIANT")]
    variants: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    /// A file holding the preview key.
    #[arg(long)]
    key_file: Option<PathBuf>,
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
        Command::PreviewToken(args) => preview_token(args),
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

/// Parses an instant: RFC 3339, also without seconds (2026-11-28T21:00+09:00).
pub fn parse_at(text: &str) -> Result<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%:z"))
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%#z"))
        .with_context(|| {
            format!("`{text}` is not an instant: use RFC 3339, such as 2026-11-28T21:00+09:00")
        })
}

fn preview_key(key_file: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(path) = key_file {
        let text = read(path)?;
        return Ok(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec());
    }
    if let Ok(k) = std::env::var("EDGEFLAGS_PREVIEW_KEY") {
        return Ok(k.into_bytes());
    }
    let local = Path::new("config-store/secrets.json");
    let secrets: BTreeMap<String, String> = serde_json::from_str(&read(local).context(
        "no preview key: pass --key-file, set EDGEFLAGS_PREVIEW_KEY, or run from the project root for the local dev key",
    )?)?;
    match secrets.get("preview_key") {
        Some(k) => {
            eprintln!(
                "edgeflags: using the local dev preview key from {}",
                local.display()
            );
            Ok(k.clone().into_bytes())
        }
        None => bail!("{} has no preview_key", local.display()),
    }
}

fn preview_token(a: PreviewArgs) -> Result<ExitCode> {
    let mut claims = edgeflags_engine::preview::Claims {
        country: a.country.map(|c| c.to_ascii_uppercase()),
        region: a.region.map(|c| c.to_ascii_uppercase()),
        city: a.city,
        continent: a.continent.map(|c| c.to_ascii_uppercase()),
        zone: a.zone,
        device: a.device,
        ..Default::default()
    };
    if let Some(z) = &claims.zone
        && edgeflags_engine::Zone::parse(z).is_none()
    {
        bail!("unknown time zone `{z}`: use an IANA name such as Asia/Tokyo, or ±HH:MM");
    }
    if let Some(at) = &a.at {
        claims.at = Some(parse_at(at)?.to_rfc3339());
    }
    for v in &a.variants {
        let Some((flag, variant)) = v.split_once('=') else {
            bail!("--variant takes FLAG=VARIANT, got `{v}`");
        };
        claims
            .variants
            .insert(flag.to_string(), variant.to_string());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    claims.exp = now + a.ttl.max(1);
    let key = preview_key(a.key_file.as_deref())?;
    println!("{}", edgeflags_engine::preview::mint(&claims, &key));
    Ok(ExitCode::SUCCESS)
}
