//! `edgeflags promote FROM TO`: make live in environment TO exactly the payload FROM
//! serves (byte for byte, compared by SHA-256), shown flag by flag first; written into
//! TO's idle slot with the pointer flipped, only if TO's pointer has not moved since the
//! diff, and checked by reading TO back.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::history::{self, Action};
use edgeflags_engine::pack;

use super::changes::{flag_diff, flag_file, live};
use super::publish::{About, Moved, publish, recorded_note};
use super::{Place, Why};
use crate::keys::key_of;

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The environment whose live version is promoted (for example `staging`).
    from: String,
    /// The environment that gets it (for example `production`).
    to: String,
    /// Promote only if FROM serves this version (the one tested there); else refuse.
    #[arg(long, value_name = "VERSION")]
    version: Option<String>,
    #[command(flatten)]
    place: Place,
    /// Verify FROM's snapshot with the key in this file.
    #[arg(long)]
    from_key_file: Option<std::path::PathBuf>,
    /// Sign the promoted snapshot with the key in this file (TO's `snapshot_key`); else
    /// it keeps FROM's signature.
    #[arg(long)]
    key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    why: Why,
    /// Show what would change, write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `promote`.
pub fn promote(a: PromoteArgs) -> Result<ExitCode> {
    if a.from == a.to {
        bail!("promote from `{}` to itself: name two environments", a.from);
    }
    let from_key = key_of(a.from_key_file.as_deref())?;
    let key = key_of(a.key_file.as_deref())?;
    let source = a.place.environment(&a.from)?;
    let target = a.place.environment(&a.to)?;
    eprintln!("edgeflags: reading {}", source.label);
    let from_items = source.store.items()?;
    let pointer: pack::Pointer = serde_json::from_str(
        from_items
            .get(pack::POINTER_KEY)
            .with_context(|| format!("{} has no snapshot: nothing to promote", a.from))?,
    )
    .with_context(|| format!("{}'s pointer is unreadable", a.from))?;
    let active = pointer.active;
    let (read, _) = pack::read_slot(
        |k| from_items.get(k).cloned(),
        &pointer,
        active,
        from_key.as_deref(),
    );
    let payload = read.map_err(|why| {
        anyhow::anyhow!(
            "{}'s live slot is not usable ({why}): only a version {} serves from its live slot can be promoted",
            a.from,
            a.from
        )
    })?;
    let info = pointer
        .slot(active)
        .cloned()
        .context("the live slot is not described")?;
    if let Some(v) = &a.version
        && *v != info.version
    {
        bail!(
            "{} serves version {}, not {v}: push {v} to {} and check it there first (nothing was written)",
            a.from,
            info.version,
            a.from
        );
    }
    let parts: Vec<String> = (0..info.parts)
        .filter_map(|n| from_items.get(&active.part_key(n)).cloned())
        .collect();
    let sha = history::sha256(&payload);
    let commit = history::read(&from_items)
        .latest(&info.version)
        .and_then(|r| r.commit.clone());

    eprintln!("edgeflags: reading {}", target.label);
    let to_items = target.store.items()?;
    println!(
        "promote {} -> {}: version {} (payload sha256 {sha}, {} bytes)",
        a.from,
        a.to,
        info.version,
        payload.len()
    );
    let new = flag_file(&payload)?;
    let old = live(&to_items, key.as_deref())?;
    let changes = match &old {
        None => {
            println!("  {} has no snapshot yet", a.to);
            flag_diff(&serde_json::json!({}), &new)
        }
        Some((v, old)) => {
            println!("  live in {}: {v}", a.to);
            flag_diff(old, &new)
        }
    };
    for c in &changes {
        println!("  {c}");
    }
    let change = history::install(&to_items, &parts, &info, key.as_deref())?;
    if change.upserts.is_empty() {
        println!("{} already serves this payload: nothing to do", a.to);
        return Ok(ExitCode::SUCCESS);
    }
    let slot = change.slot.map(|s| s.name()).unwrap_or("?");
    if a.dry_run {
        println!(
            "dry run: would write slot {slot} of {} and flip its pointer; nothing written",
            a.to
        );
        return Ok(ExitCode::SUCCESS);
    }
    let about = About {
        action: Action::Promote,
        message: a
            .why
            .message
            .unwrap_or_else(|| format!("promote from {}", a.from)),
        author: a.why.author,
        commit,
        changes,
    };
    eprintln!(
        "edgeflags: writing slot {slot} of {}, then its pointer, if it has not moved since the diff",
        a.to
    );
    let recorded = publish(&target, &to_items, change, about).map_err(|e| {
        match e.downcast_ref::<Moved>() {
            Some(m) => anyhow::anyhow!(
                "not promoted: {} moved since the diff above (it served {}, and now serves {}). Nothing was written; run promote again to see the new diff",
                a.to,
                m.was,
                m.now
            ),
            None => e,
        }
    })?;
    // Read back: the target must now serve FROM's payload, byte for byte.
    let after = target.store.items()?;
    let served = pack::read(|k| after.get(k).cloned(), key.as_deref()).result;
    match served {
        Ok(l) if l.payload == payload => println!(
            "promoted version {} to {}: its live slot {slot} holds {}'s payload byte for byte (sha256 {sha}; {})",
            info.version,
            a.to,
            a.from,
            recorded_note(&recorded)
        ),
        Ok(l) => bail!(
            "{} was written but serves version {} (sha256 {}), not {}'s payload: check it with `edgeflags history --env {}`",
            a.to,
            l.version,
            history::sha256(&l.payload),
            a.from,
            a.to
        ),
        Err(why) => bail!(
            "{} was written but its snapshot reads back unusable ({}): check it with `edgeflags history --env {}`",
            a.to,
            why.join("; "),
            a.to
        ),
    }
    Ok(ExitCode::SUCCESS)
}
