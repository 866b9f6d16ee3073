//! `edgeflags history`: the changes of a store's live snapshot, newest first: version,
//! when, what kind, who, which commit, why, what changed flag by flag, and whether the
//! payload is still kept for `rollback --to`.

use std::process::ExitCode;

use anyhow::Result;
use edgeflags_engine::history::{self, Record};
use edgeflags_engine::pack;

use super::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print the records as JSON (newest first, each with `live` and `kept`).
    #[arg(long)]
    json: bool,
}

/// One record as listed: the record, and what the store says of it now.
#[derive(serde::Serialize)]
struct Listed<'r> {
    #[serde(flatten)]
    record: &'r Record,
    /// The record of the version the store serves now.
    live: bool,
    /// Whether its payload is still in the store, for `rollback --to`.
    kept: bool,
}

/// Runs `history`.
pub fn history(a: HistoryArgs) -> Result<ExitCode> {
    let target = a.store.target()?;
    eprintln!("edgeflags: reading {}", target.label);
    let items = target.store.items()?;
    let kept = history::read(&items);
    for p in &kept.problems {
        eprintln!("edgeflags: skipping an unreadable record: {p}");
    }
    let live = items
        .get(pack::POINTER_KEY)
        .and_then(|p| serde_json::from_str::<pack::Pointer>(p).ok())
        .and_then(|p| p.slot(p.active).map(|i| i.checksum.clone()));
    // The newest record of the live payload is the live one.
    let live_number = kept
        .records
        .iter()
        .rev()
        .find(|r| Some(&r.payload.checksum) == live.as_ref())
        .map(|r| r.number);
    let listed: Vec<Listed> = kept
        .records
        .iter()
        .rev()
        .map(|r| Listed {
            record: r,
            live: Some(r.number) == live_number,
            kept: history::kept(&items, r),
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listed.is_empty() {
        println!(
            "{}: no history yet (every push, promotion and rollback records one from now on)",
            target.label
        );
        return Ok(ExitCode::SUCCESS);
    }
    let with_payload = listed.iter().filter(|l| l.kept).count();
    println!(
        "{}: {} records, newest first; {with_payload} payloads kept for `rollback --to` (the last {} records are kept)",
        target.label,
        listed.len(),
        target.keep
    );
    println!(
        "  {:>4}  {:<16}  {:<20}  {:<8}  {:<28}  {:<12}  payload",
        "#", "version", "at", "action", "author", "commit"
    );
    for l in &listed {
        let r = l.record;
        println!(
            "{} {:>4}  {:<16}  {:<20}  {:<8}  {:<28}  {:<12}  {}",
            if l.live { "*" } else { " " },
            format!("#{}", r.number),
            r.version,
            r.at,
            r.action.name(),
            cut(&r.author, 28),
            r.commit.as_deref().map(short_commit).unwrap_or("-".into()),
            if l.kept { "kept" } else { "dropped" },
        );
        if !r.message.is_empty() {
            println!("         {}", r.message);
        }
        for c in &r.changes {
            println!("           {c}");
        }
    }
    if live_number.is_some() {
        println!("(* is live)");
    }
    Ok(ExitCode::SUCCESS)
}

/// At most `n` characters of `s`, an ellipsis marking a cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The first 12 digits of a commit, keeping a `-dirty` mark.
fn short_commit(c: &str) -> String {
    let (sha, dirty) = match c.strip_suffix("-dirty") {
        Some(s) => (s, "-dirty"),
        None => (c, ""),
    };
    format!("{}{dirty}", sha.chars().take(12).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_authors_are_cut_and_commits_shortened_keeping_dirty() {
        assert_eq!(cut("Ada", 28), "Ada");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(short_commit("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_commit("0123456789abcdef-dirty"), "0123456789ab-dirty");
    }
}
