//! Evaluation: total and allocation-free. A flag is decided in this order: a variant a
//! preview forces; off (or outside its schedule) serves the off variant; a failed
//! prerequisite serves the off variant; individual targets; a holdout that holds the user
//! serves the off variant; rules in order, first match wins; the ramp; the default
//! variant or split. A flag in a layer places only the users in its slots by its splits
//! and its ramp: for the others a rule that serves a split does not match, the ramp
//! passes, and a default split serves the off variant (see [`crate::allocation`]).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::allocation::{Allocation, draw_word};
use crate::context::{AttrValue, Context};
use crate::model::{Clause, Flag, FlagType, Op, Serve, Snapshot, word_bit};

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

/// A decision about one flag, in plain integers: the served variant's index, why, a
/// detail (the rule's index, the failed prerequisite's flag index, the holdout's index
/// or the ramp's step) and the bucket ([`NO_BUCKET`] when none placed the user).
/// [`Snapshot::evaluate_of`] builds the [`Evaluation`] from it once. (The tuple of a
/// [`Reason`] it replaced went through memory in pieces of several widths and was read
/// back whole, a store-forwarding stall `perf annotate` showed at the copy.)
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decision {
    variant: u32,
    detail: u32,
    bucket: u32,
    why: Why,
}

/// [`Decision::bucket`] when no bucket placed the user (buckets are below
/// [`crate::BUCKETS`]).
const NO_BUCKET: u32 = u32::MAX;

impl Decision {
    #[inline(always)]
    fn new(variant: usize, why: Why, detail: usize, bucket: Option<u32>) -> Decision {
        Decision {
            variant: u32::try_from(variant).unwrap_or(u32::MAX),
            detail: u32::try_from(detail).unwrap_or(u32::MAX),
            bucket: bucket.unwrap_or(NO_BUCKET),
            why,
        }
    }
}

/// Why, in a [`Decision`]: the [`Reason`]s without their borrowed parts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    Off,
    OffScheduled,
    Target,
    Rule,
    Split,
    Default,
    Prerequisite,
    Preview,
    Holdout,
    Ramp,
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
    #[inline(never)]
    pub fn evaluate<'s>(
        &'s self,
        key: &'s str,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        match self.position(key).and_then(|i| self.flags.get(i)) {
            Some(f) => self.evaluate_of(f, ctx, now),
            None => Evaluation::error(key, ErrorCode::FlagNotFound),
        }
    }

    /// [`Snapshot::evaluate_of`], out of line, for a prerequisite and a route.
    #[inline(never)]
    fn evaluate_found<'s>(
        &'s self,
        f: &'s Flag,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        self.evaluate_of(f, ctx, now)
    }

    /// Evaluates a flag already looked up with [`Snapshot::flag`] (a flag of another
    /// snapshot is a `GENERAL` error): the call for a caller that evaluates one flag
    /// many times, and the like-for-like measure beside LaunchDarkly's evaluation, which
    /// takes its flag so.
    pub fn evaluate_flag<'s>(
        &'s self,
        flag: &'s Flag,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        if !self
            .flags
            .as_ptr_range()
            .contains(&std::ptr::from_ref(flag))
        {
            return Evaluation::error(&flag.key, ErrorCode::General);
        }
        self.evaluate_of(flag, ctx, now)
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
        self.flags
            .iter()
            .map(move |f| self.evaluate_of(f, ctx, now))
    }

    /// The served variant (index) of flag `i`, for prerequisites and routes.
    pub(crate) fn variant_index(
        &self,
        i: usize,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Option<usize> {
        let f = self.flags.get(i)?;
        let e = self.evaluate_found(f, ctx, now);
        let name = e.variant?;
        f.variants
            .of(&self.arena.variants)
            .iter()
            .position(|v| *v.name == *name)
    }

    /// Evaluates flag `f`, one of this snapshot's. Inlined: [`Snapshot::evaluate_all`]'s
    /// loop holds it whole (100 flags: 6% fewer instructions than a call per flag), and
    /// so does [`Snapshot::evaluate`] with the lookup (one call and one frame for an
    /// evaluation by key: 12 instructions fewer than calling the lookup and this apart);
    /// a prerequisite calls it through [`Snapshot::evaluate_found`].
    #[inline(always)]
    fn evaluate_of<'s>(&'s self, f: &'s Flag, ctx: &Context, now: DateTime<Utc>) -> Evaluation<'s> {
        // The decision first (plain integers: the variant's index, why, the bucket), the
        // result built from it. The plain path's decision goes straight into the result,
        // in registers (merged with the full path's, it went through the stack and a
        // jump on why).
        if f.extra.is_none() && !ctx.forces() {
            let d = self.decide_plain(f, ctx, now);
            return self.evaluation(f, d);
        }
        self.evaluate_full(f, ctx, now)
    }

    /// [`Snapshot::evaluate_of`] for any flag and context.
    #[inline(never)]
    fn evaluate_full<'s>(
        &'s self,
        f: &'s Flag,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'s> {
        let d = self.decide_full(f, ctx, now);
        self.evaluation(f, d)
    }

    /// The result of decision `d` about flag `f`.
    #[inline(always)]
    fn evaluation<'s>(&'s self, f: &'s Flag, d: Decision) -> Evaluation<'s> {
        match f.variants.of(&self.arena.variants).get(d.variant as usize) {
            Some(v) => Evaluation {
                key: &f.key,
                value: Some(&v.value),
                variant: Some(&v.name),
                reason: self.reason(f, d),
                bucket: (d.bucket != NO_BUCKET).then_some(d.bucket),
            },
            None => Evaluation::error(&f.key, ErrorCode::General),
        }
    }

    /// The [`Reason`] of a decision about flag `f`.
    #[inline(always)]
    fn reason<'s>(&'s self, f: &'s Flag, d: Decision) -> Reason<'s> {
        let at = d.detail as usize;
        match d.why {
            Why::Off => Reason::Off { scheduled: false },
            Why::OffScheduled => Reason::Off { scheduled: true },
            Why::Target => Reason::Target,
            Why::Rule => Reason::RuleMatch {
                index: at,
                id: f.rules.of(&self.arena.rules).get(at).map_or("", |r| &r.id),
            },
            Why::Split => Reason::Split,
            Why::Default => Reason::Default,
            Why::Prerequisite => Reason::PrerequisiteFailed {
                flag: self.flags.get(at).map_or("", |x| &x.key),
            },
            Why::Preview => Reason::Preview,
            Why::Holdout => Reason::Holdout {
                id: self.holdouts.get(at).map_or("", |h| &h.name),
            },
            Why::Ramp => Reason::Ramp { step: at },
        }
    }

    /// The variant (index) flag `f` serves, why, and the bucket that placed the user: for
    /// any flag and context.
    #[inline(never)]
    fn decide_full(&self, f: &Flag, ctx: &Context, now: DateTime<Utc>) -> Decision {
        let serve = Decision::new;
        let variants = f.variants.of(&self.arena.variants);
        if let Some(forced) = ctx.forced(&f.key)
            && let Some(v) = variants.iter().position(|v| *v.name == *forced)
        {
            return serve(v, Why::Preview, 0, None);
        }
        if !f.on {
            return serve(f.off_variant, Why::Off, 0, None);
        }
        if let Some(s) = f.schedule()
            && !s.active(now, ctx.zone())
        {
            return serve(f.off_variant, Why::OffScheduled, 0, None);
        }
        for p in f.prerequisites() {
            let ok = self
                .variant_index(p.flag, ctx, now)
                .is_some_and(|v| p.variants.contains(&v));
            if !ok {
                return serve(f.off_variant, Why::Prerequisite, p.flag, None);
            }
        }
        if !f.targets().is_empty()
            && let Some(key) = ctx.key()
            && let Some(v) = f.target(key)
        {
            return serve(v, Why::Target, 0, None);
        }
        // Whether the user is in the flag's layer slots (always, for a flag in no layer):
        // only then do its splits and its ramp place them.
        let allocation = f.allocation();
        let placed = match allocation {
            None => true,
            Some(a) => {
                if let Some((h, b)) = self.holdout_of(a, ctx) {
                    return serve(f.off_variant, Why::Holdout, h, Some(b));
                }
                self.in_slots(a, ctx)
            }
        };
        for (index, rule) in f.rules.of(&self.arena.rules).iter().enumerate() {
            if asleep(rule, ctx, now) {
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
            match &rule.serve {
                Serve::Variant(v) => return serve(*v, Why::Rule, index, None),
                // A split whose bucketing attribute is missing, or a user outside the
                // flag's layer slots, cannot be placed: the rule does not match and
                // evaluation goes on.
                Serve::Split(s) => {
                    if placed && let Some((v, b)) = self.split_pick(*s, ctx) {
                        return serve(v, Why::Rule, index, Some(b));
                    }
                }
            }
        }
        if let Some(a) = allocation
            && placed
            && let Some((variant, step, b)) = ramp_of(a, ctx, now)
        {
            return serve(variant, Why::Ramp, step, Some(b));
        }
        match &f.fallthrough {
            Serve::Variant(v) => serve(*v, Why::Default, 0, None),
            Serve::Split(s) => match placed.then(|| self.split_pick(*s, ctx)).flatten() {
                Some((v, b)) => serve(v, Why::Split, 0, Some(b)),
                None => serve(f.off_variant, Why::Default, 0, None),
            },
        }
    }

    /// [`Snapshot::decide_full`] for a flag with no prerequisites, targets, schedule or
    /// allocation, and a context that forces no variant: most flags on most requests.
    /// Its rules and default decide it, each rule by its word test
    /// ([`crate::model::Test`]) when it has one; the rest of [`Snapshot::decide_full`]
    /// stays out of line. The two agree on every
    /// such flag and context (`the_plain_path_decides_as_the_full_one`).
    #[inline(always)]
    fn decide_plain(&self, f: &Flag, ctx: &Context, now: DateTime<Utc>) -> Decision {
        let serve = Decision::new;
        if !f.on {
            return serve(f.off_variant, Why::Off, 0, None);
        }
        // Each rule as its word test when it has one (a value that is not a short
        // string, and every other rule, is decided from the rule itself).
        for (index, t) in f.rules.of(&self.arena.tests).iter().enumerate() {
            if t.word != 0 {
                match ctx.value_word(t.word) {
                    // A missing attribute fails the clause, negated or not.
                    None => continue,
                    Some(0) => {}
                    Some(w) => {
                        let member =
                            t.bits & word_bit(w) != 0 && t.set.of(&self.arena.words).contains(&w);
                        if member != t.negate {
                            return serve(t.variant as usize, Why::Rule, index, None);
                        }
                        continue;
                    }
                }
            }
            if let Some(d) = self.rule_decides(f, index, ctx, now) {
                return d;
            }
        }
        match &f.fallthrough {
            Serve::Variant(v) => serve(*v, Why::Default, 0, None),
            Serve::Split(s) => match self.split_pick(*s, ctx) {
                Some((v, b)) => serve(v, Why::Split, 0, Some(b)),
                None => serve(f.off_variant, Why::Default, 0, None),
            },
        }
    }

    /// Rule `index` of flag `f` read whole, for [`Snapshot::decide_plain`]: the decision
    /// when it matches and places the user. (Out of line, so that the loop over a flag's
    /// word tests stays small.)
    #[inline(never)]
    fn rule_decides(
        &self,
        f: &Flag,
        index: usize,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Option<Decision> {
        let rule = f.rules.of(&self.arena.rules).get(index)?;
        if asleep(rule, ctx, now) || !self.clauses_hold(rule, ctx, now) {
            return None;
        }
        match &rule.serve {
            Serve::Variant(v) => Some(Decision::new(*v, Why::Rule, index, None)),
            Serve::Split(s) => self
                .split_pick(*s, ctx)
                .map(|(v, b)| Decision::new(v, Why::Rule, index, Some(b))),
        }
    }

    /// Whether every clause of `rule` holds (a loop, not `Iterator::all`, which the
    /// compiler would sometimes leave out of line).
    #[inline(always)]
    fn clauses_hold(&self, rule: &crate::model::Rule, ctx: &Context, now: DateTime<Utc>) -> bool {
        for c in rule.clauses.of(&self.arena.clauses) {
            if !self.clause_holds(c, ctx, now) {
                return false;
            }
        }
        true
    }

    /// [`Snapshot::clause_matches`], with the commonest clause (a short attribute `in` a
    /// small set of strings, the context's value a short string) decided here by words.
    #[inline(always)]
    fn clause_holds(&self, c: &Clause, ctx: &Context, now: DateTime<Utc>) -> bool {
        if c.fast != 0 {
            match ctx.value_word(c.fast) {
                None => return false,
                Some(0) => {}
                Some(w) => {
                    let member =
                        c.bits & word_bit(w) != 0 && c.set.of(&self.arena.words).contains(&w);
                    return member != c.negate;
                }
            }
        }
        self.clause_matches(c, ctx, now)
    }

    /// The first holdout of a flag's allocation that holds the user: its name and the
    /// user's bucket. (Out of line: most flags have no allocation, and evaluation's hot
    /// path stays small.)
    #[inline(never)]
    fn holdout_of(&self, a: &Allocation, ctx: &Context) -> Option<(usize, u32)> {
        a.holdouts.iter().find_map(|&h| {
            let holdout = self.holdouts.get(h)?;
            let b = holdout.bucket(ctx)?;
            (b < holdout.units).then_some((h, b))
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
    #[inline(always)]
    fn split_pick(&self, i: usize, ctx: &Context) -> Option<(usize, u32)> {
        let s = self.arena.splits.get(i)?;
        let b = draw_word(&s.prefix, s.word, &s.by, ctx)?;
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

/// Whether a rule has a schedule that is not active now.
#[inline(always)]
fn asleep(rule: &crate::model::Rule, ctx: &Context, now: DateTime<Utc>) -> bool {
    rule.schedule
        .as_ref()
        .is_some_and(|s| !s.active(now, ctx.zone()))
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::context::{AttrValue, Context};

    /// Clauses of every shape the plain path decides by words, and of shapes it leaves to
    /// [`super::Snapshot::clause_matches`]: short and long attribute names, short, long,
    /// non-ASCII and empty strings, sets with numbers and booleans beside strings, large
    /// sets, negation, and operators other than `in`.
    fn clauses() -> Vec<Value> {
        let many: Vec<String> = (0..20).map(|i| format!("C{i}")).collect();
        let mut out = Vec::new();
        for (attribute, op, values) in [
            ("country", "in", json!(["DE", "FR", "US"])),
            ("country", "in", json!(["DE", "a-longer-value"])),
            ("country", "equals", json!([""])),
            ("country", "in", json!(many)),
            ("plan", "in", json!(["pro", 10, true])),
            ("plan", "in", json!(["10"])),
            ("a-long-attribute", "in", json!(["x", "y"])),
            ("tags", "in", json!(["beta"])),
            ("city", "in", json!(["東京", "Zürich"])),
            ("age", "in", json!([30])),
            ("flag", "in", json!([true])),
            ("country", "starts_with", json!(["D"])),
            ("age", "gte", json!([18])),
            ("now", "after", json!(["2020-01-01T00:00:00Z"])),
            ("now", "in", json!(["x"])),
        ] {
            for negate in [false, true] {
                out.push(
                    json!({"attribute": attribute, "op": op, "values": values, "negate": negate}),
                );
            }
        }
        out.push(json!({"attribute": "plan", "op": "exists"}));
        out
    }

    /// A context from a seed: each attribute the clauses read is absent or takes one of
    /// several values of several types.
    fn context(mut seed: u64) -> Context {
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let choices: [(&str, Vec<AttrValue>); 9] = [
            (
                "key",
                vec![
                    "u1".into(),
                    "a-user-key-longer-than-eight".into(),
                    42.0.into(),
                    4.5.into(),
                ],
            ),
            (
                "country",
                vec![
                    "DE".into(),
                    "US".into(),
                    "a-longer-value".into(),
                    "".into(),
                    "C7".into(),
                    10.0.into(),
                    true.into(),
                ],
            ),
            (
                "plan",
                vec![
                    "pro".into(),
                    "10".into(),
                    10.0.into(),
                    true.into(),
                    AttrValue::List(vec!["pro".into()]),
                ],
            ),
            ("a-long-attribute", vec!["x".into(), "z".into()]),
            (
                "tags",
                vec![
                    AttrValue::List(vec!["x".into(), "beta".into()]),
                    "beta".into(),
                    AttrValue::List(vec![]),
                ],
            ),
            (
                "city",
                vec!["東京".into(), "Zürich".into(), "Zurich".into()],
            ),
            ("age", vec![30.0.into(), "30".into(), 17.0.into()]),
            ("flag", vec![true.into(), false.into(), "true".into()]),
            ("now", vec!["x".into()]),
        ];
        let mut ctx = Context::new();
        for (name, values) in choices {
            let pick = next(values.len() as u64 + 1) as usize;
            if let Some(v) = values.get(pick) {
                ctx.set(name, v.clone());
            }
        }
        ctx
    }

    #[test]
    fn a_flag_in_hand_evaluates_as_by_key_and_another_snapshots_flag_is_an_error() {
        let file = |serve: &str| {
            json!({"flags": {
                "a": {"type": "string", "variants": {"x": "x", "y": "y"}, "off_variant": "x", "default": serve},
                "b": {"type": "string", "variants": {"x": "x", "y": "y"}, "off_variant": "x",
                      "rules": [{"id": "jp", "clauses": [{"attribute": "country", "op": "in", "values": ["JP"]}], "serve": "y"}],
                      "default": {"split": [{"variant": "x", "weight": 50}, {"variant": "y", "weight": 50}]}}
            }})
            .to_string()
        };
        let (one, other) = (
            crate::compile_str(&file("x")).unwrap_or_else(|e| panic!("{e}")),
            crate::compile_str(&file("y")).unwrap_or_else(|e| panic!("{e}")),
        );
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        for seed in 0..200 {
            let ctx = context(seed).with("country", if seed % 2 == 0 { "JP" } else { "DE" });
            for key in ["a", "b"] {
                let f = one.flag(key).unwrap_or_else(|| panic!("{key}"));
                assert_eq!(
                    one.evaluate_flag(f, &ctx, now),
                    one.evaluate(key, &ctx, now)
                );
                let foreign = other.evaluate_flag(f, &ctx, now);
                assert_eq!(
                    foreign.reason,
                    super::Reason::Error(super::ErrorCode::General)
                );
                assert_eq!((foreign.key, foreign.variant), (key, None));
            }
        }
    }

    #[test]
    fn the_plain_path_decides_as_the_full_one() {
        let clauses = clauses();
        let mut flags = serde_json::Map::new();
        for (i, c) in clauses.iter().enumerate() {
            let other = &clauses[(i * 7 + 3) % clauses.len()];
            let split_by = ["key", "age", "country"][i % 3];
            flags.insert(
                format!("f{i:02}"),
                json!({
                    "type": "string",
                    "variants": {"a": "a", "b": "b", "c": "c"},
                    "off_variant": "a",
                    "rules": [
                        {"id": "one", "clauses": [other, c], "serve": {"split": [{"variant": "b", "weight": 30}, {"variant": "c", "weight": 70}], "by": split_by}},
                        {"id": "two", "clauses": [c], "serve": "b"},
                        {"id": "three", "clauses": [other], "serve": "c"}
                    ],
                    "default": {"split": [{"variant": "a", "weight": 50}, {"variant": "c", "weight": 50}], "by": split_by}
                }),
            );
        }
        let snapshot = crate::compile_str(&json!({"flags": flags}).to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        // Rules of both kinds: word tests (a single short-attribute `in` clause serving a
        // variant) and rules read whole.
        let tests = &snapshot.arena.tests;
        assert_eq!(tests.len(), snapshot.arena.rules.len());
        let words = tests.iter().filter(|t| t.word != 0).count();
        assert!(
            words > 0 && words < tests.len(),
            "{words} of {}",
            tests.len()
        );
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let mut reasons = std::collections::BTreeSet::new();
        for seed in 0..3000 {
            let ctx = context(seed);
            for f in &snapshot.flags {
                assert!(f.extra.is_none());
                let plain = snapshot.decide_plain(f, &ctx, now);
                let full = snapshot.decide_full(f, &ctx, now);
                assert_eq!(plain, full, "flag {} context {ctx:?}", &*f.key);
                reasons.insert(format!("{:?}/{}", plain.why, plain.detail));
            }
        }
        // Every rule and the default decided somewhere: the test reaches each branch.
        for r in ["Rule/0", "Rule/1", "Rule/2", "Split/0"] {
            assert!(reasons.contains(r), "{r} never decided: {reasons:?}");
        }
    }
}
