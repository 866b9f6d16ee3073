//! `edgeflags diff` and `push`: a flag file against the live store, flag by flag, and
//! written into its idle slot with the pointer flipped, recorded in its history.

use std::process::ExitCode;

use anyhow::Result;
use edgeflags_engine::history::{Action, without_history};
use edgeflags_engine::pack;

use super::changes::{flag_diff, live, print_diff};
use super::publish::{About, publish, recorded_note};
use super::{LiveArgs, PushArgs, provenance};
use crate::flagfile::compile_file;
use crate::keys::key_of;

/// Runs `diff`.
pub fn diff(a: LiveArgs) -> Result<ExitCode> {
    let file = compile_file(&a.file)?;
    let version = file.version;
    let key = key_of(a.store.key_file.as_deref())?;
    let target = a.store.target()?;
    eprintln!("edgeflags: reading {}", target.label);
    let items = target.store.items()?;
    let new: serde_json::Value = serde_json::from_str(&file.json)?;
    print_diff(&items, key.as_deref(), &new, &version)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `push`.
pub fn push(args: PushArgs) -> Result<ExitCode> {
    let PushArgs { live: a, why } = args;
    let file = compile_file(&a.file)?;
    let version = file.version;
    let key = key_of(a.store.key_file.as_deref())?;
    let target = a.store.target()?;
    eprintln!("edgeflags: reading {}", target.label);
    let items = target.store.items()?;
    let new: serde_json::Value = serde_json::from_str(&file.json)?;
    if !print_diff(&items, key.as_deref(), &new, &version)? {
        return Ok(ExitCode::SUCCESS);
    }
    // The history makes room for the snapshot: pack against the store without it.
    let packed = pack::pack(
        &file.payload,
        &version,
        &without_history(&items),
        key.as_deref(),
    )?;
    let slot = packed.slot.map(|s| s.name()).unwrap_or("?");
    let parts = packed.upserts.len().saturating_sub(1);
    if a.dry_run {
        println!(
            "dry run: would write slot {slot} ({parts} parts) and flip the pointer; nothing written"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let old = live(&items, key.as_deref())
        .ok()
        .flatten()
        .map(|(_, f)| f)
        .unwrap_or_else(|| serde_json::json!({}));
    let commit = provenance::commit(Some(&a.file));
    let message = why
        .message
        .or_else(|| provenance::subject(Some(&a.file), commit.as_deref()))
        .unwrap_or_default();
    eprintln!(
        "edgeflags: writing slot {slot} ({parts} parts), then the pointer, in one bulk request"
    );
    let about = About {
        action: Action::Push,
        message,
        author: why.author,
        commit,
        changes: flag_diff(&old, &new),
    };
    let recorded = publish(&target, &items, packed, about)?;
    println!(
        "pushed version {version} to slot {slot}; the edge serves it on the next request ({})",
        recorded_note(&recorded)
    );
    Ok(ExitCode::SUCCESS)
}
