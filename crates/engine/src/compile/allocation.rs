//! Compiling allocation: the file's layers and holdouts, a flag's place in them and its
//! ramp; and the checks that span flags: slot ranges that overlap in one layer, and salts
//! with which two draws would give every user the same bucket.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::{Compiler, Draw, check_key, join, kind_of};
use crate::allocation::{
    Allocation, DEFAULT_SLOTS, Holdout, Layer, Membership, Ramp, Step, default_holdout_salt,
    default_layer_salt,
};
use crate::bucket::{BUCKETS, Prefix};
use crate::model::Serve;

/// The most hours between two steps of a periodic ramp: ten years.
const MAX_EVERY_HOURS: u64 = 10 * 366 * 24;

impl Compiler {
    /// A bucketing attribute (`by`, `key` by default) and salt (`salt`, else `default`)
    /// of a layer, holdout or ramp object.
    fn by_and_salt(
        &mut self,
        o: &Map<String, Value>,
        default: String,
        path: &str,
    ) -> (String, String) {
        let by = self
            .opt_string(o, "by", path)
            .unwrap_or_else(|| "key".to_string());
        let salt = self.opt_string(o, "salt", path).unwrap_or(default);
        if salt.contains('\u{1f}') {
            self.err(
                &join(path, "salt"),
                "a salt may not contain the unit separator U+001F",
            );
        }
        (by, salt)
    }

    /// The file's `layers` or `holdouts` (`section`): each pushed (with defaults for what
    /// is wrong, so that indexes hold) and indexed by name. One function for both, since
    /// they differ only in their number: a layer's `slots`, a holdout's `weight`.
    pub(super) fn draw_tables(&mut self, section: &str, raw: &Map<String, Value>) {
        let layer = section == "layers";
        let (what, number) = if layer {
            ("layer", "slots")
        } else {
            ("holdout", "weight")
        };
        for (name, v) in raw {
            let path = join(&join("$", section), name);
            check_key(self, name, &path);
            let empty = Map::new();
            let o = self
                .object(v, &path, if layer { "a layer" } else { "a holdout" })
                .unwrap_or(&empty);
            self.fields(o, &path, &["description", number, "salt", "by"]);
            let npath = join(&path, number);
            let n = match (layer, o.get(number)) {
                (true, None) => DEFAULT_SLOTS,
                (true, Some(s)) => match s.as_u64() {
                    Some(n) if n > 0 && u64::from(BUCKETS).is_multiple_of(n) => n as u32,
                    _ => {
                        self.err(
                            &npath,
                            format!(
                                "{s} is not a whole number that divides {BUCKETS} (such as 10, 100 or 1000): every slot must be the same number of buckets"
                            ),
                        );
                        DEFAULT_SLOTS
                    }
                },
                (false, Some(w)) => self.weight_units(w, &npath).unwrap_or(0),
                (false, None) => {
                    self.err(&npath, "missing: the percentage of users held out");
                    0
                }
            };
            let default = if layer {
                default_layer_salt(name)
            } else {
                default_holdout_salt(name)
            };
            let (by, salt) = self.by_and_salt(o, default, &path);
            self.draws.push(Draw {
                salt: salt.clone(),
                by: by.clone(),
                what: format!("{what} `{name}`"),
                path,
                spans_flags: true,
            });
            let (key, salt, by) = (self.name(name), self.name(&salt), self.name(&by));
            if layer {
                self.layer_index.insert(name.clone(), self.layers.len());
                self.layers.push(Layer::new(key, salt, by, n));
            } else {
                self.holdout_index.insert(name.clone(), self.holdouts.len());
                self.holdouts.push(Holdout::new(key, salt, by, n));
            }
        }
    }

    /// A flag's `layer`, `holdout` and `ramp`; `None` when it has none of them.
    pub(super) fn allocation(
        &mut self,
        o: &Map<String, Value>,
        key: &str,
        salt: &str,
        names: &[String],
        fallthrough: Option<&Serve>,
        path: &str,
    ) -> Option<Box<Allocation>> {
        let layer = o
            .get("layer")
            .and_then(|v| self.membership(v, key, &join(path, "layer")));
        let holdouts = o
            .get("holdout")
            .map(|v| self.holdout_refs(v, &join(path, "holdout")))
            .unwrap_or_default();
        let ramp = o
            .get("ramp")
            .and_then(|v| self.ramp(v, salt, names, fallthrough, &join(path, "ramp")));
        if layer.is_none() && holdouts.is_empty() && ramp.is_none() {
            return None;
        }
        Some(Box::new(Allocation {
            layer,
            holdouts,
            ramp,
        }))
    }

    fn membership(&mut self, v: &Value, key: &str, path: &str) -> Option<Membership> {
        let o = self.object(
            v,
            path,
            "a layer place ({\"name\": layer, \"slots\": [from, to]})",
        )?;
        self.fields(o, path, &["name", "slots"]);
        let name = match o.get("name") {
            Some(n) => self.string(n, &join(path, "name"))?,
            None => {
                self.err(&join(path, "name"), "missing: the layer's name");
                return None;
            }
        };
        let Some(&layer) = self.layer_index.get(&name) else {
            // In the file's order, which is by name.
            let known: Vec<&str> = self.layers.iter().map(|l| &*l.name).collect();
            let listed = if known.is_empty() {
                "the file has no `layers`".to_string()
            } else {
                format!("layers: {}", known.join(", "))
            };
            self.err(
                &join(path, "name"),
                format!("unknown layer `{name}` ({listed})"),
            );
            return None;
        };
        let slots = self.layers.get(layer).map_or(DEFAULT_SLOTS, |l| l.slots);
        let spath = join(path, "slots");
        let range = o
            .get("slots")
            .and_then(Value::as_array)
            .and_then(|r| match r.as_slice() {
                [a, b] => Some((a.as_u64()?, b.as_u64()?)),
                _ => None,
            });
        let (from, to) = match range {
            Some((from, to)) if from < to && to <= u64::from(slots) => (from as u32, to as u32),
            _ => {
                let found = o
                    .get("slots")
                    .map_or("nothing".to_string(), |s| s.to_string());
                self.err(
                    &spath,
                    format!(
                        "must be [from, to], the slots from `from` up to but not including `to`, with 0 <= from < to <= {slots} (layer `{name}` has {slots} slots); found {found}"
                    ),
                );
                return None;
            }
        };
        let place = Membership { layer, from, to };
        self.memberships.push((place, key.to_string(), spath));
        Some(place)
    }

    fn holdout_refs(&mut self, v: &Value, path: &str) -> Vec<usize> {
        let names: Vec<(String, String)> = match v {
            Value::String(s) => vec![(s.clone(), path.to_string())],
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    self.string(item, &p).map(|s| (s, p))
                })
                .collect(),
            other => {
                self.err(
                    path,
                    format!(
                        "must be a holdout's name or a list of them, found {}",
                        kind_of(other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (name, p) in names {
            match self.holdout_index.get(&name) {
                Some(&h) if out.contains(&h) => {
                    self.err(&p, format!("holdout `{name}` is named twice"));
                }
                Some(&h) => out.push(h),
                None => {
                    let known: Vec<&str> = self.holdouts.iter().map(|h| &*h.name).collect();
                    let listed = if known.is_empty() {
                        "the file has no `holdouts`".to_string()
                    } else {
                        format!("holdouts: {}", known.join(", "))
                    };
                    self.err(&p, format!("unknown holdout `{name}` ({listed})"));
                }
            }
        }
        out
    }

    fn instant(&mut self, v: &Value, path: &str) -> Option<DateTime<Utc>> {
        let s = self.string(v, path)?;
        // Milliseconds, as the packed snapshot keeps instants.
        match DateTime::parse_from_rfc3339(&s)
            .ok()
            .and_then(|d| DateTime::from_timestamp_millis(d.timestamp_millis()))
        {
            Some(d) => Some(d),
            None => {
                self.err(
                    path,
                    format!("`{s}` is not an RFC 3339 instant (2026-11-28T00:00:00+09:00)"),
                );
                None
            }
        }
    }

    fn ramp(
        &mut self,
        v: &Value,
        flag_salt: &str,
        names: &[String],
        fallthrough: Option<&Serve>,
        path: &str,
    ) -> Option<Ramp> {
        let o = self.object(v, path, "a ramp")?;
        self.fields(
            o,
            path,
            &[
                "variant",
                "steps",
                "start",
                "every_hours",
                "weights",
                "by",
                "salt",
            ],
        );
        let variant = match o.get("variant") {
            Some(v) => self.variant_ref(v, names, &join(path, "variant")),
            None => {
                self.err(
                    &join(path, "variant"),
                    "missing: the variant the ramp rolls out",
                );
                None
            }
        };
        let periodic = ["start", "every_hours", "weights"]
            .into_iter()
            .filter(|k| o.contains_key(*k))
            .count();
        // (instant, weight in buckets, the weight's path), in the file's order.
        let mut steps: Vec<(Option<DateTime<Utc>>, Option<u32>, String)> = Vec::new();
        match (o.get("steps"), periodic) {
            (Some(_), n) if n > 0 => {
                self.err(
                    path,
                    "give either `steps` or `start`, `every_hours` and `weights`, not both",
                );
                return None;
            }
            (Some(list), _) => {
                let lpath = join(path, "steps");
                let items = match list.as_array() {
                    Some(items) if !items.is_empty() => items,
                    _ => {
                        self.err(&lpath, "must be a list of {\"at\": instant, \"weight\": percent}, at least one");
                        return None;
                    }
                };
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{lpath}[{i}]");
                    let Some(so) = self.object(item, &p, "a ramp step") else {
                        steps.push((None, None, p));
                        continue;
                    };
                    self.fields(so, &p, &["at", "weight"]);
                    let at = match so.get("at") {
                        Some(a) => self.instant(a, &join(&p, "at")),
                        None => {
                            self.err(&join(&p, "at"), "missing: the instant the step starts");
                            None
                        }
                    };
                    let weight = match so.get("weight") {
                        Some(w) => self.weight_units(w, &join(&p, "weight")),
                        None => {
                            self.err(&join(&p, "weight"), "missing: a percentage from 0 to 100");
                            None
                        }
                    };
                    steps.push((at, weight, join(&p, "weight")));
                }
            }
            (None, 3) => {
                let start = o
                    .get("start")
                    .and_then(|s| self.instant(s, &join(path, "start")));
                let hpath = join(path, "every_hours");
                let every = match o.get("every_hours").and_then(Value::as_u64) {
                    Some(h) if (1..=MAX_EVERY_HOURS).contains(&h) => Some(h),
                    _ => {
                        self.err(
                            &hpath,
                            format!("must be a whole number of hours from 1 to {MAX_EVERY_HOURS}"),
                        );
                        None
                    }
                };
                let wpath = join(path, "weights");
                let weights = match o.get("weights").and_then(Value::as_array) {
                    Some(w) if !w.is_empty() => w,
                    _ => {
                        self.err(&wpath, "must be a list of percentages, at least one");
                        return None;
                    }
                };
                for (i, w) in weights.iter().enumerate() {
                    let p = format!("{wpath}[{i}]");
                    let at = match (start, every) {
                        (Some(s), Some(h)) => {
                            let offset = i64::try_from(h.saturating_mul(i as u64))
                                .ok()
                                .and_then(TimeDelta::try_hours);
                            let at = offset.and_then(|d| s.checked_add_signed(d));
                            if at.is_none() {
                                self.err(&p, "this step's instant is out of range");
                            }
                            at
                        }
                        _ => None,
                    };
                    let units = self.weight_units(w, &p);
                    steps.push((at, units, p));
                }
            }
            (None, _) => {
                self.err(
                    path,
                    "missing: `steps` ([{\"at\", \"weight\"}, ...]), or `start`, `every_hours` and `weights`",
                );
                return None;
            }
        }
        // Monotone: instants rise, weights never go down.
        let mut ok = variant.is_some();
        let mut out = Vec::with_capacity(steps.len());
        let mut prev: Option<Step> = None;
        for (at, units, wpath) in steps {
            let (Some(at), Some(units)) = (at, units) else {
                ok = false;
                continue;
            };
            if let Some(p) = prev {
                if at <= p.at {
                    let apath = wpath.strip_suffix(".weight").map(|s| join(s, "at"));
                    self.err(
                        apath.as_deref().unwrap_or(&wpath),
                        format!(
                            "must be after the previous step's instant ({})",
                            p.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    );
                    ok = false;
                }
                if units < p.units {
                    self.err(
                        &wpath,
                        format!(
                            "the weights go down: {}% after {}%; a ramp only widens, so that a user who is in stays in",
                            f64::from(units) * 100.0 / f64::from(BUCKETS),
                            f64::from(p.units) * 100.0 / f64::from(BUCKETS)
                        ),
                    );
                    ok = false;
                }
            }
            let step = Step { at, units };
            prev = Some(step);
            out.push(step);
        }
        let (by, salt) = self.by_and_salt(o, flag_salt.to_string(), path);
        if let Some(Serve::Split(i)) = fallthrough
            && let Some(split) = self.arena.splits.get(*i)
            && *split.salt == *salt
            && *split.by == *by
        {
            self.err(
                &join(path, "salt"),
                format!(
                    "the ramp and the default split would draw the same bucket (salt `{salt}`, by `{by}`): the users the ramp leaves out would all sit in the split's upper buckets; give the ramp its own `salt`"
                ),
            );
            ok = false;
        }
        self.draws.push(Draw {
            salt: salt.clone(),
            by: by.clone(),
            what: format!("the ramp at {path}"),
            path: path.to_string(),
            spans_flags: false,
        });
        if !ok {
            return None;
        }
        Some(Ramp {
            variant: variant?,
            prefix: Prefix::new(&salt),
            by: self.name(&by),
            salt: self.name(&salt),
            steps: out,
        })
    }

    /// Flags whose slot ranges overlap in one layer: a user in both would be in two of
    /// its experiments.
    pub(super) fn check_layer_ranges(&mut self) {
        let members = std::mem::take(&mut self.memberships);
        for (i, (m, _, path)) in members.iter().enumerate() {
            for (other, okey, _) in &members[..i] {
                if m.overlaps(other) {
                    let (from, to, ofrom, oto) = (m.from, m.to, other.from, other.to);
                    let name = self.layers.get(m.layer).map(|l| l.name.to_string());
                    self.err(
                        path,
                        format!(
                            "slots [{from}, {to}) overlap flag `{okey}`'s [{ofrom}, {oto}) in layer `{}`: a user in both would be in two of its experiments",
                            name.unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }

    /// A layer or holdout whose salt and bucketing attribute another draw uses too would
    /// place every user at the same bucket in both: its slots or its held-out share would
    /// line up with the other's instead of cutting across it.
    pub(super) fn check_salts(&mut self) {
        let draws = std::mem::take(&mut self.draws);
        for (i, d) in draws.iter().enumerate() {
            for (j, other) in draws.iter().enumerate() {
                // Report a pair once, at the layer or holdout (the later one of two).
                let reported_here = d.spans_flags && (!other.spans_flags || j < i);
                if i != j && reported_here && d.salt == other.salt && d.by == other.by {
                    self.err(
                        &d.path,
                        format!(
                            "{} draws with the salt `{}` on `{}`, as {} does: every user would get the same bucket in both, so they would not be independent; give it its own `salt`",
                            d.what, d.salt, d.by, other.what
                        ),
                    );
                }
            }
        }
    }
}
