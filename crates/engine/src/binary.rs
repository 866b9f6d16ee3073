//! The packed snapshot (format 2): what `edgeflags pack` writes and the edge reads.
//!
//! A fresh instance used to parse the flag file (JSON) and compile it, about 1 ms for 100
//! flags inside wasm; now the CLI compiles once and stores the compiled form, so the edge
//! only decodes it. The payload is the text
//! `efb2.` base64url(postcard(compiled snapshot)) `.` base64url(deflate(flag file JSON)):
//! the first part is all the edge decodes; the second keeps the flag file itself, for
//! `diff`, `rollback` and people, at a tenth of its size. The compiled part leaves out
//! what the edge never reads (descriptions, owners, tags, clean-up dates). Index fields are re-checked by
//! evaluation (every lookup is a `get`), so even a decoded snapshot cannot panic; the
//! checksum and optional signature of [`crate::pack`] guard its integrity.
//! A format-1 payload (the flag file JSON itself) still loads, by compiling it.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::compile::{CompileError, compile_packed};
use crate::model::{ContextSettings, Flag, OfrepSettings, Segment, Snapshot};
use crate::route::{Route, RouteRule};

/// The first characters of a format-2 payload.
pub const MAGIC: &str = "efb2.";

/// Why a payload could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The envelope or a base64 or postcard part is damaged.
    #[error("the packed snapshot is damaged: {0}")]
    Damaged(String),
    /// A format-1 (JSON) payload did not compile.
    #[error("{0}")]
    Compile(String),
}

impl From<CompileError> for LoadError {
    fn from(e: CompileError) -> LoadError {
        LoadError::Compile(e.to_string())
    }
}

#[derive(Serialize)]
struct SnapshotRef<'s> {
    flags: &'s [Flag],
    segments: &'s [Segment],
    routes: &'s [RouteRule],
    default_route: &'s Route,
    fallback_route: &'s Option<Route>,
    ofrep: &'s OfrepSettings,
    request_context: &'s ContextSettings,
    fingerprint: &'s str,
    uses_traits: bool,
}

#[derive(Deserialize)]
struct SnapshotData {
    flags: Vec<Flag>,
    segments: Vec<Segment>,
    routes: Vec<RouteRule>,
    default_route: Route,
    fallback_route: Option<Route>,
    ofrep: OfrepSettings,
    request_context: ContextSettings,
    fingerprint: String,
    uses_traits: bool,
}

/// The compiled snapshot as bytes (postcard).
pub fn encode(s: &Snapshot) -> Vec<u8> {
    postcard::to_allocvec(&SnapshotRef {
        flags: &s.flags,
        segments: &s.segments,
        routes: &s.routes,
        default_route: &s.default_route,
        fallback_route: &s.fallback_route,
        ofrep: &s.ofrep,
        request_context: &s.request_context,
        fingerprint: &s.fingerprint,
        uses_traits: s.uses_traits,
    })
    .unwrap_or_default()
}

/// A compiled snapshot from [`encode`]'s bytes.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, LoadError> {
    let d: SnapshotData =
        postcard::from_bytes(bytes).map_err(|e| LoadError::Damaged(e.to_string()))?;
    check(&d.flags, &d.segments)?;
    let index: HashMap<Box<str>, usize> = d
        .flags
        .iter()
        .enumerate()
        .map(|(i, f)| (f.key.clone().into_boxed_str(), i))
        .collect();
    Ok(Snapshot {
        flags: d.flags,
        index,
        segments: d.segments,
        routes: d.routes,
        default_route: d.default_route,
        fallback_route: d.fallback_route,
        ofrep: d.ofrep,
        request_context: d.request_context,
        fingerprint: d.fingerprint,
        uses_traits: d.uses_traits,
    })
}

/// What compile guarantees and evaluation relies on to terminate: segments do not
/// refer to segments, and prerequisites form no cycle. (Indexes need no check: evaluation
/// looks everything up with `get`.)
fn check(flags: &[Flag], segments: &[Segment]) -> Result<(), LoadError> {
    use crate::model::Op;
    let nested = segments.iter().any(|s| {
        s.rules
            .iter()
            .flatten()
            .any(|c| matches!(c.op, Op::Segment(_)))
    });
    if nested {
        return Err(LoadError::Damaged("a segment refers to a segment".into()));
    }
    // Depth-first search over prerequisite edges: 0 unvisited, 1 on the path, 2 done.
    let mut state = vec![0u8; flags.len()];
    for start in 0..flags.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
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

/// The format-2 payload of a flag file (compact JSON) of version `version`.
pub fn envelope(json: &str, version: &str) -> Result<String, CompileError> {
    let snapshot = compile_packed(json, version)?;
    let compiled = B64.encode(encode(&snapshot));
    let source = B64.encode(miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 9));
    Ok(format!("{MAGIC}{compiled}.{source}"))
}

/// Loads a payload of either format: format 2 is decoded, format 1 compiled.
pub fn load(payload: &str, version: &str) -> Result<Snapshot, LoadError> {
    let Some(rest) = payload.strip_prefix(MAGIC) else {
        return Ok(compile_packed(payload, version)?);
    };
    let compiled = rest.split('.').next().unwrap_or_default();
    let bytes = B64
        .decode(compiled)
        .map_err(|e| LoadError::Damaged(e.to_string()))?;
    decode(&bytes)
}

/// The flag file (JSON) a payload of either format was made from.
pub fn source(payload: &str) -> Result<String, LoadError> {
    let Some(rest) = payload.strip_prefix(MAGIC) else {
        return Ok(payload.to_string());
    };
    let packed = rest.split('.').nth(1).unwrap_or_default();
    let bytes = B64
        .decode(packed)
        .map_err(|e| LoadError::Damaged(e.to_string()))?;
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&bytes, 16 * 1024 * 1024)
        .map_err(|e| LoadError::Damaged(format!("{e:?}")))?;
    String::from_utf8(json).map_err(|e| LoadError::Damaged(e.to_string()))
}

/// Variant values: a string as itself, a boolean as itself, anything else as JSON text
/// (postcard cannot carry a self-describing value).
pub(crate) mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    #[derive(Serialize, Deserialize)]
    enum Packed<'a> {
        Str(&'a str),
        Bool(bool),
        Json(&'a str),
    }

    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Value::String(t) => Packed::Str(t).serialize(s),
            Value::Bool(b) => Packed::Bool(*b).serialize(s),
            other => Packed::Json(&other.to_string()).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        match Packed::deserialize(d)? {
            Packed::Str(t) => Ok(Value::String(t.to_string())),
            Packed::Bool(b) => Ok(Value::Bool(b)),
            Packed::Json(text) => serde_json::from_str(text).map_err(serde::de::Error::custom),
        }
    }
}

/// Regular expressions, as their patterns (compiled again when read).
pub(crate) mod regexes {
    use regex_lite::Regex;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Regex], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(Regex::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Regex>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|p| Regex::new(p).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Semantic versions, as text.
pub(crate) mod versions {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[semver::Version], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<semver::Version>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|v| semver::Version::parse(v).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Instants, as milliseconds since the epoch.
pub(crate) mod opt_instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_some(&t.timestamp_millis()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<i64>::deserialize(d)? {
            Some(ms) => DateTime::from_timestamp_millis(ms)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("instant out of range")),
            None => Ok(None),
        }
    }
}

/// Time zones, as names (`Asia/Tokyo`, `+09:00`).
pub(crate) mod opt_zone {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::zone::Zone;

    pub fn serialize<S: Serializer>(v: &Option<Zone>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(z) => s.serialize_some(&z.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Zone>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(name) => Zone::parse(&name)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown zone {name}"))),
            None => Ok(None),
        }
    }
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
        assert!(matches!(load("efb2.!!!", "v9"), Err(LoadError::Damaged(_))));
        assert!(matches!(
            load("{not json", "v9"),
            Err(LoadError::Compile(_))
        ));
        assert!(decode(&[0xff; 64]).is_err());
        assert!(source("efb2.AAAA.!!!").is_err());
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
        let clause = nested.flags[0].rules.remove(0).clauses.remove(0);
        nested.segments[0].rules.push(vec![clause]);
        assert!(
            matches!(decode(&encode(&nested)), Err(LoadError::Damaged(m)) if m.contains("segment"))
        );
    }
}
