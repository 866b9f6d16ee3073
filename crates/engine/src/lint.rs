//! Stale flags: the clean-up rules a flag file is judged by at a given instant (what
//! `edgeflags lint` prints). Pure: the caller supplies the instant.
//!
//! Four kinds of [`Finding`]:
//! - [`Kind::Expired`]: a flag past its `expires` date (the day after it, in UTC);
//! - [`Kind::OneVariant`]: a flag that serves one variant to everyone from the instant on:
//!   it is off, its schedule is over, or every target, live rule and the default serve the
//!   same variant and no holdout, layer or ramp gives another (a finished rollout).
//!   Previews that force a variant do not count;
//! - [`Kind::StalePrerequisite`]: a prerequisite, or a route's flag condition, on a flag
//!   about to be removed: one of the two above, or a temporary flag whose `expires` falls
//!   within the `soon` window;
//! - [`Kind::UnusedSegment`]: a segment that no flag rule or route clause names.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

use crate::compile::{CompileError, compile};
use crate::model::{Flag, Op, Serve, Snapshot};

/// What kind of clean-up a finding asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A flag past its `expires` date.
    Expired,
    /// A flag that serves one variant to everyone.
    OneVariant,
    /// A prerequisite or route condition on a flag about to be removed.
    StalePrerequisite,
    /// A segment nothing uses.
    UnusedSegment,
}

impl Kind {
    /// The name used in output (`expired`, `one_variant`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Expired => "expired",
            Kind::OneVariant => "one_variant",
            Kind::StalePrerequisite => "stale_prerequisite",
            Kind::UnusedSegment => "unused_segment",
        }
    }
}

/// One thing to clean up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The kind.
    pub kind: Kind,
    /// The flag, segment or route it is about.
    pub subject: String,
    /// Where in the flag file (`$.flags.checkout.expires`).
    pub path: String,
    /// What is stale and what to do about it.
    pub message: String,
}

/// The instant to judge at, and how far ahead "about to be removed" looks.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The instant the file is judged at.
    pub at: DateTime<Utc>,
    /// A temporary flag expiring within this window of `at` is about to be removed.
    pub soon: Duration,
}

/// Judges a flag file: compiles it (a file with problems is an error, listing them) and
/// returns every finding, flags first (in key order), then routes, then segments.
pub fn lint(root: &Value, options: &Options) -> Result<Vec<Finding>, CompileError> {
    let snapshot = compile(root)?;
    // The snapshot's segments are in the order compile met them: the key order of the
    // file's `segments` object, which is this same map.
    let segment_names: Vec<&str> = root
        .get("segments")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    Ok(Judge {
        s: &snapshot,
        at: options.at,
        soon: options.soon,
    }
    .findings(&segment_names))
}

struct Judge<'s> {
    s: &'s Snapshot,
    at: DateTime<Utc>,
    soon: Duration,
}

/// Why a flag serves one variant to everyone.
enum Single {
    Off,
    ScheduleOver(DateTime<Utc>),
    Everywhere,
}

impl<'s> Judge<'s> {
    fn findings(&self, segment_names: &[&str]) -> Vec<Finding> {
        let mut out = Vec::new();
        for f in &self.s.flags {
            let key = f.key();
            if let Some(date) = self.expired(f) {
                let what = if f.meta.temporary {
                    "temporary flag"
                } else {
                    "flag"
                };
                out.push(Finding {
                    kind: Kind::Expired,
                    subject: key.into(),
                    path: format!("$.flags.{key}.expires"),
                    message: format!(
                        "{what} `{key}` expired on {date}: remove it from the code, then from the flag file (or move `expires` if it must stay)"
                    ),
                });
            }
            if let Some((variant, why)) = self.one_variant(f) {
                let why = match why {
                    Single::Off => "it is off".to_string(),
                    Single::ScheduleOver(until) => {
                        format!("its schedule ended at {}", until.to_rfc3339())
                    }
                    Single::Everywhere => "every target, rule and the default serve it".into(),
                };
                out.push(Finding {
                    kind: Kind::OneVariant,
                    subject: key.into(),
                    path: format!("$.flags.{key}"),
                    message: format!(
                        "`{key}` serves `{variant}` to everyone ({why}): make `{variant}` the code's behaviour and remove the flag"
                    ),
                });
            }
            for (j, p) in f.prerequisites().iter().enumerate() {
                let Some(target) = self.s.flags.get(p.flag) else {
                    continue;
                };
                if let Some(why) = self.leaving(target) {
                    let t = target.key();
                    out.push(Finding {
                        kind: Kind::StalePrerequisite,
                        subject: key.into(),
                        path: format!("$.flags.{key}.prerequisites[{j}]"),
                        message: format!(
                            "`{key}` has a prerequisite on `{t}`, which {why}: drop the prerequisite before `{t}` goes"
                        ),
                    });
                }
            }
        }
        for (i, r) in self.s.routes.iter().enumerate() {
            for (flag, _) in &r.flags {
                let Some(target) = self.s.flags.get(*flag) else {
                    continue;
                };
                if let Some(why) = self.leaving(target) {
                    let (id, t) = (&r.route.id, target.key());
                    out.push(Finding {
                        kind: Kind::StalePrerequisite,
                        subject: id.clone(),
                        path: format!("$.routes.rules[{i}].flags.{t}"),
                        message: format!(
                            "route `{id}` requires a variant of `{t}`, which {why}: drop the condition before `{t}` goes"
                        ),
                    });
                }
            }
        }
        let used = self.used_segments();
        for (i, name) in segment_names.iter().enumerate() {
            if !used.contains(&i) {
                out.push(Finding {
                    kind: Kind::UnusedSegment,
                    subject: (*name).into(),
                    path: format!("$.segments.{name}"),
                    message: format!(
                        "segment `{name}` is used by no flag rule or route: remove it"
                    ),
                });
            }
        }
        out
    }

    /// The `expires` date of a flag that is past it.
    fn expired(&self, f: &Flag) -> Option<NaiveDate> {
        self.expires(f).filter(|d| self.at.date_naive() > *d)
    }

    fn expires(&self, f: &Flag) -> Option<NaiveDate> {
        let about = f.meta.about.as_ref()?;
        NaiveDate::parse_from_str(about.expires.as_deref()?, "%Y-%m-%d").ok()
    }

    /// Why a flag is about to be removed, if it is.
    fn leaving(&self, f: &Flag) -> Option<String> {
        if let Some(date) = self.expired(f) {
            return Some(format!("expired on {date}"));
        }
        if let Some((variant, _)) = self.one_variant(f) {
            return Some(format!("serves `{variant}` to everyone"));
        }
        let horizon = (self.at + self.soon).date_naive();
        match self.expires(f) {
            Some(date) if f.meta.temporary && date <= horizon => Some(format!("expires on {date}")),
            _ => None,
        }
    }

    /// The one variant a flag serves to everyone from `at` on, and why, if it does.
    fn one_variant(&self, f: &Flag) -> Option<(&'s str, Single)> {
        let ended = |until: Option<DateTime<Utc>>| until.is_some_and(|u| u <= self.at);
        let (reachable, why) = if !f.on {
            (BTreeSet::from([f.off_variant]), Single::Off)
        } else if let Some(until) = f.schedule().and_then(|s| s.until)
            && ended(Some(until))
        {
            (BTreeSet::from([f.off_variant]), Single::ScheduleOver(until))
        } else {
            let mut set = BTreeSet::new();
            if f.schedule().is_some() || !f.prerequisites().is_empty() {
                set.insert(f.off_variant);
            }
            set.extend(f.targets().iter().map(|(_, v)| *v));
            for rule in f.rules.of(&self.s.arena.rules) {
                if !ended(rule.schedule.as_ref().and_then(|s| s.until)) {
                    self.served(&rule.serve, &mut set);
                }
            }
            self.served(&f.fallthrough, &mut set);
            self.allocated(f, &mut set);
            (set, Single::Everywhere)
        };
        let mut only = reachable.iter();
        match (only.next(), only.next()) {
            (Some(&v), None) => {
                let variants = f.variants.of(&self.s.arena.variants);
                variants.get(v).map(|x| (&*x.name, why))
            }
            _ => None,
        }
    }

    /// Adds the variants a flag's allocation can give beside its rules and default: the
    /// off variant of a holdout that holds anyone out, and of a default split outside the
    /// flag's layer slots; the variant of a ramp with a step above zero, live or to come.
    fn allocated(&self, f: &Flag, set: &mut BTreeSet<usize>) {
        let Some(a) = f.allocation() else {
            return;
        };
        let holds = |&i: &usize| self.s.holdouts.get(i).is_some_and(|h| h.units > 0);
        if a.holdouts.iter().any(holds)
            || (a.layer.is_some() && matches!(f.fallthrough, Serve::Split(_)))
        {
            set.insert(f.off_variant);
        }
        if let Some(ramp) = &a.ramp
            && ramp.steps.iter().any(|s| s.units > 0)
        {
            set.insert(ramp.variant);
        }
    }

    /// Adds the variants `serve` can give (a split's variants of non-zero weight).
    fn served(&self, serve: &Serve, set: &mut BTreeSet<usize>) {
        match serve {
            Serve::Variant(v) => {
                set.insert(*v);
            }
            Serve::Split(i) => {
                let Some(split) = self.s.arena.splits.get(*i) else {
                    return;
                };
                let mut lower = 0;
                for &(upper, v) in split.slots.of(&self.s.arena.slots) {
                    if upper > lower {
                        set.insert(v);
                    }
                    lower = upper;
                }
            }
        }
    }

    /// The segments that some flag rule or route clause names.
    fn used_segments(&self) -> BTreeSet<usize> {
        let rules = self
            .s
            .flags
            .iter()
            .flat_map(|f| f.rules.of(&self.s.arena.rules))
            .map(|r| r.clauses);
        let routes = self.s.routes.iter().map(|r| r.clauses);
        rules
            .chain(routes)
            .flat_map(|span| span.of(&self.s.arena.clauses))
            .filter_map(|c| match &c.op {
                Op::Segment(segments) => Some(segments.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn run(file: &Value, when: &str) -> Vec<(Kind, String)> {
        let options = Options {
            at: at(when),
            soon: Duration::days(14),
        };
        lint(file, &options)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|f| (f.kind, f.subject))
            .collect()
    }

    /// A boolean flag with `extra` fields; its default serves both variants.
    fn flag(extra: Value) -> Value {
        let mut f = json!({
            "type": "boolean",
            "variants": {"on": true, "off": false},
            "off_variant": "off",
            "default": {"split": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}
        });
        if let (Some(o), Some(e)) = (f.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        f
    }

    #[test]
    fn a_flag_expires_the_day_after_its_date() {
        let file = json!({"flags": {
            "promo": flag(json!({"temporary": true, "expires": "2026-12-01"})),
            "kept": flag(json!({"temporary": true}))
        }});
        assert!(run(&file, "2026-12-01T23:59:59Z").is_empty());
        assert_eq!(
            run(&file, "2026-12-02T00:00:00Z"),
            [(Kind::Expired, "promo".to_string())]
        );
        let options = Options {
            at: at("2027-01-01T00:00:00Z"),
            soon: Duration::days(14),
        };
        let found = lint(&file, &options).unwrap_or_default();
        assert_eq!(
            found.first().map(|f| f.path.as_str()),
            Some("$.flags.promo.expires")
        );
        assert!(
            found.first().is_some_and(|f| f
                .message
                .contains("temporary flag `promo` expired on 2026-12-01")),
            "{found:?}"
        );
    }

    #[test]
    fn one_variant_to_everyone_is_off_a_finished_schedule_or_a_single_outcome() {
        let file = json!({"flags": {
            "off": flag(json!({"on": false})),
            "launched": flag(json!({"default": "on"})),
            "full-split": flag(json!({"default": {"split": [{"variant": "on", "weight": 100}, {"variant": "off", "weight": 0}]}})),
            "same-everywhere": flag(json!({
                "targets": {"on": ["u1"]},
                "rules": [{"id": "jp", "clauses": [{"attribute": "country", "op": "in", "values": ["JP"]}], "serve": "on"}],
                "default": "on"
            })),
            "sale": flag(json!({"default": "on", "schedule": {"until": "2026-12-01T00:00:00Z"}})),
            "old-rule": flag(json!({
                "rules": [{"id": "launch", "clauses": [], "serve": "on", "schedule": {"until": "2026-11-01T00:00:00Z"}}],
                "default": "off"
            })),
            "targeted": flag(json!({"targets": {"on": ["u1"]}, "default": "off"})),
            "experiment": flag(json!({}))
        }});
        let found = run(&file, "2026-11-15T00:00:00Z");
        let one: Vec<&str> = found
            .iter()
            .filter(|(k, _)| *k == Kind::OneVariant)
            .map(|(_, s)| s.as_str())
            .collect();
        // The sale's schedule still runs (off outside it, on inside): two variants.
        assert_eq!(
            one,
            [
                "full-split",
                "launched",
                "off",
                "old-rule",
                "same-everywhere"
            ]
        );
        let later = run(&file, "2026-12-01T00:00:00Z");
        assert!(
            later.contains(&(Kind::OneVariant, "sale".to_string())),
            "{later:?}"
        );
        let options = Options {
            at: at("2026-12-01T00:00:00Z"),
            soon: Duration::days(14),
        };
        let messages: Vec<String> = lint(&file, &options)
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.message)
            .collect();
        for expected in [
            "`off` serves `off` to everyone (it is off)",
            "`sale` serves `off` to everyone (its schedule ended at 2026-12-01T00:00:00+00:00)",
            "`launched` serves `on` to everyone (every target, rule and the default serve it)",
        ] {
            assert!(
                messages.iter().any(|m| m.starts_with(expected)),
                "{expected}: {messages:?}"
            );
        }
    }

    #[test]
    fn holdouts_layers_and_ramps_count_among_the_variants_a_flag_serves() {
        let file = json!({
            "layers": {"checkout": {"slots": 100}},
            "holdouts": {"q4": {"weight": 5}, "none": {"weight": 0}},
            "flags": {
                "held": flag(json!({"default": "on", "holdout": "q4"})),
                "held-by-nobody": flag(json!({"default": "on", "holdout": "none"})),
                "layered": flag(json!({
                    "default": {"split": [{"variant": "on", "weight": 100}]},
                    "layer": {"name": "checkout", "slots": [0, 50]}
                })),
                "ramping": flag(json!({"default": "off", "ramp": {
                    "variant": "on", "start": "2026-11-01T00:00:00Z", "every_hours": 24,
                    "weights": [5, 25]
                }})),
                "ramp-at-zero": flag(json!({"default": "off", "ramp": {
                    "variant": "on", "steps": [{"at": "2026-11-01T00:00:00Z", "weight": 0}]
                }}))
            }
        });
        let when = "2026-11-15T00:00:00Z";
        let one: Vec<String> = run(&file, when)
            .into_iter()
            .filter(|(k, _)| *k == Kind::OneVariant)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(one, ["held-by-nobody", "ramp-at-zero"]);
        // The verdict is what evaluation serves: one variant exactly for those flags.
        let snapshot = compile(&file).unwrap_or_else(|e| panic!("{e}"));
        for f in &snapshot.flags {
            let served: BTreeSet<&str> = (0..2_000)
                .filter_map(|i| {
                    let ctx = crate::context::Context::with_key(&format!("user-{i}"));
                    snapshot.evaluate(f.key(), &ctx, at(when)).variant
                })
                .collect();
            assert_eq!(
                served.len() == 1,
                one.iter().any(|k| k == f.key()),
                "{}: {served:?}",
                f.key()
            );
        }
    }

    #[test]
    fn prerequisites_and_routes_on_flags_about_to_go_are_named() {
        let file = json!({
            "flags": {
                "parent": flag(json!({"temporary": true, "expires": "2026-12-10"})),
                "child": flag(json!({"prerequisites": [{"flag": "parent", "variants": ["on"]}]})),
                "done": flag(json!({"default": "on"})),
                "uses-done": flag(json!({"prerequisites": [{"flag": "done", "variants": ["on"]}]})),
                "lasting": flag(json!({"temporary": true, "expires": "2027-06-01"})),
                "uses-lasting": flag(json!({"prerequisites": [{"flag": "lasting", "variants": ["on"]}]}))
            },
            "routes": {
                "default": {"backend": "origin"},
                "rules": [{"id": "beta", "flags": {"done": ["on"]}, "backend": "beta"}]
            }
        });
        // Eight days before `parent` expires: within the 14 days of "soon".
        let found = run(&file, "2026-12-02T00:00:00Z");
        let stale: Vec<&str> = found
            .iter()
            .filter(|(k, _)| *k == Kind::StalePrerequisite)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(stale, ["child", "uses-done", "beta"]);
        // A month earlier, `parent` is not leaving yet.
        let earlier = run(&file, "2026-11-01T00:00:00Z");
        assert!(!earlier.contains(&(Kind::StalePrerequisite, "child".to_string())));
        let options = Options {
            at: at("2026-12-11T00:00:00Z"),
            soon: Duration::days(14),
        };
        let found = lint(&file, &options).unwrap_or_default();
        let child = found.iter().find(|f| f.subject == "child");
        assert_eq!(
            child.map(|f| (f.path.as_str(), f.message.as_str())),
            Some((
                "$.flags.child.prerequisites[0]",
                "`child` has a prerequisite on `parent`, which expired on 2026-12-10: drop the prerequisite before `parent` goes"
            ))
        );
        let route = found.iter().find(|f| f.subject == "beta");
        assert_eq!(
            route.map(|f| f.path.as_str()),
            Some("$.routes.rules[0].flags.done")
        );
    }

    #[test]
    fn a_segment_no_rule_or_route_names_is_unused() {
        let file = json!({
            "segments": {
                "by-flag": {"included": ["a"]},
                "by-route": {"included": ["b"]},
                "orphan": {"included": ["c"]}
            },
            "flags": {
                "f": flag(json!({"rules": [{"id": "r", "clauses": [{"op": "segment", "values": ["by-flag"]}], "serve": "on"}]}))
            },
            "routes": {
                "default": {"backend": "origin"},
                "rules": [{"id": "x", "clauses": [{"op": "segment", "values": ["by-route"]}], "backend": "x"}]
            }
        });
        assert_eq!(
            run(&file, "2026-11-15T00:00:00Z"),
            [(Kind::UnusedSegment, "orphan".to_string())]
        );
    }

    #[test]
    fn a_file_with_problems_is_not_judged() {
        let bad = json!({"flags": {"f": {"type": "boolean"}}});
        let options = Options {
            at: at("2026-11-15T00:00:00Z"),
            soon: Duration::days(14),
        };
        assert!(matches!(
            lint(&bad, &options),
            Err(CompileError::Invalid(_))
        ));
    }
}
