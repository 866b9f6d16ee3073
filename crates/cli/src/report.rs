//! `edgeflags report`: an exposure/conversion log (JSON lines from the `edgeflags_events`
//! endpoint) summarised per flag and variant: users exposed, users converted, conversion
//! rate with a 95% interval, the difference against the control, and a chart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::input::read;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
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

/// Runs `report`.
pub fn report(a: ReportArgs) -> Result<ExitCode> {
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
