//! Evaluation: total and allocation-free. A flag is decided in this order: a variant a
//! preview forces; off (or outside its schedule) serves the off variant; a failed
//! prerequisite serves the off variant; individual targets; a holdout that holds the user
//! serves the off variant; rules in order, first match wins; the ramp; the default
//! variant or split. A flag in a layer places only the users in its slots by its splits
//! and its ramp: for the others a rule that serves a split does not match, the ramp
//! passes, and a default split serves the off variant (see [`crate::allocation`]).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::allocation::{Allocation, draw};
use crate::context::{AttrValue, Context};
use crate::model::{Clause, Flag, FlagType, Op, Serve, Snapshot};

/// Why an evaluation returned what it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason<'s> {
    /// The flag is off, or outside its schedule (`scheduled`); the off variant is served.
    Off {
        /// True when the flag is on but its schedule is not active now.
        scheduled: bool,
    },
    /// The user key is in the flag's individual targets.
    Target,
    /// A rule matched; `index` is its position and `id` its id.
    RuleMatch {
        /// Position of the rule in the flag's list.
        index: usize,
        /// The rule's id.
        id: &'s str,
    },
    /// No rule matched and the default is a split: the user's bucket chose the variant.
    Split,
    /// No rule matched and the default variant is served.
    Default,
    /// A prerequisite flag did not serve a required variant; the off variant is served.
    PrerequisiteFailed {
        /// The prerequisite flag's key.
        flag: &'s str,
    },
    /// A preview token forced the variant.
    Preview,
    /// A holdout that covers the flag holds the user; the off variant is served.
    Holdout {
        /// The holdout's name.
        id: &'s str,
    },
    /// No rule matched and the user's bucket is within the live step of the flag's ramp:
    /// the ramp's variant is served.
    Ramp {
        /// The live step's position in the ramp (from 0).
        step: usize,
    },
    /// The flag could not be evaluated.
    Error(ErrorCode),
}

impl Reason<'_> {
    /// The reason's kind, as written in explain output and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Off { .. } => "OFF",
            Reason::Target => "TARGET",
            Reason::RuleMatch { .. } => "RULE_MATCH",
            Reason::Split => "SPLIT",
            Reason::Default => "DEFAULT",
            Reason::PrerequisiteFailed { .. } => "PREREQUISITE_FAILED",
            Reason::Preview => "PREVIEW",
            Reason::Holdout { .. } => "HOLDOUT",
            Reason::Ramp { .. } => "RAMP",
            Reason::Error(_) => "ERROR",
        }
    }

    /// The OpenFeature reason this maps onto (OFREP's `reason` field). A holdout and a
    /// ramp are pseudorandom assignments by the user's bucket, which OpenFeature calls
    /// `SPLIT`; OFREP's metadata keeps the engine's own reason beside it.
    pub fn openfeature(&self) -> &'static str {
        match self {
            Reason::Off { .. } => "DISABLED",
            Reason::Target | Reason::RuleMatch { .. } | Reason::Preview => "TARGETING_MATCH",
            Reason::Split | Reason::Holdout { .. } | Reason::Ramp { .. } => "SPLIT",
            Reason::Default | Reason::PrerequisiteFailed { .. } => "DEFAULT",
            Reason::Error(_) => "ERROR",
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No flag has that key.
    FlagNotFound,
    /// The flag set could not be read (used by callers whose config failed to load).
    ParseError,
    /// The flag's type is not the one asked for.
    TypeMismatch,
    /// Anything else.
    General,
}

impl ErrorCode {
    /// The OpenFeature error code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The result of evaluating one flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation<'s> {
    /// The flag key as asked.
    pub key: &'s str,
    /// The value served; `None` only on errors.
    pub value: Option<&'s Value>,
    /// The variant served; `None` only on errors.
    pub variant: Option<&'s str>,
    /// Why.
    pub reason: Reason<'s>,
    /// The user's bucket (0..100000) when a split, a holdout or a ramp decided the
    /// variant (under that one's salt).
    pub bucket: Option<u32>,
}

impl<'s> Evaluation<'s> {
    /// An error result.
    pub fn error(key: &'s str, code: ErrorCode) -> Evaluation<'s> {
        Evaluation {
            key,
            value: None,
            variant: None,
            reason: Reason::Error(code),
            bucket: None,
        }
    }
}

impl Snapshot {
    /// Evaluates one flag for `ctx` at `now`.
    pub fn evaluate<'s>(
        &'s self,
        key: &'s str,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        match self.position(key) {
            Some(i) => self.evaluate_index(i, ctx, now),
            None => Evaluation::error(key, ErrorCode::FlagNotFound),
        }
    }

    /// Evaluates one flag and checks its type: a flag of another type is a
    /// `TYPE_MISMATCH` error.
    pub fn evaluate_typed<'s>(
        &'s self,
        key: &'s str,
        kind: FlagType,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        match self.flag(key) {
            Some(f) if f.kind != kind => Evaluation::error(&f.key, ErrorCode::TypeMismatch),
            _ => self.evaluate(key, ctx, now),
        }
    }

    /// Evaluates every flag, in key order.
    pub fn evaluate_all<'s>(
        &'s self,
        ctx: &'s Context,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = Evaluation<'s>> + 's {
        (0..self.flags.len()).map(move |i| self.evaluate_index(i, ctx, now))
    }

    /// The served variant (index) of flag `i`, for prerequisites and routes.
    pub(crate) fn variant_index(
        &self,
        i: usize,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Option<usize> {
        let f = self.flags.get(i)?;
        let e = self.evaluate_index(i, ctx, now);
        let name = e.variant?;
        f.variants
            .of(&self.arena.variants)
            .iter()
            .position(|v| *v.name == *name)
    }

    pub(crate) fn evaluate_index<'s>(
        &'s self,
        i: usize,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        let Some(f) = self.flags.get(i) else {
            return Evaluation::error("", ErrorCode::General);
        };
        // The decision first (a variant index, the reason, the bucket), the result built
        // once from it: one place writes the result, and the decision stays small.
        let (variant, reason, bucket) = self.decide(f, ctx, now);
        match f.variants.of(&self.arena.variants).get(variant) {
            Some(v) => Evaluation {
                key: &f.key,
                value: Some(&v.value),
                variant: Some(&v.name),
                reason,
                bucket,
            },
            None => Evaluation::error(&f.key, ErrorCode::General),
        }
    }

    /// The variant (index) flag `f` serves, why, and the bucket that placed the user.
    #[inline(always)]
    fn decide<'s>(
        &'s self,
        f: &'s Flag,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> (usize, Reason<'s>, Option<u32>) {
        let serve =
            |variant: usize, reason: Reason<'s>, bucket: Option<u32>| (variant, reason, bucket);
        let variants = f.variants.of(&self.arena.variants);
        if let Some(forced) = ctx.forced(&f.key)
            && let Some(v) = variants.iter().position(|v| *v.name == *forced)
        {
            return serve(v, Reason::Preview, None);
        }
        if !f.on {
            return serve(f.off_variant, Reason::Off { scheduled: false }, None);
        }
        if let Some(s) = f.schedule()
            && !s.active(now, ctx.zone())
        {
            return serve(f.off_variant, Reason::Off { scheduled: true }, None);
        }
        for p in f.prerequisites() {
            let ok = self
                .variant_index(p.flag, ctx, now)
                .is_some_and(|v| p.variants.contains(&v));
            if !ok {
                let flag = self.flags.get(p.flag).map(|x| &*x.key).unwrap_or("");
                return serve(f.off_variant, Reason::PrerequisiteFailed { flag }, None);
            }
        }
        if !f.targets().is_empty()
            && let Some(key) = ctx.key()
            && let Some(v) = f.target(key)
        {
            return serve(v, Reason::Target, None);
        }
        // Whether the user is in the flag's layer slots (always, for a flag in no layer):
        // only then do its splits and its ramp place them.
        let allocation = f.allocation();
        let placed = match allocation {
            None => true,
            Some(a) => {
                if let Some((id, b)) = self.holdout_of(a, ctx) {
                    return serve(f.off_variant, Reason::Holdout { id }, Some(b));
                }
                self.in_slots(a, ctx)
            }
        };
        for (index, rule) in f.rules.of(&self.arena.rules).iter().enumerate() {
            if rule
                .schedule
                .as_ref()
                .is_some_and(|s| !s.active(now, ctx.zone()))
            {
                continue;
            }
            if !rule
                .clauses
                .of(&self.arena.clauses)
                .iter()
                .all(|c| self.clause_matches(c, ctx, now))
            {
                continue;
            }
            let reason = Reason::RuleMatch {
                index,
                id: &rule.id,
            };
            match &rule.serve {
                Serve::Variant(v) => return serve(*v, reason, None),
                // A split whose bucketing attribute is missing, or a user outside the
                // flag's layer slots, cannot be placed: the rule does not match and
                // evaluation goes on.
                Serve::Split(s) => {
                    if placed && let Some((v, b)) = self.split_pick(*s, ctx) {
                        return serve(v, reason, Some(b));
                    }
                }
            }
        }
        if let Some(a) = allocation
            && placed
            && let Some((variant, step, b)) = ramp_of(a, ctx, now)
        {
            return serve(variant, Reason::Ramp { step }, Some(b));
        }
        match &f.fallthrough {
            Serve::Variant(v) => serve(*v, Reason::Default, None),
            Serve::Split(s) => match placed.then(|| self.split_pick(*s, ctx)).flatten() {
                Some((v, b)) => serve(v, Reason::Split, Some(b)),
                None => serve(f.off_variant, Reason::Default, None),
            },
        }
    }

    /// The first holdout of a flag's allocation that holds the user: its name and the
    /// user's bucket. (Out of line: most flags have no allocation, and evaluation's hot
    /// path stays small.)
    #[inline(never)]
    fn holdout_of(&self, a: &Allocation, ctx: &Context) -> Option<(&str, u32)> {
        a.holdouts.iter().find_map(|&h| {
            let holdout = self.holdouts.get(h)?;
            let b = holdout.bucket(ctx)?;
            (b < holdout.units).then_some((&*holdout.name, b))
        })
    }

    /// Whether the user is in the slots of the flag's layer (always, in no layer).
    #[inline(never)]
    fn in_slots(&self, a: &Allocation, ctx: &Context) -> bool {
        a.layer.is_none_or(|m| {
            self.layers
                .get(m.layer)
                .and_then(|l| l.slot(ctx))
                .is_some_and(|s| m.holds(s))
        })
    }

    /// Whether a clause matches. A clause about an attribute the context lacks (or a
    /// local-time window with no zone to read it in) is false even when negated, as in
    /// LaunchDarkly: "not in [JP]" does not match a user whose country is unknown. Use a
    /// negated `exists` to target a missing attribute.
    pub(crate) fn clause_matches(&self, c: &Clause, ctx: &Context, now: DateTime<Utc>) -> bool {
        let m = match &c.op {
            Op::LocalTime(w) => {
                if w.zone.is_none() && ctx.zone().is_none() {
                    return false;
                }
                w.contains(now, ctx.zone())
            }
            Op::Segment(segs) => segs.iter().any(|&s| self.in_segment(s, ctx, now)),
            Op::Exists => &*c.attribute == "now" || ctx.get(&c.attribute).is_some(),
            op if &*c.attribute == "now" => instant_matches(op, now.timestamp_millis()),
            op => match ctx.get(&c.attribute) {
                None => return false,
                Some(AttrValue::List(items)) => items.iter().any(|s| self.str_matches(op, s)),
                Some(AttrValue::Str(s)) => self.str_matches(op, s),
                Some(AttrValue::Num(n)) => num_matches(op, *n),
                Some(AttrValue::Bool(b)) => match op {
                    Op::In { bools, .. } => bools.contains(b),
                    _ => false,
                },
            },
        };
        m != c.negate
    }

    fn in_segment(&self, s: usize, ctx: &Context, now: DateTime<Utc>) -> bool {
        let Some(seg) = self.segments.get(s) else {
            return false;
        };
        if let Some(key) = ctx.key() {
            if seg.excluded.contains(&self.arena, key) {
                return false;
            }
            if seg.included.contains(&self.arena, key) {
                return true;
            }
        }
        seg.rules.iter().any(|clauses| {
            clauses
                .of(&self.arena.clauses)
                .iter()
                .all(|c| self.clause_matches(c, ctx, now))
        })
    }

    /// Places the user in split `i`, or `None` when the bucketing attribute is missing or
    /// is not a string or an integer.
    fn split_pick(&self, i: usize, ctx: &Context) -> Option<(usize, u32)> {
        let s = self.arena.splits.get(i)?;
        let b = draw(&s.prefix, &s.by, ctx)?;
        s.slots
            .of(&self.arena.slots)
            .iter()
            .find(|(upper, _)| b < *upper)
            .map(|&(_, v)| (v, b))
    }

    fn str_matches(&self, op: &Op, s: &str) -> bool {
        let strings = &self.arena.strings;
        match op {
            Op::In { strs, nums, .. } => {
                strs.contains(&self.arena, s)
                    || (!nums.is_empty() && s.parse::<f64>().is_ok_and(|n| nums.contains(&n)))
            }
            Op::StartsWith(v) => v.of(strings).iter().any(|p| s.starts_with(&**p)),
            Op::EndsWith(v) => v.of(strings).iter().any(|p| s.ends_with(&**p)),
            Op::Contains(v) => v.of(strings).iter().any(|p| s.contains(&**p)),
            Op::Matches(v) => v.iter().any(|r| r.is_match(s)),
            Op::Number(..) => s.trim().parse::<f64>().is_ok_and(|n| num_matches(op, n)),
            Op::Semver(cmp, v) => {
                parse_semver(s).is_some_and(|x| v.iter().any(|y| cmp.holds(x.cmp_precedence(y))))
            }
            Op::Before(_) | Op::After(_) => {
                parse_instant(s).is_some_and(|ms| instant_matches(op, ms))
            }
            Op::LocalTime(_) | Op::Segment(_) | Op::Exists => false,
        }
    }
}

/// The ramp's variant, live step and the user's bucket, when the flag has a ramp whose
/// live step lets the user in.
#[inline(never)]
fn ramp_of(a: &Allocation, ctx: &Context, now: DateTime<Utc>) -> Option<(usize, usize, u32)> {
    let ramp = a.ramp.as_ref()?;
    let step = ramp.live(now)?;
    let live = ramp.steps.get(step)?;
    let b = ramp.bucket(ctx)?;
    (b < live.units).then_some((ramp.variant, step, b))
}

fn num_matches(op: &Op, n: f64) -> bool {
    match op {
        Op::In { nums, .. } => nums.contains(&n),
        Op::Number(cmp, v) => v
            .iter()
            .any(|x| n.partial_cmp(x).is_some_and(|o| cmp.holds(o))),
        Op::Before(_) | Op::After(_) if n.is_finite() => instant_matches(op, n as i64),
        _ => false,
    }
}

fn instant_matches(op: &Op, ms: i64) -> bool {
    match op {
        Op::Before(v) => v.iter().any(|t| ms < *t),
        Op::After(v) => v.iter().any(|t| ms > *t),
        _ => false,
    }
}

/// Parses a semantic version, accepting a missing minor or patch (`2`, `2.1`).
pub(crate) fn parse_semver(s: &str) -> Option<semver::Version> {
    let s = s.trim().strip_prefix('v').unwrap_or(s.trim());
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let core_end = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(core_end);
    let dots = core.matches('.').count();
    let padded = match dots {
        0 => format!("{core}.0.0{rest}"),
        1 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

/// Parses an RFC 3339 instant to milliseconds since the epoch.
pub(crate) fn parse_instant(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.timestamp_millis())
}
