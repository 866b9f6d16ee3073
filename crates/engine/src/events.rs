//! Exposure, conversion and origin error events: one typed, versioned record for all, which the edge
//! writes as a JSON line to its events log endpoint and analysis reads back as a table
//! row (DuckDB here, BigQuery or ClickHouse at scale; the columns are [`COLUMNS`],
//! documented in `docs/events.md`).
//!
//! A warehouse table has one fixed schema, so the record is flat: the fields of the other
//! kind are absent (NULL), and a conversion's variants are a list of `{flag, variant}`
//! rather than an object keyed by flag. An exposure carries the split behind it (the
//! weights of the rule or default that bucketed the user), so a sample-ratio check needs
//! nothing but the log. Version 1 is the record the edge wrote before the version field
//! existed: no `schema_version`, no `rule` or `split`, and `variants` an object; it still
//! deserialises. Version 3 adds the origin error event (`kind` `error`, with `error` and
//! `status`), which carries the request's variants as a conversion does, so a guard can
//! compare variants on their origin error rate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::bucket::{BUCKETS, bucket_of};
use crate::context::{AttrValue, Context};
use crate::eval::{Evaluation, Reason};
use crate::model::{Serve, Snapshot};

/// The version of the record this engine writes.
pub const SCHEMA_VERSION: u32 = 3;

/// What happened: a user was served a variant, did what the experiment measures, or got
/// an origin failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A flag was evaluated for a sampled user.
    Exposure,
    /// The user converted (`POST /.edgeflags/track`).
    Conversion,
    /// The origin of a page request failed: it answered 5xx, could not be reached or did
    /// not answer in time (version 3).
    Error,
}

/// How an origin failed a page request, for an [`Kind::Error`] event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// It answered with this 5xx status.
    Status(u16),
    /// It could not be reached (refused, reset, no route).
    Unreachable,
    /// It did not answer in time.
    Timeout,
}

impl OriginFailure {
    /// The `error` column's value: `status`, `unreachable` or `timeout`.
    pub fn name(self) -> &'static str {
        match self {
            OriginFailure::Status(_) => "status",
            OriginFailure::Unreachable => "unreachable",
            OriginFailure::Timeout => "timeout",
        }
    }

    /// The status the origin answered, for `status`.
    pub fn status(self) -> Option<u16> {
        match self {
            OriginFailure::Status(s) => Some(s),
            OriginFailure::Unreachable | OriginFailure::Timeout => None,
        }
    }
}

/// One variant's share of a split, in buckets out of [`BUCKETS`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Weight {
    /// The variant.
    pub variant: String,
    /// Its buckets (the weights of a split add up to [`BUCKETS`]).
    pub weight: u32,
}

/// A variant a conversion's user is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// The flag.
    pub flag: String,
    /// Its variant for the user.
    pub variant: String,
}

/// One event: an exposure, a conversion or an origin error. Fields of the other kinds are
/// `None` or empty and are left out of the JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// [`SCHEMA_VERSION`] when written by this engine; 1 for lines without it.
    #[serde(default = "version_1")]
    pub schema_version: u32,
    /// Exposure, conversion or error.
    pub kind: Kind,
    /// When, in milliseconds since the Unix epoch (the request's clock).
    #[serde(default)]
    pub ts: Option<i64>,
    /// The flag evaluated (exposures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// The variant served (exposures); `None` when evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Why, as [`Reason::kind`] (exposures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The id of the rule that decided (exposures decided by a rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The split that bucketed the user, every variant's weight (exposures decided by a
    /// split); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<Weight>,
    /// The conversion's name, such as `purchase` (conversions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The conversion's value, such as an amount (conversions, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The variants the user is served, of every flag with exposure logging (conversions
    /// and errors).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "served_list"
    )]
    pub variants: Vec<Served>,
    /// The snapshot version that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The user, as a keyed hash (never the raw key); `None` without a hash key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's country (ISO 3166-1 alpha-2), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The device class, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// How the origin failed: `status`, `unreachable` or `timeout` (errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The status the origin answered, for `error` `status` (errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

fn version_1() -> u32 {
    1
}

/// A conversion's variants: a list of `{flag, variant}` (version 2), or an object keyed
/// by flag (version 1). Entries that are not strings are passed over.
fn served_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Served>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<Served>),
        Object(std::collections::BTreeMap<String, serde_json::Value>),
        Null(()),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Object(map) => map
            .into_iter()
            .filter_map(|(flag, v)| {
                v.as_str().map(|variant| Served {
                    flag,
                    variant: variant.to_string(),
                })
            })
            .collect(),
        Either::Null(()) => Vec::new(),
    })
}

/// Who and where, the same for every event of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The request's instant, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The snapshot version in use.
    pub snapshot: &'a str,
    /// The keyed hash of the user, if there is a hash key.
    pub user: Option<&'a str>,
    /// The user's country.
    pub country: Option<&'a str>,
    /// The user's device class.
    pub device: Option<&'a str>,
}

impl<'a> Origin<'a> {
    /// The origin of a request's events: its clock, the snapshot version in use, the
    /// user's keyed hash, and the context's `country` and `device` when they are text.
    pub fn of(
        ctx: &'a Context,
        now: DateTime<Utc>,
        snapshot: &'a str,
        user: Option<&'a str>,
    ) -> Origin<'a> {
        let text = |name| match ctx.get(name) {
            Some(AttrValue::Str(s)) => Some(s.as_str()),
            _ => None,
        };
        Origin {
            ts: now.timestamp_millis(),
            snapshot,
            user,
            country: text("country"),
            device: text("device"),
        }
    }
}

/// The evaluations of one request whose exposures are logged: those of flags whose
/// `exposure_sample` selects the user ([`sampled`]), in the order given.
pub fn sampled_exposures<'e, 's>(
    snapshot: &Snapshot,
    ctx: &Context,
    evals: &'e [Evaluation<'s>],
) -> Vec<&'e Evaluation<'s>> {
    evals
        .iter()
        .filter(|e| {
            snapshot
                .flag(e.key)
                .is_some_and(|f| sampled(e.key, ctx.key(), f.metadata().exposure_sample))
        })
        .collect()
}

/// The variants a converting user is served now, recomputed from `snapshot` (never taken
/// from the client): one per flag with exposure logging (`exposure_sample` above 0) that
/// serves a variant, in key order.
pub fn served(snapshot: &Snapshot, ctx: &Context, now: DateTime<Utc>) -> Vec<Served> {
    let evals: Vec<_> = snapshot.evaluate_all(ctx, now).collect();
    served_of(snapshot, &evals)
}

/// The variants of a request's evaluations `evals` that an event carries: one per flag
/// with exposure logging (`exposure_sample` above 0) that serves a variant, in the order
/// given ([`Snapshot::evaluate_all`]'s: key order).
pub fn served_of(snapshot: &Snapshot, evals: &[Evaluation<'_>]) -> Vec<Served> {
    evals
        .iter()
        .filter(|e| {
            snapshot
                .flag(e.key)
                .is_some_and(|f| f.metadata().exposure_sample > 0.0)
        })
        .filter_map(|e| {
            e.variant.map(|v| Served {
                flag: e.key.to_string(),
                variant: v.to_string(),
            })
        })
        .collect()
}

impl Event {
    fn of(kind: Kind, at: Origin<'_>) -> Event {
        Event {
            schema_version: SCHEMA_VERSION,
            kind,
            ts: Some(at.ts),
            flag: None,
            variant: None,
            reason: None,
            rule: None,
            split: Vec::new(),
            event: None,
            value: None,
            variants: Vec::new(),
            snapshot: Some(at.snapshot.to_string()),
            user: at.user.map(str::to_string),
            country: at.country.map(str::to_string),
            device: at.device.map(str::to_string),
            error: None,
            status: None,
        }
    }

    /// The exposure of evaluation `e` of `snapshot`, with the rule and the split behind it.
    pub fn exposure(snapshot: &Snapshot, e: &Evaluation<'_>, at: Origin<'_>) -> Event {
        let rule = match e.reason {
            Reason::RuleMatch { id, .. } => Some(id.to_string()),
            _ => None,
        };
        Event {
            flag: Some(e.key.to_string()),
            variant: e.variant.map(str::to_string),
            reason: Some(e.reason.kind().to_string()),
            rule,
            split: split_behind(snapshot, e),
            ..Event::of(Kind::Exposure, at)
        }
    }

    /// A conversion named `event` with an optional `value`, carrying `variants`.
    pub fn conversion(
        event: &str,
        value: Option<f64>,
        variants: Vec<Served>,
        at: Origin<'_>,
    ) -> Event {
        Event {
            event: Some(event.to_string()),
            value,
            variants,
            ..Event::of(Kind::Conversion, at)
        }
    }

    /// An origin failure of a page request whose user is served `variants` (see
    /// [`served_of`]).
    pub fn origin_error(failure: OriginFailure, variants: Vec<Served>, at: Origin<'_>) -> Event {
        Event {
            variants,
            error: Some(failure.name().to_string()),
            status: failure.status(),
            ..Event::of(Kind::Error, at)
        }
    }

    /// The record as one JSON line (without the newline).
    pub fn to_line(&self) -> String {
        // A struct of strings, numbers and lists of them always serialises; a float that
        // is not finite becomes `null`.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The weights of the split that bucketed `e`'s user: the matched rule's or the default's,
/// when a split decided (the evaluation has a bucket); empty otherwise.
pub fn split_behind(snapshot: &Snapshot, e: &Evaluation<'_>) -> Vec<Weight> {
    if e.bucket.is_none() {
        return Vec::new();
    }
    let Some(f) = snapshot.flag(e.key) else {
        return Vec::new();
    };
    let serve = match e.reason {
        Reason::RuleMatch { index, .. } => f
            .rules
            .of(&snapshot.arena.rules)
            .get(index)
            .map(|r| &r.serve),
        Reason::Split => Some(&f.fallthrough),
        _ => None,
    };
    let Some(Serve::Split(i)) = serve else {
        return Vec::new();
    };
    snapshot
        .split_weights(f, *i)
        .into_iter()
        .map(|(variant, weight)| Weight {
            variant: variant.to_string(),
            weight,
        })
        .collect()
}

/// Whether a user's exposures to `flag` are logged at `rate` (0 to 1): by the bucket of
/// `exposure:FLAG` and the user key, so a sampled user's every exposure to the flag is
/// logged (and a conversion can be compared with them).
pub fn sampled(flag: &str, user: Option<&str>, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    let b = bucket_of(&format!("exposure:{flag}"), user.unwrap_or(""));
    f64::from(b) < rate * f64::from(BUCKETS)
}

/// The type of a column of the events table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// A 64-bit integer.
    Int64,
    /// A 64-bit float.
    Float64,
    /// A string.
    String,
    /// A list of [`Weight`]: `{variant STRING, weight INT64}`.
    Weights,
    /// A list of [`Served`]: `{flag STRING, variant STRING}`.
    Served,
}

/// A column of the events table: a field of [`Event`].
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The field's name.
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
    /// Which events have it: `all`, or the kinds that do (`exposure`, `conversion`,
    /// `error`).
    pub kinds: &'static str,
    /// What it holds.
    pub meaning: &'static str,
}

/// The events table, column by column, in the order of the JSON line. Lists are never
/// NULL in a warehouse (absent is empty); every other column may be NULL.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "schema_version",
        ty: ColumnType::Int64,
        kinds: "all",
        meaning: "the record's version: 3; NULL (absent) in lines written before it existed, which are version 1",
    },
    Column {
        name: "kind",
        ty: ColumnType::String,
        kinds: "all",
        meaning: "`exposure`, `conversion` or `error` (version 3)",
    },
    Column {
        name: "ts",
        ty: ColumnType::Int64,
        kinds: "all",
        meaning: "when, in milliseconds since the Unix epoch (the request's clock)",
    },
    Column {
        name: "flag",
        ty: ColumnType::String,
        kinds: "exposure",
        meaning: "the flag evaluated",
    },
    Column {
        name: "variant",
        ty: ColumnType::String,
        kinds: "exposure",
        meaning: "the variant served; NULL when the evaluation failed",
    },
    Column {
        name: "reason",
        ty: ColumnType::String,
        kinds: "exposure",
        meaning: "why: `SPLIT`, `RULE_MATCH`, `TARGET`, `DEFAULT`, `OFF`, `PREREQUISITE_FAILED`, `PREVIEW` or `ERROR`",
    },
    Column {
        name: "rule",
        ty: ColumnType::String,
        kinds: "exposure",
        meaning: "the id of the rule that decided, when one did",
    },
    Column {
        name: "split",
        ty: ColumnType::Weights,
        kinds: "exposure",
        meaning: "the split that bucketed the user, when one did: each variant's weight in buckets of 100,000",
    },
    Column {
        name: "event",
        ty: ColumnType::String,
        kinds: "conversion",
        meaning: "the conversion's name, such as `purchase`",
    },
    Column {
        name: "value",
        ty: ColumnType::Float64,
        kinds: "conversion",
        meaning: "the conversion's value, such as an amount; NULL when none was sent",
    },
    Column {
        name: "variants",
        ty: ColumnType::Served,
        kinds: "conversion, error",
        meaning: "the variant the user is served of every flag with exposure logging, recomputed by the edge",
    },
    Column {
        name: "snapshot",
        ty: ColumnType::String,
        kinds: "all",
        meaning: "the snapshot version that decided",
    },
    Column {
        name: "user",
        ty: ColumnType::String,
        kinds: "all",
        meaning: "the user as HMAC-SHA256 of the user key with the `user_hash_key` secret, 16 bytes in hex; NULL without that secret",
    },
    Column {
        name: "country",
        ty: ColumnType::String,
        kinds: "all",
        meaning: "the user's country (ISO 3166-1 alpha-2), when known",
    },
    Column {
        name: "device",
        ty: ColumnType::String,
        kinds: "all",
        meaning: "the device class (`mobile`, `tablet`, `desktop`, `tv`, `bot`), when known",
    },
    Column {
        name: "error",
        ty: ColumnType::String,
        kinds: "error",
        meaning: "how the origin failed the page request: `status` (it answered 5xx), `unreachable` or `timeout` (version 3)",
    },
    Column {
        name: "status",
        ty: ColumnType::Int64,
        kinds: "error",
        meaning: "the 5xx status the origin answered, for `error` `status` (version 3)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, compile_str};
    use chrono::{TimeZone, Utc};

    const FLAGS: &str = r#"{"flags": {"checkout": {
        "type": "string", "variants": {"v1": "a", "v2": "b"}, "off_variant": "v1",
        "exposure_sample": 1.0,
        "rules": [
          {"id": "jp", "clauses": [{"attribute": "country", "op": "in", "values": ["JP"]}],
           "serve": {"split": [{"variant": "v1", "weight": 80}, {"variant": "v2", "weight": 20}]}},
          {"id": "beta", "clauses": [{"attribute": "country", "op": "in", "values": ["FR"]}], "serve": "v2"}
        ],
        "default": {"split": [{"variant": "v1", "weight": 50}, {"variant": "v2", "weight": 50}]}}}}"#;

    fn at(country: &str) -> Origin<'_> {
        Origin {
            ts: 1_764_400_000_000,
            snapshot: "abc",
            user: Some("00ff"),
            country: Some(country),
            device: None,
        }
    }

    fn exposure_in(country: &str) -> Event {
        let snapshot = compile_str(FLAGS).unwrap_or_else(|e| panic!("{e:?}"));
        let ctx = Context::with_key("u1").with("country", country);
        let now = Utc.timestamp_millis_opt(0).single().unwrap_or_default();
        let e = snapshot.evaluate("checkout", &ctx, now);
        Event::exposure(&snapshot, &e, at(country))
    }

    fn weights(pairs: &[(&str, u32)]) -> Vec<Weight> {
        pairs
            .iter()
            .map(|(v, w)| Weight {
                variant: v.to_string(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn an_exposure_carries_the_rule_and_the_split_that_decided() {
        let jp = exposure_in("JP");
        assert_eq!(
            (jp.reason.as_deref(), jp.rule.as_deref()),
            (Some("RULE_MATCH"), Some("jp"))
        );
        assert_eq!(jp.split, weights(&[("v1", 80_000), ("v2", 20_000)]));
        let us = exposure_in("US");
        assert_eq!(
            (us.reason.as_deref(), us.rule.as_deref()),
            (Some("SPLIT"), None)
        );
        assert_eq!(us.split, weights(&[("v1", 50_000), ("v2", 50_000)]));
        // A rule that serves a variant: no split behind it.
        let fr = exposure_in("FR");
        assert_eq!(
            (fr.variant.as_deref(), fr.rule.as_deref(), fr.split.len()),
            (Some("v2"), Some("beta"), 0)
        );
    }

    #[test]
    fn a_line_has_the_columns_in_order_and_leaves_out_the_other_kind() {
        let line = exposure_in("JP").to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        // serde_json's map is sorted; the line itself keeps the declaration order.
        assert!(
            line.starts_with(
                r#"{"schema_version":3,"kind":"exposure","ts":1764400000000,"flag":"checkout","#
            ),
            "{line}"
        );
        for k in &keys {
            assert!(COLUMNS.iter().any(|c| c.name == *k), "{k} is not a column");
        }
        for absent in ["event", "value", "variants", "device", "error", "status"] {
            assert!(!keys.contains(&absent), "{absent} in {line}");
        }
        let c = Event::conversion(
            "purchase",
            Some(42.5),
            vec![Served {
                flag: "checkout".into(),
                variant: "v2".into(),
            }],
            at("US"),
        );
        assert_eq!(
            c.to_line(),
            r#"{"schema_version":3,"kind":"conversion","ts":1764400000000,"event":"purchase","value":42.5,"variants":[{"flag":"checkout","variant":"v2"}],"snapshot":"abc","user":"00ff","country":"US"}"#
        );
    }

    #[test]
    fn every_field_is_a_column_and_every_column_a_field() {
        let full = Event {
            device: Some("mobile".into()),
            event: Some("purchase".into()),
            value: Some(1.0),
            variants: vec![Served {
                flag: "f".into(),
                variant: "v".into(),
            }],
            error: Some("status".into()),
            status: Some(502),
            ..exposure_in("JP")
        };
        let v: serde_json::Value = serde_json::from_str(&full.to_line()).unwrap_or_default();
        let mut keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        keys.sort_unstable();
        names.sort_unstable();
        assert_eq!(keys, names);
    }

    #[test]
    fn lines_round_trip_and_version_1_lines_still_read() {
        let e = exposure_in("JP");
        let back: Event = serde_json::from_str(&e.to_line()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back, e);
        // Written by the edge before the version field: variants keyed by flag.
        let old = r#"{"kind":"conversion","ts":5,"event":"purchase","value":null,"snapshot":"s","user":"u","variants":{"checkout":"v1","banner":"night","odd":3},"country":null,"device":"desktop"}"#;
        let c: Event = serde_json::from_str(old).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            (c.schema_version, c.kind, c.ts),
            (1, Kind::Conversion, Some(5))
        );
        let served: Vec<(&str, &str)> = c
            .variants
            .iter()
            .map(|s| (s.flag.as_str(), s.variant.as_str()))
            .collect();
        assert_eq!(served, [("banner", "night"), ("checkout", "v1")]);
        let hand: Event =
            serde_json::from_str(r#"{"kind":"exposure","flag":"f","variant":"a","user":"h1"}"#)
                .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((hand.ts, hand.split.len()), (None, 0));
    }

    #[test]
    fn sampling_keeps_a_users_every_exposure_and_follows_the_rate() {
        assert!(!sampled("f", Some("u"), 0.0));
        assert!(sampled("f", Some("u"), 1.0));
        let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let kept = users.iter().filter(|u| sampled("f", Some(u), 0.25)).count();
        // 25% of 20,000: 5,000 with a standard deviation of about 61.
        assert!((4_700..=5_300).contains(&kept), "{kept}");
        for u in &users[..100] {
            assert_eq!(sampled("f", Some(u), 0.25), sampled("f", Some(u), 0.25));
        }
    }

    /// Two flags besides `checkout`: `quiet` has no exposure logging, `half` logs half of
    /// its users.
    fn three_flags() -> Snapshot {
        let flags = FLAGS.replacen(
            r#"{"flags": {"#,
            r#"{"flags": {
            "quiet": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "on"},
            "half": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "on",
                     "exposure_sample": 0.5},"#,
            1,
        );
        compile_str(&flags).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn only_flags_whose_sample_selects_the_user_are_exposures() {
        let snapshot = three_flags();
        let now = Utc.timestamp_millis_opt(0).single().unwrap_or_default();
        let mut half_logged = 0;
        for i in 0..2_000 {
            let ctx = Context::with_key(&format!("u{i}")).with("country", "US");
            let evals: Vec<_> = snapshot.evaluate_all(&ctx, now).collect();
            let keys: Vec<&str> = sampled_exposures(&snapshot, &ctx, &evals)
                .iter()
                .map(|e| e.key)
                .collect();
            // checkout (1.0) always, quiet (no sample) never, half as its sample says.
            let half = sampled("half", ctx.key(), 0.5);
            let expected: Vec<&str> = if half {
                vec!["checkout", "half"]
            } else {
                vec!["checkout"]
            };
            assert_eq!(keys, expected, "user u{i}");
            half_logged += usize::from(half);
        }
        assert!((900..1_100).contains(&half_logged), "{half_logged} of 2000");
    }

    #[test]
    fn a_conversion_carries_the_variants_of_the_logged_flags_only() {
        let snapshot = three_flags();
        let now = Utc.timestamp_millis_opt(0).single().unwrap_or_default();
        let ctx = Context::with_key("u1").with("country", "FR");
        let got = served(&snapshot, &ctx, now);
        let want = vec![
            Served {
                flag: "checkout".into(),
                variant: "v2".into(),
            },
            Served {
                flag: "half".into(),
                variant: "on".into(),
            },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn an_origin_error_carries_the_failure_and_the_variants_of_the_logged_flags() {
        let snapshot = three_flags();
        let now = Utc.timestamp_millis_opt(0).single().unwrap_or_default();
        let ctx = Context::with_key("u1").with("country", "FR");
        let evals: Vec<_> = snapshot.evaluate_all(&ctx, now).collect();
        let variants = served_of(&snapshot, &evals);
        // The same variants a conversion of this user carries.
        assert_eq!(variants, served(&snapshot, &ctx, now));
        let e = Event::origin_error(OriginFailure::Status(503), variants, at("FR"));
        assert_eq!(
            e.to_line(),
            r#"{"schema_version":3,"kind":"error","ts":1764400000000,"variants":[{"flag":"checkout","variant":"v2"},{"flag":"half","variant":"on"}],"snapshot":"abc","user":"00ff","country":"FR","error":"status","status":503}"#
        );
        let back: Event = serde_json::from_str(&e.to_line()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back, e);
        for (failure, name) in [
            (OriginFailure::Unreachable, "unreachable"),
            (OriginFailure::Timeout, "timeout"),
        ] {
            let e = Event::origin_error(failure, Vec::new(), at("FR"));
            assert_eq!(
                (e.kind, e.error.as_deref(), e.status),
                (Kind::Error, Some(name), None)
            );
        }
    }

    #[test]
    fn an_origin_takes_country_and_device_only_when_they_are_text() {
        let now = Utc
            .timestamp_millis_opt(1_764_400_000_000)
            .single()
            .unwrap_or_default();
        let ctx = Context::with_key("u1")
            .with("country", "JP")
            .with("device", 3.0);
        let o = Origin::of(&ctx, now, "abc", Some("00ff"));
        assert_eq!(
            (o.ts, o.snapshot, o.user, o.country, o.device),
            (1_764_400_000_000, "abc", Some("00ff"), Some("JP"), None)
        );
    }

    #[test]
    fn docs_events_md_lists_every_column_as_it_is() {
        let doc = include_str!("../../../docs/events.md");
        for c in COLUMNS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", c.name)))
                .unwrap_or_else(|| panic!("docs/events.md has no row for {}", c.name));
            assert!(
                row.ends_with(&format!("| {} | {} |", c.kinds, c.meaning)),
                "docs/events.md's row for {} is not the column's: {row}",
                c.name
            );
        }
    }
}
