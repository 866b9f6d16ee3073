//! Compiling clauses: each operator with its values, local-time windows and schedules.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Compiler, join, kind_of};
use crate::eval::{parse_instant, parse_semver};
use crate::model::*;
use crate::zone::{Window, Zone, day_index, time_of_day};

impl Compiler {
    pub(super) fn clauses(
        &mut self,
        v: Option<&Value>,
        path: &str,
        segments_allowed: bool,
    ) -> Option<Vec<Clause>> {
        let Some(v) = v else {
            self.err(
                path,
                "missing: a list of clauses (an empty list matches everyone)",
            );
            return None;
        };
        let Some(items) = v.as_array() else {
            self.err(
                path,
                format!("must be a list of clauses, found {}", kind_of(v)),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.clause(item, &format!("{path}[{i}]"), segments_allowed) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn clause(
        &mut self,
        v: &Value,
        path: &str,
        segments_allowed: bool,
    ) -> Option<Clause> {
        let o = self.object(v, path, "a clause")?;
        let op_name = match o.get("op") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                self.err(
                    &join(path, "op"),
                    format!("must be a string, found {}", kind_of(other)),
                );
                return None;
            }
            None => {
                self.err(&join(path, "op"), "missing: the operator");
                return None;
            }
        };
        let negate = self.bool_field(o, "negate", path, false);
        let Some(&(_, kind, cmp)) = OPERATORS.iter().find(|(name, _, _)| *name == op_name) else {
            let known: Vec<&str> = crate::model::operator_names().collect();
            self.err(
                &join(path, "op"),
                format!("unknown operator `{op_name}` (known: {})", known.join(", ")),
            );
            return None;
        };
        let allowed: &[&str] = match kind {
            OpKind::LocalTime => &["op", "negate", "days", "from", "to", "zone"],
            OpKind::Segment => &["op", "negate", "values"],
            OpKind::Exists => &["op", "negate", "attribute"],
            _ => &["op", "negate", "attribute", "values"],
        };
        self.fields(o, path, allowed);
        let attribute = match kind {
            OpKind::LocalTime | OpKind::Segment => String::new(),
            _ => match o.get("attribute") {
                Some(a) => self.string(a, &join(path, "attribute"))?,
                None => {
                    self.err(
                        &join(path, "attribute"),
                        "missing: the context attribute to test",
                    );
                    return None;
                }
            },
        };
        if attribute.starts_with(crate::attributes::TRAITS_PREFIX) {
            self.uses_traits = true;
        }
        let vpath = join(path, "values");
        let values = || o.get("values");
        let cmp = cmp.unwrap_or(Cmp::Eq);
        let op = match kind {
            OpKind::In => {
                let items = self.values(values(), &vpath)?;
                let (mut strs, mut nums, mut bools) = (Vec::new(), Vec::new(), Vec::new());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => strs.push(self.name(s)),
                        Value::Number(n) => nums.extend(n.as_f64()),
                        Value::Bool(b) => bools.push(*b),
                        other => self.err(
                            &format!("{vpath}[{i}]"),
                            format!(
                                "must be a string, number or boolean, found {}",
                                kind_of(other)
                            ),
                        ),
                    }
                }
                Op::In {
                    strs: StrSet::new(&mut self.arena.strings, strs),
                    nums,
                    bools,
                }
            }
            OpKind::StartsWith | OpKind::EndsWith | OpKind::Contains => {
                let v = self.string_values(values(), &vpath)?;
                let names = self.names(v);
                let strings = Span::push(&mut self.arena.strings, names);
                match kind {
                    OpKind::StartsWith => Op::StartsWith(strings),
                    OpKind::EndsWith => Op::EndsWith(strings),
                    _ => Op::Contains(strings),
                }
            }
            OpKind::Matches => {
                let pats = self.string_values(values(), &vpath)?;
                let mut res = Vec::new();
                for (i, p) in pats.iter().enumerate() {
                    match regex_lite::RegexBuilder::new(p).size_limit(1 << 20).build() {
                        Ok(r) => res.push(r),
                        Err(e) => self.err(
                            &format!("{vpath}[{i}]"),
                            format!("bad regular expression: {e}"),
                        ),
                    }
                }
                Op::Matches(res)
            }
            OpKind::Number => {
                let items = self.values(values(), &vpath)?;
                let mut nums = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_f64() {
                        Some(n) => nums.push(n),
                        None => self.err(
                            &format!("{vpath}[{i}]"),
                            format!("must be a number, found {}", kind_of(item)),
                        ),
                    }
                }
                Op::Number(cmp, nums)
            }
            OpKind::Semver => {
                let mut vs = Vec::new();
                for (i, s) in self.string_values(values(), &vpath)?.iter().enumerate() {
                    match parse_semver(s) {
                        Some(v) => vs.push(v),
                        None => self.err(
                            &format!("{vpath}[{i}]"),
                            format!("`{s}` is not a semantic version"),
                        ),
                    }
                }
                Op::Semver(cmp, vs)
            }
            OpKind::Before | OpKind::After => {
                let items = self.values(values(), &vpath)?;
                let mut ts = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let t = match item {
                        Value::String(s) => parse_instant(s),
                        Value::Number(n) => n.as_i64(),
                        _ => None,
                    };
                    match t {
                        Some(t) => ts.push(t),
                        None => self.err(&format!("{vpath}[{i}]"), "must be an RFC 3339 instant (2026-11-28T00:00:00Z) or epoch milliseconds"),
                    }
                }
                if kind == OpKind::Before {
                    Op::Before(ts)
                } else {
                    Op::After(ts)
                }
            }
            OpKind::LocalTime => Op::LocalTime(self.window(o, path)?),
            OpKind::Segment => {
                if !segments_allowed {
                    self.err(
                        &join(path, "op"),
                        "a segment's rules cannot refer to segments",
                    );
                    return None;
                }
                let mut segs = Vec::new();
                for (i, s) in self.string_values(values(), &vpath)?.iter().enumerate() {
                    match self.segment_index.get(s) {
                        Some(&x) => segs.push(x),
                        None => {
                            self.err(&format!("{vpath}[{i}]"), format!("unknown segment `{s}`"))
                        }
                    }
                }
                Op::Segment(segs)
            }
            OpKind::Exists => Op::Exists,
        };
        Some(Clause::new(self.name(&attribute), op, negate))
    }

    pub(super) fn values<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &str,
    ) -> Option<&'v Vec<Value>> {
        match v {
            Some(Value::Array(a)) if !a.is_empty() => Some(a),
            Some(Value::Array(_)) => {
                self.err(path, "needs at least one value");
                None
            }
            Some(other) => {
                self.err(path, format!("must be a list, found {}", kind_of(other)));
                None
            }
            None => {
                self.err(path, "missing: the values to compare with");
                None
            }
        }
    }

    pub(super) fn string_values(&mut self, v: Option<&Value>, path: &str) -> Option<Vec<String>> {
        let items = self.values(v, path)?;
        let before = self.errors.len();
        let out = self.strings(&Value::Array(items.clone()), path);
        (self.errors.len() == before).then_some(out)
    }

    pub(super) fn window(&mut self, o: &Map<String, Value>, path: &str) -> Option<Window> {
        let mut days = 0u8;
        match o.get("days") {
            None => days = 0x7f,
            Some(d) => {
                for (i, name) in self.strings(d, &join(path, "days")).iter().enumerate() {
                    match day_index(name) {
                        Some(x) => days |= 1 << x,
                        None => self.err(
                            &format!("{}[{i}]", join(path, "days")),
                            format!("`{name}` is not a day (mon, tue, ... sun)"),
                        ),
                    }
                }
            }
        }
        let mut time = |key: &str, default: u32| -> Option<u32> {
            match o.get(key) {
                None => Some(default),
                Some(v) => {
                    let s = self.string(v, &join(path, key))?;
                    let t = time_of_day(&s);
                    if t.is_none() {
                        self.err(
                            &join(path, key),
                            format!("`{s}` is not a time of day (HH:MM, 00:00 to 24:00)"),
                        );
                    }
                    t
                }
            }
        };
        let from = time("from", 0);
        let to = time("to", 24 * 60);
        let zone = match o.get("zone") {
            None => Some(None),
            Some(z) => {
                let name = self.string(z, &join(path, "zone"))?;
                match Zone::parse(&name) {
                    Some(zone) => Some(Some(zone)),
                    None => {
                        self.err(&join(path, "zone"), format!("unknown time zone `{name}` (an IANA name such as Europe/Paris, or ±HH:MM)"));
                        None
                    }
                }
            }
        };
        let (from, to) = (from?, to?);
        // 00:00-24:00 is the whole day, the same as from == to.
        let (from, to) = if from == 0 && to == 24 * 60 {
            (0, 0)
        } else {
            (from % 1440, to % 1440)
        };
        Some(Window {
            days,
            from,
            to,
            zone: zone?,
        })
    }

    pub(super) fn schedule(&mut self, v: &Value, path: &str) -> Option<Schedule> {
        let o = self.object(v, path, "a schedule")?;
        self.fields(o, path, &["from", "until", "windows"]);
        let mut instant = |key: &str| -> Option<Option<DateTime<Utc>>> {
            match o.get(key) {
                None => Some(None),
                Some(v) => {
                    let s = self.string(v, &join(path, key))?;
                    match DateTime::parse_from_rfc3339(&s) {
                        Ok(d) => Some(Some(d.with_timezone(&Utc))),
                        Err(_) => {
                            self.err(
                                &join(path, key),
                                format!(
                                    "`{s}` is not an RFC 3339 instant (2026-11-28T00:00:00+09:00)"
                                ),
                            );
                            None
                        }
                    }
                }
            }
        };
        let from = instant("from");
        let until = instant("until");
        let mut windows = Vec::new();
        if let Some(w) = o.get("windows") {
            let wpath = join(path, "windows");
            match w.as_array() {
                None => self.err(&wpath, "must be a list of windows"),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{wpath}[{i}]");
                        if let Some(wo) = self.object(item, &p, "a window") {
                            self.fields(wo, &p, &["days", "from", "to", "zone"]);
                            windows.extend(self.window(wo, &p));
                        }
                    }
                }
            }
        }
        let (from, until) = (from?, until?);
        if let (Some(f), Some(u)) = (from, until)
            && f >= u
        {
            self.err(&join(path, "until"), "must be after `from`");
        }
        Some(Schedule {
            from,
            until,
            windows,
        })
    }
}
