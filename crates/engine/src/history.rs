//! The history of a config store: a record of every change of its live snapshot (the
//! version, when, who, which commit, why, and what changed flag by flag), and the payloads
//! of the last versions, kept in the same store so that any of them can be put back.
//!
//! Layout, beside the pointer and the two slots of [`crate::pack`]:
//! - `edgeflags.history.<n>`: record number `n` (1, 2, ...), one JSON [`Record`];
//! - `edgeflags.payload.<checksum>.<part>`: a kept payload, its parts exactly as a slot
//!   holds them (`<version>:<text>`), keyed by the payload's checksum, so a version pushed
//!   again is kept once.
//!
//! Every change of the live snapshot goes through [`record`], which adds the record and
//! the payload to the change's own entries (one bulk request writes all of them, the
//! pointer last) and drops what falls out of the last `keep` records or would overfill
//! the store. [`restore`] puts a kept version back, and [`install`] any payload whose
//! parts are known (a promotion): both write the idle slot and flip the pointer, so the
//! version that was live stays in the other slot. The edge never reads these entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::digest::{checksum, hex};
use crate::pack::{
    MAX_ENTRIES, MAX_VALUE_CHARS, POINTER_KEY, Packed, Pointer, Slot, SlotInfo, sign,
};

/// The key prefix of history records.
pub const RECORD_PREFIX: &str = "edgeflags.history.";
/// The key prefix of kept payloads.
pub const PAYLOAD_PREFIX: &str = "edgeflags.payload.";
/// How many records (and their payloads) a store keeps unless told otherwise.
pub const DEFAULT_KEEP: usize = 20;
/// The most characters a record's message keeps.
const MESSAGE_CHARS: usize = 500;
/// The most characters a record's author keeps.
const AUTHOR_CHARS: usize = 200;

/// What kind of change made a version live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A flag file pushed.
    Push,
    /// A version copied from another environment.
    Promote,
    /// A version put back (the previous slot, or a kept payload).
    Rollback,
    /// A kind this build does not know (written by a newer tool).
    #[serde(other)]
    Other,
}

impl Action {
    /// The name in records and listings.
    pub fn name(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Other => "other",
        }
    }
}

/// One change of the live snapshot: one `edgeflags.history.<n>` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The record's number: 1 for the first change recorded, then one more each time.
    pub number: u64,
    /// The version made live.
    pub version: String,
    /// The version live before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// When (RFC 3339, from the writer's clock).
    pub at: String,
    /// What kind of change.
    pub action: Action,
    /// Who made it.
    pub author: String,
    /// The git commit of the flag file, if known (`-dirty` when the file differed from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why.
    #[serde(default)]
    pub message: String,
    /// What changed, flag by flag (`~ flag banner: on`), against the version live before.
    #[serde(default)]
    pub changes: Vec<String>,
    /// SHA-256 (hex) of the payload: the content hash promotions compare.
    pub sha256: String,
    /// The payload as its slot described it (format, parts, checksum, signature).
    pub payload: SlotInfo,
}

/// What the writer knows of a change, for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What kind of change.
    pub action: Action,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub author: String,
    /// The git commit, if known.
    pub commit: Option<String>,
    /// Why.
    pub message: String,
    /// What changed, flag by flag.
    pub changes: Vec<String>,
}

/// What a store's history holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every readable record, oldest first.
    pub records: Vec<Record>,
    /// Entries under [`RECORD_PREFIX`] that are not records, with why.
    pub problems: Vec<String>,
}

impl History {
    /// The newest record of `version` (the one that describes its live slot).
    pub fn latest(&self, version: &str) -> Option<&Record> {
        self.records.iter().rev().find(|r| r.version == version)
    }
}

/// Why history could not be written or a version put back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The store has no pointer.
    #[error("the store has no snapshot yet")]
    NoSnapshot,
    /// The pointer cannot be read.
    #[error("the store's pointer entry is not readable: {0}")]
    BadPointer(String),
    /// A change whose active slot cannot be read back.
    #[error("the change leaves slot {slot} without part {part}")]
    Incomplete {
        /// The slot.
        slot: &'static str,
        /// The missing part.
        part: u32,
    },
    /// No record matches.
    #[error("no version `{0}` in the history (`edgeflags history` lists them)")]
    Unknown(String),
    /// A prefix that matches several versions.
    #[error("`{given}` matches versions {}: give more of the version", .versions.join(", "))]
    Ambiguous {
        /// What was asked for.
        given: String,
        /// The versions it matches.
        versions: Vec<String>,
    },
    /// The version's payload fell out of the history.
    #[error("the payload of version {version} (record #{number}) is no longer kept")]
    NotKept {
        /// The version.
        version: String,
        /// Its newest record.
        number: u64,
    },
    /// A kept payload that does not match its record.
    #[error("the kept payload of version {version} is damaged: {why}")]
    Damaged {
        /// The version.
        version: String,
        /// What is wrong.
        why: String,
    },
    /// The result would not fit a Fastly config store.
    #[error("the change needs {entries} config-store entries; a store holds at most {MAX_ENTRIES}")]
    TooManyEntries {
        /// Entries needed.
        entries: usize,
    },
}

/// The key of record `n`.
pub fn record_key(n: u64) -> String {
    format!("{RECORD_PREFIX}{n}")
}

/// The key of part `n` of the kept payload with checksum `sum`.
pub fn payload_key(sum: &str, n: u32) -> String {
    format!("{PAYLOAD_PREFIX}{sum}.{n}")
}

/// SHA-256 (hex) of a payload.
pub fn sha256(payload: &str) -> String {
    hex(&Sha256::digest(payload.as_bytes()))
}

/// The store without its history: what a change of the snapshot must fit beside (the
/// history makes room for it, see [`record`]). Pack against this, not the whole store.
pub fn without_history(store: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    store
        .iter()
        .filter(|(k, _)| !k.starts_with(RECORD_PREFIX) && !k.starts_with(PAYLOAD_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads every record of a store, oldest first.
pub fn read(store: &BTreeMap<String, String>) -> History {
    let mut history = History::default();
    for (key, value) in store.range(RECORD_PREFIX.to_string()..) {
        let Some(n) = key.strip_prefix(RECORD_PREFIX) else {
            break;
        };
        match (n.parse::<u64>(), serde_json::from_str::<Record>(value)) {
            (Ok(n), Ok(r)) if r.number == n => history.records.push(r),
            (_, Err(e)) => history.problems.push(format!("{key}: {e}")),
            _ => history
                .problems
                .push(format!("{key}: not record number {n}")),
        }
    }
    history.records.sort_by_key(|r| r.number);
    history
}

/// Whether every part of a record's payload is in the store.
pub fn kept(store: &BTreeMap<String, String>, r: &Record) -> bool {
    (0..r.payload.parts).all(|n| store.contains_key(&payload_key(&r.payload.checksum, n)))
}

/// The record a user means by `given`: `#N` is record number N; anything else is a
/// version or the start of one (at least 4 characters) and means that version's newest
/// record.
pub fn find<'h>(history: &'h History, given: &str) -> Result<&'h Record, HistoryError> {
    let unknown = || HistoryError::Unknown(given.to_string());
    if let Some(n) = given.strip_prefix('#') {
        let n: u64 = n.parse().map_err(|_| unknown())?;
        return history
            .records
            .iter()
            .find(|r| r.number == n)
            .ok_or_else(unknown);
    }
    if given.len() < 4 {
        return Err(unknown());
    }
    let versions: BTreeSet<&str> = history
        .records
        .iter()
        .map(|r| r.version.as_str())
        .filter(|v| v.starts_with(given))
        .collect();
    match versions.len() {
        0 => Err(unknown()),
        1 => versions
            .first()
            .and_then(|v| history.latest(v))
            .ok_or_else(unknown),
        _ => Err(HistoryError::Ambiguous {
            given: given.to_string(),
            versions: versions.into_iter().map(str::to_string).collect(),
        }),
    }
}

/// The pointer of a store, if it has one.
fn pointer_of(store: &BTreeMap<String, String>) -> Result<Option<Pointer>, HistoryError> {
    store
        .get(POINTER_KEY)
        .map(|p| serde_json::from_str(p).map_err(|e| HistoryError::BadPointer(e.to_string())))
        .transpose()
}

/// The payload of entries written as `<version>:<text>`, checked against `info`.
fn join_parts(parts: &[String], info: &SlotInfo) -> Result<String, String> {
    let mut payload = String::new();
    for (n, part) in parts.iter().enumerate() {
        match part.split_once(':') {
            Some((v, text)) if v == info.version => payload.push_str(text),
            _ => return Err(format!("part {n} is not of version {}", info.version)),
        }
    }
    if parts.len() != info.parts as usize {
        return Err(format!("{} parts, expected {}", parts.len(), info.parts));
    }
    if checksum(&payload) != info.checksum {
        return Err("the checksum does not match".into());
    }
    Ok(payload)
}

/// A change with its history, and what of it was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The entries to write and delete: the change's, then the history's, the pointer
    /// last.
    pub change: Packed,
    /// The number of the new record; `None` when the store had no room for one (or the
    /// change wrote nothing).
    pub number: Option<u64>,
    /// Whether the version's payload is kept (so `rollback --to` can reach it).
    pub payload_kept: bool,
}

/// Adds history to `change`, a change of `store`'s live snapshot (a push, a promotion,
/// a rollback: anything that flips the pointer): the record of the version it makes
/// live, that version's payload unless already kept, and the deletion of the records
/// beyond the newest `keep` and of the payloads no kept record names.
///
/// History never stops a change that fits the store: when the store would overflow,
/// older records go first, then the new payload (its record stays), then the record. A
/// change that writes nothing gets no record.
pub fn record(
    store: &BTreeMap<String, String>,
    change: Packed,
    about: Change,
    keep: usize,
) -> Result<Recorded, HistoryError> {
    if change.upserts.is_empty() && change.deletes.is_empty() {
        return Ok(Recorded {
            change,
            number: None,
            payload_kept: false,
        });
    }
    let mut after = store.clone();
    change.apply(&mut after);
    let pointer = pointer_of(&after)?.ok_or(HistoryError::NoSnapshot)?;
    let active = pointer.active;
    let info = pointer
        .slot(active)
        .cloned()
        .ok_or(HistoryError::Incomplete {
            slot: active.name(),
            part: 0,
        })?;
    let parts: Vec<String> = (0..info.parts)
        .map(|n| {
            after
                .get(&active.part_key(n))
                .cloned()
                .ok_or(HistoryError::Incomplete {
                    slot: active.name(),
                    part: n,
                })
        })
        .collect::<Result<_, _>>()?;
    let payload = join_parts(&parts, &info).map_err(|why| HistoryError::Damaged {
        version: info.version.clone(),
        why,
    })?;
    let previous = pointer_of(store)?
        .and_then(|p| p.slot(p.active).map(|i| i.version.clone()))
        .filter(|v| *v != info.version);
    let history = read(store);
    let number = history.records.last().map(|r| r.number).unwrap_or(0) + 1;
    let new = fitted(Record {
        number,
        version: info.version.clone(),
        previous,
        at: about.at,
        action: about.action,
        author: about.author.chars().take(AUTHOR_CHARS).collect(),
        commit: about.commit,
        message: about.message.chars().take(MESSAGE_CHARS).collect(),
        changes: about.changes,
        sha256: sha256(&payload),
        payload: info,
    });
    let text = serde_json::to_string(&new).unwrap_or_default();

    // The older records kept beside the new one: the newest `keep - 1`, fewer if the
    // store is short of room.
    let mut older: Vec<&Record> = history.records.iter().collect();
    older.drain(..older.len().saturating_sub(keep.max(1) - 1));
    let mut keep_payload = true;
    loop {
        let plan = plan(
            store,
            &change,
            &older,
            Some((&new, &text, keep_payload.then_some(parts.as_slice()))),
        );
        if fits(store, &plan) {
            return Ok(Recorded {
                change: plan,
                number: Some(number),
                payload_kept: keep_payload,
            });
        }
        if !older.is_empty() {
            older.remove(0);
        } else if keep_payload {
            keep_payload = false;
        } else {
            break;
        }
    }
    let bare = plan(store, &change, &[], None);
    if fits(store, &bare) {
        return Ok(Recorded {
            change: bare,
            number: None,
            payload_kept: false,
        });
    }
    let mut trial = store.clone();
    bare.apply(&mut trial);
    Err(HistoryError::TooManyEntries {
        entries: trial.len(),
    })
}

/// Whether `store` after `change` is within Fastly's limit on entries.
fn fits(store: &BTreeMap<String, String>, change: &Packed) -> bool {
    let mut trial = store.clone();
    change.apply(&mut trial);
    trial.len() <= MAX_ENTRIES
}

/// A record whose JSON fits one entry: changes beyond the room are left out and counted.
fn fitted(mut r: Record) -> Record {
    let size = |json: Result<String, serde_json::Error>| json.map(|t| t.len()).unwrap_or(0);
    if size(serde_json::to_string(&r)) <= MAX_VALUE_CHARS {
        return r;
    }
    let all = std::mem::take(&mut r.changes);
    // Room for the changes kept, less 40 for the line that counts the rest (JSON bytes,
    // never fewer than characters).
    let room = MAX_VALUE_CHARS.saturating_sub(size(serde_json::to_string(&r)) + 40);
    let mut used = 0;
    let kept = all
        .iter()
        .take_while(|c| {
            used += size(serde_json::to_string(c)) + 1;
            used <= room
        })
        .count();
    r.changes = all.get(..kept).unwrap_or_default().to_vec();
    r.changes.push(format!("... and {} more", all.len() - kept));
    r
}

/// The entries of a change with its history: the change's slot parts, then the new
/// record's payload (when its parts are given and not there yet) and the record, then
/// the pointer; deleted, the change's own deletions and every record and payload that
/// neither `older` nor the new record names.
fn plan(
    store: &BTreeMap<String, String>,
    change: &Packed,
    older: &[&Record],
    new: Option<(&Record, &str, Option<&[String]>)>,
) -> Packed {
    let (pointer, mut upserts): (Vec<_>, Vec<_>) = change
        .upserts
        .iter()
        .cloned()
        .partition(|(k, _)| k == POINTER_KEY);
    let mut records: BTreeSet<String> = older.iter().map(|r| record_key(r.number)).collect();
    let mut payloads: BTreeSet<String> = older
        .iter()
        .flat_map(|r| (0..r.payload.parts).map(|n| payload_key(&r.payload.checksum, n)))
        .collect();
    if let Some((r, text, parts)) = new {
        for (n, value) in parts.unwrap_or_default().iter().enumerate() {
            let key = payload_key(&r.payload.checksum, n as u32);
            if store.get(&key) != Some(value) {
                upserts.push((key.clone(), value.clone()));
            }
            payloads.insert(key);
        }
        records.insert(record_key(r.number));
        upserts.push((record_key(r.number), text.to_string()));
    }
    upserts.extend(pointer);
    let mut deletes = change.deletes.clone();
    deletes.extend(
        store
            .keys()
            .filter(|k| {
                (k.starts_with(RECORD_PREFIX) && !records.contains(*k))
                    || (k.starts_with(PAYLOAD_PREFIX) && !payloads.contains(*k))
            })
            .cloned(),
    );
    Packed {
        upserts,
        deletes,
        slot: change.slot,
        version: change.version.clone(),
    }
}

/// Puts a kept version back: its payload into the idle slot, then the pointer flipped to
/// it (so the version live until now stays in the other slot). Signed with `key` when
/// given, else with the signature it was recorded with. Nothing to write when the version
/// is already live.
pub fn restore(
    store: &BTreeMap<String, String>,
    r: &Record,
    key: Option<&[u8]>,
) -> Result<Packed, HistoryError> {
    install(store, &kept_parts(store, r)?, &r.payload, key)
}

/// The parts of a record's kept payload, as a slot holds them.
fn kept_parts(store: &BTreeMap<String, String>, r: &Record) -> Result<Vec<String>, HistoryError> {
    (0..r.payload.parts)
        .map(|n| store.get(&payload_key(&r.payload.checksum, n)).cloned())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| HistoryError::NotKept {
            version: r.version.clone(),
            number: r.number,
        })
}

/// A record's kept payload, checked against the record.
pub fn kept_payload(store: &BTreeMap<String, String>, r: &Record) -> Result<String, HistoryError> {
    join_parts(&kept_parts(store, r)?, &r.payload).map_err(|why| HistoryError::Damaged {
        version: r.version.clone(),
        why,
    })
}

/// Writes a payload whose parts (`<version>:<text>` entries, as a slot holds them) and
/// description are known into the idle slot of `store` and flips the pointer to it: a
/// restored or promoted version. The parts are checked against `info` first. Signed with
/// `key` when given, else with `info`'s signature. Nothing to write when the active slot
/// already holds this payload.
pub fn install(
    store: &BTreeMap<String, String>,
    parts: &[String],
    info: &SlotInfo,
    key: Option<&[u8]>,
) -> Result<Packed, HistoryError> {
    let payload = join_parts(parts, info).map_err(|why| HistoryError::Damaged {
        version: info.version.clone(),
        why,
    })?;
    let mut info = info.clone();
    if let Some(k) = key {
        info.signature = Some(sign(k, &info.version, &payload));
    }
    let current = pointer_of(store)?;
    if let Some(p) = &current
        && p.slot(p.active)
            .is_some_and(|a| a.checksum == info.checksum && a.signature == info.signature)
    {
        return Ok(Packed {
            version: info.version,
            ..Packed::default()
        });
    }
    let slot = current
        .as_ref()
        .map(|p| p.active.other())
        .unwrap_or(Slot::A);
    let old_parts = current
        .as_ref()
        .and_then(|p| p.slot(slot))
        .map(|i| i.parts)
        .unwrap_or(0);
    let mut pointer = current.unwrap_or(Pointer {
        active: slot,
        a: None,
        b: None,
    });
    pointer.active = slot;
    match slot {
        Slot::A => pointer.a = Some(info.clone()),
        Slot::B => pointer.b = Some(info.clone()),
    }
    let mut upserts: Vec<(String, String)> = parts
        .iter()
        .enumerate()
        .map(|(n, p)| (slot.part_key(n as u32), p.clone()))
        .collect();
    upserts.push((
        POINTER_KEY.to_string(),
        serde_json::to_string(&pointer).map_err(|e| HistoryError::BadPointer(e.to_string()))?,
    ));
    let packed = Packed {
        upserts,
        deletes: (info.parts..old_parts).map(|n| slot.part_key(n)).collect(),
        slot: Some(slot),
        version: info.version.clone(),
    };
    let mut after = without_history(store);
    packed.apply(&mut after);
    if after.len() > MAX_ENTRIES {
        return Err(HistoryError::TooManyEntries {
            entries: after.len(),
        });
    }
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{self, read_slot};

    /// A valid flag file whose flags' descriptions carry `marker` and `size` letters that
    /// do not compress (so a large one takes several parts), at most 5000 per flag.
    fn flags(marker: &str, size: usize) -> String {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ marker.len() as u64;
        let mut noise = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    char::from(b'a' + ((seed >> 33) % 26) as u8)
                })
                .collect()
        };
        let flags: serde_json::Map<String, serde_json::Value> = (0..size.div_ceil(5000).max(1))
            .map(|i| {
                let text = noise(size.saturating_sub(i * 5000).min(5000));
                let flag = serde_json::json!({
                    "type": "string",
                    "description": format!("{marker} {text}"),
                    "variants": {"on": marker, "off": "off"},
                    "off_variant": "off",
                    "default": "on"
                });
                (format!("f{i}"), flag)
            })
            .collect();
        serde_json::json!({ "flags": flags }).to_string()
    }

    fn version(json: &str) -> String {
        crate::compile_str(json)
            .map(|s| s.fingerprint().to_string())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The packed payload of a flag file, as `edgeflags push` makes it.
    fn payload(json: &str) -> String {
        crate::payload::of_file(json)
            .map(|(p, _)| p)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn about(n: usize) -> Change {
        Change {
            action: Action::Push,
            at: format!("2026-11-29T10:00:{n:02}Z"),
            author: format!("author {n}"),
            commit: Some(format!("commit{n}")),
            message: format!("push {n}"),
            changes: vec![format!("~ flag f: description ({n})")],
        }
    }

    /// Pushes `json` onto `store` with history, as the CLI does.
    fn push(store: &mut BTreeMap<String, String>, json: &str, n: usize, keep: usize) -> Packed {
        let packed = pack::pack(
            &payload(json),
            &version(json),
            &without_history(store),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let with = record(store, packed, about(n), keep).unwrap_or_else(|e| panic!("{e}"));
        with.change.apply(store);
        with.change
    }

    fn active_payload(store: &BTreeMap<String, String>) -> (String, String) {
        let loaded = pack::read(|k| store.get(k).cloned(), None)
            .result
            .unwrap_or_else(|e| panic!("{e:?}"));
        (loaded.version, loaded.payload)
    }

    #[test]
    fn every_push_is_recorded_with_its_payload_and_the_pointer_last() {
        let mut store = BTreeMap::new();
        let mut payloads = Vec::new();
        for n in 1..=3 {
            let written = push(&mut store, &flags(&format!("v{n}"), 10), n, 5);
            assert_eq!(
                written.upserts.last().map(|(k, _)| k.as_str()),
                Some(POINTER_KEY)
            );
            payloads.push(active_payload(&store));
        }
        let h = read(&store);
        assert!(h.problems.is_empty(), "{:?}", h.problems);
        let seen: Vec<(u64, &str, &str, Option<&str>)> = h
            .records
            .iter()
            .map(|r| {
                (
                    r.number,
                    r.version.as_str(),
                    r.author.as_str(),
                    r.commit.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, payloads[0].0.as_str(), "author 1", Some("commit1")),
                (2, payloads[1].0.as_str(), "author 2", Some("commit2")),
                (3, payloads[2].0.as_str(), "author 3", Some("commit3")),
            ]
        );
        assert_eq!(h.records[0].previous, None);
        assert_eq!(
            h.records[2].previous.as_deref(),
            Some(payloads[1].0.as_str())
        );
        assert_eq!(h.records[1].sha256, sha256(&payloads[1].1));
        assert!(h.records.iter().all(|r| kept(&store, r)));
    }

    #[test]
    fn restoring_any_kept_version_makes_its_payload_live_byte_for_byte() {
        let mut store = BTreeMap::new();
        let mut payloads = Vec::new();
        // Big enough for several parts per payload.
        for n in 1..=4 {
            push(&mut store, &flags(&format!("v{n}"), 20_000), n, 10);
            payloads.push(active_payload(&store));
        }
        assert!(read(&store).records.iter().all(|r| r.payload.parts > 1));
        for (version, payload) in [&payloads[0], &payloads[2], &payloads[1]] {
            let h = read(&store);
            let r = find(&h, &version[..6]).unwrap_or_else(|e| panic!("{e}"));
            let before = pack::read(|k| store.get(k).cloned(), None).result.ok();
            let change = restore(&store, r, None).unwrap_or_else(|e| panic!("{e}"));
            let about = Change {
                action: Action::Rollback,
                ..about(9)
            };
            record(&store, change, about, 10)
                .unwrap_or_else(|e| panic!("{e}"))
                .change
                .apply(&mut store);
            assert_eq!(&active_payload(&store), &(version.clone(), payload.clone()));
            // Two-slot safety: the version live before is in the other slot, intact.
            let pointer: Pointer =
                serde_json::from_str(&store[POINTER_KEY]).unwrap_or_else(|e| panic!("{e}"));
            let (other, _) = read_slot(
                |k| store.get(k).cloned(),
                &pointer,
                pointer.active.other(),
                None,
            );
            assert_eq!(other.ok(), before.map(|b| b.payload));
        }
        let h = read(&store);
        assert_eq!(h.records.len(), 7);
        assert_eq!(h.records.last().map(|r| r.action), Some(Action::Rollback));
        // Restoring the live version writes nothing.
        let live = h
            .records
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("no record"));
        assert_eq!(restore(&store, &live, None).map(|p| p.upserts.len()), Ok(0));
    }

    #[test]
    fn only_the_newest_records_and_the_payloads_they_name_are_kept() {
        let mut store = BTreeMap::new();
        for n in 1..=5 {
            push(&mut store, &flags(&format!("v{n}"), 10), n, 3);
        }
        let h = read(&store);
        assert_eq!(
            h.records.iter().map(|r| r.number).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        let payload_entries = store
            .keys()
            .filter(|k| k.starts_with(PAYLOAD_PREFIX))
            .count();
        assert_eq!(payload_entries, 3);
        // Pushing a kept version again keeps its payload once.
        push(&mut store, &flags("v4", 10), 6, 3);
        let h = read(&store);
        assert_eq!(
            h.records.iter().map(|r| r.number).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert_eq!(
            store
                .keys()
                .filter(|k| k.starts_with(PAYLOAD_PREFIX))
                .count(),
            2
        );
        assert!(matches!(find(&h, "#3"), Err(HistoryError::Unknown(_))));
    }

    #[test]
    fn a_full_store_drops_older_records_then_the_new_payload() {
        let mut store: BTreeMap<String, String> = (0..480)
            .map(|i| (format!("other.{i}"), "x".to_string()))
            .collect();
        for n in 1..=6 {
            push(&mut store, &flags(&format!("v{n}"), 20_000), n, 20);
            assert!(store.len() <= MAX_ENTRIES, "{}", store.len());
        }
        let h = read(&store);
        // 480 entries, two slots of 3 parts and the pointer leave room for 3 records of
        // 4 entries (record and payload).
        assert_eq!(h.records.iter().map(|r| r.payload.parts).max(), Some(3));
        assert_eq!(
            h.records.iter().map(|r| r.number).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert!(h.records.last().is_some_and(|r| kept(&store, r)));

        // Two entries of room: the record, not the payload (3 parts).
        for i in 480..491 {
            store.insert(format!("other.{i}"), "x".into());
        }
        let json = flags("v7", 20_000);
        let packed = pack::pack(
            &payload(&json),
            &version(&json),
            &without_history(&store),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let done = record(&store, packed.clone(), about(7), 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((done.number, done.payload_kept), (Some(7), false));
        // No room even for the record: the push goes through unrecorded, and the history
        // left makes room.
        store.insert("other.491".into(), "x".into());
        store.insert("other.492".into(), "x".into());
        let bare = record(&store, packed, about(7), 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((bare.number, bare.payload_kept), (None, false));
        bare.change.apply(&mut store);
        assert!(store.len() <= MAX_ENTRIES);
        assert_eq!(active_payload(&store).0, version(&json));
    }

    #[test]
    fn a_version_put_back_is_signed_with_the_key_given_else_as_recorded() {
        let mut store = BTreeMap::new();
        for n in 1..=2 {
            let json = flags(&format!("v{n}"), 10);
            let packed = pack::pack(
                &payload(&json),
                &version(&json),
                &without_history(&store),
                Some(b"old"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            record(&store, packed, about(n), 5)
                .unwrap_or_else(|e| panic!("{e}"))
                .change
                .apply(&mut store);
        }
        let first = read(&store).records[0].clone();
        let verified = |s: &BTreeMap<String, String>, key: &[u8]| {
            pack::read(|k| s.get(k).cloned(), Some(key))
                .result
                .is_ok_and(|l| l.version == first.version && l.fell_back.is_none())
        };
        let mut as_recorded = store.clone();
        restore(&store, &first, None)
            .unwrap_or_else(|e| panic!("{e}"))
            .apply(&mut as_recorded);
        assert!(verified(&as_recorded, b"old"));
        let mut new_key = store.clone();
        restore(&store, &first, Some(b"new"))
            .unwrap_or_else(|e| panic!("{e}"))
            .apply(&mut new_key);
        assert!(verified(&new_key, b"new") && !verified(&new_key, b"old"));
    }

    #[test]
    fn versions_are_found_by_number_or_unique_start() {
        let mut store = BTreeMap::new();
        for n in 1..=2 {
            push(&mut store, &flags(&format!("v{n}"), 10), n, 5);
        }
        let h = read(&store);
        assert_eq!(find(&h, "#2").map(|r| r.number), Ok(2));
        let v1 = h.records[0].version.clone();
        assert_eq!(find(&h, &v1).map(|r| r.number), Ok(1));
        assert!(matches!(find(&h, "abc"), Err(HistoryError::Unknown(_))));
        assert!(matches!(find(&h, "#x"), Err(HistoryError::Unknown(_))));
        let two = History {
            records: vec![
                Record {
                    version: "abcd1".into(),
                    ..h.records[0].clone()
                },
                Record {
                    version: "abcd2".into(),
                    ..h.records[1].clone()
                },
            ],
            problems: vec![],
        };
        assert!(matches!(
            find(&two, "abcd"),
            Err(HistoryError::Ambiguous { .. })
        ));
    }

    #[test]
    fn a_damaged_kept_payload_is_refused_and_long_records_still_fit() {
        let mut store = BTreeMap::new();
        push(&mut store, &flags("v1", 10), 1, 5);
        let big = Change {
            changes: (0..2000)
                .map(|i| format!("~ flag flag-{i}: rules"))
                .collect(),
            ..about(2)
        };
        let json = flags("v2", 10);
        let packed = pack::pack(&payload(&json), &version(&json), &store, None)
            .unwrap_or_else(|e| panic!("{e}"));
        record(&store, packed, big, 5)
            .unwrap_or_else(|e| panic!("{e}"))
            .change
            .apply(&mut store);
        let h = read(&store);
        let last = h
            .records
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("no record"));
        assert!(store[&record_key(2)].len() <= MAX_VALUE_CHARS);
        // As many changes as fit (about 7,900 characters of them), then the count of the
        // rest.
        let shown = last.changes.len() - 1;
        assert!(shown > 300, "{shown}");
        assert_eq!(
            last.changes.last().map(String::as_str),
            Some(format!("... and {} more", 2000 - shown).as_str())
        );
        let first = h.records[0].clone();
        store.insert(
            payload_key(&first.payload.checksum, 0),
            format!("{}:tampered", first.version),
        );
        assert!(matches!(
            restore(&store, &first, None),
            Err(HistoryError::Damaged { .. })
        ));
        assert!(h.problems.is_empty());
        store.insert(record_key(9), "{".into());
        assert_eq!(read(&store).problems.len(), 1);
    }
}
