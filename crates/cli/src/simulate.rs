//! `edgeflags simulate`: many synthetic users, spread over a country mix, and the variant
//! distribution of every flag next to its configured split weights, at one instant or
//! several (to follow a ramp over time); with each layer's occupancy (the share of users
//! in each flag's slots and in its experiment, and whether any user is in two) and each
//! holdout's share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use edgeflags_engine::explain::{self, HoldoutView, LayerView};
use edgeflags_engine::{Context, Evaluation, Reason, Snapshot};
use serde_json::{Value, json};

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
    /// The instant to evaluate at (RFC 3339); now when not given. Repeat it to see the
    /// shares at each instant, such as a ramp's steps.
    #[arg(long)]
    at: Vec<String>,
    /// Print the distribution as JSON.
    #[arg(long)]
    json: bool,
}

/// flag -> scope ("*" for all users, else a country) -> variant -> users.
type Counts = BTreeMap<String, BTreeMap<String, BTreeMap<String, usize>>>;

/// What the users did at one instant.
struct Tally {
    at: DateTime<Utc>,
    counts: Counts,
    /// Per layer, per flag in it: users its own splits or ramp placed (in its experiment).
    in_experiment: Vec<Vec<usize>>,
    /// Per layer: users in two or more of its experiments.
    in_two: Vec<usize>,
    /// Per holdout: users it held out of at least one flag.
    held: Vec<usize>,
}

/// Per layer: users in each flag's slots, and in no flag's.
struct Slots {
    in_range: Vec<Vec<usize>>,
    free: Vec<usize>,
}

/// Whether an evaluation placed the user by a draw of the flag itself: one of its splits
/// or its ramp (being in its experiment).
fn drawn(e: &Evaluation) -> bool {
    match e.reason {
        Reason::Split | Reason::Ramp { .. } => true,
        Reason::RuleMatch { .. } => e.bucket.is_some(),
        _ => false,
    }
}

/// Parses `--countries`.
fn country_mix(countries: Option<&str>) -> Result<Vec<(String, f64)>> {
    let Some(m) = countries else {
        return Ok(Vec::new());
    };
    m.split(',')
        .map(|part| {
            let (c, share) = part
                .split_once('=')
                .with_context(|| format!("--countries takes CODE=SHARE,..., got `{part}`"))?;
            let share: f64 = share
                .parse()
                .with_context(|| format!("bad share in `{part}`"))?;
            Ok((c.trim().to_ascii_uppercase(), share))
        })
        .collect()
}

/// Synthetic user `i` of `n`, placed in the country mix by position, at `now`.
fn user(i: usize, n: usize, mix: &[(String, f64)], now: DateTime<Utc>) -> (Context, Option<&str>) {
    use edgeflags_engine::{attributes, place};
    let mut ctx = Context::with_key(&format!("sim-user-{i}"));
    let total: f64 = mix.iter().map(|(_, s)| s).sum();
    let mut country = None;
    if total > 0.0 {
        let x = (i as f64 + 0.5) / n as f64 * total;
        let mut acc = 0.0;
        for (c, s) in mix {
            acc += s;
            if x < acc {
                country = Some(c.as_str());
                break;
            }
        }
    }
    if let Some(c) = country {
        ctx.set("country", c);
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
    (ctx, country)
}

/// Runs `simulate`.
pub fn simulate(a: SimulateArgs) -> Result<ExitCode> {
    let snap = snapshot(&a.file)?;
    let instants: Vec<DateTime<Utc>> = if a.at.is_empty() {
        vec![instant(None)?]
    } else {
        a.at.iter()
            .map(|t| instant(Some(t)))
            .collect::<Result<_>>()?
    };
    let mix = country_mix(a.countries.as_deref())?;
    let layers = explain::layers(&snap);
    let holdouts = explain::holdouts(&snap);
    let mut slots = Slots {
        in_range: layers.iter().map(|l| vec![0; l.flags.len()]).collect(),
        free: vec![0; layers.len()],
    };
    let mut tallies: Vec<Tally> = instants
        .iter()
        .map(|&at| Tally {
            at,
            counts: Counts::new(),
            in_experiment: layers.iter().map(|l| vec![0; l.flags.len()]).collect(),
            in_two: vec![0; layers.len()],
            held: vec![0; holdouts.len()],
        })
        .collect();
    let progress = a.users >= 50_000 && !a.json;
    let step = (a.users / 20).max(1);
    for i in 0..a.users {
        if progress && i % step == 0 {
            eprint!("\rsimulating: {:>3}%", i * 100 / a.users);
        }
        for (n, tally) in tallies.iter_mut().enumerate() {
            let (ctx, country) = user(i, a.users, &mix, tally.at);
            if n == 0 {
                count_slots(&snap, &layers, &ctx, tally.at, &mut slots);
            }
            tally.add(&snap, &layers, &holdouts, &ctx, country);
        }
    }
    if progress {
        eprintln!("\rsimulating: 100%");
    }
    let report = report(&snap, &layers, &holdouts, &slots, &tallies, a.users);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&snap, &layers, &holdouts, &slots, &tallies, a.users);
    }
    Ok(ExitCode::SUCCESS)
}

/// Counts which flag's slots of each layer the user is in (slots do not depend on time).
fn count_slots(
    snap: &Snapshot,
    layers: &[LayerView],
    ctx: &Context,
    now: DateTime<Utc>,
    slots: &mut Slots,
) {
    for (l, layer) in layers.iter().enumerate() {
        let mut inside = None;
        for (f, member) in layer.flags.iter().enumerate() {
            let standing = explain::standing(snap, member.flag, ctx, now).and_then(|s| s.layer);
            if standing.is_some_and(|s| s.inside) {
                inside = Some(f);
            }
        }
        match inside {
            Some(f) => slots.in_range[l][f] += 1,
            None => slots.free[l] += 1,
        }
    }
}

impl Tally {
    fn add(
        &mut self,
        snap: &Snapshot,
        layers: &[LayerView],
        holdouts: &[HoldoutView],
        ctx: &Context,
        country: Option<&str>,
    ) {
        let mut drawn_flags = Vec::new();
        let mut held = vec![false; holdouts.len()];
        for e in snap.evaluate_all(ctx, self.at) {
            let v = e.variant.unwrap_or("-").to_string();
            let per_flag = self.counts.entry(e.key.to_string()).or_default();
            *per_flag
                .entry("*".into())
                .or_default()
                .entry(v.clone())
                .or_default() += 1;
            if let Some(c) = country {
                *per_flag
                    .entry(c.to_string())
                    .or_default()
                    .entry(v)
                    .or_default() += 1;
            }
            if drawn(&e) {
                drawn_flags.push(e.key);
            }
            if let Reason::Holdout { id } = e.reason
                && let Some(h) = holdouts.iter().position(|h| h.name == id)
            {
                held[h] = true;
            }
        }
        for (l, layer) in layers.iter().enumerate() {
            let mut experiments = 0;
            for (f, member) in layer.flags.iter().enumerate() {
                if drawn_flags.contains(&member.flag) {
                    self.in_experiment[l][f] += 1;
                    experiments += 1;
                }
            }
            if experiments > 1 {
                self.in_two[l] += 1;
            }
        }
        for (h, was) in held.into_iter().enumerate() {
            self.held[h] += usize::from(was);
        }
    }
}

fn pct(n: usize, of: usize) -> f64 {
    n as f64 * 100.0 / of.max(1) as f64
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The live step of flag `key`'s ramp at `now`, as JSON (any user's: it does not depend
/// on the user).
fn ramp_at(snap: &Snapshot, key: &str, now: DateTime<Utc>) -> Option<Value> {
    let r = explain::standing(snap, key, &Context::new(), now)?.ramp?;
    Some(json!({"step": r.step, "steps": r.steps, "weight": r.weight, "variant": r.variant}))
}

/// The configured default split of a flag, in percent.
fn configured(snap: &Snapshot, key: &str) -> BTreeMap<String, f64> {
    snap.default_split(key)
        .map(|weights| {
            weights
                .into_iter()
                .map(|(v, w)| (v.to_string(), f64::from(w) / 1000.0))
                .collect()
        })
        .unwrap_or_default()
}

/// The whole report as JSON: one entry per flag (its counts at the first instant, and at
/// every instant under `over_time` when there are several), then `$layers` and
/// `$holdouts` (names no flag key can have) when the file has any.
fn report(
    snap: &Snapshot,
    layers: &[LayerView],
    holdouts: &[HoldoutView],
    slots: &Slots,
    tallies: &[Tally],
    users: usize,
) -> Value {
    let mut out = serde_json::Map::new();
    for key in snap.flag_keys() {
        let counts = |t: &Tally| t.counts.get(key).cloned().unwrap_or_default();
        let mut entry = json!({
            "configured_default_split": configured(snap, key),
            "counts": tallies.first().map(counts).unwrap_or_default(),
        });
        if let Some(r) = tallies.first().and_then(|t| ramp_at(snap, key, t.at)) {
            entry["ramp"] = r;
        }
        if tallies.len() > 1 {
            entry["over_time"] = tallies
                .iter()
                .map(|t| json!({"at": stamp(t.at), "counts": counts(t), "ramp": ramp_at(snap, key, t.at)}))
                .collect();
        }
        out.insert(key.to_string(), entry);
    }
    if !layers.is_empty() {
        let list: Vec<Value> = layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let flags: Vec<Value> = layer
                    .flags
                    .iter()
                    .enumerate()
                    .map(|(f, m)| {
                        json!({
                            "flag": m.flag,
                            "slots": m.range,
                            "configured": pct((m.range[1] - m.range[0]) as usize, layer.slots as usize),
                            "in_slots": slots.in_range[l][f],
                            "in_experiment": tallies.iter().map(|t| json!({"at": stamp(t.at), "users": t.in_experiment[l][f]})).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                json!({
                    "layer": layer.name,
                    "slots": layer.slots,
                    "users": users,
                    "flags": flags,
                    "free": slots.free[l],
                    "in_two_experiments": tallies.iter().map(|t| t.in_two[l]).max().unwrap_or(0),
                })
            })
            .collect();
        out.insert("$layers".into(), Value::Array(list));
    }
    if !holdouts.is_empty() {
        let list: Vec<Value> = holdouts
            .iter()
            .enumerate()
            .map(|(h, view)| {
                json!({
                    "holdout": view.name,
                    "weight": view.weight,
                    "flags": view.flags,
                    "held": tallies.iter().map(|t| json!({"at": stamp(t.at), "users": t.held[h]})).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.insert("$holdouts".into(), Value::Array(list));
    }
    Value::Object(out)
}

fn print_report(
    snap: &Snapshot,
    layers: &[LayerView],
    holdouts: &[HoldoutView],
    slots: &Slots,
    tallies: &[Tally],
    users: usize,
) {
    let several = tallies.len() > 1;
    for key in snap.flag_keys() {
        let configured = configured(snap, key);
        println!("{key}");
        let place = layers.iter().find_map(|l| {
            let m = l.flags.iter().find(|m| m.flag == key)?;
            Some((l.name, m.range))
        });
        if let Some((layer, [from, to])) = place {
            println!(
                "  in layer {layer}, slots [{from}, {to}): its splits and ramp place only the users in them"
            );
        }
        for t in tallies {
            let indent = if several { "    " } else { "  " };
            let ramp = ramp_at(snap, key, t.at).map(|r| {
                let variant = r["variant"].as_str().unwrap_or("");
                match r["step"].as_u64() {
                    Some(s) => format!(
                        "ramp to `{variant}`: step #{s} of {} live, {}%",
                        r["steps"],
                        r["weight"].as_f64().unwrap_or(0.0)
                    ),
                    None => format!("ramp to `{variant}`: not started"),
                }
            });
            match (several, ramp) {
                (true, Some(r)) => println!("  at {}  {r}", stamp(t.at)),
                (true, None) => println!("  at {}", stamp(t.at)),
                (false, Some(r)) => println!("  {r}"),
                (false, None) => {}
            }
            let per = t.counts.get(key).cloned().unwrap_or_default();
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
                        let share = pct(*c, n);
                        match (scope.as_str(), configured.get(v)) {
                            ("*", Some(w)) => format!("{v} {share:.2}% (split {w}%)"),
                            _ => format!("{v} {share:.2}%"),
                        }
                    })
                    .collect();
                println!("{indent}{label:<14} {n:>8} users: {}", parts.join(", "));
            }
        }
    }
    for (l, layer) in layers.iter().enumerate() {
        println!();
        println!("layer {} ({} slots)", layer.name, layer.slots);
        for (f, m) in layer.flags.iter().enumerate() {
            let configured = pct((m.range[1] - m.range[0]) as usize, layer.slots as usize);
            let experiment: Vec<String> = tallies
                .iter()
                .map(|t| format!("{:.2}%", pct(t.in_experiment[l][f], users)))
                .collect();
            let range = format!("slots [{}, {})", m.range[0], m.range[1]);
            println!(
                "  {:<24} {range:<16} {:>6.2}% of users in its slots (configured {configured}%), {} in its experiment",
                m.flag,
                pct(slots.in_range[l][f], users),
                experiment.join(" / ")
            );
        }
        println!(
            "  {:<24} {:<16} {:>6.2}% of users in no flag's slots",
            "(free)",
            "",
            pct(slots.free[l], users)
        );
        let two = tallies.iter().map(|t| t.in_two[l]).max().unwrap_or(0);
        println!("  users in two or more of its experiments: {two}");
    }
    for (h, view) in holdouts.iter().enumerate() {
        let held: Vec<String> = tallies
            .iter()
            .map(|t| format!("{:.2}%", pct(t.held[h], users)))
            .collect();
        println!();
        println!(
            "holdout {} ({}%): {} of users held out of {}",
            view.name,
            view.weight,
            held.join(" / "),
            view.flags.join(", ")
        );
    }
}
