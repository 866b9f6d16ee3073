//! Compile: a flag file (JSON) to a validated [`Snapshot`]. Every problem is collected
//! with its JSON path (`$.flags.banner.rules[0].clauses[1].op`), so one run shows them all.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::bucket::BUCKETS;
use crate::eval::{parse_instant, parse_semver};
use crate::model::*;
use crate::route::{Route, RouteRule};
use crate::zone::{Window, Zone, day_index, time_of_day};

/// One problem in a flag file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where: a JSON path such as `$.flags.banner.rules[0].serve`.
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a flag file did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The text is not JSON.
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The JSON is not a valid flag file; every problem is listed.
    #[error("{} problem(s) in the flag file:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ValidationError>),
}

impl CompileError {
    /// Every problem, as path and message (one for a JSON syntax error, at `$`).
    pub fn problems(&self) -> Vec<ValidationError> {
        match self {
            CompileError::Json {
                line,
                column,
                message,
            } => vec![ValidationError {
                path: "$".into(),
                message: format!("not valid JSON at line {line}, column {column}: {message}"),
            }],
            CompileError::Invalid(v) => v.clone(),
        }
    }
}

/// Parses and compiles a flag file.
pub fn compile_str(text: &str) -> Result<Snapshot, CompileError> {
    let v: Value = serde_json::from_str(text).map_err(|e| CompileError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    compile(&v)
}

/// Compiles a snapshot payload that `pack` wrote (so it was validated in full when it was
/// packed), at the edge: the same checks except the per-flag size limit, and `version`
/// (the packed snapshot's version) is taken as the fingerprint instead of re-serialising
/// the whole file to compute it. Both are whole-file passes the edge would pay per load.
pub fn compile_packed(text: &str, version: &str) -> Result<Snapshot, CompileError> {
    let v: Value = serde_json::from_str(text).map_err(|e| CompileError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    run(&v, Some(version))
}

/// Compiles a parsed flag file.
pub fn compile(root: &Value) -> Result<Snapshot, CompileError> {
    run(root, None)
}

fn run(root: &Value, packed_version: Option<&str>) -> Result<Snapshot, CompileError> {
    let mut c = Compiler {
        packed_version: packed_version.map(str::to_string),
        ..Compiler::default()
    };
    let snap = c.file(root);
    match (snap, c.errors.is_empty()) {
        (Some(s), true) => Ok(s),
        _ => {
            if c.errors.is_empty() {
                c.err("$", "the flag file could not be compiled");
            }
            Err(CompileError::Invalid(c.errors))
        }
    }
}

#[derive(Default)]
struct Compiler {
    errors: Vec<ValidationError>,
    flag_index: HashMap<String, usize>,
    /// Variant names of each flag, by flag index.
    flag_variants: Vec<Vec<String>>,
    segment_index: HashMap<String, usize>,
    /// Set when compiling a packed snapshot: its version, used as the fingerprint.
    packed_version: Option<String>,
    /// Set when a clause tests a trait.
    uses_traits: bool,
    /// Every distinct string of the snapshot, shared (as a decoded snapshot shares them).
    names: HashSet<Name>,
    /// The arrays the snapshot's spans point into.
    arena: Arena,
}

/// Every clause operator (`equals` is another name for `in`).
const KNOWN_OPS: &[&str] = &[
    "in",
    "equals",
    "starts_with",
    "ends_with",
    "contains",
    "matches",
    "lt",
    "lte",
    "gt",
    "gte",
    "semver_eq",
    "semver_lt",
    "semver_lte",
    "semver_gt",
    "semver_gte",
    "before",
    "after",
    "local_time",
    "segment",
    "exists",
];

const FLAG_FIELDS: &[&str] = &[
    "type",
    "description",
    "owner",
    "tags",
    "temporary",
    "expires",
    "on",
    "variants",
    "off_variant",
    "default",
    "salt",
    "targets",
    "rules",
    "prerequisites",
    "schedule",
    "content",
    "exposure_sample",
];

impl Compiler {
    /// The shared copy of `s`.
    fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.names.insert(n.clone());
        n
    }

    fn names(&mut self, items: Vec<String>) -> Vec<Name> {
        items.iter().map(|s| self.name(s)).collect()
    }

    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        match v.as_object() {
            Some(o) => Some(o),
            None => {
                self.err(
                    path,
                    format!("{what} must be an object, found {}", kind_of(v)),
                );
                None
            }
        }
    }

    fn fields(&mut self, o: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &join(path, k),
                    format!(
                        "unknown field `{k}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.err(path, format!("must be a string, found {}", kind_of(v)));
                None
            }
        }
    }

    fn opt_string(&mut self, o: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        o.get(key).and_then(|v| self.string(v, &join(path, key)))
    }

    fn bool_field(&mut self, o: &Map<String, Value>, key: &str, path: &str, default: bool) -> bool {
        match o.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.err(
                    &join(path, key),
                    format!("must be true or false, found {}", kind_of(v)),
                );
                default
            }
        }
    }

    fn strings(&mut self, v: &Value, path: &str) -> Vec<String> {
        let Some(items) = v.as_array() else {
            self.err(
                path,
                format!("must be a list of strings, found {}", kind_of(v)),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        out
    }

    fn file(&mut self, root: &Value) -> Option<Snapshot> {
        let o = self.object(root, "$", "the flag file")?;
        self.fields(
            o,
            "$",
            &[
                "$schema",
                "description",
                "flags",
                "segments",
                "routes",
                "ofrep",
                "context",
            ],
        );
        let ofrep = o
            .get("ofrep")
            .map(|v| self.ofrep(v, "$.ofrep"))
            .unwrap_or_default();
        let request_context = o
            .get("context")
            .map(|v| self.context_settings(v, "$.context"))
            .unwrap_or_default();
        let empty = Map::new();
        let flags_raw = match o.get("flags") {
            Some(v) => self.object(v, "$.flags", "`flags`").unwrap_or(&empty),
            None => {
                self.err("$.flags", "missing: the flag file needs a `flags` object");
                &empty
            }
        };
        let segs_raw = match o.get("segments") {
            Some(v) => self.object(v, "$.segments", "`segments`").unwrap_or(&empty),
            None => &empty,
        };
        // Names first, so that references can be checked in any order.
        for (i, (k, v)) in flags_raw.iter().enumerate() {
            self.flag_index.insert(k.clone(), i);
            let names = v
                .get("variants")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            self.flag_variants.push(names);
        }
        for (i, k) in segs_raw.keys().enumerate() {
            self.segment_index.insert(k.clone(), i);
        }
        let mut segments = Vec::new();
        for (k, v) in segs_raw {
            let path = join("$.segments", k);
            check_key(self, k, &path);
            segments.push(self.segment(v, &path));
        }
        let mut flags = Vec::new();
        for (k, v) in flags_raw {
            let path = join("$.flags", k);
            check_key(self, k, &path);
            if self.packed_version.is_none()
                && let Ok(text) = serde_json::to_string(v)
                && text.len() > crate::MAX_FLAG_CHARS
            {
                self.err(
                        &path,
                        format!(
                            "the flag is {} characters of compact JSON; one config-store entry holds at most {} (move long lists into a segment)",
                            text.len(),
                            crate::MAX_FLAG_CHARS
                        ),
                    );
            }
            flags.push(self.flag(k, v, &path));
        }
        self.prerequisite_cycles(flags_raw);
        let (routes, default_route, fallback_route) = match o.get("routes") {
            Some(v) => self.routes(v, "$.routes"),
            None => (Vec::new(), None, None),
        };
        if !self.errors.is_empty() {
            return None;
        }
        let flags: Vec<Flag> = flags.into_iter().collect::<Option<_>>()?;
        let segments: Vec<Segment> = segments.into_iter().collect::<Option<_>>()?;
        let index = crate::model::key_order(&flags);
        let fingerprint = match &self.packed_version {
            Some(v) => v.clone(),
            None => {
                let canonical = serde_json::to_string(root).unwrap_or_default();
                format!("{:016x}", crate::bucket::hash64("snapshot", &canonical))
            }
        };
        Some(Snapshot {
            flags,
            arena: std::mem::take(&mut self.arena),
            index,
            segments,
            routes,
            default_route: default_route.unwrap_or_else(|| Route {
                id: "default".into(),
                backend: "origin".into(),
                path_prefix: None,
                host: None,
            }),
            fallback_route,
            ofrep,
            request_context,
            fingerprint,
            uses_traits: self.uses_traits,
        })
    }

    fn flag(&mut self, key: &str, v: &Value, path: &str) -> Option<Flag> {
        let o = self.object(v, path, "a flag")?;
        self.fields(o, path, FLAG_FIELDS);
        let kind = match o.get("type").map(|t| (t, t.as_str())) {
            None => {
                self.err(
                    &join(path, "type"),
                    "missing: one of boolean, string, number, json",
                );
                None
            }
            Some((_, Some("boolean"))) => Some(FlagType::Boolean),
            Some((_, Some("string"))) => Some(FlagType::String),
            Some((_, Some("number"))) => Some(FlagType::Number),
            Some((_, Some("json"))) => Some(FlagType::Json),
            Some((t, _)) => {
                self.err(
                    &join(path, "type"),
                    format!("unknown type {t}: expected boolean, string, number or json"),
                );
                None
            }
        };
        let vpath = join(path, "variants");
        let mut variants = Vec::new();
        match o.get("variants") {
            None => self.err(&vpath, "missing: a flag needs at least one variant"),
            Some(vs) => {
                if let Some(m) = self.object(vs, &vpath, "`variants`") {
                    if m.is_empty() {
                        self.err(&vpath, "a flag needs at least one variant");
                    }
                    for (name, value) in m {
                        if let Some(k) = kind
                            && !k.admits(value)
                        {
                            self.err(
                                &join(&vpath, name),
                                format!(
                                    "a {} flag's variant must be a {}, found {}",
                                    k.name(),
                                    k.name(),
                                    kind_of(value)
                                ),
                            );
                        }
                        variants.push(Variant {
                            name: self.name(name),
                            value: Arc::new(value.clone()),
                        });
                    }
                }
            }
        }
        let names: Vec<String> = variants.iter().map(|v| v.name.to_string()).collect();
        let on = self.bool_field(o, "on", path, true);
        let off_variant = match o.get("off_variant") {
            Some(v) => self.variant_ref(v, &names, &join(path, "off_variant")),
            None => {
                self.err(
                    &join(path, "off_variant"),
                    "missing: the variant served when the flag is off",
                );
                None
            }
        };
        let salt = self
            .opt_string(o, "salt", path)
            .unwrap_or_else(|| key.to_string());
        if salt.contains('\u{1f}') {
            self.err(
                &join(path, "salt"),
                "a salt may not contain the unit separator U+001F",
            );
        }
        let fallthrough = match o.get("default") {
            Some(v) => self.serve(v, &names, &salt, &join(path, "default")),
            None => {
                self.err(
                    &join(path, "default"),
                    "missing: the variant or split served when no rule matches",
                );
                None
            }
        };
        let mut targets: HashMap<Name, usize> = HashMap::new();
        if let Some(t) = o.get("targets") {
            let tpath = join(path, "targets");
            if let Some(m) = self.object(t, &tpath, "`targets`") {
                for (variant, keys) in m {
                    let p = join(&tpath, variant);
                    let vi = self.variant_ref(&Value::String(variant.clone()), &names, &p);
                    for (i, k) in self.strings(keys, &p).into_iter().enumerate() {
                        if let Some(vi) = vi
                            && let Some(prev) = targets.insert(self.name(&k), vi)
                            && prev != vi
                        {
                            self.err(
                                &format!("{p}[{i}]"),
                                format!("user `{k}` is targeted to two variants"),
                            );
                        }
                    }
                }
            }
        }
        let mut rules = Vec::new();
        if let Some(r) = o.get("rules") {
            let rpath = join(path, "rules");
            match r.as_array() {
                None => self.err(
                    &rpath,
                    format!("must be a list of rules, found {}", kind_of(r)),
                ),
                Some(items) => {
                    let mut ids = HashSet::new();
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{rpath}[{i}]");
                        if let Some(rule) = self.rule(item, i, &names, &salt, &p) {
                            if !ids.insert(rule.id.clone()) {
                                self.err(
                                    &join(&p, "id"),
                                    format!("rule id `{}` is used twice", rule.id),
                                );
                            }
                            rules.push(rule);
                        }
                    }
                }
            }
        }
        let mut prerequisites = Vec::new();
        if let Some(p) = o.get("prerequisites") {
            let ppath = join(path, "prerequisites");
            match p.as_array() {
                None => self.err(&ppath, format!("must be a list, found {}", kind_of(p))),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(pr) = self.prerequisite(item, key, &format!("{ppath}[{i}]")) {
                            prerequisites.push(pr);
                        }
                    }
                }
            }
        }
        let schedule = o
            .get("schedule")
            .and_then(|s| self.schedule(s, &join(path, "schedule")));
        let meta = self.metadata(o, path);
        let mut targets: Vec<(Name, usize)> = targets.into_iter().collect();
        targets.sort();
        Some(Flag {
            key: self.name(key),
            kind: kind?,
            on,
            variants: Span::push(&mut self.arena.variants, variants),
            off_variant: off_variant?,
            prerequisites,
            targets,
            rules: Span::push(&mut self.arena.rules, rules),
            fallthrough: fallthrough?,
            schedule: schedule.map(Box::new),
            meta,
        })
    }

    fn metadata(&mut self, o: &Map<String, Value>, path: &str) -> Metadata {
        let tags = o
            .get("tags")
            .map(|t| self.strings(t, &join(path, "tags")))
            .unwrap_or_default();
        let expires = self.opt_string(o, "expires", path);
        if let Some(e) = &expires
            && NaiveDate::parse_from_str(e, "%Y-%m-%d").is_err()
        {
            self.err(
                &join(path, "expires"),
                format!("`{e}` is not a date (YYYY-MM-DD)"),
            );
        }
        let exposure_sample = match o.get("exposure_sample") {
            None => 0.0,
            Some(v) => match v.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => f,
                _ => {
                    self.err(
                        &join(path, "exposure_sample"),
                        "must be a number from 0 to 1",
                    );
                    0.0
                }
            },
        };
        Metadata {
            about: Some(Box::new(About {
                description: self.opt_string(o, "description", path),
                owner: self.opt_string(o, "owner", path),
                tags,
                expires,
            })),
            temporary: self.bool_field(o, "temporary", path, false),
            content: self.bool_field(o, "content", path, false),
            exposure_sample,
        }
    }

    fn variant_ref(&mut self, v: &Value, names: &[String], path: &str) -> Option<usize> {
        let name = self.string(v, path)?;
        match names.iter().position(|n| *n == name) {
            Some(i) => Some(i),
            None => {
                self.err(
                    path,
                    format!("unknown variant `{name}` (variants: {})", names.join(", ")),
                );
                None
            }
        }
    }

    fn serve(&mut self, v: &Value, names: &[String], salt: &str, path: &str) -> Option<Serve> {
        if v.is_string() {
            return self.variant_ref(v, names, path).map(Serve::Variant);
        }
        let Some(o) = v.as_object() else {
            self.err(
                path,
                format!(
                    "must be a variant name or {{\"split\": [...]}}, found {}",
                    kind_of(v)
                ),
            );
            return None;
        };
        self.fields(o, path, &["split", "by", "salt"]);
        let by = self
            .opt_string(o, "by", path)
            .unwrap_or_else(|| "key".to_string());
        let salt = self
            .opt_string(o, "salt", path)
            .unwrap_or_else(|| salt.to_string());
        let spath = join(path, "split");
        let Some(items) = o.get("split").and_then(Value::as_array) else {
            self.err(
                &spath,
                "missing: a list of {\"variant\": name, \"weight\": percent}",
            );
            return None;
        };
        if items.is_empty() {
            self.err(&spath, "a split needs at least one variant");
            return None;
        }
        let mut slots = Vec::new();
        let mut total: u64 = 0;
        let mut ok = true;
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{spath}[{i}]");
            let Some(io) = self.object(item, &p, "a split entry") else {
                ok = false;
                continue;
            };
            self.fields(io, &p, &["variant", "weight"]);
            let variant = match io.get("variant") {
                Some(v) => self.variant_ref(v, names, &join(&p, "variant")),
                None => {
                    self.err(&join(&p, "variant"), "missing");
                    None
                }
            };
            if let Some(vi) = variant
                && !seen.insert(vi)
            {
                self.err(&join(&p, "variant"), "a variant may appear once in a split");
            }
            let weight = match io.get("weight").and_then(Value::as_f64) {
                Some(w) if (0.0..=100.0).contains(&w) => {
                    let units = w * f64::from(BUCKETS) / 100.0;
                    if (units - units.round()).abs() > 1e-6 {
                        self.err(&join(&p, "weight"), format!("{w} has more than 3 decimal places (weights are in steps of 0.001%)"));
                        None
                    } else {
                        Some(units.round() as u64)
                    }
                }
                _ => {
                    self.err(&join(&p, "weight"), "must be a percentage from 0 to 100");
                    None
                }
            };
            match (variant, weight) {
                (Some(v), Some(w)) => {
                    total += w;
                    slots.push((total.min(u64::from(BUCKETS)) as u32, v));
                }
                _ => ok = false,
            }
        }
        if ok && total != u64::from(BUCKETS) {
            self.err(
                &spath,
                format!(
                    "weights add up to {}%, not 100%",
                    total as f64 * 100.0 / f64::from(BUCKETS)
                ),
            );
            return None;
        }
        if !ok {
            return None;
        }
        let split = Split {
            prefix: crate::bucket::Prefix::new(&salt),
            by: self.name(&by),
            salt: self.name(&salt),
            slots: Span::push(&mut self.arena.slots, slots),
        };
        self.arena.splits.push(split);
        Some(Serve::Split(self.arena.splits.len() - 1))
    }

    fn rule(
        &mut self,
        v: &Value,
        i: usize,
        names: &[String],
        salt: &str,
        path: &str,
    ) -> Option<Rule> {
        let o = self.object(v, path, "a rule")?;
        self.fields(
            o,
            path,
            &["id", "description", "clauses", "serve", "schedule"],
        );
        let id = self
            .opt_string(o, "id", path)
            .unwrap_or_else(|| format!("rule-{i}"));
        let clauses = self.clauses(o.get("clauses"), &join(path, "clauses"), true);
        let serve = match o.get("serve") {
            Some(s) => self.serve(s, names, salt, &join(path, "serve")),
            None => {
                self.err(&join(path, "serve"), "missing: a variant name or a split");
                None
            }
        };
        let schedule = o
            .get("schedule")
            .and_then(|s| self.schedule(s, &join(path, "schedule")));
        Some(Rule {
            id: self.name(&id),
            clauses: Span::push(&mut self.arena.clauses, clauses?),
            serve: serve?,
            schedule: schedule.map(Box::new),
        })
    }

    fn clauses(
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

    fn clause(&mut self, v: &Value, path: &str, segments_allowed: bool) -> Option<Clause> {
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
        if !KNOWN_OPS.contains(&op_name) {
            self.err(
                &join(path, "op"),
                format!(
                    "unknown operator `{op_name}` (known: {})",
                    KNOWN_OPS.join(", ")
                ),
            );
            return None;
        }
        let allowed: &[&str] = match op_name {
            "local_time" => &["op", "negate", "days", "from", "to", "zone"],
            "segment" => &["op", "negate", "values"],
            "exists" => &["op", "negate", "attribute"],
            _ => &["op", "negate", "attribute", "values"],
        };
        self.fields(o, path, allowed);
        let attribute = match op_name {
            "local_time" | "segment" => String::new(),
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
        if attribute.starts_with(crate::traits::PREFIX) {
            self.uses_traits = true;
        }
        let vpath = join(path, "values");
        let values = || o.get("values");
        let op = match op_name {
            "in" | "equals" => {
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
            "starts_with" => {
                let v = self.string_values(values(), &vpath)?;
                let names = self.names(v);
                Op::StartsWith(Span::push(&mut self.arena.strings, names))
            }
            "ends_with" => {
                let v = self.string_values(values(), &vpath)?;
                let names = self.names(v);
                Op::EndsWith(Span::push(&mut self.arena.strings, names))
            }
            "contains" => {
                let v = self.string_values(values(), &vpath)?;
                let names = self.names(v);
                Op::Contains(Span::push(&mut self.arena.strings, names))
            }
            "matches" => {
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
            "lt" | "lte" | "gt" | "gte" => {
                let cmp = match op_name {
                    "lt" => Cmp::Lt,
                    "lte" => Cmp::Lte,
                    "gt" => Cmp::Gt,
                    _ => Cmp::Gte,
                };
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
            "semver_eq" | "semver_lt" | "semver_lte" | "semver_gt" | "semver_gte" => {
                let cmp = match op_name {
                    "semver_eq" => Cmp::Eq,
                    "semver_lt" => Cmp::Lt,
                    "semver_lte" => Cmp::Lte,
                    "semver_gt" => Cmp::Gt,
                    _ => Cmp::Gte,
                };
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
            "before" | "after" => {
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
                if op_name == "before" {
                    Op::Before(ts)
                } else {
                    Op::After(ts)
                }
            }
            "local_time" => Op::LocalTime(self.window(o, path)?),
            "segment" => {
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
            "exists" => Op::Exists,
            // KNOWN_OPS was checked above.
            _ => return None,
        };
        Some(Clause {
            attribute: self.name(&attribute),
            op,
            negate,
        })
    }

    fn values<'v>(&mut self, v: Option<&'v Value>, path: &str) -> Option<&'v Vec<Value>> {
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

    fn string_values(&mut self, v: Option<&Value>, path: &str) -> Option<Vec<String>> {
        let items = self.values(v, path)?;
        let before = self.errors.len();
        let out = self.strings(&Value::Array(items.clone()), path);
        (self.errors.len() == before).then_some(out)
    }

    fn window(&mut self, o: &Map<String, Value>, path: &str) -> Option<Window> {
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

    fn schedule(&mut self, v: &Value, path: &str) -> Option<Schedule> {
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

    fn prerequisite(&mut self, v: &Value, own: &str, path: &str) -> Option<Prerequisite> {
        let o = self.object(v, path, "a prerequisite")?;
        self.fields(o, path, &["flag", "variants"]);
        let flag = match o.get("flag") {
            Some(f) => self.string(f, &join(path, "flag"))?,
            None => {
                self.err(&join(path, "flag"), "missing: the prerequisite flag's key");
                return None;
            }
        };
        let Some(&fi) = self.flag_index.get(&flag) else {
            self.err(&join(path, "flag"), format!("unknown flag `{flag}`"));
            return None;
        };
        if flag == own {
            self.err(&join(path, "flag"), "a flag cannot be its own prerequisite");
            return None;
        }
        let names = self.flag_variants.get(fi).cloned().unwrap_or_default();
        let vpath = join(path, "variants");
        let mut variants = Vec::new();
        let wanted = match o.get("variants") {
            Some(v) => self.strings(v, &vpath),
            None => {
                self.err(
                    &vpath,
                    "missing: the variants of the prerequisite that let this flag run",
                );
                return None;
            }
        };
        for (i, w) in wanted.iter().enumerate() {
            match names.iter().position(|n| n == w) {
                Some(x) => variants.push(x),
                None => self.err(
                    &format!("{vpath}[{i}]"),
                    format!("flag `{flag}` has no variant `{w}`"),
                ),
            }
        }
        Some(Prerequisite { flag: fi, variants })
    }

    fn prerequisite_cycles(&mut self, raw: &Map<String, Value>) {
        // Depth-first search over the prerequisite graph, read from the raw file so that
        // a cycle is reported even when the flags in it have other problems too.
        let n = raw.len();
        let edges: Vec<Vec<usize>> = raw
            .values()
            .map(|f| {
                f.get("prerequisites")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| p.get("flag").and_then(Value::as_str))
                            .filter_map(|k| self.flag_index.get(k).copied())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let keys: Vec<&String> = raw.keys().collect();
        let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
        let mut reported = HashSet::new();
        for start in 0..n {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&to) = edges[node].get(*next) {
                    *next += 1;
                    match state[to] {
                        0 => {
                            state[to] = 1;
                            stack.push((to, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(x, _)| *x == to).unwrap_or(0);
                            let mut cycle: Vec<&str> = stack[from..]
                                .iter()
                                .map(|(x, _)| keys[*x].as_str())
                                .collect();
                            cycle.push(keys[to].as_str());
                            let mut members: Vec<&str> = cycle.clone();
                            members.sort();
                            members.dedup();
                            if reported.insert(members) {
                                self.err(
                                    &format!("{}.prerequisites", join("$.flags", keys[to])),
                                    format!("prerequisite cycle: {}", cycle.join(" -> ")),
                                );
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn segment(&mut self, v: &Value, path: &str) -> Option<Segment> {
        let o = self.object(v, path, "a segment")?;
        self.fields(o, path, &["description", "included", "excluded", "rules"]);
        let included = o
            .get("included")
            .map(|x| self.strings(x, &join(path, "included")))
            .unwrap_or_default();
        let excluded = o
            .get("excluded")
            .map(|x| self.strings(x, &join(path, "excluded")))
            .unwrap_or_default();
        let mut rules = Vec::new();
        if let Some(r) = o.get("rules") {
            let rpath = join(path, "rules");
            match r.as_array() {
                None => self.err(&rpath, "must be a list of rules"),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{rpath}[{i}]");
                        if let Some(ro) = self.object(item, &p, "a segment rule") {
                            self.fields(ro, &p, &["id", "description", "clauses"]);
                            if let Some(clauses) =
                                self.clauses(ro.get("clauses"), &join(&p, "clauses"), false)
                            {
                                rules.push(Span::push(&mut self.arena.clauses, clauses));
                            }
                        }
                    }
                }
            }
        }
        Some(Segment {
            included: {
                let names = self.names(included);
                StrSet::new(&mut self.arena.strings, names)
            },
            excluded: {
                let names = self.names(excluded);
                StrSet::new(&mut self.arena.strings, names)
            },
            rules,
        })
    }

    fn routes(&mut self, v: &Value, path: &str) -> (Vec<RouteRule>, Option<Route>, Option<Route>) {
        let Some(o) = self.object(v, path, "`routes`") else {
            return (Vec::new(), None, None);
        };
        self.fields(o, path, &["default", "rules", "fallback"]);
        let fallback = o
            .get("fallback")
            .and_then(|f| self.route_target(f, "fallback".into(), &join(path, "fallback")));
        let default = match o.get("default") {
            Some(d) => self.route_target(d, "default".into(), &join(path, "default")),
            None => {
                self.err(
                    &join(path, "default"),
                    "missing: the route used when no route rule matches",
                );
                None
            }
        };
        let mut rules = Vec::new();
        if let Some(r) = o.get("rules") {
            let rpath = join(path, "rules");
            match r.as_array() {
                None => self.err(&rpath, "must be a list of route rules"),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{rpath}[{i}]");
                        let Some(ro) = self.object(item, &p, "a route rule") else {
                            continue;
                        };
                        let id = self
                            .opt_string(ro, "id", &p)
                            .unwrap_or_else(|| format!("route-{i}"));
                        let clauses = match ro.get("clauses") {
                            Some(_) => self.clauses(ro.get("clauses"), &join(&p, "clauses"), true),
                            None => Some(Vec::new()),
                        };
                        let mut flags = Vec::new();
                        if let Some(fv) = ro.get("flags") {
                            let fpath = join(&p, "flags");
                            if let Some(fm) = self.object(fv, &fpath, "`flags`") {
                                for (flag, variants) in fm {
                                    let fp = join(&fpath, flag);
                                    let Some(&fi) = self.flag_index.get(flag) else {
                                        self.err(&fp, format!("unknown flag `{flag}`"));
                                        continue;
                                    };
                                    let names =
                                        self.flag_variants.get(fi).cloned().unwrap_or_default();
                                    let mut vs = Vec::new();
                                    for (j, w) in self.strings(variants, &fp).iter().enumerate() {
                                        match names.iter().position(|n| n == w) {
                                            Some(x) => vs.push(x),
                                            None => self.err(
                                                &format!("{fp}[{j}]"),
                                                format!("flag `{flag}` has no variant `{w}`"),
                                            ),
                                        }
                                    }
                                    flags.push((fi, vs));
                                }
                            }
                        }
                        let target =
                            self.route_target_fields(ro, id, &p, &["id", "clauses", "flags"]);
                        if let (Some(clauses), Some(route)) = (clauses, target) {
                            rules.push(RouteRule {
                                clauses: Span::push(&mut self.arena.clauses, clauses),
                                flags,
                                route,
                            });
                        }
                    }
                }
            }
        }
        (rules, default, fallback)
    }

    fn context_settings(&mut self, v: &Value, path: &str) -> ContextSettings {
        let mut out = ContextSettings::default();
        let Some(o) = self.object(v, path, "`context`") else {
            return out;
        };
        self.fields(o, path, &["headers", "cookies", "query"]);
        for (field, list) in [
            ("headers", &mut out.headers),
            ("cookies", &mut out.cookies),
            ("query", &mut out.query),
        ] {
            let Some(m) = o.get(field) else { continue };
            let fpath = join(path, field);
            let Some(m) = self.object(m, &fpath, "an allow-list (source name to attribute name)")
            else {
                continue;
            };
            for (source, attr) in m {
                let p = join(&fpath, source);
                let Some(attr) = self.string(attr, &p) else {
                    continue;
                };
                if crate::attributes::set_by_edge(&attr) {
                    self.err(
                        &p,
                        format!(
                            "`{attr}` is set by the edge itself and cannot come from a request"
                        ),
                    );
                    continue;
                }
                if field == "headers" && source.to_ascii_lowercase().starts_with("edgeflags-") {
                    self.err(
                        &p,
                        "headers starting with edgeflags- are removed before the edge reads them",
                    );
                    continue;
                }
                list.push((source.clone(), attr));
            }
        }
        out
    }

    fn ofrep(&mut self, v: &Value, path: &str) -> OfrepSettings {
        let mut out = OfrepSettings::default();
        let Some(o) = self.object(v, path, "`ofrep`") else {
            return out;
        };
        self.fields(o, path, &["cors_origins", "auth"]);
        if let Some(c) = o.get("cors_origins") {
            out.cors_origins = self.strings(c, &join(path, "cors_origins"));
        }
        match o.get("auth").map(|a| (a, a.as_str())) {
            None | Some((_, Some("optional"))) => {}
            Some((_, Some("required"))) => out.require_auth = true,
            Some((a, _)) => self.err(
                &join(path, "auth"),
                format!("{a} is not `optional` or `required`"),
            ),
        }
        out
    }

    fn route_target(&mut self, v: &Value, id: String, path: &str) -> Option<Route> {
        let o = self.object(v, path, "a route")?;
        self.route_target_fields(o, id, path, &[])
    }

    fn route_target_fields(
        &mut self,
        o: &Map<String, Value>,
        id: String,
        path: &str,
        extra: &[&str],
    ) -> Option<Route> {
        let mut allowed = vec!["backend", "path_prefix", "host"];
        allowed.extend_from_slice(extra);
        self.fields(o, path, &allowed);
        let backend = match o.get("backend") {
            Some(b) => self.string(b, &join(path, "backend"))?,
            None => {
                self.err(&join(path, "backend"), "missing: the backend name");
                return None;
            }
        };
        if backend.is_empty()
            || !backend
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.err(
                &join(path, "backend"),
                format!("`{backend}` is not a backend name (letters, digits, _ and -)"),
            );
        }
        let path_prefix = self.opt_string(o, "path_prefix", path);
        if let Some(p) = &path_prefix
            && (!p.starts_with('/')
                || p.contains("..")
                || p.contains("//")
                || p.bytes()
                    .any(|b| b.is_ascii_control() || b == b'?' || b == b'#'))
        {
            self.err(
                &join(path, "path_prefix"),
                format!(
                    "`{p}` must start with / and hold no `..`, `//`, `?`, `#` or control characters"
                ),
            );
        }
        let host = self.opt_string(o, "host", path);
        if let Some(h) = &host
            && (h.is_empty()
                || h.bytes()
                    .any(|b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')))
        {
            self.err(&join(path, "host"), format!("`{h}` is not a host name"));
        }
        Some(Route {
            id,
            backend,
            path_prefix: path_prefix.map(|p| p.trim_end_matches('/').to_string()),
            host,
        })
    }
}

fn check_key(c: &mut Compiler, k: &str, path: &str) {
    let ok = !k.is_empty()
        && k.len() <= 128
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok {
        c.err(
            path,
            format!("`{k}` is not a valid key: 1 to 128 of letters, digits, `_`, `-`, `.`"),
        );
    }
}

/// Joins a JSON path and an object key, quoting keys that are not plain identifiers.
fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_string()))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
