//! The compiled, validated form of a flag file. Built only by [`crate::compile()`]; every
//! index in it points at something that exists, so evaluation needs no checks that can fail.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::route::RouteRule;
use crate::zone::Window;

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
    pub(crate) index: HashMap<Box<str>, usize>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) routes: Vec<RouteRule>,
    pub(crate) default_route: crate::route::Route,
    pub(crate) fallback_route: Option<crate::route::Route>,
    pub(crate) ofrep: OfrepSettings,
    pub(crate) request_context: ContextSettings,
    pub(crate) fingerprint: String,
    pub(crate) uses_traits: bool,
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
        self.flags.iter().map(|f| f.key.as_str())
    }

    /// A flag by key.
    pub fn flag(&self, key: &str) -> Option<&Flag> {
        self.index.get(key).and_then(|&i| self.flags.get(i))
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

/// One flag.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Flag {
    pub(crate) key: String,
    pub(crate) kind: FlagType,
    pub(crate) on: bool,
    pub(crate) variants: Vec<Variant>,
    pub(crate) off_variant: usize,
    pub(crate) prerequisites: Vec<Prerequisite>,
    pub(crate) targets: HashMap<Box<str>, usize>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) fallthrough: Serve,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) meta: Metadata,
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
    /// Variant names, in the order of the file.
    pub fn variant_names(&self) -> impl Iterator<Item = &str> {
        self.variants.iter().map(|v| v.name.as_str())
    }
    /// A variant's value by name.
    pub fn variant_value(&self, name: &str) -> Option<&Value> {
        self.variants
            .iter()
            .find(|v| v.name == name)
            .map(|v| &v.value)
    }
    /// The variant served when the flag is off.
    pub fn off_variant(&self) -> &str {
        self.variants
            .get(self.off_variant)
            .map(|v| v.name.as_str())
            .unwrap_or("")
    }
    /// Descriptive metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }
    /// The split served when no target or rule matches, if the default is a split.
    pub fn default_split(&self) -> Option<&Split> {
        match &self.fallthrough {
            Serve::Split(s) => Some(s),
            Serve::Variant(_) => None,
        }
    }
    /// Variant names by index, for reading a [`Split`].
    pub fn variant_name(&self, index: usize) -> &str {
        self.variants
            .get(index)
            .map(|v| v.name.as_str())
            .unwrap_or("")
    }
}

/// Descriptive fields of a flag, for people and for clean-up tooling.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// What the flag is for. (Not in the packed snapshot: the edge does not use it.)
    #[serde(skip)]
    pub description: Option<String>,
    /// Who owns it. (Not in the packed snapshot.)
    #[serde(skip)]
    pub owner: Option<String>,
    /// Free-form tags. (Not in the packed snapshot.)
    #[serde(skip)]
    pub tags: Vec<String>,
    /// A temporary flag (a rollout or experiment) is meant to be removed.
    pub temporary: bool,
    /// The date (`YYYY-MM-DD`) by which a temporary flag should be cleaned up. (Not in
    /// the packed snapshot.)
    #[serde(skip)]
    pub expires: Option<String>,
    /// Whether the flag's decision changes the content a cache stores (it goes into the
    /// cache key and the origin's `edgeflags-decisions` header).
    pub content: bool,
    /// Share of evaluations logged as exposure events, 0.0 to 1.0.
    pub exposure_sample: f64,
}

/// A named variant and its value.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Variant {
    pub(crate) name: String,
    #[serde(with = "crate::binary::json_text")]
    pub(crate) value: Value,
}

/// "Serve this flag's rules only when flag `flag` serves one of `variants`".
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Prerequisite {
    pub(crate) flag: usize,
    pub(crate) variants: Vec<usize>,
}

/// An ordered rule: all clauses must match.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rule {
    pub(crate) id: String,
    pub(crate) clauses: Vec<Clause>,
    pub(crate) serve: Serve,
    pub(crate) schedule: Option<Schedule>,
}

/// What a rule or the default serves.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Serve {
    Variant(usize),
    Split(Split),
}

/// A weighted split over variants, by the bucket of one attribute.
#[derive(Debug)]
pub struct Split {
    /// The attribute whose value is bucketed (`key` by default).
    pub by: String,
    /// The salt (the flag key unless set).
    pub salt: String,
    /// (exclusive upper bucket bound, variant index), in order; the last bound is
    /// [`crate::BUCKETS`].
    pub slots: Vec<(u32, usize)>,
    /// The hasher state after `salt ‖ 0x1F`, computed once at compile.
    pub(crate) prefix: crate::bucket::Prefix,
}

/// A split as stored: the salted hasher is rebuilt from the salt when read.
#[derive(serde::Serialize, serde::Deserialize)]
struct SplitData {
    by: String,
    salt: String,
    slots: Vec<(u32, usize)>,
}

impl serde::Serialize for Split {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SplitData {
            by: self.by.clone(),
            salt: self.salt.clone(),
            slots: self.slots.clone(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Split {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Split, D::Error> {
        let data = SplitData::deserialize(d)?;
        Ok(Split {
            prefix: crate::bucket::Prefix::new(&data.salt),
            by: data.by,
            salt: data.salt,
            slots: data.slots,
        })
    }
}

impl Split {
    /// The variant index for a bucket.
    pub fn pick(&self, bucket: u32) -> Option<usize> {
        self.slots
            .iter()
            .find(|(upper, _)| bucket < *upper)
            .map(|(_, v)| *v)
    }

    /// Each variant index with its weight in buckets (out of [`crate::BUCKETS`]).
    pub fn weights(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let mut lower = 0;
        self.slots.iter().map(move |(upper, v)| {
            let w = upper - lower;
            lower = *upper;
            (*v, w)
        })
    }
}

/// `attribute op values`, optionally negated.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Clause {
    pub(crate) attribute: String,
    pub(crate) op: Op,
    pub(crate) negate: bool,
}

/// A string set: a list while small, a hash set when large.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "Vec<Box<str>>", into = "Vec<Box<str>>")]
pub(crate) enum StrSet {
    Few(Vec<Box<str>>),
    Many(HashSet<Box<str>>),
}

impl From<Vec<Box<str>>> for StrSet {
    fn from(items: Vec<Box<str>>) -> StrSet {
        StrSet::new(items)
    }
}

impl From<StrSet> for Vec<Box<str>> {
    fn from(set: StrSet) -> Vec<Box<str>> {
        match set {
            StrSet::Few(v) => v,
            StrSet::Many(h) => h.into_iter().collect(),
        }
    }
}

impl StrSet {
    pub(crate) fn new(items: Vec<Box<str>>) -> StrSet {
        if items.len() > 12 {
            StrSet::Many(items.into_iter().collect())
        } else {
            StrSet::Few(items)
        }
    }
    pub(crate) fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Few(v) => v.iter().any(|x| &**x == s),
            StrSet::Many(h) => h.contains(s),
        }
    }
}

/// Numeric comparisons.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Cmp {
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
}

/// A compiled operator with its values.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Op {
    In {
        strs: StrSet,
        nums: Vec<f64>,
        bools: Vec<bool>,
    },
    StartsWith(Vec<String>),
    EndsWith(Vec<String>),
    Contains(Vec<String>),
    Matches(#[serde(with = "crate::binary::regexes")] Vec<regex_lite::Regex>),
    Number(Cmp, Vec<f64>),
    Semver(
        Cmp,
        #[serde(with = "crate::binary::versions")] Vec<semver::Version>,
    ),
    /// Instants in milliseconds since the epoch.
    Before(Vec<i64>),
    After(Vec<i64>),
    LocalTime(Window),
    Segment(Vec<usize>),
    Exists,
}

/// A reusable set of users: keys included, keys excluded, and rules (any may match).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Segment {
    pub(crate) included: StrSet,
    pub(crate) excluded: StrSet,
    pub(crate) rules: Vec<Vec<Clause>>,
}

/// When a flag or rule is active: between two instants, and (if any windows are given)
/// inside one of the recurring local-time windows.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Schedule {
    #[serde(with = "crate::binary::opt_instant")]
    pub(crate) from: Option<DateTime<Utc>>,
    #[serde(with = "crate::binary::opt_instant")]
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
