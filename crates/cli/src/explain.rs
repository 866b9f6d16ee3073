//! `edgeflags explain`: what a user gets for every flag, and why, as a table or as the
//! document the edge's explain endpoint returns.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use edgeflags_engine::explain::{Standing, standing};

use crate::flagfile::snapshot;
use crate::input::{instant, parse_utc_offset, typed};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The flag file.
    file: PathBuf,
    /// The user key.
    #[arg(long)]
    user: Option<String>,
    /// Country code; the continent and (with the rest of the place) the time zone follow
    /// from it.
    #[arg(long)]
    country: Option<String>,
    /// Region code.
    #[arg(long)]
    region: Option<String>,
    /// City.
    #[arg(long)]
    city: Option<String>,
    /// Latitude in degrees, as geolocation gives it.
    #[arg(long, allow_negative_numbers = true)]
    latitude: Option<f64>,
    /// Longitude in degrees, as geolocation gives it.
    #[arg(long, allow_negative_numbers = true)]
    longitude: Option<f64>,
    /// The UTC offset geolocation gives: ±HHMM as Fastly reports it (1030, -300) or ±HH:MM.
    #[arg(long, allow_negative_numbers = true, allow_hyphen_values = true)]
    utc_offset: Option<String>,
    /// Time zone (IANA name or ±HH:MM); otherwise resolved from the place as the edge
    /// does (country, region, city, coordinates, UTC offset).
    #[arg(long, allow_hyphen_values = true)]
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

/// What explain says of a flag's layer, holdouts and ramp for the user, a line each.
fn allocation_lines(s: &Standing) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(l) = &s.layer {
        let [from, to] = l.range;
        lines.push(match l.slot {
            Some(slot) if l.inside => format!(
                "layer {}: slot {slot} of {}, in the flag's slots [{from}, {to})",
                l.name, l.slots
            ),
            Some(slot) => format!(
                "layer {}: slot {slot} of {}, not in the flag's slots [{from}, {to}): its splits and ramp pass this user by",
                l.name, l.slots
            ),
            None => format!(
                "layer {}: no slot (no bucketing value): its splits and ramp pass this user by",
                l.name
            ),
        });
    }
    for h in &s.holdouts {
        let status = match h.bucket {
            Some(b) if h.held_out => format!("bucket {b}, held out"),
            Some(b) => format!("bucket {b}, not held out"),
            None => "no bucketing value, not held out".to_string(),
        };
        lines.push(format!("holdout {} ({}%): {status}", h.name, h.weight));
    }
    if let Some(r) = &s.ramp {
        let live = match (r.step, &r.since) {
            (Some(step), Some(since)) => format!(
                "step #{step} of {} live since {since}, {}%",
                r.steps, r.weight
            ),
            _ => "not started".to_string(),
        };
        let next = match &r.next {
            Some(n) => format!(" (next {}% at {})", n.weight, n.at),
            None => " (the last step)".to_string(),
        };
        let user = match r.bucket {
            Some(b) if r.inside => format!("bucket {b}, in"),
            Some(b) => format!("bucket {b}, not in"),
            None => "no bucketing value, not in".to_string(),
        };
        lines.push(format!("ramp to `{}`: {live}{next}; {user}", r.variant));
    }
    lines
}

/// Runs `explain`.
pub fn explain(a: ExplainArgs) -> Result<ExitCode> {
    use edgeflags_engine::{Context, Zone, attributes, place};
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
    let mut fallback = None;
    match &a.zone {
        Some(z) => {
            ctx.set_zone(Zone::parse(z).with_context(|| format!("unknown time zone `{z}`"))?);
        }
        None => {
            let utc_offset = a.utc_offset.as_deref().map(parse_utc_offset).transpose()?;
            let record = place::Record {
                country: country.as_deref(),
                region: region.as_deref(),
                city: a.city.as_deref(),
                latitude: a.latitude,
                longitude: a.longitude,
                utc_offset,
            };
            if let Some(r) = place::resolve(&record, now) {
                ctx.set_resolved_zone(&r);
                fallback = r.fallback;
            }
        }
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
    if let (Some(z), Some(source)) = (ctx.zone(), ctx.zone_source()) {
        match fallback {
            Some(why) => println!("zone     {}  chosen by: {source} ({why})", z.name()),
            None => println!("zone     {}  chosen by: {source}", z.name()),
        }
    }
    println!();
    println!("{:<24} {:<16} {:<20} why", "flag", "variant", "value");
    for f in doc["flags"].as_array().into_iter().flatten() {
        let mut why = f["reason"].as_str().unwrap_or("").to_string();
        if let Some(h) = f["holdout"].as_str() {
            why.push_str(&format!(" `{h}`"));
        }
        if let Some(step) = f["ramp_step"].as_u64() {
            why.push_str(&format!(" step #{step}"));
        }
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
    let standings: Vec<(&str, Standing)> = snap
        .flag_keys()
        .filter_map(|k| Some((k, standing(&snap, k, &ctx, now)?)))
        .collect();
    if !standings.is_empty() {
        println!();
        println!("allocation");
        for (key, s) in &standings {
            for line in allocation_lines(s) {
                println!("  {key:<22} {line}");
            }
        }
    }
    let route = &doc["route"];
    println!();
    println!(
        "route    {} -> backend {} {}",
        route["id"].as_str().unwrap_or(""),
        route["backend"].as_str().unwrap_or(""),
        route["path_prefix"].as_str().unwrap_or("")
    );
    // The page changes the edge makes for these decisions, and redirect tests.
    for c in doc["edge"]["changes"].as_array().into_iter().flatten() {
        let value = match &c["value"] {
            serde_json::Value::Null => String::new(),
            v => format!(" {v}"),
        };
        println!(
            "change   {}={}: {} `{}`{value}",
            c["flag"].as_str().unwrap_or(""),
            c["variant"].as_str().unwrap_or(""),
            c["action"].as_str().unwrap_or(""),
            c["selector"].as_str().unwrap_or(""),
        );
    }
    for r in doc["edge"]["redirects"].as_array().into_iter().flatten() {
        println!(
            "redirect {}={}: {} -> {} ({})",
            r["flag"].as_str().unwrap_or(""),
            r["variant"].as_str().unwrap_or(""),
            r["from"].as_str().unwrap_or(""),
            r["to"].as_str().unwrap_or(""),
            r["status"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
