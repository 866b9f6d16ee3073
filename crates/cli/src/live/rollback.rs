//! `edgeflags rollback`: back to the previous slot (dropping the version that was live),
//! or `--to` any version the history keeps, written into the idle slot with the pointer
//! flipped, so the version live until then stays in the other slot. Both are recorded.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::history::{self, Action, HistoryError, Record};
use edgeflags_engine::pack;

use super::changes::{changes_from_live, flag_file};
use super::publish::{About, publish, recorded_note};
use super::{StoreArgs, Target, Why};
use crate::keys::key_of;

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Put back this version instead of the previous slot's: a version from `edgeflags
    /// history` (or its first characters), or `#N` for record N.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    #[command(flatten)]
    why: Why,
}

/// Runs `rollback`.
pub fn rollback(a: RollbackArgs) -> Result<ExitCode> {
    let key = key_of(a.store.key_file.as_deref())?;
    let target = a.store.target()?;
    eprintln!("edgeflags: reading {}", target.label);
    let items = target.store.items()?;
    match &a.to {
        Some(to) => rollback_to(&target, &items, to, key.as_deref(), a.why),
        None => rollback_previous(&target, &items, key.as_deref(), a.why),
    }
}

fn rollback_previous(
    target: &Target,
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
    why: Why,
) -> Result<ExitCode> {
    let text = items
        .get(pack::POINTER_KEY)
        .context("the store has no snapshot: nothing to roll back")?;
    let pointer: pack::Pointer =
        serde_json::from_str(text).context("the store's pointer is unreadable")?;
    let current = pointer.active;
    let previous = current.other();
    let (ok, _) = pack::read_slot(|k| items.get(k).cloned(), &pointer, previous, key);
    let payload = match ok {
        Ok(p) => p,
        Err(why) => bail!(
            "cannot roll back: the previous slot is not usable ({why}); `edgeflags history` lists the versions `rollback --to` can put back"
        ),
    };
    let from = pointer
        .slot(current)
        .map(|i| i.version.clone())
        .unwrap_or_default();
    let to = pointer
        .slot(previous)
        .map(|i| i.version.clone())
        .unwrap_or_default();
    let parts = pointer.slot(current).map(|i| i.parts).unwrap_or(0);
    let mut flipped = pointer.clone();
    flipped.active = previous;
    match current {
        pack::Slot::A => flipped.a = None,
        pack::Slot::B => flipped.b = None,
    }
    let change = pack::Packed {
        upserts: vec![(
            pack::POINTER_KEY.to_string(),
            serde_json::to_string(&flipped)?,
        )],
        deletes: (0..parts).map(|n| current.part_key(n)).collect(),
        slot: Some(previous),
        version: to.clone(),
    };
    let about = About {
        action: Action::Rollback,
        message: why
            .message
            .unwrap_or_else(|| format!("rollback from {from} to the previous slot")),
        author: why.author,
        commit: None,
        changes: diff_to(items, key, &payload),
    };
    eprintln!(
        "edgeflags: flipping the pointer to slot {} and dropping slot {}",
        previous.name(),
        current.name()
    );
    let recorded = publish(target, items, change, about)?;
    println!(
        "rolled back from version {from} to {to} ({})",
        recorded_note(&recorded)
    );
    Ok(ExitCode::SUCCESS)
}

fn rollback_to(
    target: &Target,
    items: &BTreeMap<String, String>,
    to: &str,
    key: Option<&[u8]>,
    why: Why,
) -> Result<ExitCode> {
    let kept = history::read(items);
    let record = history::find(&kept, to).map_err(|e| explain(e, &kept.records))?;
    let change = history::restore(items, record, key).map_err(|e| match e {
        HistoryError::NotKept { .. } => anyhow::anyhow!(
            "{e}: the store keeps the payloads of its last {} records. Push that version's flag file again{}",
            target.keep,
            record
                .commit
                .as_deref()
                .map(|c| format!(" (from commit {c})"))
                .unwrap_or_default()
        ),
        other => other.into(),
    })?;
    let version = &record.version;
    if change.upserts.is_empty() {
        println!("version {version} is already live: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let from = super::changes::live(items, key)
        .ok()
        .flatten()
        .map(|(v, _)| v)
        .unwrap_or_else(|| "(none)".into());
    let payload = history::kept_payload(items, record)?;
    let slot = change.slot.map(|s| s.name()).unwrap_or("?");
    let about = About {
        action: Action::Rollback,
        message: why
            .message
            .unwrap_or_else(|| format!("rollback to {version} (record #{})", record.number)),
        author: why.author,
        commit: record.commit.clone(),
        changes: diff_to(items, key, &payload),
    };
    eprintln!(
        "edgeflags: writing record #{}'s payload to slot {slot}, then the pointer, in one bulk request",
        record.number
    );
    let recorded = publish(target, items, change, about)?;
    println!(
        "rolled back from version {from} to {version} (the payload of record #{}, sha256 {}) in slot {slot}; the edge serves it on the next request ({})",
        record.number,
        record.sha256,
        recorded_note(&recorded)
    );
    Ok(ExitCode::SUCCESS)
}

/// What putting `payload` back changes against the live flag file.
fn diff_to(items: &BTreeMap<String, String>, key: Option<&[u8]>, payload: &str) -> Vec<String> {
    match flag_file(payload).and_then(|new| changes_from_live(items, key, &new)) {
        Ok(lines) => lines,
        Err(e) => vec![format!("(no flag-level diff: {e:#})")],
    }
}

/// A lookup error with the versions the history does have.
fn explain(e: HistoryError, records: &[Record]) -> anyhow::Error {
    if !matches!(e, HistoryError::Unknown(_)) {
        return e.into();
    }
    let mut versions: Vec<&str> = Vec::new();
    for r in records.iter().rev() {
        if !versions.contains(&r.version.as_str()) {
            versions.push(&r.version);
        }
    }
    if versions.is_empty() {
        anyhow::anyhow!("{e}; the store has no history yet (pushes record it from now on)")
    } else {
        anyhow::anyhow!("{e}; it has: {}", versions.join(", "))
    }
}
