//! The subcommands. Each reads its inputs, calls the engine, and prints for people (or
//! JSON with `--json`); problems are errors that say what to do next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use edgeflags_engine::{CompileError, compile_str, pack};

use crate::live::{self, LiveStore};

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
    /// Explain what a user gets for every flag, and why.
    ///
    /// Example: edgeflags explain config-store/flags.json --user u42 --country JP --device mobile --at 2026-11-28T21:00+09:00
    Explain(ExplainArgs),
    /// Simulate many synthetic users and show the variant distribution of every flag,
    /// next to the configured split weights.
    ///
    /// Example: edgeflags simulate config-store/flags.json --users 100000 --countries JP=30,US=50,FR=20
    Simulate(SimulateArgs),
    /// Show, flag by flag, what pushing FILE would change in the live config store.
    /// Writes nothing.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags diff config-store/flags.json --store-id 5kxyz
    Diff(LiveArgs),
    /// Push FILE to the live config store: show the diff, write the idle slot and flip the
    /// pointer, in one bulk request. The edge serves it on the next request.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags push config-store/flags.json --store-id 5kxyz
    Push(LiveArgs),
    /// Flip the live config store back to the previous slot and drop the version that was
    /// active, in one bulk request: the store is as it was before the last push.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags rollback --store-id 5kxyz
    Rollback(StoreArgs),
    /// Summarise an exposure/conversion log (JSON lines from the `edgeflags_events`
    /// endpoint): per flag and variant, users exposed, users converted, conversion rate
    /// with a 95% interval, and a chart; per country, users exposed.
    ///
    /// Example: edgeflags report events.log --event purchase
    Report(ReportArgs),
    /// Mint a signed preview token that sets a visitor's geo, clock and variants.
    ///
    /// Send it as the `edgeflags-preview` header (or the `ef_preview` cookie or query
    /// parameter). The key comes from --key-file, else $EDGEFLAGS_PREVIEW_KEY, else the
    /// local dev key in config-store/secrets.json.
    ///
    /// Example: edgeflags preview-token --country JP --at 2026-11-28T21:00+09:00 --variant checkout=v2
    PreviewToken(PreviewArgs),
    /// Manage user profiles (behaviour traits) in the `edgeflags_profiles` KV store.
    #[command(subcommand)]
    Profiles(crate::profiles::ProfilesCommand),
    /// Mint a signed traits cookie (`ef_traits`) for a user, as an origin would set it.
    ///
    /// The key comes from --key-file, else $EDGEFLAGS_TRAITS_KEY, else the local dev key
    /// in config-store/secrets.json.
    ///
    /// Example: edgeflags traits-cookie --user u42 --trait buyer=bargain_hunter --ttl 1h
    TraitsCookie(TraitsCookieArgs),
}

#[derive(Debug, clap::Args)]
struct TraitsCookieArgs {
    /// The user key the traits belong to (the edge ignores the cookie for anyone else).
    #[arg(long)]
    user: String,
    /// A trait: NAME=VALUE (repeatable; numbers and true/false are typed).
    #[arg(long = "trait", value_name = "NAME=VALUE")]
    traits: Vec<String>,
    /// Lifetime: 3600, 90m, 12h or 30d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// A file holding the traits key.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// The config store id (or set EDGEFLAGS_STORE_ID); `fastly config-store list` shows it.
    #[arg(long, env = "EDGEFLAGS_STORE_ID")]
    store_id: String,
    /// The Fastly API address (for tests and proxies).
    #[arg(long, default_value = live::DEFAULT_API)]
    api_url: String,
    /// Sign (push) or verify (rollback) snapshots with the key in this file.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct LiveArgs {
    /// The flag file.
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Show what would be written, write nothing (push).
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// The flag file.
    file: PathBuf,
    /// The user key.
    #[arg(long)]
    user: Option<String>,
    /// Country code; the continent and (with --region) the time zone follow from it.
    #[arg(long)]
    country: Option<String>,
    /// Region code.
    #[arg(long)]
    region: Option<String>,
    /// City.
    #[arg(long)]
    city: Option<String>,
    /// Time zone (IANA name or ±HH:MM); derived from country and region when not given.
    #[arg(long)]
    zone: Option<String>,
    /// Device class: mobile, tablet, desktop, tv, bot.
    #[arg(long)]
    device: Option<String>,
    /// Language code.
    #[arg(long)]
    language: Option<String>,
    /// Any other attribute: NAME=VALUE (repeatable; numbers and true/false are typed).
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    attrs: Vec<String>,
    /// The instant to evaluate at (RFC 3339); now when not given.
    #[arg(long)]
    at: Option<String>,
    /// Print the explanation as JSON (the document the edge's explain endpoint returns).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The flag file.
    file: PathBuf,
    /// Number of synthetic users.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Country mix, CODE=SHARE,... (shares are relative): users are spread over them.
    #[arg(long)]
    countries: Option<String>,
    /// The instant to evaluate at (RFC 3339); now when not given.
    #[arg(long)]
    at: Option<String>,
    /// Print the distribution as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The log file (lines may carry a prefix before the JSON, such as `edgeflags_events :: `).
    file: PathBuf,
    /// Count only conversions of this event.
    #[arg(long)]
    event: Option<String>,
    /// Only this flag.
    #[arg(long)]
    flag: Option<String>,
    /// The variant others are compared with (default: `control` if there is one, else
    /// the first variant by name).
    #[arg(long)]
    control: Option<String>,
    /// Show conversion rates per country.
    #[arg(long)]
    by_country: bool,
    /// Write an SVG chart of the rates and their intervals to this file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
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
        Command::Explain(args) => explain(args),
        Command::Report(args) => report(args),
        Command::Diff(args) => diff(args),
        Command::Push(args) => push(args),
        Command::Rollback(args) => rollback(args),
        Command::Simulate(args) => simulate(args),
        Command::Profiles(cmd) => crate::profiles::run(cmd),
        Command::TraitsCookie(args) => traits_cookie(args),
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
    let key = crate::profiles::secret_key(
        "preview_key",
        "EDGEFLAGS_PREVIEW_KEY",
        a.key_file.as_deref(),
    )?;
    println!("{}", edgeflags_engine::preview::mint(&claims, &key));
    Ok(ExitCode::SUCCESS)
}

fn traits_cookie(a: TraitsCookieArgs) -> Result<ExitCode> {
    let mut traits = BTreeMap::new();
    for t in &a.traits {
        let Some((name, value)) = t.split_once('=') else {
            bail!("--trait takes NAME=VALUE, got `{t}`");
        };
        traits.insert(name.to_string(), typed(value));
    }
    let checked = edgeflags_engine::traits::check(&traits, None);
    if let Some((name, why)) = checked.refused.first() {
        bail!("trait `{name}`: {why}");
    }
    let ttl = crate::profiles::parse_ttl(&a.ttl)?
        .context("a traits cookie needs a lifetime: --ttl 3600, 90m, 12h or 30d")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = edgeflags_engine::traits::CookieClaims {
        sub: a.user,
        exp: now + ttl,
        traits,
    };
    let key =
        crate::profiles::secret_key("traits_key", "EDGEFLAGS_TRAITS_KEY", a.key_file.as_deref())?;
    println!("{}", edgeflags_engine::traits::mint_cookie(&claims, &key));
    Ok(ExitCode::SUCCESS)
}

/// A command-line value: a number or true/false when it reads as one, else a string.
fn typed(v: &str) -> serde_json::Value {
    if let Ok(b) = v.parse::<bool>() {
        return b.into();
    }
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() => serde_json::json!(n),
        _ => v.into(),
    }
}

fn instant(at: Option<&str>) -> Result<chrono::DateTime<chrono::Utc>> {
    match at {
        Some(a) => Ok(parse_at(a)?.with_timezone(&chrono::Utc)),
        None => Ok(chrono::DateTime::<chrono::Utc>::from(
            std::time::SystemTime::now(),
        )),
    }
}

fn snapshot(file: &Path) -> Result<edgeflags_engine::Snapshot> {
    let text = read(file)?;
    compile_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}\nfix these first (`edgeflags validate {}`)",
            file.display(),
            file.display()
        )
    })
}

fn explain(a: ExplainArgs) -> Result<ExitCode> {
    use edgeflags_engine::{Context, Zone, attributes};
    let snap = snapshot(&a.file)?;
    let now = instant(a.at.as_deref())?;
    let mut ctx = match &a.user {
        Some(u) => Context::with_key(u),
        None => Context::new(),
    };
    let country = a.country.map(|c| c.to_ascii_uppercase());
    let region = a.region.map(|r| r.to_ascii_uppercase());
    if let Some(c) = &country {
        ctx.set("country", c.as_str());
        if let Some(cont) = attributes::continent_for(c) {
            ctx.set("continent", cont);
        }
    }
    if let Some(r) = &region {
        ctx.set("region", r.as_str());
    }
    for (name, v) in [
        ("city", &a.city),
        ("device", &a.device),
        ("language", &a.language),
    ] {
        if let Some(v) = v {
            ctx.set(name, v.as_str());
        }
    }
    let zone = match &a.zone {
        Some(z) => Some(Zone::parse(z).with_context(|| format!("unknown time zone `{z}`"))?),
        None => country
            .as_deref()
            .and_then(|c| attributes::zone_for(c, region.as_deref()))
            .map(Zone::Named),
    };
    if let Some(z) = zone {
        ctx.set_zone(z);
    }
    for kv in &a.attrs {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--attr takes NAME=VALUE, got `{kv}`");
        };
        if let Some(value) = edgeflags_engine::AttrValue::from_json(&typed(v)) {
            ctx.set(k, value);
        }
    }
    let doc = edgeflags_engine::explain::explain(&snap, &ctx, now);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "snapshot {}  at {}",
        doc["snapshot"].as_str().unwrap_or(""),
        doc["now"].as_str().unwrap_or("")
    );
    let attrs: Vec<String> = ctx
        .attributes()
        .map(|(k, v)| format!("{k}={}", v.to_json()))
        .collect();
    println!("context  {}", attrs.join(" "));
    println!();
    println!("{:<24} {:<16} {:<20} why", "flag", "variant", "value");
    for f in doc["flags"].as_array().into_iter().flatten() {
        let mut why = f["reason"].as_str().unwrap_or("").to_string();
        if let Some(r) = f["rule_id"].as_str() {
            why.push_str(&format!(" rule `{r}` (#{})", f["rule_index"]));
        }
        if let Some(b) = f["bucket"].as_u64() {
            why.push_str(&format!(" bucket {b}"));
        }
        if let Some(p) = f["prerequisite"].as_str() {
            why.push_str(&format!(" prerequisite `{p}`"));
        }
        if f["scheduled"] == true {
            why.push_str(" (outside its schedule)");
        }
        let mut value = f["value"].to_string();
        if value.chars().count() > 20 {
            value = value.chars().take(17).collect::<String>() + "...";
        }
        println!(
            "{:<24} {:<16} {:<20} {why}",
            f["key"].as_str().unwrap_or(""),
            f["variant"].as_str().unwrap_or("-"),
            value
        );
    }
    let route = &doc["route"];
    println!();
    println!(
        "route    {} -> backend {} {}",
        route["id"].as_str().unwrap_or(""),
        route["backend"].as_str().unwrap_or(""),
        route["path_prefix"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}

fn simulate(a: SimulateArgs) -> Result<ExitCode> {
    use edgeflags_engine::{Context, Zone, attributes};
    let snap = snapshot(&a.file)?;
    let now = instant(a.at.as_deref())?;
    let mix: Vec<(String, f64)> = match &a.countries {
        None => Vec::new(),
        Some(m) => m
            .split(',')
            .map(|part| {
                let (c, share) = part
                    .split_once('=')
                    .with_context(|| format!("--countries takes CODE=SHARE,..., got `{part}`"))?;
                let share: f64 = share
                    .parse()
                    .with_context(|| format!("bad share in `{part}`"))?;
                Ok((c.trim().to_ascii_uppercase(), share))
            })
            .collect::<Result<_>>()?,
    };
    let total_share: f64 = mix.iter().map(|(_, s)| s).sum();
    // flag -> country ("*" for all) -> variant -> count
    let mut counts: BTreeMap<String, BTreeMap<String, BTreeMap<String, usize>>> = BTreeMap::new();
    let step = (a.users / 20).max(1);
    for i in 0..a.users {
        if a.users >= 50_000 && i % step == 0 && !a.json {
            eprint!("\rsimulating: {:>3}%", i * 100 / a.users);
        }
        let mut ctx = Context::with_key(&format!("sim-user-{i}"));
        let mut country = None;
        if !mix.is_empty() && total_share > 0.0 {
            // Spread users over the mix deterministically by position.
            let x = (i as f64 + 0.5) / a.users as f64 * total_share;
            let mut acc = 0.0;
            for (c, s) in &mix {
                acc += s;
                if x < acc {
                    country = Some(c.clone());
                    break;
                }
            }
        }
        if let Some(c) = &country {
            ctx.set("country", c.as_str());
            if let Some(cont) = attributes::continent_for(c) {
                ctx.set("continent", cont);
            }
            if let Some(z) = attributes::zone_for(c, None) {
                ctx.set_zone(Zone::Named(z));
            }
        }
        for e in snap.evaluate_all(&ctx, now) {
            let v = e.variant.unwrap_or("-").to_string();
            let per_flag = counts.entry(e.key.to_string()).or_default();
            *per_flag
                .entry("*".into())
                .or_default()
                .entry(v.clone())
                .or_default() += 1;
            if let Some(c) = &country {
                *per_flag.entry(c.clone()).or_default().entry(v).or_default() += 1;
            }
        }
    }
    if a.users >= 50_000 && !a.json {
        eprintln!("\rsimulating: 100%");
    }
    let mut report = serde_json::Map::new();
    for key in snap.flag_keys() {
        let configured: BTreeMap<String, f64> = snap
            .default_split(key)
            .map(|weights| {
                weights
                    .into_iter()
                    .map(|(v, w)| (v.to_string(), f64::from(w) / 1000.0))
                    .collect()
            })
            .unwrap_or_default();
        let per = counts.get(key).cloned().unwrap_or_default();
        report.insert(
            key.to_string(),
            serde_json::json!({"configured_default_split": configured, "counts": per}),
        );
        if a.json {
            continue;
        }
        println!("{key}");
        for (scope, variants) in &per {
            let n: usize = variants.values().sum();
            let label = if scope == "*" {
                "all users".to_string()
            } else {
                format!("country {scope}")
            };
            let parts: Vec<String> = variants
                .iter()
                .map(|(v, c)| {
                    let pct = *c as f64 * 100.0 / n.max(1) as f64;
                    match (scope.as_str(), configured.get(v)) {
                        ("*", Some(w)) => format!("{v} {pct:.2}% (split {w}%)"),
                        _ => format!("{v} {pct:.2}%"),
                    }
                })
                .collect();
            println!("  {label:<14} {n:>8} users: {}", parts.join(", "));
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(report))?
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn key_of(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    path.map(|k| {
        std::fs::read(k).with_context(|| format!("cannot read the key file {}", k.display()))
    })
    .transpose()
}

/// The flag file the store's active slot holds (as JSON), if any.
fn live_active(
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
) -> Result<Option<(String, serde_json::Value)>> {
    if !items.contains_key(pack::POINTER_KEY) {
        return Ok(None);
    }
    let outcome = pack::read(|k| items.get(k).cloned(), key);
    let loaded = outcome.result.map_err(|why| {
        anyhow::anyhow!(
            "the live store's snapshot is unreadable: {}",
            why.join("; ")
        )
    })?;
    let source = edgeflags_engine::binary::source(&loaded.payload)
        .context("the live snapshot's flag file is unreadable")?;
    let doc = serde_json::from_str(&source).context("the live snapshot is not JSON")?;
    Ok(Some((loaded.version, doc)))
}

/// Flag-level differences between two flag files.
pub fn flag_diff(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let mut lines = Vec::new();
    let (of, nf) = (
        old["flags"].as_object().unwrap_or(&empty),
        new["flags"].as_object().unwrap_or(&empty),
    );
    for (k, v) in nf {
        match of.get(k) {
            None => lines.push(format!("+ flag {k}")),
            Some(o) if o != v => {
                let (oo, no) = (
                    o.as_object().unwrap_or(&empty),
                    v.as_object().unwrap_or(&empty),
                );
                let mut fields: Vec<&str> = no
                    .keys()
                    .chain(oo.keys())
                    .map(String::as_str)
                    .filter(|f| oo.get(*f) != no.get(*f))
                    .collect();
                fields.sort();
                fields.dedup();
                lines.push(format!("~ flag {k}: {}", fields.join(", ")));
            }
            Some(_) => {}
        }
    }
    for k in of.keys().filter(|k| !nf.contains_key(*k)) {
        lines.push(format!("- flag {k}"));
    }
    for section in ["segments", "routes", "context", "ofrep"] {
        if old.get(section) != new.get(section) {
            lines.push(format!("~ {section}"));
        }
    }
    lines
}

fn diff(a: LiveArgs) -> Result<ExitCode> {
    let (payload, version) = compile_file(&a.file)?;
    let key = key_of(a.store.key_file.as_deref())?;
    let mut store = LiveStore::connect(&a.store.store_id, Some(&a.store.api_url))?;
    eprintln!("edgeflags: reading config store {}", a.store.store_id);
    let items = store.items()?;
    let new: serde_json::Value = serde_json::from_str(&payload)?;
    print_diff(&items, key.as_deref(), &new, &version)?;
    Ok(ExitCode::SUCCESS)
}

fn print_diff(
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
    new: &serde_json::Value,
    version: &str,
) -> Result<bool> {
    match live_active(items, key)? {
        None => {
            println!(
                "the store has no snapshot yet; pushing writes version {version} with {} flags",
                new["flags"].as_object().map(|o| o.len()).unwrap_or(0)
            );
            Ok(true)
        }
        Some((live_version, _)) if live_version == version => {
            println!("version {version} is already live: no changes");
            Ok(false)
        }
        Some((live_version, old)) => {
            println!("live {live_version} -> file {version}");
            let lines = flag_diff(&old, new);
            if lines.is_empty() {
                println!("  (formatting only)");
            }
            for l in lines {
                println!("  {l}");
            }
            Ok(true)
        }
    }
}

fn push(a: LiveArgs) -> Result<ExitCode> {
    let (payload, version) = compile_file(&a.file)?;
    let key = key_of(a.store.key_file.as_deref())?;
    let mut store = LiveStore::connect(&a.store.store_id, Some(&a.store.api_url))?;
    eprintln!("edgeflags: reading config store {}", a.store.store_id);
    let items = store.items()?;
    let new: serde_json::Value = serde_json::from_str(&payload)?;
    if !print_diff(&items, key.as_deref(), &new, &version)? {
        return Ok(ExitCode::SUCCESS);
    }
    let packed = pack::pack(&payload, &version, &items, key.as_deref())?;
    let slot = packed.slot.map(|s| s.name()).unwrap_or("?");
    if a.dry_run {
        println!(
            "dry run: would write slot {slot} ({} parts) and flip the pointer; nothing written",
            packed.upserts.len().saturating_sub(1)
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "edgeflags: writing slot {slot} ({} parts), then the pointer, in one bulk request",
        packed.upserts.len().saturating_sub(1)
    );
    store.apply(&packed.upserts, &packed.deletes)?;
    println!("pushed version {version} to slot {slot}; the edge serves it on the next request");
    Ok(ExitCode::SUCCESS)
}

fn rollback(a: StoreArgs) -> Result<ExitCode> {
    let key = key_of(a.key_file.as_deref())?;
    let mut store = LiveStore::connect(&a.store_id, Some(&a.api_url))?;
    eprintln!("edgeflags: reading config store {}", a.store_id);
    let items = store.items()?;
    let text = items
        .get(pack::POINTER_KEY)
        .context("the store has no snapshot: nothing to roll back")?;
    let pointer: pack::Pointer =
        serde_json::from_str(text).context("the store's pointer is unreadable")?;
    let current = pointer.active;
    let previous = current.other();
    let (ok, _) = pack::read_slot(
        |k| items.get(k).cloned(),
        &pointer,
        previous,
        key.as_deref(),
    );
    if let Err(why) = ok {
        bail!("cannot roll back: the previous slot is not usable ({why})");
    }
    let from = pointer
        .slot(current)
        .map(|i| i.version.clone())
        .unwrap_or_default();
    let to = pointer
        .slot(previous)
        .map(|i| i.version.clone())
        .unwrap_or_default();
    let parts = pointer.slot(current).map(|i| i.parts).unwrap_or(0);
    let mut flipped = pointer.clone();
    flipped.active = previous;
    match current {
        pack::Slot::A => flipped.a = None,
        pack::Slot::B => flipped.b = None,
    }
    let upserts = vec![(
        pack::POINTER_KEY.to_string(),
        serde_json::to_string(&flipped)?,
    )];
    let deletes: Vec<String> = (0..parts).map(|n| current.part_key(n)).collect();
    eprintln!(
        "edgeflags: flipping the pointer to slot {} and dropping slot {}",
        previous.name(),
        current.name()
    );
    store.apply(&upserts, &deletes)?;
    println!("rolled back from version {from} to {to}");
    Ok(ExitCode::SUCCESS)
}

/// The Wilson score interval (95%) of `c` successes in `n` trials.
pub fn wilson(c: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 0.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let p = c / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn ratio(c: usize, n: usize) -> f64 {
    if n > 0 { c as f64 / n as f64 } else { 0.0 }
}

/// The difference of two conversion rates (variant minus control) with Newcombe's 95%
/// interval built from the two Wilson intervals (Newcombe 1998, method 10).
fn difference(variant: (usize, usize), control: (usize, usize)) -> (f64, f64, f64) {
    let (p1, p2) = (ratio(variant.0, variant.1), ratio(control.0, control.1));
    let (l1, u1) = wilson(variant.0 as f64, variant.1 as f64);
    let (l2, u2) = wilson(control.0 as f64, control.1 as f64);
    let d = p1 - p2;
    let lo = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    (d, lo, hi)
}

/// An SVG chart of the report: per flag, each variant's conversion rate as a bar with its
/// 95% interval as a whisker.
fn chart_svg(flags: &serde_json::Map<String, serde_json::Value>) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let (left, width, row, head) = (160.0, 420.0, 26.0, 34.0);
    let rows: usize = flags
        .values()
        .map(|v| v.as_object().map(|m| m.len()).unwrap_or(0))
        .sum();
    let height = flags.len() as f64 * head + rows as f64 * row + 40.0;
    let top = flags
        .values()
        .flat_map(|v| v.as_object().into_iter().flat_map(|m| m.values()))
        .filter_map(|v| v["ci95"][1].as_f64())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let x = |r: f64| left + r / top * width;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        left + width + 120.0
    );
    svg.push_str("<title>edgeflags report: conversion rate per variant, 95% interval</title>\n");
    let mut y = 20.0;
    for (flag, vs) in flags {
        svg.push_str(&format!(
            "<text x=\"4\" y=\"{y}\" font-weight=\"bold\">{}</text>\n",
            esc(flag)
        ));
        y += head - 14.0;
        for (variant, v) in vs.as_object().into_iter().flatten() {
            let rate = v["rate"].as_f64().unwrap_or(0.0);
            let (lo, hi) = (
                v["ci95"][0].as_f64().unwrap_or(0.0),
                v["ci95"][1].as_f64().unwrap_or(0.0),
            );
            let mid = y + row / 2.0 - 4.0;
            svg.push_str(&format!(
                "<text x=\"12\" y=\"{}\">{}</text>\n<rect x=\"{left}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#4a7fd4\"><title>{} {:.2}%</title></rect>\n<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{mid}\" y2=\"{mid}\" stroke=\"#222\"/>\n<text x=\"{:.1}\" y=\"{}\">{:.2}% [{:.2}, {:.2}] n={}</text>\n",
                mid + 4.0,
                esc(variant),
                y,
                x(rate) - left,
                row - 8.0,
                esc(variant),
                rate * 100.0,
                x(lo),
                x(hi),
                x(hi) + 6.0,
                mid + 4.0,
                rate * 100.0,
                lo * 100.0,
                hi * 100.0,
                v["exposed"].as_u64().unwrap_or(0),
            ));
            y += row;
        }
        y += 14.0;
    }
    svg.push_str("</svg>\n");
    svg
}

fn report(a: ReportArgs) -> Result<ExitCode> {
    use std::collections::BTreeSet;
    let text = read(&a.file)?;
    // flag -> variant -> users; flag -> variant -> country -> users; converters; values
    let mut exposed: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut by_country: BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeSet<String>>>> =
        BTreeMap::new();
    let mut converted: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut values: BTreeMap<(String, String), f64> = BTreeMap::new();
    let (mut lines, mut skipped) = (0usize, 0usize);
    for line in text.lines() {
        let Some(start) = line.find('{') else {
            continue;
        };
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line[start..]) else {
            skipped += 1;
            continue;
        };
        lines += 1;
        let Some(user) = ev["user"].as_str().map(str::to_string) else {
            skipped += 1;
            continue;
        };
        match ev["kind"].as_str() {
            Some("exposure") => {
                let (Some(flag), Some(variant)) = (ev["flag"].as_str(), ev["variant"].as_str())
                else {
                    continue;
                };
                if a.flag.as_deref().is_some_and(|f| f != flag) {
                    continue;
                }
                exposed
                    .entry(flag.into())
                    .or_default()
                    .entry(variant.into())
                    .or_default()
                    .insert(user.clone());
                let country = ev["country"].as_str().unwrap_or("??").to_string();
                by_country
                    .entry(flag.into())
                    .or_default()
                    .entry(variant.into())
                    .or_default()
                    .entry(country)
                    .or_default()
                    .insert(user);
            }
            Some("conversion") => {
                if a.event
                    .as_deref()
                    .is_some_and(|e| Some(e) != ev["event"].as_str())
                {
                    continue;
                }
                for (flag, variant) in ev["variants"].as_object().into_iter().flatten() {
                    let Some(variant) = variant.as_str() else {
                        continue;
                    };
                    converted
                        .entry(flag.clone())
                        .or_default()
                        .entry(variant.into())
                        .or_default()
                        .insert(user.clone());
                    *values.entry((flag.clone(), variant.into())).or_default() +=
                        ev["value"].as_f64().unwrap_or(0.0);
                }
            }
            _ => skipped += 1,
        }
    }
    let mut out = serde_json::Map::new();
    for (flag, variants) in &exposed {
        let none = BTreeSet::new();
        let conv_of = |variant: &str| {
            converted
                .get(flag)
                .and_then(|m| m.get(variant))
                .unwrap_or(&none)
        };
        let control = a
            .control
            .clone()
            .filter(|c| variants.contains_key(c))
            .or_else(|| {
                variants
                    .contains_key("control")
                    .then(|| "control".to_string())
            })
            .or_else(|| variants.keys().next().cloned())
            .unwrap_or_default();
        let control_counts = variants
            .get(&control)
            .map(|u| (conv_of(&control).intersection(u).count(), u.len()))
            .unwrap_or((0, 0));
        let mut vs = serde_json::Map::new();
        for (variant, users) in variants {
            let n = users.len();
            let conv = conv_of(variant);
            let c = conv.intersection(users).count();
            let (lo, hi) = wilson(c as f64, n as f64);
            let countries: serde_json::Map<String, serde_json::Value> = by_country[flag][variant]
                .iter()
                .map(|(k, u)| {
                    let cc = conv.intersection(u).count();
                    (
                        k.clone(),
                        serde_json::json!({"exposed": u.len(), "converted": cc, "rate": ratio(cc, u.len())}),
                    )
                })
                .collect();
            let mut v = serde_json::json!({
                "exposed": n, "converted": c, "rate": ratio(c, n),
                "ci95": [lo, hi], "value": values.get(&(flag.clone(), variant.clone())).copied().unwrap_or(0.0),
                "countries": countries,
            });
            if *variant != control {
                let (d, dlo, dhi) = difference((c, n), control_counts);
                v["vs_control"] =
                    serde_json::json!({"control": control, "diff": d, "ci95": [dlo, dhi]});
            }
            vs.insert(variant.clone(), v);
        }
        out.insert(flag.clone(), serde_json::Value::Object(vs));
    }
    if let Some(path) = &a.chart {
        std::fs::write(path, chart_svg(&out))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("edgeflags: chart written to {}", path.display());
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"lines": lines, "skipped": skipped, "flags": out})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{lines} events read, {skipped} skipped{}",
        a.event
            .as_deref()
            .map(|e| format!("; conversions: {e}"))
            .unwrap_or_default()
    );
    for (flag, vs) in &out {
        println!();
        println!("{flag}");
        println!(
            "  {:<14} {:>9} {:>10} {:>8}  {:<17}  {:<26}  rate (▏= 95% interval)",
            "variant", "exposed", "converted", "rate", "95% interval", "vs control (95% interval)"
        );
        let top = vs
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| v["ci95"][1].as_f64())
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        for (variant, v) in vs.as_object().into_iter().flatten() {
            let rate = v["rate"].as_f64().unwrap_or(0.0);
            let (lo, hi) = (
                v["ci95"][0].as_f64().unwrap_or(0.0),
                v["ci95"][1].as_f64().unwrap_or(0.0),
            );
            let width = 30.0;
            let bar: String = (0..width as usize)
                .map(|i| {
                    let x = (i as f64 + 0.5) / width * top;
                    if x <= rate {
                        '█'
                    } else if x <= hi && x >= lo {
                        '▏'
                    } else {
                        ' '
                    }
                })
                .collect();
            let vs_control = match v.get("vs_control") {
                Some(d) => format!(
                    "{:+.2} pts [{:+.2}, {:+.2}]",
                    d["diff"].as_f64().unwrap_or(0.0) * 100.0,
                    d["ci95"][0].as_f64().unwrap_or(0.0) * 100.0,
                    d["ci95"][1].as_f64().unwrap_or(0.0) * 100.0
                ),
                None => "control".to_string(),
            };
            println!(
                "  {:<14} {:>9} {:>10} {:>7.2}%  [{:>5.2}%, {:>5.2}%]  {:<26}  {}",
                variant,
                v["exposed"].as_u64().unwrap_or(0),
                v["converted"].as_u64().unwrap_or(0),
                rate * 100.0,
                lo * 100.0,
                hi * 100.0,
                vs_control,
                bar.trim_end()
            );
        }
        let mut countries: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (variant, v) in vs.as_object().into_iter().flatten() {
            for (c, n) in v["countries"].as_object().into_iter().flatten() {
                let entry = if a.by_country {
                    format!(
                        "{variant} {}/{} ({:.2}%)",
                        n["converted"].as_u64().unwrap_or(0),
                        n["exposed"].as_u64().unwrap_or(0),
                        n["rate"].as_f64().unwrap_or(0.0) * 100.0
                    )
                } else {
                    format!("{variant} {}", n["exposed"].as_u64().unwrap_or(0))
                };
                countries.entry(c.clone()).or_default().push(entry);
            }
        }
        for (c, parts) in countries {
            if a.by_country {
                println!("  in {c}: {}", parts.join(", "));
            } else {
                println!("  exposed in {c}: {}", parts.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
