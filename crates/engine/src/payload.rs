//! The payload of a packed snapshot: the envelope around the compiled snapshot that one
//! slot of the config store holds (see [`crate::pack`] for slots and the pointer).
//!
//! Format 3: `efb3.` base64url(deflate(flag file JSON)) `.` BODY, where BODY is the
//! compiled snapshot as [`crate::codec`] writes it. The edge decodes only BODY; the
//! deflated flag file rides along for `diff`, `rollback` and people. A format-1 payload
//! (the flag file's JSON itself) still loads, by compiling it; a format-2 payload (the
//! compiled snapshot as postcard, retired) is refused with a reason, and its flag file
//! can still be read back by [`source`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::codec::{Damaged, decode, encode};
use crate::compile::{CompileError, compile_packed};
use crate::model::Snapshot;

/// The first characters of a format-3 payload.
pub const MAGIC: &str = "efb3.";
/// The first characters of a format-2 payload (no longer decoded).
const MAGIC_2: &str = "efb2.";
/// The largest flag file [`source`] inflates.
const MAX_SOURCE: usize = 16 * 1024 * 1024;

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

impl From<Damaged> for LoadError {
    fn from(Damaged(why): Damaged) -> LoadError {
        LoadError::Damaged(why)
    }
}

/// The format-3 payload of `snapshot`, compiled from the flag file `json` (compact JSON):
/// the snapshot is encoded as it is, not compiled again.
pub fn envelope(snapshot: &Snapshot, json: &str) -> String {
    let source = B64.encode(miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 9));
    format!("{MAGIC}{source}.{}", encode(snapshot))
}

/// A flag file (compact JSON) compiled once and put in its envelope: the payload and
/// its version, or every problem.
pub fn of_file(json: &str) -> Result<(String, String), CompileError> {
    let snapshot = crate::compile::compile_str(json)?;
    Ok((
        envelope(&snapshot, json),
        snapshot.fingerprint().to_string(),
    ))
}

/// The BODY of a format-3 payload.
fn body(rest: &str) -> Result<&str, LoadError> {
    rest.split_once('.')
        .map(|(_, body)| body)
        .ok_or_else(|| LoadError::Damaged("the envelope has no compiled part".into()))
}

/// Loads a payload of version `version`: format 3 is decoded, format 1 compiled.
pub fn load(payload: &str, version: &str) -> Result<Snapshot, LoadError> {
    if let Some(rest) = payload.strip_prefix(MAGIC) {
        return Ok(decode(body(rest)?)?);
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
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&bytes, MAX_SOURCE)
        .map_err(|e| LoadError::Damaged(format!("{e:?}")))?;
    String::from_utf8(json).map_err(|e| LoadError::Damaged(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"flags":{"f":{"type":"json","description":"d","variants":{"a":"x","b":{"k":[1,2]}},"off_variant":"a","rules":[{"id":"r","clauses":[{"attribute":"v","op":"semver_gte","values":["1.2.0"]},{"attribute":"e","op":"matches","values":["^a.*z$"]}],"serve":"b"}],"schedule":{"from":"2026-01-01T00:00:00Z","windows":[{"days":["sat"],"zone":"Asia/Tokyo"}]},"default":{"split":[{"variant":"a","weight":30},{"variant":"b","weight":70}]}}}}"#;

    fn envelope_of(file: &str, version: &str) -> String {
        let snapshot = compile_packed(file, version).unwrap_or_else(|e| panic!("{e}"));
        envelope(&snapshot, file)
    }

    #[test]
    fn both_formats_load_and_the_source_comes_back() {
        let env = envelope_of(FILE, "v9");
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
        let env = envelope_of(FILE, "v9");
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
        assert!(source("efb2.AAAA.!!!").is_err());
    }
}
