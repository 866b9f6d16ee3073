//! The compiled, validated form of a flag file. Built only by [`crate::compile()`]; every
//! index in it points at something that exists, so evaluation needs no checks that can fail.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::allocation::{Allocation, Holdout, Layer};
use crate::context::{order, same, short_word};
use crate::zone::Window;

pub use crate::name::Name;

/// The type of a flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FlagType {
    /// `true` / `false`.
    Boolean,
    /// A string.
    String,
    /// A JSON number.
    Number,
    /// Any JSON value (objects and arrays).
    Json,
}

impl FlagType {
    /// The name used in the flag file.
    pub fn name(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Json => "json",
        }
    }

    /// Whether `v` is a value of this type.
    pub fn admits(self, v: &Value) -> bool {
        match self {
            FlagType::Boolean => v.is_boolean(),
            FlagType::String => v.is_string(),
            FlagType::Number => v.is_number(),
            FlagType::Json => true,
        }
    }
}

/// A validated set of flags, segments and routes, ready to evaluate.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) flags: Vec<Flag>,
    /// The lists the flags, rules and clauses refer to by [`Span`]: one array per kind of
    /// item for the whole snapshot, so that a decoded snapshot is a few allocations and
    /// a few contiguous blocks of memory, not a tree of small ones.
    pub(crate) arena: Arena,
    /// Flag indexes in key order, for lookups by key (binary search); empty when the
    /// flags are in key order already (as compile and the packed snapshot write them).
    pub(crate) index: Vec<usize>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) routes: Vec<RouteRule>,
    pub(crate) default_route: Route,
    pub(crate) fallback_route: Option<Route>,
    pub(crate) ofrep: OfrepSettings,
    pub(crate) request_context: ContextSettings,
    pub(crate) fingerprint: String,
    pub(crate) uses_traits: bool,
    /// The layers flags name by index, in the file's (sorted) order.
    pub(crate) layers: Vec<Layer>,
    /// The holdouts flags name by index, in the file's (sorted) order.
    pub(crate) holdouts: Vec<Holdout>,
    /// What variants do to the page at the edge (changes, redirects, the bootstrap).
    pub(crate) edits: crate::edit::Edits,
}

impl Snapshot {
    /// A content fingerprint (16 hex digits) of the flag file this snapshot came from:
    /// equal files give equal fingerprints.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether any rule, segment or route tests a trait (`traits.*`): when none does,
    /// the edge skips the profile lookup.
    pub fn uses_traits(&self) -> bool {
        self.uses_traits
    }

    /// What variants do to the page at the edge.
    pub fn edits(&self) -> &crate::edit::Edits {
        &self.edits
    }

    /// The custom attributes allowed from requests.
    pub fn request_context(&self) -> &ContextSettings {
        &self.request_context
    }

    /// The OFREP settings.
    pub fn ofrep(&self) -> &OfrepSettings {
        &self.ofrep
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Flag keys, in the order of the file (sorted).
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|f| &*f.key)
    }

    /// The default split of flag `key` as (variant name, weight in buckets out of
    /// [`crate::BUCKETS`]), when its default is a split.
    pub fn default_split(&self, key: &str) -> Option<Vec<(&str, u32)>> {
        let f = self.flag(key)?;
        let Serve::Split(i) = f.fallthrough else {
            return None;
        };
        self.arena.splits.get(i)?;
        Some(self.split_weights(f, i))
    }

    /// Split `i` of flag `f` as (variant name, weight in buckets), in bucket order.
    pub(crate) fn split_weights(&self, f: &Flag, i: usize) -> Vec<(&str, u32)> {
        let Some(split) = self.arena.splits.get(i) else {
            return Vec::new();
        };
        let variants = f.variants.of(&self.arena.variants);
        let mut lower = 0;
        split
            .slots
            .of(&self.arena.slots)
            .iter()
            .map(|&(upper, v)| {
                let w = upper.saturating_sub(lower);
                lower = upper;
                (variants.get(v).map(|x| &*x.name).unwrap_or(""), w)
            })
            .collect()
    }

    /// The variant names of flag `key`, in the file's order (none for an unknown flag).
    pub fn variant_names(&self, key: &str) -> Vec<&str> {
        self.flag(key)
            .map(|f| {
                f.variants
                    .of(&self.arena.variants)
                    .iter()
                    .map(|v| &*v.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A flag by key.
    pub fn flag(&self, key: &str) -> Option<&Flag> {
        self.position(key).and_then(|i| self.flags.get(i))
    }

    /// The index of the flag `key`.
    #[inline(always)]
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        if self.index.is_empty() {
            // The last flag whose key is at most `key` (halving without branches on the
            // comparison, as the standard library's search does), then one equality test:
            // a snapshot of one flag compares the key once, by words.
            let flags = &self.flags;
            let (mut at, mut size) = (0, flags.len());
            while size > 1 {
                let half = size / 2;
                let mid = at + half;
                let le = flags.get(mid).is_some_and(|f| order(&f.key, key).is_le());
                at = if le { mid } else { at };
                size -= half;
            }
            return flags
                .get(at)
                .is_some_and(|f| same(&f.key, key))
                .then_some(at);
        }
        let found = self
            .index
            .binary_search_by(|&i| order(self.flags.get(i).map(|f| &*f.key).unwrap_or(""), key));
        found.ok().and_then(|n| self.index.get(n).copied())
    }
}

/// Custom attributes the edge takes from a request (the `context` object of the flag
/// file): for each allowed header, cookie and query parameter, the attribute it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextSettings {
    /// (header name, attribute).
    pub headers: Vec<(String, String)>,
    /// (cookie name, attribute).
    pub cookies: Vec<(String, String)>,
    /// (query parameter, attribute).
    pub query: Vec<(String, String)>,
}

/// How the edge serves OFREP (the `ofrep` object of the flag file).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OfrepSettings {
    /// Origins allowed to call from a browser (CORS); `*` allows any.
    pub cors_origins: Vec<String>,
    /// When true, calls without credentials get 401; otherwise they are served as
    /// browser calls, whose context cannot override what the edge knows.
    pub require_auth: bool,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// The id of the route rule that chose it (`default` for the default route).
    pub id: String,
    /// The backend name (a Fastly backend).
    pub backend: String,
    /// A prefix put before the request path, such as `/ja`.
    pub path_prefix: Option<String>,
    /// A Host header to send instead of the client's.
    pub host: Option<String>,
}

/// One route rule: its clauses and required variants must all match.
#[derive(Debug)]
pub(crate) struct RouteRule {
    pub(crate) clauses: Span,
    /// (flag index, acceptable variant indexes).
    pub(crate) flags: Vec<(usize, Vec<usize>)>,
    pub(crate) route: Route,
}

/// A run of `len` items from `start` in one of the snapshot's arrays ([`Arena`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Span {
    /// The items, or none when the span is out of range (a damaged snapshot).
    pub(crate) fn of<T>(self, items: &[T]) -> &[T] {
        let start = self.start as usize;
        items
            .get(start..start.saturating_add(self.len as usize))
            .unwrap_or(&[])
    }

    /// Appends `items` to `arena` and returns where they went.
    pub(crate) fn push<T>(arena: &mut Vec<T>, items: impl IntoIterator<Item = T>) -> Span {
        let start = arena.len();
        arena.extend(items);
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(arena.len() - start).unwrap_or(0),
        }
    }
}

/// The arrays that [`Span`]s point into.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    pub(crate) variants: Vec<Variant>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) clauses: Vec<Clause>,
    /// Strings of small string sets and of string-list operators.
    pub(crate) strings: Vec<Name>,
    pub(crate) splits: Vec<Split>,
    /// (exclusive upper bucket bound, variant index) of every split.
    pub(crate) slots: Vec<(u32, usize)>,
    /// Beside each of `strings`, its [`crate::context::short_word`] (0 for a string of eight bytes or
    /// more), so that a small set tests a short value (a country, a device, a language)
    /// by comparing words, without reading the strings. Filled by [`Arena::sealed`].
    pub(crate) words: Vec<u64>,
    /// Beside each of `rules`, the rule as one word test when it is the commonest kind
    /// (see [`Test`]). Filled by [`Arena::sealed`].
    pub(crate) tests: Vec<Test>,
}

/// The commonest rule in a form evaluation reads in one place: no schedule, one
/// [`Clause::fast`] clause, a variant served. Its fields are the clause's and the
/// variant's; `word` is 0 for every other rule, which evaluation decides from the rule
/// itself. A flag's tests are at its rules' span in [`Arena::tests`], so that its rules
/// are tried without reading a [`Rule`] or a [`Clause`] (issue 25: a typical flag's
/// evaluation takes 6% fewer instructions with the flag in hand, 4% by key).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Test {
    pub(crate) word: u64,
    pub(crate) bits: u64,
    pub(crate) set: Span,
    pub(crate) variant: u32,
    pub(crate) negate: bool,
}

impl Arena {
    /// The arena with [`Arena::words`], each fast clause's [`Clause::bits`] and
    /// [`Arena::tests`] computed: the last step of compile and decode.
    pub(crate) fn sealed(mut self) -> Arena {
        self.words = self.strings.iter().map(|s| short_word(s)).collect();
        for c in &mut self.clauses {
            if c.fast != 0 {
                c.bits = c
                    .set
                    .of(&self.words)
                    .iter()
                    .filter(|w| **w != 0)
                    .fold(0, |bits, w| bits | word_bit(*w));
            }
        }
        let test = |r: &Rule| -> Option<Test> {
            let [c] = r.clauses.of(&self.clauses) else {
                return None;
            };
            match (&r.serve, &r.schedule) {
                (Serve::Variant(v), None) if c.fast != 0 => Some(Test {
                    word: c.fast,
                    bits: c.bits,
                    set: c.set,
                    variant: u32::try_from(*v).ok()?,
                    negate: c.negate,
                }),
                _ => None,
            }
        };
        self.tests = self
            .rules
            .iter()
            .map(|r| test(r).unwrap_or_default())
            .collect();
        self
    }
}

/// Flag indexes ordered by key, for [`Snapshot::position`].
pub(crate) fn key_order(flags: &[Flag]) -> Vec<usize> {
    // Compile and the packed snapshot write flags in strictly increasing key order, so
    // checking is all a load does, and the index stays empty (no allocation); otherwise
    // an unstable sort, which allocates no scratch buffer (a decoded snapshot whose index
    // shows two equal keys is refused as damaged: `codec::check`).
    if flags
        .windows(2)
        .all(|w| order(&w[0].key, &w[1].key).is_lt())
    {
        return Vec::new();
    }
    let key = |i: usize| flags.get(i).map(|f| &*f.key).unwrap_or("");
    let mut index: Vec<usize> = (0..flags.len()).collect();
    index.sort_unstable_by(|&a, &b| key(a).cmp(key(b)));
    index
}

/// One flag.
#[derive(Debug)]
pub struct Flag {
    pub(crate) key: Name,
    pub(crate) kind: FlagType,
    pub(crate) on: bool,
    pub(crate) variants: Span,
    pub(crate) off_variant: usize,
    pub(crate) rules: Span,
    pub(crate) fallthrough: Serve,
    /// Its prerequisites, targets, schedule and allocation, when it has any: boxed
    /// together, so that a flag is one pointer bigger for them (72 bytes in wasm, 96
    /// with them inline), and a decoded snapshot touches that much less fresh memory.
    pub(crate) extra: Option<Box<Extra>>,
    pub(crate) meta: Metadata,
}

/// What most flags do not have (see [`Flag::extra`]).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub(crate) prerequisites: Vec<Prerequisite>,
    /// Individually targeted user keys with their variant, sorted by key.
    pub(crate) targets: Vec<(Name, usize)>,
    pub(crate) schedule: Option<Schedule>,
    /// Its layer slots, holdouts and ramp.
    pub(crate) allocation: Option<Allocation>,
}

impl Extra {
    /// Boxed, or nothing when it holds nothing.
    pub(crate) fn boxed(self) -> Option<Box<Extra>> {
        let empty = self.prerequisites.is_empty()
            && self.targets.is_empty()
            && self.schedule.is_none()
            && self.allocation.is_none();
        (!empty).then(|| Box::new(self))
    }
}

impl Flag {
    /// The flag key.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The value type.
    pub fn kind(&self) -> FlagType {
        self.kind
    }
    /// Whether the flag is switched on.
    pub fn is_on(&self) -> bool {
        self.on
    }
    /// Descriptive metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }
    /// The variant targeted to user `key`, if any.
    pub(crate) fn target(&self, key: &str) -> Option<usize> {
        let targets = self.targets();
        targets
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .and_then(|i| targets.get(i))
            .map(|(_, v)| *v)
    }
    /// The flags (by index) and variants it requires.
    pub(crate) fn prerequisites(&self) -> &[Prerequisite] {
        self.extra.as_deref().map_or(&[], |e| &e.prerequisites)
    }
    /// Individually targeted user keys with their variant, sorted by key.
    pub(crate) fn targets(&self) -> &[(Name, usize)] {
        self.extra.as_deref().map_or(&[], |e| &e.targets)
    }
    /// When it is on, if not always.
    pub(crate) fn schedule(&self) -> Option<&Schedule> {
        self.extra.as_deref()?.schedule.as_ref()
    }
    /// Its layer slots, holdouts and ramp, when it has any.
    pub(crate) fn allocation(&self) -> Option<&Allocation> {
        self.extra.as_deref()?.allocation.as_ref()
    }
    /// Its extra fields, to change them (made empty first when it has none).
    #[cfg(test)]
    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }
}

/// Flag metadata: what the edge acts on, and (from a flag file, not in the packed
/// snapshot) what is there for people.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// A temporary flag (a rollout or experiment) is meant to be removed.
    pub temporary: bool,
    /// Description, owner, tags and clean-up date, when compiled from the flag file.
    pub about: Option<Box<About>>,
    /// Whether the flag's decision changes the content a cache stores (it goes into the
    /// cache key and the origin's `edgeflags-decisions` header).
    pub content: bool,
    /// Share of evaluations logged as exposure events, 0.0 to 1.0.
    pub exposure_sample: f64,
}

/// The descriptive fields of a flag, for people and for clean-up tooling.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// What the flag is for.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The date (`YYYY-MM-DD`) by which a temporary flag should be cleaned up.
    pub expires: Option<String>,
}

/// A named variant and its value (shared, like names: flags that serve the same value
/// hold one copy).
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) name: Name,
    pub(crate) value: Arc<Value>,
}

/// "Serve this flag's rules only when flag `flag` serves one of `variants`".
#[derive(Debug)]
pub(crate) struct Prerequisite {
    pub(crate) flag: usize,
    pub(crate) variants: Vec<usize>,
}

/// An ordered rule: all clauses must match.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: Name,
    pub(crate) clauses: Span,
    pub(crate) serve: Serve,
    pub(crate) schedule: Option<Box<Schedule>>,
}

/// What a rule or the default serves.
#[derive(Debug)]
pub(crate) enum Serve {
    Variant(usize),
    /// A split, by its index in [`Arena::splits`].
    Split(usize),
}

/// A weighted split over variants, by the bucket of one attribute.
#[derive(Debug)]
pub(crate) struct Split {
    /// The attribute whose value is bucketed (`key` by default).
    pub(crate) by: Name,
    /// `by`'s [`short_word`] (0 when it has eight bytes or more).
    pub(crate) word: u64,
    /// The salt (the flag key unless set).
    pub(crate) salt: Name,
    /// (exclusive upper bucket bound, variant index), in order, in [`Arena::slots`]; the
    /// last bound is [`crate::BUCKETS`].
    pub(crate) slots: Span,
    /// The hasher state after `salt ‖ 0x1F`, computed once at compile.
    pub(crate) prefix: crate::bucket::Prefix,
}

/// `attribute op values`, optionally negated.
#[derive(Debug)]
pub(crate) struct Clause {
    pub(crate) attribute: Name,
    pub(crate) op: Op,
    pub(crate) negate: bool,
    /// For the commonest clause, a short attribute (not `now`) `in` a small set of
    /// strings and nothing else, the attribute's [`short_word`], and the set's words in
    /// `set` (the operator's span, copied so that evaluation need not match the operator
    /// to find it): evaluation then decides it by comparing words. 0 for every other
    /// clause.
    pub(crate) fast: u64,
    pub(crate) set: Span,
    /// For a [`Clause::fast`] clause, one bit ([`word_bit`]) for each word of the set
    /// (filled by [`Arena::sealed`]): a value whose bit is clear is not in it, which most
    /// values (most users are not in a given list) show without a look at the words.
    pub(crate) bits: u64,
}

/// A word's bit in [`Clause::bits`]: six bits of a multiplicative hash of it.
#[inline(always)]
pub(crate) fn word_bit(word: u64) -> u64 {
    1 << (word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

impl Clause {
    /// A clause, with its [`Clause::fast`] form when it has one.
    pub(crate) fn new(attribute: Name, op: Op, negate: bool) -> Clause {
        let word = short_word(&attribute);
        let (fast, set) = match &op {
            Op::In {
                strs: StrSet::Few(set),
                nums,
                ..
            } if nums.is_empty() && word != 0 && &*attribute != "now" => (word, *set),
            _ => (0, Span::default()),
        };
        Clause {
            attribute,
            op,
            negate,
            fast,
            set,
            bits: 0,
        }
    }
}

/// A string set: a run of [`Arena::strings`] while small, a hash set when large.
#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    Few(Span),
    /// Boxed, so that every clause (most hold a small set) stays small.
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<Name>>),
}

impl StrSet {
    /// A set of `items`, the small kind appended to `strings`.
    pub(crate) fn new(strings: &mut Vec<Name>, items: Vec<Name>) -> StrSet {
        if items.len() > 12 {
            StrSet::Many(Box::new(items.into_iter().collect()))
        } else {
            StrSet::Few(Span::push(strings, items))
        }
    }
    pub(crate) fn contains(&self, arena: &Arena, s: &str) -> bool {
        match self {
            StrSet::Few(span) if s.len() <= 7 => {
                let w = short_word(s);
                span.of(&arena.words).contains(&w)
            }
            StrSet::Few(span) => span
                .of(&arena.strings)
                .iter()
                .any(|x| x.len() > 7 && same(x, s)),
            StrSet::Many(h) => h.contains(s),
        }
    }
    /// The members (in no particular order for a large set).
    pub(crate) fn items<'a>(&'a self, strings: &'a [Name]) -> Vec<&'a Name> {
        match self {
            StrSet::Few(span) => span.of(strings).iter().collect(),
            StrSet::Many(h) => h.iter().collect(),
        }
    }
}

/// Numeric and version comparisons, in tag order (a tag is stored data: never renumber).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Cmp {
    const ALL: [Cmp; 5] = [Cmp::Lt, Cmp::Lte, Cmp::Gt, Cmp::Gte, Cmp::Eq];

    pub(crate) fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Lt => o == Less,
            Cmp::Lte => o != Greater,
            Cmp::Gt => o == Greater,
            Cmp::Gte => o != Less,
            Cmp::Eq => o == Equal,
        }
    }

    /// The packed snapshot's tag.
    pub(crate) fn tag(self) -> u64 {
        self as u64
    }

    /// The comparison of a tag.
    pub(crate) fn from_tag(tag: u64) -> Option<Cmp> {
        Cmp::ALL.get(usize::try_from(tag).ok()?).copied()
    }
}

/// The kind of a compiled operator, in tag order: the packed snapshot writes an
/// operator as its kind's tag (a tag is stored data: never renumber, only append).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    In,
    StartsWith,
    EndsWith,
    Contains,
    Matches,
    Number,
    Semver,
    Before,
    After,
    LocalTime,
    Segment,
    Exists,
}

impl OpKind {
    const ALL: [OpKind; 12] = [
        OpKind::In,
        OpKind::StartsWith,
        OpKind::EndsWith,
        OpKind::Contains,
        OpKind::Matches,
        OpKind::Number,
        OpKind::Semver,
        OpKind::Before,
        OpKind::After,
        OpKind::LocalTime,
        OpKind::Segment,
        OpKind::Exists,
    ];

    /// The packed snapshot's tag.
    pub(crate) fn tag(self) -> u64 {
        self as u64
    }

    /// The kind of a tag.
    pub(crate) fn from_tag(tag: u64) -> Option<OpKind> {
        OpKind::ALL.get(usize::try_from(tag).ok()?).copied()
    }
}

/// Every operator a flag file may name: its kind and, for a comparison, which one. The
/// one table compile reads names from and the JSON Schema is checked against.
pub(crate) const OPERATORS: &[(&str, OpKind, Option<Cmp>)] = &[
    ("in", OpKind::In, None),
    ("equals", OpKind::In, None),
    ("starts_with", OpKind::StartsWith, None),
    ("ends_with", OpKind::EndsWith, None),
    ("contains", OpKind::Contains, None),
    ("matches", OpKind::Matches, None),
    ("lt", OpKind::Number, Some(Cmp::Lt)),
    ("lte", OpKind::Number, Some(Cmp::Lte)),
    ("gt", OpKind::Number, Some(Cmp::Gt)),
    ("gte", OpKind::Number, Some(Cmp::Gte)),
    ("semver_eq", OpKind::Semver, Some(Cmp::Eq)),
    ("semver_lt", OpKind::Semver, Some(Cmp::Lt)),
    ("semver_lte", OpKind::Semver, Some(Cmp::Lte)),
    ("semver_gt", OpKind::Semver, Some(Cmp::Gt)),
    ("semver_gte", OpKind::Semver, Some(Cmp::Gte)),
    ("before", OpKind::Before, None),
    ("after", OpKind::After, None),
    ("local_time", OpKind::LocalTime, None),
    ("segment", OpKind::Segment, None),
    ("exists", OpKind::Exists, None),
];

/// The operator names a flag file may use (for the JSON Schema's check and for help).
pub fn operator_names() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|(name, _, _)| *name)
}

/// A compiled operator with its values.
#[derive(Debug)]
pub(crate) enum Op {
    In {
        strs: StrSet,
        nums: Vec<f64>,
        bools: Vec<bool>,
    },
    /// Strings in [`Arena::strings`].
    StartsWith(Span),
    EndsWith(Span),
    Contains(Span),
    Matches(Vec<regex_lite::Regex>),
    Number(Cmp, Vec<f64>),
    Semver(Cmp, Vec<semver::Version>),
    /// Instants in milliseconds since the epoch.
    Before(Vec<i64>),
    After(Vec<i64>),
    LocalTime(Window),
    Segment(Vec<usize>),
    Exists,
}

impl Op {
    /// The operator's kind (its tag in the packed snapshot).
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::In { .. } => OpKind::In,
            Op::StartsWith(_) => OpKind::StartsWith,
            Op::EndsWith(_) => OpKind::EndsWith,
            Op::Contains(_) => OpKind::Contains,
            Op::Matches(_) => OpKind::Matches,
            Op::Number(..) => OpKind::Number,
            Op::Semver(..) => OpKind::Semver,
            Op::Before(_) => OpKind::Before,
            Op::After(_) => OpKind::After,
            Op::LocalTime(_) => OpKind::LocalTime,
            Op::Segment(_) => OpKind::Segment,
            Op::Exists => OpKind::Exists,
        }
    }
}

/// A reusable set of users: keys included, keys excluded, and rules (any may match).
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) included: StrSet,
    pub(crate) excluded: StrSet,
    /// Each rule's clauses.
    pub(crate) rules: Vec<Span>,
}

/// When a flag or rule is active: between two instants, and (if any windows are given)
/// inside one of the recurring local-time windows.
#[derive(Debug)]
pub(crate) struct Schedule {
    pub(crate) from: Option<DateTime<Utc>>,
    pub(crate) until: Option<DateTime<Utc>>,
    pub(crate) windows: Vec<Window>,
}

impl Schedule {
    pub(crate) fn active(&self, now: DateTime<Utc>, zone: Option<&crate::Zone>) -> bool {
        self.from.is_none_or(|f| now >= f)
            && self.until.is_none_or(|u| now < u)
            && (self.windows.is_empty() || self.windows.iter().any(|w| w.contains(now, zone)))
    }
}

/// Every cycle found by a depth-first search of a directed graph given as each node's
/// successors: the nodes on the cycle in order, the first repeated at the end. Compile
/// reports prerequisite cycles with it, and decoding refuses a snapshot that has one.
pub(crate) fn prerequisite_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut found = Vec::new();
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    // One stack for every search (each ends empty): an allocation per node would be most
    // of a fresh instance's check of a snapshot without prerequisites.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        if edges.get(start).is_none_or(|e| e.is_empty()) {
            state[start] = 2;
            continue;
        }
        stack.push((start, 0usize));
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            match edges.get(node).and_then(|e| e.get(*next)).copied() {
                Some(to) => {
                    *next += 1;
                    match state.get(to) {
                        Some(0) => {
                            state[to] = 1;
                            stack.push((to, 0));
                        }
                        Some(1) => {
                            let from = stack.iter().position(|(x, _)| *x == to).unwrap_or(0);
                            let mut cycle: Vec<usize> =
                                stack[from..].iter().map(|(x, _)| *x).collect();
                            cycle.push(to);
                            found.push(cycle);
                        }
                        _ => {}
                    }
                }
                None => {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_flags() -> Snapshot {
        let file = r#"{"flags":{"a":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"},"b":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"},"c":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"}}}"#;
        crate::compile_str(file).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_small_set_finds_exactly_its_members_by_word_or_by_text() {
        let members = [
            "",
            "DE",
            "de",
            "mobile",
            "1234567",
            "12345678",
            "a\0",
            "東京",
            "user-4242",
            "a-much-longer-member-of-the-set",
        ];
        let others = [
            "D",
            "DEU",
            "d",
            "mobil",
            "mobile ",
            "123456",
            "12345679",
            "a",
            "a\0\0",
            "東",
            "user-4243",
            "a-much-longer-member-of-the-sex",
            "\0",
        ];
        let mut arena = Arena::default();
        let names: Vec<Name> = members.iter().map(|m| Name::from(*m)).collect();
        let set = StrSet::new(&mut arena.strings, names);
        let arena = arena.sealed();
        assert!(matches!(set, StrSet::Few(_)));
        for m in members {
            assert!(set.contains(&arena, m), "{m:?}");
        }
        for o in others {
            assert!(!set.contains(&arena, o), "{o:?}");
        }
        // A set with no short member, and the empty set.
        let mut arena = Arena::default();
        let long = StrSet::new(&mut arena.strings, vec![Name::from("eight-by")]);
        let empty = StrSet::new(&mut arena.strings, Vec::new());
        let arena = arena.sealed();
        assert!(long.contains(&arena, "eight-by"));
        assert!(!long.contains(&arena, "eight-b"));
        assert!(!long.contains(&arena, ""));
        assert!(!empty.contains(&arena, ""));
    }

    #[test]
    fn the_key_index_orders_flags_in_any_order() {
        let mut s = three_flags();
        let keys = |s: &Snapshot, order: &[usize]| -> Vec<String> {
            order.iter().map(|&i| s.flags[i].key.to_string()).collect()
        };
        // In key order already: no index, and lookups search the flags themselves.
        assert!(key_order(&s.flags).is_empty());
        s.index = key_order(&s.flags);
        assert_eq!(
            ["a", "b", "c", "d"].map(|k| s.position(k)),
            [Some(0), Some(1), Some(2), None]
        );
        s.flags.reverse();
        assert_eq!(key_order(&s.flags), [2, 1, 0]);
        s.index = key_order(&s.flags);
        assert_eq!(
            ["a", "b", "c", "d"].map(|k| s.position(k)),
            [Some(2), Some(1), Some(0), None]
        );
        s.flags.swap(0, 1);
        assert_eq!(keys(&s, &key_order(&s.flags)), ["a", "b", "c"]);
    }

    #[test]
    fn cycles_are_found_past_nodes_without_edges() {
        // 0 and 3 have no edges; 1 -> 2 -> 1 is a cycle, 4 -> 4 a loop.
        let edges = vec![vec![], vec![2], vec![1], vec![], vec![4]];
        assert_eq!(prerequisite_cycles(&edges), [vec![1, 2, 1], vec![4, 4]]);
        assert!(prerequisite_cycles(&[vec![1], vec![2], vec![]]).is_empty());
    }
}
