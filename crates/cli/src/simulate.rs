//! `edgeflags simulate`: many synthetic users, spread over a country mix, and the variant
//! distribution of every flag next to its configured split weights.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::flagfile::snapshot;
use crate::input::instant;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
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

/// Runs `simulate`.
pub fn simulate(a: SimulateArgs) -> Result<ExitCode> {
    use edgeflags_engine::{Context, attributes, place};
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
            let record = place::Record {
                country: Some(c),
                ..place::Record::default()
            };
            if let Some(r) = place::resolve(&record, now) {
                ctx.set_resolved_zone(&r);
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
