//! Packing a flag set into Fastly config-store entries, and reading it back.
//!
//! Layout: a pointer entry (`edgeflags.pointer`) names the active slot (`a` or `b`) and
//! describes both slots (version, number of parts, checksum, optional HMAC signature).
//! A slot is `edgeflags.<slot>.<n>` entries, each `"<version>:<part>"`, at most 8000
//! characters. A writer fills the idle slot first and flips the pointer last, so a reader
//! that sees a torn or bad active slot can serve the other one, the previous good version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{self, checksum, hex, unhex};

/// The pointer entry's key.
pub const POINTER_KEY: &str = "edgeflags.pointer";
/// The newest snapshot format this code reads and writes: 3 is the compiled snapshot of
/// [`crate::payload`]; 1 was the flag file's JSON (still read); 2 was an earlier encoding
/// of the compiled snapshot (no longer decoded: its slot is unusable, and the edge serves
/// the other slot or the embedded snapshot).
pub const FORMAT: u32 = 3;
/// Fastly's limit on one config-store value, in characters.
pub const MAX_VALUE_CHARS: usize = 8000;
/// Fastly's limit on the number of entries in a config store.
pub const MAX_ENTRIES: usize = 500;
/// Fastly's limit on a config-store key, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Slot `a`.
    A,
    /// Slot `b`.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    /// `a` or `b`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    /// The key of part `n` of this slot.
    pub fn part_key(self, n: u32) -> String {
        format!("edgeflags.{}.{n}", self.name())
    }
}

/// What the pointer says about one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// The snapshot format the slot is written in.
    pub format: u32,
    /// The snapshot version (the flag file's fingerprint).
    pub version: String,
    /// Number of part entries.
    pub parts: u32,
    /// SipHash checksum (16 hex digits) of the concatenated parts.
    pub checksum: String,
    /// HMAC-SHA256 (hex) of `version ‖ ":" ‖ payload`, when packed with a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The pointer entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The slot to read.
    pub active: Slot,
    /// Slot `a`, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<SlotInfo>,
    /// Slot `b`, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<SlotInfo>,
}

impl Pointer {
    /// The description of a slot.
    pub fn slot(&self, s: Slot) -> Option<&SlotInfo> {
        match s {
            Slot::A => self.a.as_ref(),
            Slot::B => self.b.as_ref(),
        }
    }
    fn slot_mut(&mut self, s: Slot) -> &mut Option<SlotInfo> {
        match s {
            Slot::A => &mut self.a,
            Slot::B => &mut self.b,
        }
    }
}

/// Why packing failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    /// The result would not fit a Fastly config store.
    #[error(
        "the packed flag set needs {entries} config-store entries; a store holds at most {MAX_ENTRIES}"
    )]
    TooManyEntries {
        /// Entries needed.
        entries: usize,
    },
    /// The existing store content has a pointer that cannot be read.
    #[error("the store's pointer entry is not readable: {0}")]
    BadPointer(String),
}

/// The entries to write (in order: parts first, pointer last) and to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed {
    /// Entries to create or update, the pointer last.
    pub upserts: Vec<(String, String)>,
    /// Entries to delete (stale parts of the slot just written).
    pub deletes: Vec<String>,
    /// The slot written.
    pub slot: Option<Slot>,
    /// The version written.
    pub version: String,
}

impl Packed {
    /// Applies the change to a store held as a map (a local store file).
    pub fn apply(&self, store: &mut BTreeMap<String, String>) {
        for (k, v) in &self.upserts {
            store.insert(k.clone(), v.clone());
        }
        for k in &self.deletes {
            store.remove(k);
        }
    }
}

/// The HMAC-SHA256 signature (hex) of a version and payload.
pub fn sign(key: &[u8], version: &str, payload: &str) -> String {
    hex(&digest::hmac(
        key,
        &[version.as_bytes(), b":", payload.as_bytes()],
    ))
}

fn verify(key: &[u8], version: &str, payload: &str, signature: &str) -> bool {
    unhex(signature).is_some_and(|sig| {
        digest::hmac_verify(key, &[version.as_bytes(), b":", payload.as_bytes()], &sig)
    })
}

/// Splits `payload` into parts of at most `MAX_VALUE_CHARS - prefix` bytes, on character
/// boundaries.
fn split_parts(payload: &str, room: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let mut end = rest.len().min(room);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        parts.push(head);
        rest = tail;
    }
    if parts.is_empty() {
        parts.push("");
    }
    parts
}

/// Packs a payload (of version `version`: [`crate::payload::envelope`] makes one) into
/// the idle slot of `store` (the current entries, empty for a new store) and flips the
/// pointer to it. When the active slot already holds this version, nothing is written.
pub fn pack(
    payload: &str,
    version: &str,
    store: &BTreeMap<String, String>,
    key: Option<&[u8]>,
) -> Result<Packed, PackError> {
    let previous = match store.get(POINTER_KEY) {
        Some(p) => Some(
            serde_json::from_str::<Pointer>(p).map_err(|e| PackError::BadPointer(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(p) = &previous
        && let Some(info) = p.slot(p.active)
    {
        let same_sig = info.signature.is_some() == key.is_some();
        if info.version == version
            && same_sig
            && read_slot(store_get(store), p, p.active, key).0.is_ok()
        {
            return Ok(Packed {
                version: version.into(),
                ..Packed::default()
            });
        }
    }
    let slot = previous
        .as_ref()
        .map(|p| p.active.other())
        .unwrap_or(Slot::A);
    let prefix = version.len() + 1;
    let parts = split_parts(payload, MAX_VALUE_CHARS - prefix);
    let mut upserts: Vec<(String, String)> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| (slot.part_key(i as u32), format!("{version}:{part}")))
        .collect();
    let info = SlotInfo {
        format: FORMAT,
        version: version.into(),
        parts: parts.len() as u32,
        checksum: checksum(payload),
        signature: key.map(|k| sign(k, version, payload)),
    };
    let mut pointer = previous.clone().unwrap_or(Pointer {
        active: slot,
        a: None,
        b: None,
    });
    *pointer.slot_mut(slot) = Some(info);
    pointer.active = slot;
    let old_parts = previous
        .as_ref()
        .and_then(|p| p.slot(slot))
        .map(|i| i.parts)
        .unwrap_or(0);
    let deletes: Vec<String> = (parts.len() as u32..old_parts)
        .map(|n| slot.part_key(n))
        .collect();
    let pointer_text =
        serde_json::to_string(&pointer).map_err(|e| PackError::BadPointer(e.to_string()))?;
    upserts.push((POINTER_KEY.into(), pointer_text));
    let mut after = store.clone();
    Packed {
        upserts: upserts.clone(),
        deletes: deletes.clone(),
        slot: Some(slot),
        version: version.into(),
    }
    .apply(&mut after);
    if after.len() > MAX_ENTRIES {
        return Err(PackError::TooManyEntries {
            entries: after.len(),
        });
    }
    Ok(Packed {
        upserts,
        deletes,
        slot: Some(slot),
        version: version.into(),
    })
}

fn store_get(store: &BTreeMap<String, String>) -> impl FnMut(&str) -> Option<String> + '_ {
    move |k| store.get(k).cloned()
}

/// Why a slot could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotProblem {
    /// The pointer does not describe this slot.
    #[error("slot {0} is empty")]
    Empty(&'static str),
    /// The slot is in a format newer than this code.
    #[error("slot {slot} is in format {format}; this build reads up to {FORMAT}")]
    NewerFormat {
        /// The slot.
        slot: &'static str,
        /// Its format.
        format: u32,
    },
    /// A part is missing.
    #[error("slot {slot} part {part} is missing")]
    MissingPart {
        /// The slot.
        slot: &'static str,
        /// The part.
        part: u32,
    },
    /// A part belongs to another version: a write was under way (a torn read).
    #[error("slot {slot} is torn: part {part} is from version {found}, expected {expected}")]
    Torn {
        /// The slot.
        slot: &'static str,
        /// The part.
        part: u32,
        /// The version found in the part.
        found: String,
        /// The version the pointer names.
        expected: String,
    },
    /// The slot is in a format this build no longer reads.
    #[error("slot {slot} is in format {format}, which this build no longer reads (pack again)")]
    RetiredFormat {
        /// The slot.
        slot: &'static str,
        /// Its format.
        format: u32,
    },
    /// The checksum does not match.
    #[error("slot {0} fails its checksum")]
    Checksum(&'static str),
    /// The signature is missing or wrong.
    #[error("slot {0} has a missing or bad signature")]
    Signature(&'static str),
}

/// Reads one slot: the payload, or why it is unusable. Also returns the lookups made.
pub fn read_slot(
    mut get: impl FnMut(&str) -> Option<String>,
    pointer: &Pointer,
    slot: Slot,
    key: Option<&[u8]>,
) -> (Result<String, SlotProblem>, u32) {
    let name = slot.name();
    let Some(info) = pointer.slot(slot) else {
        return (Err(SlotProblem::Empty(name)), 0);
    };
    if info.format > FORMAT {
        return (
            Err(SlotProblem::NewerFormat {
                slot: name,
                format: info.format,
            }),
            0,
        );
    }
    if info.format == 2 {
        return (
            Err(SlotProblem::RetiredFormat {
                slot: name,
                format: info.format,
            }),
            0,
        );
    }
    let parts = info.parts.min(MAX_ENTRIES as u32);
    let mut payload = String::new();
    let mut lookups = 0;
    for part in 0..parts {
        lookups += 1;
        let Some(mut text) = get(&slot.part_key(part)) else {
            return (Err(SlotProblem::MissingPart { slot: name, part }), lookups);
        };
        let body = match text.split_once(':') {
            Some((v, _)) if v == info.version => v.len() + 1,
            other => {
                let problem = SlotProblem::Torn {
                    slot: name,
                    part,
                    found: other.map(|(v, _)| v.to_string()).unwrap_or_default(),
                    expected: info.version.clone(),
                };
                return (Err(problem), lookups);
            }
        };
        if parts == 1 {
            // The one part becomes the payload in place: no second copy to allocate and
            // touch (what a fresh instance pays for most).
            text.drain(..body);
            payload = text;
        } else {
            if payload.capacity() == 0 {
                payload.reserve(text.len() * parts as usize);
            }
            payload.push_str(text.get(body..).unwrap_or_default());
        }
    }
    if checksum(&payload) != info.checksum {
        return (Err(SlotProblem::Checksum(name)), lookups);
    }
    if let Some(k) = key {
        let ok = info
            .signature
            .as_deref()
            .is_some_and(|s| verify(k, &info.version, &payload, s));
        if !ok {
            return (Err(SlotProblem::Signature(name)), lookups);
        }
    }
    (Ok(payload), lookups)
}

/// A successfully read snapshot payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The payload text.
    pub payload: String,
    /// Its version.
    pub version: String,
    /// The slot it came from.
    pub slot: Slot,
    /// Why the active slot was not used, when the other one was served.
    pub fell_back: Option<SlotProblem>,
}

/// The result of reading the store: what was loaded (or every reason nothing was), and
/// the number of lookups made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The snapshot, or the reasons none could be used.
    pub result: Result<Loaded, Vec<String>>,
    /// Config-store lookups made.
    pub lookups: u32,
}

/// Reads the pointer, then the active slot, then (if that is unusable) the other slot.
pub fn read(mut get: impl FnMut(&str) -> Option<String>, key: Option<&[u8]>) -> ReadOutcome {
    let Some(text) = get(POINTER_KEY) else {
        return ReadOutcome {
            result: Err(vec![format!("no `{POINTER_KEY}` entry")]),
            lookups: 1,
        };
    };
    read_with_pointer(&text, get, key, 1)
}

/// Like [`read`], with the pointer already looked up (`lookups` made so far).
pub fn read_with_pointer(
    pointer_text: &str,
    mut get: impl FnMut(&str) -> Option<String>,
    key: Option<&[u8]>,
    mut lookups: u32,
) -> ReadOutcome {
    let pointer: Pointer = match serde_json::from_str(pointer_text) {
        Ok(p) => p,
        Err(e) => {
            return ReadOutcome {
                result: Err(vec![format!("the pointer is not readable: {e}")]),
                lookups,
            };
        }
    };
    let (first, n) = read_slot(&mut get, &pointer, pointer.active, key);
    lookups += n;
    let problem = match first {
        Ok(payload) => {
            let version = pointer
                .slot(pointer.active)
                .map(|i| i.version.clone())
                .unwrap_or_default();
            let loaded = Loaded {
                payload,
                version,
                slot: pointer.active,
                fell_back: None,
            };
            return ReadOutcome {
                result: Ok(loaded),
                lookups,
            };
        }
        Err(p) => p,
    };
    let other = pointer.active.other();
    let (second, n) = read_slot(&mut get, &pointer, other, key);
    lookups += n;
    match second {
        Ok(payload) => {
            let version = pointer
                .slot(other)
                .map(|i| i.version.clone())
                .unwrap_or_default();
            let loaded = Loaded {
                payload,
                version,
                slot: other,
                fell_back: Some(problem),
            };
            ReadOutcome {
                result: Ok(loaded),
                lookups,
            }
        }
        Err(p2) => ReadOutcome {
            result: Err(vec![problem.to_string(), p2.to_string()]),
            lookups,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of a flag file, as `edgeflags pack` makes it.
    fn payload_of(json: &str, version: &str) -> String {
        let snapshot =
            crate::compile::compile_packed(json, version).unwrap_or_else(|e| panic!("{e}"));
        crate::payload::envelope(&snapshot, json)
    }

    fn store_after(
        json: &str,
        version: &str,
        store: &BTreeMap<String, String>,
        key: Option<&[u8]>,
    ) -> BTreeMap<String, String> {
        let mut s = store.clone();
        pack(&payload_of(json, version), version, store, key)
            .map(|p| p.apply(&mut s))
            .ok();
        s
    }

    /// A valid flag file of `n` flags whose descriptions carry `marker`.
    fn flags(n: usize, marker: &str) -> String {
        let flags: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| {
                (
                    format!("f{i}"),
                    serde_json::json!({
                        "type": "string",
                        "description": format!("{marker} {i}"),
                        "variants": {"on": format!("{marker} {i} {}", "é".repeat(60)), "off": "x"},
                        "off_variant": "off",
                        "default": "on"
                    }),
                )
            })
            .collect();
        serde_json::json!({ "flags": flags }).to_string()
    }

    fn source_of(l: &Loaded) -> String {
        crate::payload::source(&l.payload).unwrap_or_default()
    }

    #[test]
    fn round_trip_and_slot_alternation() {
        let big = flags(120, "first");
        let s1 = store_after(&big, "v1", &BTreeMap::new(), None);
        let r = read(|k| s1.get(k).cloned(), None);
        let loaded = r.result.clone().ok();
        assert_eq!(
            loaded.as_ref().map(|l| (source_of(l), l.slot)),
            Some((big.clone(), Slot::A))
        );
        assert!(s1.values().all(|v| v.chars().count() <= MAX_VALUE_CHARS));
        assert!(r.lookups > 2, "a multi-part slot: {}", r.lookups);
        let snapshot = loaded.and_then(|l| crate::payload::load(&l.payload, &l.version).ok());
        assert_eq!(snapshot.map(|s| s.len()), Some(120));
        let small = flags(1, "second");
        let s2 = store_after(&small, "v2", &s1, None);
        let r2 = read(|k| s2.get(k).cloned(), None).result.ok();
        assert_eq!(r2.map(|l| (source_of(&l), l.slot)), Some((small, Slot::B)));
    }

    #[test]
    fn torn_slot_falls_back_to_previous() {
        let old = flags(1, "old");
        let s1 = store_after(&old, "v1", &BTreeMap::new(), None);
        let mut s2 = store_after(&flags(120, "new"), "v2", &s1, None);
        s2.insert("edgeflags.b.1".into(), "v0:zzz".into());
        let r = read(|k| s2.get(k).cloned(), None).result.ok();
        let r = r.as_ref();
        assert_eq!(r.map(source_of), Some(old));
        assert!(matches!(
            r.and_then(|l| l.fell_back.clone()),
            Some(SlotProblem::Torn { .. })
        ));
    }

    #[test]
    fn signatures_are_checked() {
        let f = flags(2, "signed");
        let s = store_after(&f, "v1", &BTreeMap::new(), Some(b"k1"));
        assert!(read(|k| s.get(k).cloned(), Some(b"k1")).result.is_ok());
        assert!(read(|k| s.get(k).cloned(), Some(b"k2")).result.is_err());
        let unsigned = store_after(&f, "v1", &BTreeMap::new(), None);
        assert!(
            read(|k| unsigned.get(k).cloned(), Some(b"k1"))
                .result
                .is_err()
        );
    }

    #[test]
    fn packing_the_active_version_again_writes_nothing() {
        let f = flags(1, "same");
        let s = store_after(&f, "v1", &BTreeMap::new(), None);
        let again = pack(&payload_of(&f, "v1"), "v1", &s, None).ok();
        assert_eq!(again.map(|p| p.upserts.len()), Some(0));
    }

    #[test]
    fn a_slot_in_a_retired_format_falls_back_to_the_other() {
        let old = flags(1, "old");
        let s1 = store_after(&old, "v1", &BTreeMap::new(), None);
        let mut s2 = store_after(&flags(1, "new"), "v2", &s1, None);
        // The active slot as an older build wrote it: format 2.
        let mut pointer: Pointer =
            serde_json::from_str(s2.get(POINTER_KEY).map(String::as_str).unwrap_or(""))
                .unwrap_or_else(|e| panic!("{e}"));
        if let Some(b) = pointer.b.as_mut() {
            b.format = 2;
        }
        s2.insert(
            POINTER_KEY.into(),
            serde_json::to_string(&pointer).unwrap_or_default(),
        );
        let r = read(|k| s2.get(k).cloned(), None).result.ok();
        let r = r.as_ref();
        assert_eq!(r.map(source_of), Some(old));
        assert!(matches!(
            r.and_then(|l| l.fell_back.clone()),
            Some(SlotProblem::RetiredFormat { format: 2, .. })
        ));
    }
}
