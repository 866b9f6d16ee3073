//! Explanations: every flag's decision for a context, with its reason (the engine's and
//! OpenFeature's), the rule that matched, the bucket and the prerequisite, and how the
//! context's time zone was chosen, as JSON. The edge's explain endpoint and
//! `edgeflags explain --json` print the same document.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

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
    let flags: Vec<Value> = evals.iter().map(evaluation_json).collect();
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
