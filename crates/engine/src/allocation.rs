//! Allocation: whether a user takes part in a flag's randomised assignment at all, beside
//! which variant its rules give. A **layer** makes experiments mutually exclusive: it
//! divides users into equal slots by its own salt, and each flag in it owns a range of
//! slots. A **holdout** keeps a share of users on the off variant of every flag it covers.
//! A **ramp** widens one variant's share step by step on a schedule, decided with the
//! request's clock. Every draw is the bucketing of `docs/bucketing.md` with the layer's,
//! the holdout's or the ramp's salt; evaluation applies them (see [`crate::eval`]).

use crate::name::Name;

use chrono::{DateTime, Utc};

use crate::bucket::{BUCKETS, Prefix, integer_text};
use crate::context::{AttrValue, Context};

/// The bucket, in `0..BUCKETS`, of the context's attribute `by` under the salt `prefix`
/// holds; `None` when the attribute is missing or is neither a string nor an integer
/// (such a user cannot be placed, as in a split).
#[inline(always)]
pub(crate) fn draw(prefix: &Prefix, by: &str, ctx: &Context) -> Option<u32> {
    draw_word(prefix, 0, by, ctx)
}

/// [`draw`] with the attribute's [`crate::context::short_word`] known (`word`; 0 looks
/// the attribute up by its name).
#[inline(always)]
pub(crate) fn draw_word(prefix: &Prefix, word: u64, by: &str, ctx: &Context) -> Option<u32> {
    match ctx.get_by(word, by)? {
        AttrValue::Str(v) => Some(prefix.bucket(v)),
        AttrValue::Num(n) => draw_number(prefix, *n),
        _ => None,
    }
}

/// The bucket of a number's decimal text when it is an integer (out of line: most users
/// are placed by a string, and the text's buffer stays out of the common path's frame).
#[inline(never)]
fn draw_number(prefix: &Prefix, n: f64) -> Option<u32> {
    if n.fract() != 0.0 || n.abs() >= 9.0e15 {
        return None;
    }
    let mut buf = [0u8; 20];
    Some(prefix.bucket(integer_text(n as i64, &mut buf)))
}

/// The salt a layer uses when the file gives none: `layer:` and its name. (A flag key
/// cannot hold a `:`, so it never equals a flag's default salt.)
pub(crate) fn default_layer_salt(name: &str) -> String {
    format!("layer:{name}")
}

/// The salt a holdout uses when the file gives none: `holdout:` and its name.
pub(crate) fn default_holdout_salt(name: &str) -> String {
    format!("holdout:{name}")
}

/// The number of slots of a layer that does not say.
pub(crate) const DEFAULT_SLOTS: u32 = 100;

/// A layer: users divided into `slots` equal slots by their bucket under the layer's salt.
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) name: Name,
    pub(crate) salt: Name,
    /// The attribute whose value is bucketed (`key` by default).
    pub(crate) by: Name,
    /// The number of slots, a divisor of [`BUCKETS`]: slot `s` is the buckets
    /// `[s·w, (s+1)·w)` with `w = BUCKETS / slots`.
    pub(crate) slots: u32,
    /// The hasher state after the salt, computed once.
    pub(crate) prefix: Prefix,
}

impl Layer {
    /// A layer of `slots` slots.
    pub(crate) fn new(name: Name, salt: Name, by: Name, slots: u32) -> Layer {
        Layer {
            prefix: Prefix::new(&salt),
            name,
            salt,
            by,
            slots,
        }
    }

    /// The user's slot, or `None` when they cannot be placed.
    pub(crate) fn slot(&self, ctx: &Context) -> Option<u32> {
        let width = BUCKETS.checked_div(self.slots).filter(|w| *w > 0)?;
        draw(&self.prefix, &self.by, ctx).map(|b| b / width)
    }
}

/// A holdout: the users whose bucket under its salt is below `units` are held out.
#[derive(Debug)]
pub(crate) struct Holdout {
    pub(crate) name: Name,
    pub(crate) salt: Name,
    /// The attribute whose value is bucketed (`key` by default).
    pub(crate) by: Name,
    /// The share held out, in buckets (0.001 % each).
    pub(crate) units: u32,
    /// The hasher state after the salt, computed once.
    pub(crate) prefix: Prefix,
}

impl Holdout {
    /// A holdout of `units` buckets.
    pub(crate) fn new(name: Name, salt: Name, by: Name, units: u32) -> Holdout {
        Holdout {
            prefix: Prefix::new(&salt),
            name,
            salt,
            by,
            units,
        }
    }

    /// The user's bucket under the holdout's salt.
    pub(crate) fn bucket(&self, ctx: &Context) -> Option<u32> {
        draw(&self.prefix, &self.by, ctx)
    }
}

/// A flag's place in a layer: the slots `from..to` of layer `layer` are its experiment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Membership {
    /// The layer's index in the snapshot's layers.
    pub(crate) layer: usize,
    pub(crate) from: u32,
    pub(crate) to: u32,
}

impl Membership {
    /// Whether `slot` is one of the flag's.
    pub(crate) fn holds(&self, slot: u32) -> bool {
        self.from <= slot && slot < self.to
    }

    /// Whether two places share a slot of the same layer (a user there would be in both
    /// experiments): what compile refuses and decoding checks.
    pub(crate) fn overlaps(&self, other: &Membership) -> bool {
        self.layer == other.layer && self.from < other.to && other.from < self.to
    }
}

/// One step of a ramp: from `at` on, `units` buckets (0.001 % each) get the ramp's variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) at: DateTime<Utc>,
    pub(crate) units: u32,
}

/// A rollout schedule: the users whose bucket is below the live step's `units` get
/// `variant`. Steps are in time order and their weights never go down, so a user who is
/// in stays in (`bucket < 5000` implies `bucket < 25000`).
#[derive(Debug)]
pub(crate) struct Ramp {
    /// The variant rolled out (an index into the flag's variants).
    pub(crate) variant: usize,
    /// The attribute whose value is bucketed (`key` by default).
    pub(crate) by: Name,
    /// The salt (the flag's salt unless the ramp sets one).
    pub(crate) salt: Name,
    pub(crate) steps: Vec<Step>,
    /// The hasher state after the salt, computed once.
    pub(crate) prefix: Prefix,
}

impl Ramp {
    /// The index of the step live at `now`: the last one whose instant has come; `None`
    /// before the first.
    pub(crate) fn live(&self, now: DateTime<Utc>) -> Option<usize> {
        self.steps.partition_point(|s| s.at <= now).checked_sub(1)
    }

    /// The user's bucket under the ramp's salt.
    pub(crate) fn bucket(&self, ctx: &Context) -> Option<u32> {
        draw(&self.prefix, &self.by, ctx)
    }

    /// Whether the steps are in time order with weights that never go down (what
    /// compile guarantees and a decoded snapshot is checked for).
    pub(crate) fn is_monotone(&self) -> bool {
        self.steps
            .windows(2)
            .all(|w| w[0].at < w[1].at && w[0].units <= w[1].units)
            && self.steps.iter().all(|s| s.units <= BUCKETS)
    }
}

/// What decides, beside its rules, whether a user takes part in a flag's randomised
/// assignment: the layer slots it owns, the holdouts that cover it, its ramp.
#[derive(Debug, Default)]
pub(crate) struct Allocation {
    pub(crate) layer: Option<Membership>,
    /// Holdout indexes, in the order the flag names them.
    pub(crate) holdouts: Vec<usize>,
    pub(crate) ramp: Option<Ramp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn the_live_step_is_the_last_one_whose_instant_has_come() {
        let ramp = Ramp {
            variant: 0,
            by: "key".into(),
            salt: "f".into(),
            steps: vec![
                Step {
                    at: at("2026-12-01T00:00:00Z"),
                    units: 5000,
                },
                Step {
                    at: at("2026-12-02T00:00:00Z"),
                    units: 25000,
                },
            ],
            prefix: Prefix::new("f"),
        };
        assert_eq!(ramp.live(at("2026-11-30T23:59:59Z")), None);
        assert_eq!(ramp.live(at("2026-12-01T00:00:00Z")), Some(0));
        assert_eq!(ramp.live(at("2026-12-01T23:59:59Z")), Some(0));
        assert_eq!(ramp.live(at("2026-12-02T00:00:00Z")), Some(1));
        assert_eq!(ramp.live(at("2030-01-01T00:00:00Z")), Some(1));
        assert!(ramp.is_monotone());
    }

    #[test]
    fn a_slot_is_a_run_of_equal_buckets_and_a_bad_count_places_nobody() {
        let ctx = Context::with_key("user-1");
        let bucket = crate::bucket::bucket_of("layer:l", "user-1");
        for slots in [1, 10, 100, 1000, BUCKETS] {
            let layer = Layer::new("l".into(), "layer:l".into(), "key".into(), slots);
            assert_eq!(
                layer.slot(&ctx),
                Some(bucket / (BUCKETS / slots)),
                "{slots}"
            );
        }
        for slots in [0, BUCKETS + 1] {
            let layer = Layer::new("l".into(), "layer:l".into(), "key".into(), slots);
            assert_eq!(layer.slot(&ctx), None, "{slots}");
        }
    }

    #[test]
    fn places_overlap_when_they_share_a_slot_of_one_layer() {
        let place = |layer, from, to| Membership { layer, from, to };
        assert!(place(0, 0, 50).overlaps(&place(0, 49, 60)));
        assert!(place(0, 10, 20).overlaps(&place(0, 0, 100)));
        assert!(!place(0, 0, 50).overlaps(&place(0, 50, 100)), "adjacent");
        assert!(!place(0, 50, 100).overlaps(&place(0, 0, 50)), "adjacent");
        assert!(!place(0, 0, 50).overlaps(&place(1, 0, 50)), "another layer");
    }
}
