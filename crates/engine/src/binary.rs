//! The packed snapshot (format 3): what `edgeflags pack` writes and the edge reads.
//!
//! A fresh instance used to parse the flag file (JSON) and compile it, about 2 ms for 100
//! flags inside wasm (format 1). Format 2 stored the compiled snapshot as postcard in
//! base64, and decoding it still cost about 260 µs, most of it one allocation, copy and
//! UTF-8 check per string (2,100 of them for 100 flags) and a tree of small vectors.
//! Format 3 is text, so the store's string is decoded in place, with no base64 step:
//!
//! `efb3.` base64url(deflate(flag file JSON)) `.` BODY
//!
//! BODY is a string table (a count, then each distinct string as its length in bytes and
//! its text, raw), the sizes of the snapshot's arrays (a `Span` of the model points into
//! them), then the compiled snapshot, in which every string is a table index and every
//! number a little-endian varint written in base64url digits (a digit carries 5 bits,
//! plus a sixth that says another digit follows). A flag's variants, a list of strings
//! and a split's slots are written once and then referred to by number, so flags that
//! share them (`on`/`off`, `control`/`treatment`, a country list) decode to one copy.
//! Decoding makes one shared string per table entry and one allocation per array: for
//! 100 flags about 130 allocations, where format 2 made about 2,100. The deflated flag
//! file rides along for `diff`, `rollback` and people; the compiled part leaves out what
//! the edge never reads (descriptions, owners, tags, clean-up dates). Index fields are
//! re-checked by evaluation (every lookup is a `get`), so even a damaged snapshot cannot
//! panic; the checksum and optional signature of [`crate::pack`] guard its integrity. A
//! format-1 payload (the flag file JSON itself) still loads, by compiling it; a format-2
//! payload is refused with a reason, and its flag file can still be read back by
//! [`source`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::compile::{CompileError, compile_packed};
use crate::model::{
    Arena, Clause, Cmp, ContextSettings, Flag, FlagType, Metadata, Name, OfrepSettings, Op,
    Prerequisite, Rule, Schedule, Segment, Serve, Snapshot, Span, Split, StrSet, Variant,
    key_order,
};
use crate::route::{Route, RouteRule};
use crate::zone::{Window, Zone};

/// The first characters of a format-3 payload.
pub const MAGIC: &str = "efb3.";
/// The first characters of a format-2 payload (no longer decoded).
const MAGIC_2: &str = "efb2.";

/// Why a payload could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The envelope or the compiled part is damaged.
    #[error("the packed snapshot is damaged: {0}")]
    Damaged(String),
    /// A format-1 (JSON) payload did not compile.
    #[error("{0}")]
    Compile(String),
    /// A payload in a format this build no longer decodes.
    #[error(
        "the packed snapshot is in format {0}, which this build no longer reads: pack the flag file again"
    )]
    Retired(u32),
}

impl From<CompileError> for LoadError {
    fn from(e: CompileError) -> LoadError {
        LoadError::Compile(e.to_string())
    }
}

/// The base64url alphabet: a digit's value is its position.
const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Digit values by byte; 255 for a byte that is not a digit.
static VALUES: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 64 {
        t[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    t
};

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
}

/// The kinds of list written once and then referred to: a flag's variants, a list of
/// strings (a small set or an operator's values), a split's slots. Flags that share
/// variants (`on`/`off`, `control`/`treatment`) or a country list decode to one copy.
const VARIANTS: usize = 0;
const STRINGS: usize = 1;
const SLOTS: usize = 2;

impl<'s> Writer<'s> {
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
        // follows, 8 an exposure sample follows.
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
            !f.prerequisites.is_empty(),
            !f.targets.is_empty(),
            f.schedule.is_some(),
            f.meta.exposure_sample != 0.0,
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
        if !f.prerequisites.is_empty() {
            self.int(f.prerequisites.len());
            for p in &f.prerequisites {
                self.int(p.flag);
                self.ints(&p.variants);
            }
        }
        if !f.targets.is_empty() {
            self.int(f.targets.len());
            for (user, variant) in &f.targets {
                self.str(user);
                self.int(*variant);
            }
        }
        let rules = f.rules.of(&self.arena.rules);
        self.counts[1] += rules.len();
        self.int(rules.len());
        for r in rules {
            self.str(&r.id);
            self.clauses(r.clauses);
            self.serve(&r.serve);
            self.schedule(r.schedule.as_deref());
        }
        self.serve(&f.fallthrough);
        if let Some(s) = &f.schedule {
            self.schedule(Some(s));
        }
        if f.meta.exposure_sample != 0.0 {
            self.float(f.meta.exposure_sample);
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
        self.num(match c {
            Cmp::Lt => 0,
            Cmp::Lte => 1,
            Cmp::Gt => 2,
            Cmp::Gte => 3,
            Cmp::Eq => 4,
        });
    }

    /// An operator: its tag times two, plus one when negated, then its values.
    fn op(&mut self, op: &'s Op, negate: bool) {
        let tag = |t: u64| t * 2 + u64::from(negate);
        match op {
            Op::In { strs, nums, bools } => {
                self.num(tag(0));
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
            Op::StartsWith(v) => {
                self.num(tag(1));
                let items = v.of(&self.arena.strings);
                self.shared(STRINGS, |w| w.strs(items.iter()));
            }
            Op::EndsWith(v) => {
                self.num(tag(2));
                let items = v.of(&self.arena.strings);
                self.shared(STRINGS, |w| w.strs(items.iter()));
            }
            Op::Contains(v) => {
                self.num(tag(3));
                let items = v.of(&self.arena.strings);
                self.shared(STRINGS, |w| w.strs(items.iter()));
            }
            Op::Matches(v) => {
                self.num(tag(4));
                self.int(v.len());
                for r in v {
                    self.str(r.as_str());
                }
            }
            Op::Number(c, v) => {
                self.num(tag(5));
                self.cmp(*c);
                self.floats(v);
            }
            Op::Semver(c, v) => {
                self.num(tag(6));
                self.cmp(*c);
                self.int(v.len());
                for version in v {
                    self.owned(version.to_string());
                }
            }
            Op::Before(v) => {
                self.num(tag(7));
                self.instants(v);
            }
            Op::After(v) => {
                self.num(tag(8));
                self.instants(v);
            }
            Op::LocalTime(w) => {
                self.num(tag(9));
                self.window(w);
            }
            Op::Segment(v) => {
                self.num(tag(10));
                self.ints(v);
            }
            Op::Exists => self.num(tag(11)),
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
        let mut head = Writer {
            arena: self.arena,
            out: String::with_capacity(self.out.len() + 16 * self.table.len()),
            ids: HashMap::new(),
            table: Vec::new(),
            lists: Default::default(),
            counts: [0; 6],
            pending: 0,
        };
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

/// The compiled snapshot as a BODY (see the module documentation).
pub fn encode(s: &Snapshot) -> String {
    let mut w = Writer {
        arena: &s.arena,
        out: String::new(),
        ids: HashMap::new(),
        table: Vec::new(),
        lists: Default::default(),
        counts: [0; 6],
        pending: 0,
    };
    w.snapshot(s);
    w.finish()
}

/// The most items reserved ahead from a count in the body. Counts are bounded by the
/// characters left, so a damaged count cannot ask for more than the body could hold; this
/// bounds the reservation further (a list or array that really is longer grows as its
/// items are read, each of which uses up characters).
const MAX_RESERVE: usize = 1 << 14;

fn span(start: usize, len: usize) -> Span {
    Span {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        len: u32::try_from(len).unwrap_or(0),
    }
}

/// Reads a BODY.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    arena: Arena,
    /// The lists read so far, by kind, for the ones referred to again.
    lists: [Vec<Span>; 3],
    table: Vec<Name>,
    /// Variant values made from table strings, shared like the strings.
    values: Vec<Option<Arc<Value>>>,
}

/// Why a BODY is unreadable (a [`Bad::Damaged`] once out of the reader; kept small
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
        Ok(self.str()?.to_string())
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

    /// The string table at the start of a BODY.
    fn table(&mut self) -> Result<(), Bad> {
        let n = self.len()?;
        self.table.reserve_exact(n);
        for _ in 0..n {
            let len = self.int()?;
            let end = self
                .pos
                .checked_add(len)
                .ok_or(Bad("a string is too long"))?;
            let s = self
                .text
                .get(self.pos..end)
                .ok_or(Bad("a string runs past the end or splits a character"))?;
            self.table.push(Name::from(s));
            self.pos = end;
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
        if self.pos != self.text.len() {
            return Err(Bad("there is data after the snapshot"));
        }
        let index = key_order(&flags);
        Ok(Snapshot {
            flags,
            arena: std::mem::take(&mut self.arena),
            index,
            segments,
            routes,
            default_route,
            fallback_route,
            ofrep,
            request_context,
            fingerprint,
            uses_traits,
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
                    .map(|s| s.to_string())
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
        if head >> 9 != 0 {
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
        let prerequisites = if bit(5) {
            self.list(|r| {
                Ok(Prerequisite {
                    flag: r.int()?,
                    variants: r.list(Self::int)?,
                })
            })?
        } else {
            Vec::new()
        };
        let targets: Vec<(Name, usize)> = if bit(6) {
            self.list(|r| Ok((r.str()?, r.int()?)))?
        } else {
            Vec::new()
        };
        if targets.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Bad("targeted users are not in order"));
        }
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
        let fallthrough = self.serve()?;
        let schedule = if bit(7) { self.schedule()? } else { None };
        let meta = Metadata {
            temporary: bit(3),
            content: bit(4),
            exposure_sample: if bit(8) { self.float()? } else { 0.0 },
            about: None,
        };
        Ok(Flag {
            key,
            kind,
            on: bit(2),
            variants,
            off_variant,
            prerequisites,
            targets,
            rules,
            fallthrough,
            schedule,
            meta,
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
            let clause = Clause {
                attribute,
                op,
                negate,
            };
            self.arena.clauses.push(clause);
        }
        Ok(span(start, n))
    }

    fn cmp(&mut self) -> Result<Cmp, Bad> {
        Ok(match self.num()? {
            0 => Cmp::Lt,
            1 => Cmp::Lte,
            2 => Cmp::Gt,
            3 => Cmp::Gte,
            4 => Cmp::Eq,
            _ => return Err(Bad("unknown comparison")),
        })
    }

    /// An operator and whether it is negated.
    fn op(&mut self) -> Result<(Op, bool), Bad> {
        let tag = self.num()?;
        let negate = tag & 1 == 1;
        let op = match tag >> 1 {
            0 => {
                let strs = self.str_set()?;
                let (nums, bools) = if self.bool()? {
                    (self.list(Self::float)?, self.list(Self::bool)?)
                } else {
                    (Vec::new(), Vec::new())
                };
                Op::In { strs, nums, bools }
            }
            1 => Op::StartsWith(self.strings()?),
            2 => Op::EndsWith(self.strings()?),
            3 => Op::Contains(self.strings()?),
            4 => Op::Matches(self.list(|r| {
                let p = r.str()?;
                regex_lite::Regex::new(&p).map_err(|_| Bad("a pattern does not compile"))
            })?),
            5 => Op::Number(self.cmp()?, self.list(Self::float)?),
            6 => Op::Semver(
                self.cmp()?,
                self.list(|r| {
                    let v = r.str()?;
                    semver::Version::parse(&v).map_err(|_| Bad("a version does not parse"))
                })?,
            ),
            7 => Op::Before(self.list(Self::signed)?),
            8 => Op::After(self.list(Self::signed)?),
            9 => Op::LocalTime(self.window()?),
            10 => Op::Segment(self.list(Self::int)?),
            11 => Op::Exists,
            _ => return Err(Bad("unknown operator")),
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

/// A compiled snapshot from [`encode`]'s BODY.
pub fn decode(body: &str) -> Result<Snapshot, LoadError> {
    let mut r = Reader {
        text: body,
        pos: 0,
        arena: Arena::default(),
        lists: Default::default(),
        table: Vec::new(),
        values: Vec::new(),
    };
    let snapshot = r
        .snapshot()
        .map_err(|Bad(why)| LoadError::Damaged(why.to_string()))?;
    check(&snapshot)?;
    Ok(snapshot)
}

/// What compile guarantees and evaluation relies on to terminate: segments do not
/// refer to segments, and prerequisites form no cycle. (Indexes need no check: evaluation
/// looks everything up with `get`.)
fn check(snapshot: &Snapshot) -> Result<(), LoadError> {
    let flags = &snapshot.flags;
    let nested = snapshot.segments.iter().any(|s| {
        s.rules.iter().any(|clauses| {
            clauses
                .of(&snapshot.arena.clauses)
                .iter()
                .any(|c| matches!(c.op, Op::Segment(_)))
        })
    });
    if nested {
        return Err(LoadError::Damaged("a segment refers to a segment".into()));
    }
    // Depth-first search over prerequisite edges: 0 unvisited, 1 on the path, 2 done.
    let mut state = vec![0u8; flags.len()];
    let mut stack = Vec::new();
    for start in 0..flags.len() {
        if state[start] != 0 {
            continue;
        }
        stack.clear();
        stack.push((start, 0usize));
        state[start] = 1;
        while let Some((f, next)) = stack.pop() {
            let prereqs = flags
                .get(f)
                .map(|x| x.prerequisites.as_slice())
                .unwrap_or(&[]);
            match prereqs.get(next) {
                Some(p) => {
                    stack.push((f, next + 1));
                    match state.get(p.flag) {
                        Some(1) => {
                            return Err(LoadError::Damaged("prerequisites form a cycle".into()));
                        }
                        Some(0) => {
                            state[p.flag] = 1;
                            stack.push((p.flag, 0));
                        }
                        _ => {}
                    }
                }
                None => state[f] = 2,
            }
        }
    }
    Ok(())
}

/// The format-3 payload of a flag file (compact JSON) of version `version`.
pub fn envelope(json: &str, version: &str) -> Result<String, CompileError> {
    let snapshot = compile_packed(json, version)?;
    let source = B64.encode(miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 9));
    Ok(format!("{MAGIC}{source}.{}", encode(&snapshot)))
}

/// The BODY of a format-3 payload.
fn body(rest: &str) -> Result<&str, LoadError> {
    rest.split_once('.')
        .map(|(_, body)| body)
        .ok_or_else(|| LoadError::Damaged("the envelope has no compiled part".into()))
}

/// Loads a payload: format 3 is decoded, format 1 compiled.
pub fn load(payload: &str, version: &str) -> Result<Snapshot, LoadError> {
    if let Some(rest) = payload.strip_prefix(MAGIC) {
        return decode(body(rest)?);
    }
    if payload.starts_with(MAGIC_2) {
        return Err(LoadError::Retired(2));
    }
    Ok(compile_packed(payload, version)?)
}

/// The flag file (JSON) a payload of any format was made from.
pub fn source(payload: &str) -> Result<String, LoadError> {
    let packed = if let Some(rest) = payload.strip_prefix(MAGIC) {
        rest.split('.').next().unwrap_or_default()
    } else if let Some(rest) = payload.strip_prefix(MAGIC_2) {
        rest.split('.').nth(1).unwrap_or_default()
    } else {
        return Ok(payload.to_string());
    };
    let bytes = B64
        .decode(packed)
        .map_err(|e| LoadError::Damaged(e.to_string()))?;
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&bytes, 16 * 1024 * 1024)
        .map_err(|e| LoadError::Damaged(format!("{e:?}")))?;
    String::from_utf8(json).map_err(|e| LoadError::Damaged(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"flags":{"f":{"type":"json","description":"d","variants":{"a":"x","b":{"k":[1,2]}},"off_variant":"a","rules":[{"id":"r","clauses":[{"attribute":"v","op":"semver_gte","values":["1.2.0"]},{"attribute":"e","op":"matches","values":["^a.*z$"]}],"serve":"b"}],"schedule":{"from":"2026-01-01T00:00:00Z","windows":[{"days":["sat"],"zone":"Asia/Tokyo"}]},"default":{"split":[{"variant":"a","weight":30},{"variant":"b","weight":70}]}}}}"#;

    #[test]
    fn both_formats_load_and_the_source_comes_back() {
        let env = envelope(FILE, "v9").unwrap_or_default();
        assert!(env.starts_with(MAGIC));
        let from_env = load(&env, "v9").map(|s| (s.len(), s.fingerprint().to_string()));
        let from_json = load(FILE, "v9").map(|s| (s.len(), s.fingerprint().to_string()));
        assert_eq!(from_env, Ok((1, "v9".to_string())));
        assert_eq!(from_env, from_json);
        assert_eq!(source(&env).as_deref(), Ok(FILE));
        assert_eq!(source(FILE).as_deref(), Ok(FILE));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let env = envelope(FILE, "v9").unwrap_or_default();
        let cut = &env[..MAGIC.len() + 20];
        assert!(matches!(load(cut, "v9"), Err(LoadError::Damaged(_))));
        assert!(matches!(load("efb3.!!!", "v9"), Err(LoadError::Damaged(_))));
        assert!(matches!(
            load("efb3.AAAA.Bz", "v9"),
            Err(LoadError::Damaged(_))
        ));
        assert_eq!(
            load("efb2.AAAA.AAAA", "v9").err(),
            Some(LoadError::Retired(2))
        );
        assert!(matches!(
            load("{not json", "v9"),
            Err(LoadError::Compile(_))
        ));
        assert!(decode(&"\u{ff}".repeat(64)).is_err());
        // Every cut of a good body is refused, never a panic.
        let good = encode(&compile_packed(FILE, "v9").unwrap_or_else(|e| panic!("{e}")));
        for end in 0..good.len() {
            if let Some(cut) = good.get(..end) {
                assert!(decode(cut).is_err(), "a body cut at {end} was accepted");
            }
        }
        assert!(decode(&format!("{good}A")).is_err());
        assert!(source("efb2.AAAA.!!!").is_err());
    }

    #[test]
    fn encoding_is_deterministic_and_shares_repeated_strings() {
        let file = r#"{"flags":{"a":{"type":"string","variants":{"control":"control","treatment":"treatment"},"off_variant":"control","rules":[{"clauses":[{"attribute":"country","op":"in","values":["DE","FR","JP"]}],"serve":"treatment"}],"default":{"split":[{"variant":"control","weight":50},{"variant":"treatment","weight":50}]}},"b":{"type":"string","variants":{"control":"control","treatment":"treatment"},"off_variant":"control","targets":{"treatment":["u2","u1"]},"rules":[{"clauses":[{"attribute":"country","op":"in","values":["JP","DE","FR"]}],"serve":"treatment"}],"default":"control"}}}"#;
        let snap = compile_packed(file, "v1").unwrap_or_else(|e| panic!("{e}"));
        let body = encode(&snap);
        let again = decode(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&again), body);
        // Each distinct string is in the table once.
        assert_eq!(body.matches("treatment").count(), 1);
        assert_eq!(body.matches("country").count(), 1);
        let (a, b) = (&again.flags[0], &again.flags[1]);
        let (va, vb) = (
            a.variants.of(&again.arena.variants),
            b.variants.of(&again.arena.variants),
        );
        assert!(Arc::ptr_eq(&va[1].name, &vb[1].name));
        assert!(Arc::ptr_eq(&va[1].value, &vb[1].value));
        assert_eq!(b.target("u1"), Some(1));
        assert_eq!(b.target("u3"), None);
        // One allocation per array, however many flags.
        // Lists written once: both flags' variants, and the country list (a set, so
        // sorted), are one copy each.
        assert_eq!(again.arena.variants.len(), 2);
        assert_eq!(again.arena.strings.len(), 3);
        assert_eq!(again.arena.clauses.len(), 2);
    }

    #[test]
    fn cycles_that_compile_refuses_are_refused_when_decoded() {
        let file = r#"{"segments":{"s":{"included":["u1"]}},"flags":{"a":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","prerequisites":[{"flag":"b","variants":["on"]}],"rules":[{"clauses":[{"op":"segment","values":["s"]}],"serve":"on"}],"default":"on"},"b":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"}}}"#;
        let good = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        assert!(decode(&encode(&good)).is_ok());
        // b requires a, which requires b.
        let mut cyclic = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        let a_prereq = cyclic.flags[0].prerequisites.remove(0);
        cyclic.flags[1]
            .prerequisites
            .push(crate::model::Prerequisite {
                flag: 0,
                variants: a_prereq.variants.clone(),
            });
        cyclic.flags[0].prerequisites.push(a_prereq);
        assert!(
            matches!(decode(&encode(&cyclic)), Err(LoadError::Damaged(m)) if m.contains("cycle"))
        );
        // A segment whose rule tests a segment.
        let mut nested = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        let rule = nested.flags[0].rules.of(&nested.arena.rules)[0].clauses;
        nested.segments[0].rules.push(rule);
        assert!(
            matches!(decode(&encode(&nested)), Err(LoadError::Damaged(m)) if m.contains("segment"))
        );
    }
}
