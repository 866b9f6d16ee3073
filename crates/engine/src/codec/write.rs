//! Writing a BODY: the structure is written as it goes, the string table at the end.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{DIGITS, SLOTS, STRINGS, VARIANTS};
use crate::allocation::Allocation;
use crate::edit::{Action, Edits};
use crate::model::{
    Arena, Cmp, Flag, FlagType, Op, Route, Schedule, Serve, Snapshot, Span, StrSet,
};
use crate::zone::Window;

/// The BODY of a snapshot.
pub(super) fn body(s: &Snapshot) -> String {
    let mut w = Writer::new(&s.arena);
    w.snapshot(s);
    w.finish()
}

/// Builds a BODY: the structure is written as it goes, the string table at the end.
struct Writer<'s> {
    arena: &'s Arena,
    out: String,
    ids: HashMap<Cow<'s, str>, usize>,
    table: Vec<Cow<'s, str>>,
    /// Lists already written, by kind ([`VARIANTS`], [`STRINGS`], [`SLOTS`]): their
    /// encoded text and their number.
    lists: [HashMap<String, usize>; 3],
    /// Items the reader will hold in each array ([`Arena`] order: variants, rules,
    /// clauses, strings, splits, slots), so that it allocates each array once.
    counts: [usize; 6],
    /// Items of the list being written by [`Writer::shared`], counted if it is new.
    pending: usize,
    /// The text of the previous flag's rules when the reader will share them with a
    /// flag whose rules are written the same (see `Reader::rules`).
    last_rules: Option<String>,
}

impl<'s> Writer<'s> {
    fn new(arena: &'s Arena) -> Writer<'s> {
        Writer {
            arena,
            out: String::new(),
            ids: HashMap::new(),
            table: Vec::new(),
            lists: Default::default(),
            counts: [0; 6],
            pending: 0,
            last_rules: None,
        }
    }

    fn num(&mut self, mut v: u64) {
        loop {
            let low = (v & 31) as usize;
            v >>= 5;
            if v == 0 {
                self.out.push(char::from(DIGITS[low]));
                return;
            }
            self.out.push(char::from(DIGITS[low | 32]));
        }
    }
    fn int(&mut self, v: usize) {
        self.num(v as u64);
    }
    fn bool(&mut self, b: bool) {
        self.num(u64::from(b));
    }
    fn signed(&mut self, v: i64) {
        self.num(((v << 1) ^ (v >> 63)) as u64);
    }
    fn float(&mut self, v: f64) {
        // Byte-swapped, so that the usual values (0.5, 1, 0.05) need few digits.
        self.num(v.to_bits().swap_bytes());
    }
    fn str(&mut self, s: &'s str) {
        self.text(Cow::Borrowed(s));
    }
    /// A list of kind `kind` written by `body`: `0` and the list the first time, then
    /// `n + 1` for the n-th list of that kind written before with the same text.
    fn shared(&mut self, kind: usize, body: impl FnOnce(&mut Self)) {
        let outer = std::mem::take(&mut self.out);
        self.pending = 0;
        body(self);
        let text = std::mem::replace(&mut self.out, outer);
        let known = self.lists.get(kind).and_then(|l| l.get(&text)).copied();
        match known {
            Some(n) => self.int(n + 1),
            None => {
                if let Some(lists) = self.lists.get_mut(kind) {
                    let n = lists.len();
                    lists.insert(text.clone(), n);
                }
                let array = [0, 3, 5][kind];
                self.counts[array] += self.pending;
                self.num(0);
                self.out.push_str(&text);
            }
        }
    }
    fn owned(&mut self, s: String) {
        self.text(Cow::Owned(s));
    }
    fn text(&mut self, s: Cow<'s, str>) {
        let id = match self.ids.get(&*s) {
            Some(&id) => id,
            None => {
                let id = self.table.len();
                self.table.push(s.clone());
                self.ids.insert(s, id);
                id
            }
        };
        self.int(id);
    }
    fn opt_str(&mut self, s: &'s Option<String>) {
        match s {
            Some(s) => {
                self.num(1);
                self.str(s);
            }
            None => self.num(0),
        }
    }
    fn strs<T: AsRef<str> + 's>(&mut self, items: impl ExactSizeIterator<Item = &'s T>) {
        self.pending += items.len();
        self.int(items.len());
        for s in items {
            self.str(s.as_ref());
        }
    }
    fn ints(&mut self, items: &[usize]) {
        self.int(items.len());
        for &i in items {
            self.int(i);
        }
    }
    fn floats(&mut self, items: &[f64]) {
        self.int(items.len());
        for &v in items {
            self.float(v);
        }
    }
    fn instants(&mut self, items: &[i64]) {
        self.int(items.len());
        for &v in items {
            self.signed(v);
        }
    }
    fn opt_instant(&mut self, t: Option<DateTime<Utc>>) {
        match t {
            Some(t) => {
                self.num(1);
                self.signed(t.timestamp_millis());
            }
            None => self.num(0),
        }
    }

    fn snapshot(&mut self, s: &'s Snapshot) {
        self.str(&s.fingerprint);
        self.bool(s.uses_traits);
        self.int(s.flags.len());
        for f in &s.flags {
            self.flag(f);
        }
        self.int(s.segments.len());
        for seg in &s.segments {
            self.str_set(&seg.included);
            self.str_set(&seg.excluded);
            self.int(seg.rules.len());
            for clauses in &seg.rules {
                self.clauses(*clauses);
            }
        }
        self.int(s.routes.len());
        for r in &s.routes {
            self.clauses(r.clauses);
            self.int(r.flags.len());
            for (flag, variants) in &r.flags {
                self.int(*flag);
                self.ints(variants);
            }
            self.route(&r.route);
        }
        self.route(&s.default_route);
        match &s.fallback_route {
            Some(r) => {
                self.num(1);
                self.route(r);
            }
            None => self.num(0),
        }
        self.strs(s.ofrep.cors_origins.iter());
        self.bool(s.ofrep.require_auth);
        for pairs in [
            &s.request_context.headers,
            &s.request_context.cookies,
            &s.request_context.query,
        ] {
            self.int(pairs.len());
            for (a, b) in pairs {
                self.str(a);
                self.str(b);
            }
        }
        // Trailing data, only when there is any, so that a snapshot without layers,
        // holdouts and edge changes is written exactly as before they existed: layers and
        // holdouts (empty lists when there are only edge changes), then the edge changes.
        let edits = !s.edits.variants.is_empty() || s.edits.bootstrap;
        if !s.layers.is_empty() || !s.holdouts.is_empty() || edits {
            self.int(s.layers.len());
            for l in &s.layers {
                self.str(&l.name);
                self.str(&l.salt);
                self.str(&l.by);
                self.num(u64::from(l.slots));
            }
            self.int(s.holdouts.len());
            for h in &s.holdouts {
                self.str(&h.name);
                self.str(&h.salt);
                self.str(&h.by);
                self.num(u64::from(h.units));
            }
        }
        if edits {
            self.edits(&s.edits);
        }
    }

    fn edits(&mut self, e: &'s Edits) {
        self.bool(e.bootstrap);
        self.int(e.variants.len());
        for v in &e.variants {
            self.int(v.flag);
            self.int(v.variant);
            self.int(v.changes.len());
            for c in &v.changes {
                self.str(&c.selector);
                self.num(c.action.tag());
                match &c.action {
                    Action::Text(t)
                    | Action::Replace(t)
                    | Action::Prepend(t)
                    | Action::Append(t) => self.str(&t.0),
                    Action::SetAttribute(n, t) => {
                        self.str(n);
                        self.str(&t.0);
                    }
                    Action::RemoveAttribute(s) | Action::Fragment(s) => self.str(s),
                    Action::Remove => {}
                }
            }
            match &v.redirect {
                Some(r) => {
                    self.num(1);
                    self.str(&r.from);
                    self.str(&r.to);
                    self.num(u64::from(r.status));
                }
                None => self.num(0),
            }
        }
    }

    /// A string set, sorted (so that equal snapshots encode equally). A small one is a
    /// shared list; a large one (a hash set when read) is always written out.
    fn str_set(&mut self, set: &'s StrSet) {
        let mut items = set.items(&self.arena.strings);
        items.sort();
        if items.len() > 12 {
            self.num(0);
            self.strs(items.into_iter());
        } else {
            self.shared(STRINGS, |w| w.strs(items.into_iter()));
        }
    }

    fn flag(&mut self, f: &'s Flag) {
        self.str(&f.key);
        // One number for the type and the usual absences: bits 0-1 type, 2 on,
        // 3 temporary, 4 content, 5 prerequisites follow, 6 targets follow, 7 a schedule
        // follows, 8 an exposure sample follows, 9 an allocation (layer, holdouts, ramp)
        // follows.
        let kind = match f.kind {
            FlagType::Boolean => 0,
            FlagType::String => 1,
            FlagType::Number => 2,
            FlagType::Json => 3,
        };
        let bits = [
            f.on,
            f.meta.temporary,
            f.meta.content,
            !f.prerequisites().is_empty(),
            !f.targets().is_empty(),
            f.schedule().is_some(),
            f.meta.exposure_sample != 0.0,
            f.allocation().is_some(),
        ];
        let head = bits
            .iter()
            .enumerate()
            .fold(kind, |h, (i, &b)| h | (u64::from(b) << (i + 2)));
        self.num(head);
        let variants = f.variants.of(&self.arena.variants);
        self.shared(VARIANTS, |w| {
            w.pending = variants.len();
            w.int(variants.len());
            for v in variants {
                w.str(&v.name);
                match &*v.value {
                    // The usual string variant, whose value is its name.
                    Value::String(t) if *t == *v.name => w.num(4),
                    Value::String(t) => {
                        w.num(0);
                        w.str(t);
                    }
                    Value::Bool(b) => w.num(1 + u64::from(*b)),
                    other => {
                        w.num(3);
                        w.owned(other.to_string());
                    }
                }
            }
        });
        self.int(f.off_variant);
        if !f.prerequisites().is_empty() {
            self.int(f.prerequisites().len());
            for p in f.prerequisites() {
                self.int(p.flag);
                self.ints(&p.variants);
            }
        }
        if !f.targets().is_empty() {
            self.int(f.targets().len());
            for (user, variant) in f.targets() {
                self.str(user);
                self.int(*variant);
            }
        }
        self.rules(f.rules);
        self.serve(&f.fallthrough);
        if let Some(s) = f.schedule() {
            self.schedule(Some(s));
        }
        if f.meta.exposure_sample != 0.0 {
            self.float(f.meta.exposure_sample);
        }
        if let Some(a) = f.allocation() {
            self.allocation(a);
        }
    }

    /// A flag's rules. The reader shares rules written exactly as the previous flag's
    /// (when writing those learned no list), so they are not counted again in the sizes
    /// it reserves.
    fn rules(&mut self, rules: Span) {
        let (from, counts, learned) = (self.out.len(), self.counts, self.learned());
        let rules = rules.of(&self.arena.rules);
        self.counts[1] += rules.len();
        self.int(rules.len());
        for r in rules {
            self.str(&r.id);
            self.clauses(r.clauses);
            self.serve(&r.serve);
            self.schedule(r.schedule.as_deref());
        }
        let text = self.out.get(from..).unwrap_or_default();
        if !rules.is_empty() && self.last_rules.as_deref() == Some(text) {
            self.counts = counts;
            return;
        }
        self.last_rules =
            (!rules.is_empty() && self.learned() == learned).then(|| text.to_string());
    }

    /// How many lists have been written so far (of every kind).
    fn learned(&self) -> usize {
        self.lists.iter().map(HashMap::len).sum()
    }

    /// A flag's allocation: its layer place (`0`, or the layer's index plus one, then the
    /// range), its holdouts, and its ramp (`0`, or `1` then the variant, the bucketing
    /// attribute, the salt and the steps as instant and weight).
    fn allocation(&mut self, a: &'s Allocation) {
        match &a.layer {
            Some(m) => {
                self.int(m.layer + 1);
                self.num(u64::from(m.from));
                self.num(u64::from(m.to));
            }
            None => self.num(0),
        }
        self.ints(&a.holdouts);
        match &a.ramp {
            Some(r) => {
                self.num(1);
                self.int(r.variant);
                self.str(&r.by);
                self.str(&r.salt);
                self.int(r.steps.len());
                for step in &r.steps {
                    self.signed(step.at.timestamp_millis());
                    self.num(u64::from(step.units));
                }
            }
            None => self.num(0),
        }
    }

    fn serve(&mut self, s: &'s Serve) {
        match s {
            Serve::Variant(v) => {
                self.num(0);
                self.int(*v);
            }
            Serve::Split(i) => {
                // A damaged index (never made by compile) is written as an empty split,
                // which the reader refuses.
                let arena = self.arena;
                self.num(1);
                match arena.splits.get(*i) {
                    Some(split) => {
                        self.str(&split.by);
                        self.str(&split.salt);
                        let slots = split.slots.of(&arena.slots);
                        self.counts[4] += 1;
                        self.shared(SLOTS, |w| {
                            w.pending = slots.len();
                            w.int(slots.len());
                            for &(upper, v) in slots {
                                w.num(u64::from(upper));
                                w.int(v);
                            }
                        });
                    }
                    None => {
                        self.str("");
                        self.str("");
                        self.num(0);
                        self.int(0);
                    }
                }
            }
        }
    }

    fn schedule(&mut self, s: Option<&'s Schedule>) {
        let Some(s) = s else {
            self.num(0);
            return;
        };
        self.num(1);
        self.opt_instant(s.from);
        self.opt_instant(s.until);
        self.int(s.windows.len());
        for w in &s.windows {
            self.window(w);
        }
    }

    fn window(&mut self, w: &Window) {
        self.num(u64::from(w.days));
        self.num(u64::from(w.from));
        self.num(u64::from(w.to));
        match &w.zone {
            Some(z) => {
                self.num(1);
                self.owned(z.name());
            }
            None => self.num(0),
        }
    }

    fn clauses(&mut self, clauses: Span) {
        let clauses = clauses.of(&self.arena.clauses);
        self.counts[2] += clauses.len();
        self.int(clauses.len());
        for c in clauses {
            self.str(&c.attribute);
            self.op(&c.op, c.negate);
        }
    }

    fn cmp(&mut self, c: Cmp) {
        self.num(c.tag());
    }

    /// An operator: its kind's tag times two, plus one when negated, then its values.
    fn op(&mut self, op: &'s Op, negate: bool) {
        self.num(op.kind().tag() * 2 + u64::from(negate));
        match op {
            Op::In { strs, nums, bools } => {
                self.str_set(strs);
                // Numbers and booleans are rare in `in`: one 0 when there are none.
                if nums.is_empty() && bools.is_empty() {
                    self.num(0);
                } else {
                    self.num(1);
                    self.floats(nums);
                    self.int(bools.len());
                    for b in bools {
                        self.bool(*b);
                    }
                }
            }
            Op::StartsWith(v) | Op::EndsWith(v) | Op::Contains(v) => {
                let items = v.of(&self.arena.strings);
                self.shared(STRINGS, |w| w.strs(items.iter()));
            }
            Op::Matches(v) => {
                self.int(v.len());
                for r in v {
                    self.str(r.as_str());
                }
            }
            Op::Number(c, v) => {
                self.cmp(*c);
                self.floats(v);
            }
            Op::Semver(c, v) => {
                self.cmp(*c);
                self.int(v.len());
                for version in v {
                    self.owned(version.to_string());
                }
            }
            Op::Before(v) | Op::After(v) => self.instants(v),
            Op::LocalTime(w) => self.window(w),
            Op::Segment(v) => self.ints(v),
            Op::Exists => {}
        }
    }

    fn route(&mut self, r: &'s Route) {
        self.str(&r.id);
        self.str(&r.backend);
        self.opt_str(&r.path_prefix);
        self.opt_str(&r.host);
    }

    /// The BODY: the string table, then the structure.
    fn finish(self) -> String {
        let mut head = Writer::new(self.arena);
        head.out = String::with_capacity(self.out.len() + 16 * self.table.len());
        head.int(self.table.len());
        for s in &self.table {
            head.int(s.len());
            head.out.push_str(s);
        }
        for n in self.counts {
            head.int(n);
        }
        head.out.push_str(&self.out);
        head.out
    }
}
