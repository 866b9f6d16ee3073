//! Explanations: every flag's decision for a context, with its reason (the engine's and
//! OpenFeature's), the rule that matched, the bucket and the prerequisite, where the user
//! stands in the flag's layer, holdouts and ramp, and how the context's time zone was
//! chosen, as JSON. The edge's explain endpoint and `edgeflags explain --json` print the
//! same document; `edgeflags simulate` lists the layers and holdouts from here too.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::bucket::BUCKETS;
use crate::{Context, Evaluation, Reason, Snapshot};

/// One evaluation as JSON.
pub fn evaluation_json(e: &Evaluation) -> Value {
    let mut o = Map::new();
    o.insert("key".into(), json!(e.key));
    o.insert("value".into(), e.value.cloned().unwrap_or(Value::Null));
    o.insert("variant".into(), json!(e.variant));
    o.insert("reason".into(), json!(e.reason.kind()));
    o.insert("openfeature_reason".into(), json!(e.reason.openfeature()));
    match e.reason {
        Reason::RuleMatch { index, id } => {
            o.insert("rule_id".into(), json!(id));
            o.insert("rule_index".into(), json!(index));
        }
        Reason::PrerequisiteFailed { flag } => {
            o.insert("prerequisite".into(), json!(flag));
        }
        Reason::Off { scheduled: true } => {
            o.insert("scheduled".into(), json!(true));
        }
        Reason::Error(code) => {
            o.insert("error".into(), json!(code.as_str()));
        }
        Reason::Holdout { id } => {
            o.insert("holdout".into(), json!(id));
        }
        Reason::Ramp { step } => {
            o.insert("ramp_step".into(), json!(step));
        }
        _ => {}
    }
    if let Some(b) = e.bucket {
        o.insert("bucket".into(), json!(b));
    }
    Value::Object(o)
}

/// The context's attributes as a JSON object.
pub fn context_json(ctx: &Context) -> Value {
    Value::Object(
        ctx.attributes()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect(),
    )
}

/// Every flag's decision for `ctx` at `now`, and the route, as one JSON document.
pub fn explain(snapshot: &Snapshot, ctx: &Context, now: DateTime<Utc>) -> Value {
    let evals: Vec<_> = snapshot.evaluate_all(ctx, now).collect();
    let flags: Vec<Value> = evals
        .iter()
        .map(|e| {
            let mut o = evaluation_json(e);
            if let Some(s) = standing(snapshot, e.key, ctx, now)
                && let Ok(v) = serde_json::to_value(s)
            {
                o["allocation"] = v;
            }
            o
        })
        .collect();
    let plan = crate::page::plan(snapshot, ctx, &evals, None);
    let route = snapshot.route(ctx, now);
    json!({
        "snapshot": snapshot.fingerprint(),
        "now": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "context": context_json(ctx),
        "timezone_source": ctx.zone_source().map(|s| s.as_str()),
        "flags": flags,
        "edge": {
            "changes": crate::page::changes_json(&plan),
            "redirects": crate::page::redirects_json(snapshot, &evals),
            "bootstrap": snapshot.edits().bootstrap,
        },
        "route": {
            "id": route.id,
            "backend": route.backend,
            "path_prefix": route.path_prefix,
            "host": route.host,
        },
    })
}

/// A share in buckets as a percentage.
fn percent(units: u32) -> f64 {
    f64::from(units) * 100.0 / f64::from(BUCKETS)
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where a user stands in one flag's layer, holdouts and ramp at an instant: the
/// `allocation` of a flag in the explain document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing<'s> {
    /// The flag's place in its layer, when it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerStanding<'s>>,
    /// Every holdout that covers the flag, in the order the flag names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holdouts: Vec<HoldoutStanding<'s>>,
    /// The flag's ramp, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampStanding<'s>>,
}

/// The user and a flag's slots in its layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerStanding<'s> {
    /// The layer.
    pub name: &'s str,
    /// How many slots the layer has.
    pub slots: u32,
    /// The flag's slots: from the first up to but not including the second.
    pub range: [u32; 2],
    /// The user's slot; `None` when they lack the layer's bucketing attribute.
    pub slot: Option<u32>,
    /// Whether the user's slot is the flag's: only then do its splits and ramp place them.
    pub inside: bool,
}

/// The user and one holdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldoutStanding<'s> {
    /// The holdout.
    pub name: &'s str,
    /// The percentage of users it holds out.
    pub weight: f64,
    /// The user's bucket under its salt; `None` when they lack its bucketing attribute.
    pub bucket: Option<u32>,
    /// Whether it holds the user out (their bucket is under the weight).
    pub held_out: bool,
}

/// The user and a flag's ramp at an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RampStanding<'s> {
    /// The variant the ramp rolls out.
    pub variant: &'s str,
    /// The live step (from 0); `None` before the first step.
    pub step: Option<usize>,
    /// The number of steps.
    pub steps: usize,
    /// The live weight, a percentage (0 before the first step).
    pub weight: f64,
    /// When the live step began.
    pub since: Option<String>,
    /// The next step; `None` after the last.
    pub next: Option<RampStep>,
    /// The user's bucket under the ramp's salt; `None` when they lack its attribute.
    pub bucket: Option<u32>,
    /// Whether the user's bucket is under the live weight.
    pub inside: bool,
}

/// A step of a ramp: when it begins and its weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RampStep {
    /// The instant it begins (RFC 3339).
    pub at: String,
    /// Its weight, a percentage.
    pub weight: f64,
}

/// Where the user stands in flag `key`'s layer, holdouts and ramp at `now`; `None` when
/// the flag has none of them (or does not exist).
pub fn standing<'s>(
    snapshot: &'s Snapshot,
    key: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Option<Standing<'s>> {
    let f = snapshot.flag(key)?;
    let a = f.allocation()?;
    let layer = a.layer.and_then(|m| {
        let l = snapshot.layers.get(m.layer)?;
        let slot = l.slot(ctx);
        Some(LayerStanding {
            name: &l.name,
            slots: l.slots,
            range: [m.from, m.to],
            slot,
            inside: slot.is_some_and(|s| m.holds(s)),
        })
    });
    let holdouts = a
        .holdouts
        .iter()
        .filter_map(|&h| snapshot.holdouts.get(h))
        .map(|h| {
            let bucket = h.bucket(ctx);
            HoldoutStanding {
                name: &h.name,
                weight: percent(h.units),
                bucket,
                held_out: bucket.is_some_and(|b| b < h.units),
            }
        })
        .collect();
    let ramp = a.ramp.as_ref().map(|r| {
        let step = r.live(now);
        let live = step.and_then(|i| r.steps.get(i));
        let units = live.map_or(0, |s| s.units);
        let next = r.steps.get(step.map_or(0, |i| i + 1));
        let bucket = r.bucket(ctx);
        RampStanding {
            variant: f
                .variants
                .of(&snapshot.arena.variants)
                .get(r.variant)
                .map_or("", |v| &*v.name),
            step,
            steps: r.steps.len(),
            weight: percent(units),
            since: live.map(|s| instant(s.at)),
            next: next.map(|s| RampStep {
                at: instant(s.at),
                weight: percent(s.units),
            }),
            bucket,
            inside: bucket.is_some_and(|b| b < units),
        }
    });
    Some(Standing {
        layer,
        holdouts,
        ramp,
    })
}

/// A layer and the flags in it, as `edgeflags simulate` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerView<'s> {
    /// The layer.
    pub name: &'s str,
    /// How many slots it has.
    pub slots: u32,
    /// Each flag in it, in slot order.
    pub flags: Vec<LayerFlag<'s>>,
}

/// A flag's slots in its layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerFlag<'s> {
    /// The flag's key.
    pub flag: &'s str,
    /// Its slots: from the first up to but not including the second.
    pub range: [u32; 2],
}

/// A holdout and the flags it covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldoutView<'s> {
    /// The holdout.
    pub name: &'s str,
    /// The percentage of users it holds out.
    pub weight: f64,
    /// The flags it covers, by key.
    pub flags: Vec<&'s str>,
}

/// The snapshot's layers, each with its flags by slot range.
pub fn layers(snapshot: &Snapshot) -> Vec<LayerView<'_>> {
    let mut out: Vec<LayerView> = snapshot
        .layers
        .iter()
        .map(|l| LayerView {
            name: &l.name,
            slots: l.slots,
            flags: Vec::new(),
        })
        .collect();
    for f in &snapshot.flags {
        if let Some(m) = f.allocation().and_then(|a| a.layer)
            && let Some(view) = out.get_mut(m.layer)
        {
            view.flags.push(LayerFlag {
                flag: &f.key,
                range: [m.from, m.to],
            });
        }
    }
    for view in &mut out {
        view.flags.sort_by_key(|f| f.range);
    }
    out
}

/// The snapshot's holdouts, each with the flags it covers.
pub fn holdouts(snapshot: &Snapshot) -> Vec<HoldoutView<'_>> {
    let mut out: Vec<HoldoutView> = snapshot
        .holdouts
        .iter()
        .map(|h| HoldoutView {
            name: &h.name,
            weight: percent(h.units),
            flags: Vec::new(),
        })
        .collect();
    for f in &snapshot.flags {
        for &h in f.allocation().map_or(&[][..], |a| &a.holdouts) {
            if let Some(view) = out.get_mut(h) {
                view.flags.push(&f.key);
            }
        }
    }
    out
}
