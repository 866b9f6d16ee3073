//! Reading a BODY into a snapshot: one shared copy of the string table's text that every
//! name is a range of, one allocation per array, every count and index checked against
//! what is left.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{MAX_RESERVE, SLOTS, STRINGS, VALUES, VARIANTS, span};
use crate::allocation::{Allocation, Holdout, Layer, Membership, Ramp, Step};
use crate::context::same_bytes;
use crate::edit::{Action, Change, Edits, Redirect, Template, VariantEdits};
use crate::model::{
    Arena, Clause, Cmp, ContextSettings, Extra, Flag, FlagType, Metadata, Name, OfrepSettings, Op,
    OpKind, Prerequisite, Route, RouteRule, Rule, Schedule, Segment, Serve, Snapshot, Span, Split,
    StrSet, Variant, key_order,
};
use crate::zone::{Window, Zone};

/// The snapshot a BODY holds, or why it cannot be read.
pub(super) fn body(text: &str) -> Result<Snapshot, &'static str> {
    let mut r = Reader {
        text,
        pos: 0,
        arena: Arena::default(),
        lists: Default::default(),
        last_rules: None,
        table: Vec::new(),
        values: Vec::new(),
    };
    r.snapshot().map_err(|Bad(why)| why)
}

/// Reads a BODY.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    arena: Arena,
    /// The lists read so far, by kind, for the ones referred to again.
    lists: [Vec<Span>; 3],
    /// The text of the last flag's rules (from their count on) and where they went, when
    /// reading them again would give the same rules (see [`Reader::rules`]).
    last_rules: Option<(usize, usize, Span)>,
    table: Vec<Name>,
    /// Variant values made from table strings, shared like the strings.
    values: Vec<Option<Arc<Value>>>,
}

/// Why a BODY is unreadable (a [`super::Damaged`] once out of the reader; kept small
/// so that every read returns in registers).
#[derive(Debug, Clone, Copy)]
struct Bad(&'static str);

impl<'a> Reader<'a> {
    #[inline(always)]
    fn num(&mut self) -> Result<u64, Bad> {
        Reader::num_at(self.text, &mut self.pos)
    }

    #[inline(always)]
    fn num_at(text: &str, pos: &mut usize) -> Result<u64, Bad> {
        let bytes = text.as_bytes();
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = *bytes.get(*pos).ok_or(Bad("it ends early"))?;
            *pos += 1;
            let d = VALUES[usize::from(b)];
            if d < 32 {
                return Ok(v | u64::from(d) << shift);
            }
            if d == 255 {
                return Err(Bad("a number has a character that is not a digit"));
            }
            v |= u64::from(d & 31) << shift;
            shift += 5;
            if shift > 60 {
                return Err(Bad("a number is too long"));
            }
        }
    }
    #[inline(always)]
    fn int(&mut self) -> Result<usize, Bad> {
        usize::try_from(self.num()?).map_err(|_| Bad("an index is out of range"))
    }
    #[inline(always)]
    fn u32(&mut self) -> Result<u32, Bad> {
        u32::try_from(self.num()?).map_err(|_| Bad("a number is out of range"))
    }
    /// A list length: every item takes at least one character, so a length longer than
    /// what is left is damage (and never a huge allocation).
    #[inline(always)]
    fn len(&mut self) -> Result<usize, Bad> {
        let n = self.int()?;
        if n > self.text.len().saturating_sub(self.pos) {
            return Err(Bad("a list is longer than the data"));
        }
        Ok(n)
    }
    #[inline(always)]
    fn bool(&mut self) -> Result<bool, Bad> {
        match self.num()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Bad("a flag value is neither 0 nor 1")),
        }
    }
    #[inline(always)]
    fn signed(&mut self) -> Result<i64, Bad> {
        let v = self.num()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    #[inline(always)]
    fn float(&mut self) -> Result<f64, Bad> {
        Ok(f64::from_bits(self.num()?.swap_bytes()))
    }
    #[inline(always)]
    fn id(&mut self) -> Result<usize, Bad> {
        let id = self.int()?;
        if id >= self.table.len() {
            return Err(Bad("a string index is out of range"));
        }
        Ok(id)
    }
    fn name_at(&self, id: usize) -> Result<Name, Bad> {
        self.table
            .get(id)
            .cloned()
            .ok_or(Bad("a string index is out of range"))
    }
    #[inline(always)]
    fn str(&mut self) -> Result<Name, Bad> {
        let id = self.id()?;
        self.table
            .get(id)
            .cloned()
            .ok_or(Bad("a string index is out of range"))
    }
    fn string(&mut self) -> Result<String, Bad> {
        // `String::from`, not `to_string`: the latter goes through the formatter.
        Ok(String::from(&*self.str()?))
    }
    fn opt_string(&mut self) -> Result<Option<String>, Bad> {
        Ok(if self.bool()? {
            Some(self.string()?)
        } else {
            None
        })
    }
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, Bad>,
    ) -> Result<Vec<T>, Bad> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(MAX_RESERVE));
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
    fn opt_instant(&mut self) -> Result<Option<DateTime<Utc>>, Bad> {
        if !self.bool()? {
            return Ok(None);
        }
        DateTime::from_timestamp_millis(self.signed()?)
            .map(Some)
            .ok_or(Bad("an instant is out of range"))
    }

    /// The string table at the start of a BODY: read twice, first to find where its
    /// strings end, then to cut each one as a range of one shared copy of the table's
    /// text (one allocation for every string; the lengths between them come along).
    fn table(&mut self) -> Result<(), Bad> {
        let n = self.len()?;
        let first = self.pos;
        for _ in 0..n {
            let len = self.int()?;
            let end = self
                .pos
                .checked_add(len)
                .ok_or(Bad("a string is too long"))?;
            self.text
                .get(self.pos..end)
                .ok_or(Bad("a string runs past the end or splits a character"))?;
            self.pos = end;
        }
        let text: Arc<str> = Arc::from(self.text.get(first..self.pos).unwrap_or_default());
        self.pos = first;
        self.table.reserve_exact(n);
        // The same numbers as the first pass read, so every range is one it checked;
        // checked again all the same (a damaged table is refused, never a panic).
        let bad = Bad("a string runs past the end or splits a character");
        for _ in 0..n {
            let len = self.int()?;
            let start = self.pos.checked_sub(first).ok_or(bad)?;
            let end = start.checked_add(len).ok_or(bad)?;
            self.table.push(Name::within(&text, start, end).ok_or(bad)?);
            self.pos = first.checked_add(end).ok_or(bad)?;
        }
        self.values = vec![None; n];
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Snapshot, Bad> {
        self.table()?;
        let mut sizes = [0usize; 6];
        for n in &mut sizes {
            // Bounded like a list: a size beyond the data is damage, not an allocation.
            *n = self.len()?;
        }
        let [variants, rules, clauses, strings, splits, slots] = sizes;
        self.arena = Arena {
            variants: Vec::with_capacity(variants.min(MAX_RESERVE)),
            rules: Vec::with_capacity(rules.min(MAX_RESERVE)),
            clauses: Vec::with_capacity(clauses.min(MAX_RESERVE)),
            strings: Vec::with_capacity(strings.min(MAX_RESERVE)),
            splits: Vec::with_capacity(splits.min(MAX_RESERVE)),
            slots: Vec::with_capacity(slots.min(MAX_RESERVE)),
            words: Vec::new(),
            tests: Vec::new(),
        };
        let fingerprint = self.string()?;
        let uses_traits = self.bool()?;
        let flags = self.list(Self::flag)?;
        let segments = self.list(|r| {
            Ok(Segment {
                included: r.str_set()?,
                excluded: r.str_set()?,
                rules: r.list(Self::clauses)?,
            })
        })?;
        let routes = self.list(|r| {
            Ok(RouteRule {
                clauses: r.clauses()?,
                flags: r.list(|r| Ok((r.int()?, r.list(Self::int)?)))?,
                route: r.route()?,
            })
        })?;
        let default_route = self.route()?;
        let fallback_route = if self.bool()? {
            Some(self.route()?)
        } else {
            None
        };
        let ofrep = OfrepSettings {
            cors_origins: self.list(Self::string)?,
            require_auth: self.bool()?,
        };
        let mut pairs = || self.list(|r| Ok((r.string()?, r.string()?)));
        let request_context = ContextSettings {
            headers: pairs()?,
            cookies: pairs()?,
            query: pairs()?,
        };
        // Layers and holdouts trail the rest, when there are any.
        let (mut layers, mut holdouts) = (Vec::new(), Vec::new());
        if self.pos < self.text.len() {
            layers = self.list(|r| {
                let (name, salt, by) = (r.str()?, r.str()?, r.str()?);
                Ok(Layer::new(name, salt, by, r.u32()?))
            })?;
            holdouts = self.list(|r| {
                let (name, salt, by) = (r.str()?, r.str()?, r.str()?);
                Ok(Holdout::new(name, salt, by, r.u32()?))
            })?;
        }
        // Edge changes, when the snapshot has any (they follow the layers and holdouts).
        let edits = if self.pos == self.text.len() {
            Edits::default()
        } else {
            self.edits()?
        };
        if self.pos != self.text.len() {
            return Err(Bad("there is data after the snapshot"));
        }
        let index = key_order(&flags);
        Ok(Snapshot {
            flags,
            arena: std::mem::take(&mut self.arena).sealed(),
            index,
            segments,
            routes,
            default_route,
            fallback_route,
            ofrep,
            request_context,
            fingerprint,
            uses_traits,
            layers,
            holdouts,
            edits,
        })
    }

    fn edits(&mut self) -> Result<Edits, Bad> {
        let bootstrap = self.bool()?;
        let variants = self.list(|r| {
            let flag = r.int()?;
            let variant = r.int()?;
            let changes = r.list(|r| {
                let selector = r.string()?;
                let t = |r: &mut Self| Ok::<_, Bad>(Template(r.string()?));
                let action = match r.num()? {
                    0 => Action::Text(t(r)?),
                    1 => Action::SetAttribute(r.string()?, t(r)?),
                    2 => Action::RemoveAttribute(r.string()?),
                    3 => Action::Replace(t(r)?),
                    4 => Action::Prepend(t(r)?),
                    5 => Action::Append(t(r)?),
                    6 => Action::Remove,
                    7 => Action::Fragment(r.string()?),
                    _ => return Err(Bad("an edge change has an unknown action")),
                };
                Ok(Change { selector, action })
            })?;
            let redirect = if r.bool()? {
                let (from, to) = (r.string()?, r.string()?);
                let status = match r.num()? {
                    302 => 302,
                    307 => 307,
                    _ => return Err(Bad("a redirect has a status other than 302 or 307")),
                };
                Some(Redirect { from, to, status })
            } else {
                None
            };
            Ok(VariantEdits {
                flag,
                variant,
                changes,
                redirect,
            })
        })?;
        // Lookups binary-search by (flag, variant).
        if variants
            .windows(2)
            .any(|w| (w[0].flag, w[0].variant) >= (w[1].flag, w[1].variant))
        {
            return Err(Bad("edge changes are out of order"));
        }
        Ok(Edits {
            variants,
            bootstrap,
            redirect_hosts: Vec::new(),
        })
    }

    /// A list read before: `n + 1` names the n-th list of `kind`.
    fn known(&self, kind: usize, tag: u64) -> Result<Span, Bad> {
        usize::try_from(tag - 1)
            .ok()
            .and_then(|n| self.lists.get(kind)?.get(n).copied())
            .ok_or(Bad("a list refers to one not read yet"))
    }

    /// Records a list read for the first time.
    fn learn(&mut self, kind: usize, list: Span) -> Span {
        if let Some(lists) = self.lists.get_mut(kind) {
            lists.push(list);
        }
        list
    }

    /// A string set: small ones go to the strings array (and may be shared).
    fn str_set(&mut self) -> Result<StrSet, Bad> {
        let tag = self.num()?;
        if tag != 0 {
            return Ok(StrSet::Few(self.known(STRINGS, tag)?));
        }
        let n = self.len()?;
        if n > 12 {
            let mut set = std::collections::HashSet::with_capacity(n.min(MAX_RESERVE));
            for _ in 0..n {
                set.insert(self.str()?);
            }
            return Ok(StrSet::Many(Box::new(set)));
        }
        let list = self.strings_of_len(n)?;
        Ok(StrSet::Few(self.learn(STRINGS, list)))
    }

    /// A list of strings into the strings array (or one read before).
    fn strings(&mut self) -> Result<Span, Bad> {
        let tag = self.num()?;
        if tag != 0 {
            return self.known(STRINGS, tag);
        }
        let n = self.len()?;
        let list = self.strings_of_len(n)?;
        Ok(self.learn(STRINGS, list))
    }

    fn strings_of_len(&mut self, n: usize) -> Result<Span, Bad> {
        let start = self.arena.strings.len();
        for _ in 0..n {
            let s = self.str()?;
            self.arena.strings.push(s);
        }
        Ok(span(start, n))
    }

    /// A variant's value; `name_id` is the variant's name (tag 4: the value is the name).
    fn value(&mut self, name_id: usize) -> Result<Arc<Value>, Bad> {
        match self.num()? {
            tag @ (0 | 4) => {
                let id = if tag == 4 { name_id } else { self.id()? };
                let slot = self
                    .values
                    .get_mut(id)
                    .ok_or(Bad("a string index is out of range"))?;
                if let Some(v) = slot {
                    return Ok(v.clone());
                }
                let text = self
                    .table
                    .get(id)
                    .map(|s| String::from(&**s))
                    .unwrap_or_default();
                let v = Arc::new(Value::String(text));
                if let Some(slot) = self.values.get_mut(id) {
                    *slot = Some(v.clone());
                }
                Ok(v)
            }
            1 => Ok(Arc::new(Value::Bool(false))),
            2 => Ok(Arc::new(Value::Bool(true))),
            3 => {
                let text = self.str()?;
                serde_json::from_str(&text)
                    .map(Arc::new)
                    .map_err(|_| Bad("a variant value is not JSON"))
            }
            _ => Err(Bad("unknown variant value tag")),
        }
    }

    fn flag(&mut self) -> Result<Flag, Bad> {
        let key = self.str()?;
        let head = self.num()?;
        if head >> 10 != 0 {
            return Err(Bad("unknown flag bits"));
        }
        let bit = |i: u32| head & (1 << i) != 0;
        let kind = match head & 3 {
            0 => FlagType::Boolean,
            1 => FlagType::String,
            2 => FlagType::Number,
            _ => FlagType::Json,
        };
        let tag = self.num()?;
        let variants = if tag != 0 {
            self.known(VARIANTS, tag)?
        } else {
            let n = self.len()?;
            let start = self.arena.variants.len();
            for _ in 0..n {
                let name_id = self.id()?;
                let value = self.value(name_id)?;
                let name = self.name_at(name_id)?;
                self.arena.variants.push(Variant { name, value });
            }
            self.learn(VARIANTS, span(start, n))
        };
        let off_variant = self.int()?;
        // Prerequisites, targets, a schedule and an allocation go to the flag's `extra`,
        // made only for a flag that has one of them (most have none, and then nothing is
        // built, moved or dropped here).
        let mut extra: Option<Box<Extra>> = None;
        if bit(5) {
            let prerequisites = self.list(|r| {
                Ok(Prerequisite {
                    flag: r.int()?,
                    variants: r.list(Self::int)?,
                })
            })?;
            if !prerequisites.is_empty() {
                extra.get_or_insert_default().prerequisites = prerequisites;
            }
        }
        if bit(6) {
            let targets: Vec<(Name, usize)> = self.list(|r| Ok((r.str()?, r.int()?)))?;
            if targets.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(Bad("targeted users are not in order"));
            }
            if !targets.is_empty() {
                extra.get_or_insert_default().targets = targets;
            }
        }
        let rules = self.rules()?;
        let fallthrough = self.serve()?;
        if bit(7)
            && let Some(schedule) = self.schedule()?
        {
            extra.get_or_insert_default().schedule = Some(*schedule);
        }
        let meta = Metadata {
            temporary: bit(3),
            content: bit(4),
            exposure_sample: if bit(8) { self.float()? } else { 0.0 },
            about: None,
        };
        if bit(9) {
            let allocation = self.allocation()?;
            extra.get_or_insert_default().allocation = Some(allocation);
        }
        Ok(Flag {
            key,
            kind,
            on: bit(2),
            variants,
            off_variant,
            rules,
            fallthrough,
            extra,
            meta,
        })
    }

    /// A flag's rules. Flags often have the same rules (the same ids, clauses and
    /// served variants), which the BODY writes out again for each: when a flag's rules
    /// are written exactly as the previous flag's, they are that flag's rules, shared
    /// (one copy in the rules and clauses arrays, as a list written once and referred
    /// to is), not read again. The same text read in the same state gives the same
    /// rules, so sharing changes nothing a reader sees; the state is the same unless
    /// reading the rules learned a list (the text then says "a new list" where a later
    /// flag's says "list n"), and such rules are not shared.
    fn rules(&mut self) -> Result<Span, Bad> {
        let from = self.pos;
        if let Some((start, end, rules)) = self.last_rules {
            // Compared as words: in wasm, `memcmp` goes byte by byte.
            let bytes = self.text.as_bytes();
            let last = bytes.get(start..end).unwrap_or_default();
            let here = bytes.get(from..from + last.len()).unwrap_or_default();
            if !last.is_empty() && same_bytes(here, last) {
                self.pos = from + last.len();
                return Ok(rules);
            }
        }
        let learned: usize = self.lists.iter().map(Vec::len).sum();
        // Reading a rule adds to the other arrays, never to the rules array, so a
        // flag's rules are contiguous when pushed one by one.
        let n = self.len()?;
        let start = self.arena.rules.len();
        for _ in 0..n {
            let rule = Rule {
                id: self.str()?,
                clauses: self.clauses()?,
                serve: self.serve()?,
                schedule: self.schedule()?,
            };
            self.arena.rules.push(rule);
        }
        let rules = span(start, n);
        let same_state = self.lists.iter().map(Vec::len).sum::<usize>() == learned;
        self.last_rules = (n > 0 && same_state).then_some((from, self.pos, rules));
        Ok(rules)
    }

    fn allocation(&mut self) -> Result<Allocation, Bad> {
        let layer = match self.int()? {
            0 => None,
            n => Some(Membership {
                layer: n - 1,
                from: self.u32()?,
                to: self.u32()?,
            }),
        };
        let holdouts = self.list(Self::int)?;
        let ramp = if self.bool()? {
            let variant = self.int()?;
            let (by, salt) = (self.str()?, self.str()?);
            let steps = self.list(|r| {
                let at = DateTime::from_timestamp_millis(r.signed()?)
                    .ok_or(Bad("an instant is out of range"))?;
                Ok(Step {
                    at,
                    units: r.u32()?,
                })
            })?;
            Some(Ramp {
                variant,
                prefix: crate::bucket::Prefix::new(&salt),
                by,
                salt,
                steps,
            })
        } else {
            None
        };
        Ok(Allocation {
            layer,
            holdouts,
            ramp,
        })
    }

    fn serve(&mut self) -> Result<Serve, Bad> {
        match self.num()? {
            0 => Ok(Serve::Variant(self.int()?)),
            1 => {
                let by = self.str()?;
                let salt = self.str()?;
                let tag = self.num()?;
                let slots = if tag != 0 {
                    self.known(SLOTS, tag)?
                } else {
                    let n = self.len()?;
                    if n == 0 {
                        return Err(Bad("a split has no variants"));
                    }
                    let start = self.arena.slots.len();
                    for _ in 0..n {
                        let slot = (self.u32()?, self.int()?);
                        self.arena.slots.push(slot);
                    }
                    self.learn(SLOTS, span(start, n))
                };
                self.arena.splits.push(Split {
                    prefix: crate::bucket::Prefix::new(&salt),
                    word: crate::context::short_word(&by),
                    by,
                    salt,
                    slots,
                });
                Ok(Serve::Split(self.arena.splits.len() - 1))
            }
            _ => Err(Bad("unknown serve tag")),
        }
    }

    fn schedule(&mut self) -> Result<Option<Box<Schedule>>, Bad> {
        if !self.bool()? {
            return Ok(None);
        }
        Ok(Some(Box::new(Schedule {
            from: self.opt_instant()?,
            until: self.opt_instant()?,
            windows: self.list(Self::window)?,
        })))
    }

    fn window(&mut self) -> Result<Window, Bad> {
        let days = u8::try_from(self.num()?).map_err(|_| Bad("days out of range"))?;
        let from = self.u32()?;
        let to = self.u32()?;
        let zone = if self.bool()? {
            let name = self.str()?;
            Some(Zone::parse(&name).ok_or(Bad("an unknown time zone"))?)
        } else {
            None
        };
        Ok(Window {
            days,
            from,
            to,
            zone,
        })
    }

    /// A list of clauses into the clauses array. (An operator's strings go to the
    /// strings array, which no clause list shares, so each list stays contiguous.)
    fn clauses(&mut self) -> Result<Span, Bad> {
        let n = self.len()?;
        let start = self.arena.clauses.len();
        for _ in 0..n {
            let attribute = self.str()?;
            let (op, negate) = self.op()?;
            let clause = Clause::new(attribute, op, negate);
            self.arena.clauses.push(clause);
        }
        Ok(span(start, n))
    }

    fn cmp(&mut self) -> Result<Cmp, Bad> {
        Cmp::from_tag(self.num()?).ok_or(Bad("unknown comparison"))
    }

    /// An operator and whether it is negated.
    fn op(&mut self) -> Result<(Op, bool), Bad> {
        let tag = self.num()?;
        let negate = tag & 1 == 1;
        let kind = OpKind::from_tag(tag >> 1).ok_or(Bad("unknown operator"))?;
        let op = match kind {
            OpKind::In => {
                let strs = self.str_set()?;
                let (nums, bools) = if self.bool()? {
                    (self.list(Self::float)?, self.list(Self::bool)?)
                } else {
                    (Vec::new(), Vec::new())
                };
                Op::In { strs, nums, bools }
            }
            OpKind::StartsWith => Op::StartsWith(self.strings()?),
            OpKind::EndsWith => Op::EndsWith(self.strings()?),
            OpKind::Contains => Op::Contains(self.strings()?),
            OpKind::Matches => Op::Matches(self.list(|r| {
                let p = r.str()?;
                regex_lite::Regex::new(&p).map_err(|_| Bad("a pattern does not compile"))
            })?),
            OpKind::Number => Op::Number(self.cmp()?, self.list(Self::float)?),
            OpKind::Semver => Op::Semver(
                self.cmp()?,
                self.list(|r| {
                    let v = r.str()?;
                    semver::Version::parse(&v).map_err(|_| Bad("a version does not parse"))
                })?,
            ),
            OpKind::Before => Op::Before(self.list(Self::signed)?),
            OpKind::After => Op::After(self.list(Self::signed)?),
            OpKind::LocalTime => Op::LocalTime(self.window()?),
            OpKind::Segment => Op::Segment(self.list(Self::int)?),
            OpKind::Exists => Op::Exists,
        };
        Ok((op, negate))
    }

    fn route(&mut self) -> Result<Route, Bad> {
        Ok(Route {
            id: self.string()?,
            backend: self.string()?,
            path_prefix: self.opt_string()?,
            host: self.opt_string()?,
        })
    }
}
