//! `edgeflags guard`: a rollout that guards itself. It reads the events logs (as `report`
//! reads them: `report::guardrail`), compares each variant of each flag under rollout
//! with the flag's `off_variant` on the origin error rate (users with an origin error
//! among the users exposed) and, optionally, a conversion rate, with the engine's mixture
//! SPRT at one look; when a variant is worse with sequential significance, it pushes a
//! version of the live flag file in which that flag is off (it serves its `off_variant`
//! to everyone), through the one publish path of `live` (two slots, pointer, history
//! with the reason). Built on `live` and `report`, never the reverse.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use edgeflags_engine::history::{Action, without_history};
use edgeflags_engine::pack;
use edgeflags_engine::sequential::{Arm, Monitor, Verdict};
use serde_json::Value;

use crate::keys::key_of;
use crate::live::changes::{flag_diff, live};
use crate::live::publish::{About, publish, recorded_note};
use crate::live::{StoreArgs, Target};
use crate::report::guardrail::{self, Users};

/// The exit code when a variant was found worse and its flag turned off (or, with
/// `--dry-run`, would be).
const HARM: u8 = 1;

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// The event files, as `report` takes them: JSON lines (with or without a prefix such
    /// as `edgeflags_events :: `, `.gz` too) or Parquet, as paths or quoted globs. A file
    /// that grows is read whole again on each run.
    #[arg(required = true)]
    file: Vec<PathBuf>,
    /// Only this flag (default: every flag of the live flag file that is on and has a
    /// split or a ramp).
    #[arg(long)]
    flag: Option<String>,
    /// Also guard this conversion event: a variant that converts significantly less than
    /// the control is harm too.
    #[arg(long)]
    event: Option<String>,
    /// The level of the sequential test: a variant is worse when its always-valid p-value
    /// is at or under it and its interval lies on the worse side.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// The mixing scale of the test: the standard deviation of the normal mixture over
    /// the difference of rates, about the size of harm to catch soonest (0.05 is five
    /// points: a variant whose every request fails is caught at about 9 users a side, one
    /// failing 20% at about 65; a one-point harm takes thousands).
    #[arg(long, default_value_t = 0.05)]
    tau: f64,
    /// A local store file (as `pack --store` writes and Viceroy reads) instead of the
    /// live store named by --env or --store-id.
    #[arg(long, value_name = "STORE_FILE")]
    local: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print what it finds and would push; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Who, for the history.
    #[arg(long, default_value = "edgeflags guard")]
    author: String,
    /// DuckDB's memory limit while reading the logs.
    #[arg(long, default_value = "1.5GB", value_name = "SIZE")]
    memory_limit: String,
}

/// One variant found worse than its flag's control.
struct Harm {
    flag: String,
    why: String,
}

/// Runs `guard`: exits 0 when it finds no harm (nothing is written), 1 when it turned a
/// flag off (or would, with `--dry-run`), 2 on an error.
pub fn guard(a: GuardArgs) -> Result<ExitCode> {
    if !(a.alpha > 0.0 && a.alpha < 1.0) {
        bail!("--alpha must be between 0 and 1 (got {})", a.alpha);
    }
    if !(a.tau > 0.0 && a.tau.is_finite()) {
        bail!("--tau must be a positive number (got {})", a.tau);
    }
    let target = match &a.local {
        Some(path) => Target::local(path)?,
        None => a.store.target()?,
    };
    let key = key_of(a.store.key_file())?;
    eprintln!("edgeflags: reading {}", target.label);
    let items = target.store.items()?;
    let Some((version, file)) = live(&items, key.as_deref())? else {
        bail!("{} has no snapshot: nothing to guard", target.label);
    };
    let guarded = guarded_flags(&file, a.flag.as_deref())?;
    if guarded.is_empty() {
        println!(
            "version {version}: no flag is on with a split or a ramp; nothing to guard, nothing done"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let counts = guardrail::counts(
        &a.file,
        a.flag.as_deref(),
        a.event.as_deref(),
        &a.memory_limit,
    )?;
    println!(
        "{} events read, {} origin errors; live version {version}; alpha {}, tau {}",
        counts.lines, counts.error_events, a.alpha, a.tau
    );
    let test = Test {
        alpha: a.alpha,
        tau: a.tau,
    };
    let mut harms = Vec::new();
    for (flag, control) in &guarded {
        println!("{flag} (control: its off_variant {control})");
        let empty = BTreeMap::new();
        let errors = counts.errors.get(flag).unwrap_or(&empty);
        harms.extend(test.compare(flag, control, errors, "origin errors", Worse::Higher));
        if let (Some(event), Some(conversions)) = (&a.event, &counts.conversions) {
            let converted = conversions.get(flag).unwrap_or(&empty);
            let metric = format!("`{event}` conversions");
            harms.extend(test.compare(flag, control, converted, &metric, Worse::Lower));
        }
    }
    if harms.is_empty() {
        println!("no variant is worse than its control: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    let mut next = file.clone();
    let mut reasons = Vec::new();
    for h in &harms {
        if let Some(f) = next["flags"].get_mut(&h.flag)
            && let Some(o) = f.as_object_mut()
        {
            o.insert("on".into(), Value::Bool(false));
        }
        reasons.push(h.why.clone());
    }
    let message = format!("guard: {}", reasons.join("; "));
    let changes = flag_diff(&file, &next);
    let text = serde_json::to_string_pretty(&next)?;
    let (payload, new_version) = edgeflags_engine::payload::of_file(&text)
        .map_err(|e| anyhow::anyhow!("the live flag file with the flag off: {e}"))?;
    let packed = pack::pack(
        &payload,
        &new_version,
        &without_history(&items),
        key.as_deref(),
    )?;
    let slot = packed.slot.map(|s| s.name()).unwrap_or("?");
    for c in &changes {
        println!("  {c}");
    }
    if a.dry_run {
        println!(
            "dry run: would push version {new_version} to slot {slot} of {} ({message}); nothing written",
            target.label
        );
        return Ok(ExitCode::from(HARM));
    }
    let about = About {
        action: Action::Push,
        message: message.clone(),
        author: Some(a.author.clone()),
        commit: None,
        changes,
    };
    let recorded = publish(&target, &items, packed, about)?;
    println!(
        "pushed version {new_version} to slot {slot} of {}; the edge serves it on the next request ({}): {message}",
        target.label,
        recorded_note(&recorded)
    );
    Ok(ExitCode::from(HARM))
}

/// The flags to guard, each with its control (its `off_variant`): `only` (which must be
/// in the file and on), else every flag that is on and has a split (in its default or a
/// rule) or a ramp.
fn guarded_flags(file: &Value, only: Option<&str>) -> Result<Vec<(String, String)>> {
    let Some(flags) = file["flags"].as_object() else {
        bail!("the live flag file has no flags");
    };
    let on = |f: &Value| f["on"].as_bool() != Some(false);
    let control = |f: &Value| f["off_variant"].as_str().map(str::to_string);
    if let Some(name) = only {
        let Some(f) = flags.get(name) else {
            bail!("the live flag file has no flag `{name}`");
        };
        return Ok(match (on(f), control(f)) {
            (true, Some(c)) => vec![(name.to_string(), c)],
            _ => Vec::new(),
        });
    }
    let splits = |f: &Value| {
        f["default"].get("split").is_some()
            || f["rules"]
                .as_array()
                .is_some_and(|rules| rules.iter().any(|r| r["serve"].get("split").is_some()))
    };
    Ok(flags
        .iter()
        .filter(|(_, f)| on(f) && (splits(f) || f.get("ramp").is_some()))
        .filter_map(|(name, f)| Some((name.clone(), control(f)?)))
        .collect())
}

/// Which way a metric goes when a variant does harm.
#[derive(Clone, Copy)]
enum Worse {
    /// More is worse (origin errors).
    Higher,
    /// Less is worse (conversions).
    Lower,
}

/// The sequential test's parameters.
struct Test {
    alpha: f64,
    tau: f64,
}

impl Test {
    /// Compares every variant of `flag` with `control` on one metric, printing a line each;
    /// returns the variants found worse.
    fn compare(
        &self,
        flag: &str,
        control: &str,
        users: &BTreeMap<String, Users>,
        metric: &str,
        worse: Worse,
    ) -> Vec<Harm> {
        let arm = |u: Users| Arm {
            users: u.exposed as u64,
            conversions: u.counted as u64,
        };
        let pct = |u: Users| 100.0 * u.counted as f64 / u.exposed.max(1) as f64;
        let Some(&c) = users.get(control) else {
            println!("  {metric}: no user of the control {control} in the logs yet");
            return Vec::new();
        };
        let mut harms = Vec::new();
        for (variant, &v) in users.iter().filter(|(name, _)| *name != control) {
            let figures = format!(
                "{variant} {} of {} ({:.1}%), {control} {} of {} ({:.1}%)",
                v.counted,
                v.exposed,
                pct(v),
                c.counted,
                c.exposed,
                pct(c)
            );
            let Ok(mut m) = Monitor::new(self.alpha, self.tau) else {
                continue;
            };
            if m.look_adjusted(arm(c), arm(v)).is_none() {
                println!("  {metric}: {figures}: not enough users to compare");
                continue;
            }
            let (lo, hi) = m.interval();
            let p = m.p_value();
            let harmful = matches!(
                (m.verdict(), worse),
                (Verdict::TreatmentBetter, Worse::Higher) | (Verdict::TreatmentWorse, Worse::Lower)
            );
            let verdict = if harmful { "WORSE" } else { "no harm shown" };
            println!(
                "  {metric}: {figures}; always-valid p = {p:.3e}, difference [{:+.2}, {:+.2}] pts: {verdict}",
                lo.max(-1.0) * 100.0,
                hi.min(1.0) * 100.0
            );
            if harmful {
                harms.push(Harm {
                    flag: flag.to_string(),
                    why: format!(
                        "`{flag}` off (serves {control}): {metric} {figures}, always-valid p = {p:.3e} <= {} (mSPRT, tau {})",
                        self.alpha, self.tau
                    ),
                });
            }
        }
        harms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_on_with_a_split_or_a_ramp_are_guarded_against_their_off_variant() {
        let file = serde_json::json!({"flags": {
            "split": {"off_variant": "a", "default": {"split": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}},
            "rule-split": {"off_variant": "a", "default": "a", "rules": [{"id": "r", "clauses": [], "serve": {"split": []}}]},
            "ramp": {"off_variant": "off", "default": "off", "ramp": {"variant": "on"}},
            "plain": {"off_variant": "a", "default": "b"},
            "off": {"on": false, "off_variant": "a", "default": {"split": []}}
        }});
        let got = guarded_flags(&file, None).unwrap_or_default();
        let names: Vec<(&str, &str)> = got.iter().map(|(f, c)| (f.as_str(), c.as_str())).collect();
        assert_eq!(
            names,
            [("ramp", "off"), ("rule-split", "a"), ("split", "a")]
        );
        assert_eq!(
            guarded_flags(&file, Some("plain")).unwrap_or_default(),
            [("plain".to_string(), "a".to_string())]
        );
        assert!(
            guarded_flags(&file, Some("off"))
                .unwrap_or_default()
                .is_empty()
        );
        assert!(guarded_flags(&file, Some("missing")).is_err());
    }

    fn users(exposed: usize, counted: usize) -> Users {
        Users { exposed, counted }
    }

    #[test]
    fn a_variant_is_harm_only_when_worse_with_sequential_significance() {
        let t = Test {
            alpha: 0.05,
            tau: 0.05,
        };
        let of = |v1: Users, v2: Users| BTreeMap::from([("v1".into(), v1), ("v2".into(), v2)]);
        // Every v2 user failing, no v1 user: worse on errors, not on conversions.
        let failing = of(users(50, 0), users(50, 50));
        let h = t.compare("f", "v1", &failing, "origin errors", Worse::Higher);
        assert_eq!(h.len(), 1);
        assert!(
            h[0].why
                .starts_with("`f` off (serves v1): origin errors v2 50 of 50 (100.0%), v1 0 of 50 (0.0%), always-valid p = "),
            "{}",
            h[0].why
        );
        assert!(t.compare("f", "v1", &failing, "c", Worse::Lower).is_empty());
        // Healthy, and a small difference on few users: no harm shown.
        assert!(
            t.compare(
                "f",
                "v1",
                &of(users(50, 0), users(50, 0)),
                "e",
                Worse::Higher
            )
            .is_empty()
        );
        assert!(
            t.compare(
                "f",
                "v1",
                &of(users(50, 1), users(50, 3)),
                "e",
                Worse::Higher
            )
            .is_empty()
        );
        // Converting far less, on many users: harm on a conversion metric.
        let fewer = of(users(20_000, 2_000), users(20_000, 1_700));
        assert_eq!(t.compare("f", "v1", &fewer, "c", Worse::Lower).len(), 1);
        // No control in the logs: nothing to compare with.
        let alone = BTreeMap::from([("v2".to_string(), users(50, 50))]);
        assert!(t.compare("f", "v1", &alone, "e", Worse::Higher).is_empty());
    }
}
