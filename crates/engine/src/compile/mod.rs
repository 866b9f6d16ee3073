//! Compile: a flag file (JSON) to a validated [`Snapshot`]. Every problem is collected
//! with its JSON path (`$.flags.banner.rules[0].clauses[1].op`), so one run shows them all.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};

mod allocation;
mod clause;
mod edge;
mod flag;
mod settings;

use crate::allocation::{Holdout, Layer, Membership};
use crate::bucket::BUCKETS;
use crate::model::*;

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
    /// The file's layers and holdouts, in its order, and their indexes by name.
    layers: Vec<Layer>,
    layer_index: HashMap<String, usize>,
    holdouts: Vec<Holdout>,
    holdout_index: HashMap<String, usize>,
    /// Every flag's place in a layer, its key and the path of its slots.
    memberships: Vec<(Membership, String, String)>,
    /// Every draw of a bucket (split, ramp, layer, holdout), for the salt check.
    draws: Vec<Draw>,
}

/// One draw of a user's bucket: a split, a ramp, a layer or a holdout.
struct Draw {
    salt: String,
    by: String,
    /// What draws, for messages (such as "layer `pricing`").
    what: String,
    path: String,
    /// A layer or a holdout, whose draw cuts across flags.
    spans_flags: bool,
}

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
    "layer",
    "holdout",
    "ramp",
    "edge",
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

    /// A percentage from 0 to 100 with at most three decimals, in buckets (0.001 % each).
    fn weight_units(&mut self, v: &Value, path: &str) -> Option<u32> {
        match v.as_f64() {
            Some(w) if (0.0..=100.0).contains(&w) => {
                let units = w * f64::from(BUCKETS) / 100.0;
                if (units - units.round()).abs() > 1e-6 {
                    self.err(
                        path,
                        format!(
                            "{w} has more than 3 decimal places (weights are in steps of 0.001%)"
                        ),
                    );
                    None
                } else {
                    Some(units.round() as u32)
                }
            }
            _ => {
                self.err(path, "must be a percentage from 0 to 100");
                None
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
                "layers",
                "holdouts",
                "edge",
            ],
        );
        let (bootstrap, redirect_hosts) = o
            .get("edge")
            .map(|v| self.edge_settings(v, "$.edge"))
            .unwrap_or_default();
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
        for (section, what) in [("layers", "`layers`"), ("holdouts", "`holdouts`")] {
            let raw = match o.get(section) {
                Some(v) => self.object(v, &join("$", section), what).unwrap_or(&empty),
                None => &empty,
            };
            self.draw_tables(section, raw);
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
        self.report_prerequisite_cycles(flags_raw);
        self.check_layer_ranges();
        self.check_salts();
        let mut edits = crate::edit::Edits {
            variants: Vec::new(),
            bootstrap,
            redirect_hosts,
        };
        let mut flag_paths = Vec::new();
        for (i, (k, v)) in flags_raw.iter().enumerate() {
            let path = join("$.flags", k);
            if let Some(e) = v.get("edge") {
                let names = self.flag_variants.get(i).cloned().unwrap_or_default();
                let hosts = edits.redirect_hosts.clone();
                let found = self.flag_edge(i, e, &names, &hosts, &join(&path, "edge"));
                edits.variants.extend(found);
            }
            flag_paths.push(path);
        }
        let variant_names = self.flag_variants.clone();
        self.check_edits(&edits, &flag_paths, &variant_names);
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
            arena: std::mem::take(&mut self.arena).sealed(),
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
            layers: std::mem::take(&mut self.layers),
            holdouts: std::mem::take(&mut self.holdouts),
            edits,
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
