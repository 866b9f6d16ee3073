//! The one way the live snapshot changes: a planned change (a push's packed slot, a
//! promotion, a rollback, or another tool's, such as a guard turning a flag off) gets its
//! history record, the store's pointer is read again just before the write, and the
//! change goes in one bulk request only if the pointer is still what the plan was made
//! from. So every change is recorded, and none overwrites one it did not see.

use std::collections::BTreeMap;

use anyhow::Result;
use edgeflags_engine::history::{self, Action, Change, Recorded};
use edgeflags_engine::pack::{self, POINTER_KEY, Packed};

use super::Target;
use super::provenance;

/// What a change is, for its record: the rest (who, when, which commit) is found here.
pub struct About {
    /// What kind of change.
    pub action: Action,
    /// Why (`--message`).
    pub message: String,
    /// Who (`--author`), if given.
    pub author: Option<String>,
    /// The commit of the flag file, if known.
    pub commit: Option<String>,
    /// What changes, flag by flag.
    pub changes: Vec<String>,
}

/// Records `change` (planned from `items`, the store as read) in the history and writes
/// both, pointer last, in one request, after checking that the store's pointer has not
/// moved since `items` was read. Returns what was written and recorded.
pub fn publish(
    target: &Target,
    items: &BTreeMap<String, String>,
    change: Packed,
    about: About,
) -> Result<Recorded> {
    let recorded = history::record(
        items,
        change,
        Change {
            action: about.action,
            at: provenance::now(),
            author: provenance::author(about.author.as_deref()),
            commit: about.commit,
            message: about.message,
            changes: about.changes,
        },
        target.keep,
    )?;
    let planned_from = items.get(POINTER_KEY);
    let now = target.store.get(POINTER_KEY)?;
    if now.as_ref() != planned_from {
        return Err(Moved {
            label: target.label.clone(),
            was: live_version(planned_from),
            now: live_version(now.as_ref()),
        }
        .into());
    }
    let c = &recorded.change;
    target.store.apply(&c.upserts, &c.deletes)?;
    Ok(recorded)
}

/// The store's pointer moved between the read a change was planned from and the write:
/// another change landed meanwhile, and this one was not written.
#[derive(Debug)]
pub struct Moved {
    /// The store.
    pub label: String,
    /// What it served when read.
    pub was: String,
    /// What it serves now.
    pub now: String,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} changed while this command ran: it served {} when read, and now serves {}. \
             Nothing was written; run the command again to see what it would change now",
            self.label, self.was, self.now
        )
    }
}

impl std::error::Error for Moved {}

/// The version a pointer names as live, for messages.
fn live_version(pointer: Option<&String>) -> String {
    let Some(text) = pointer else {
        return "no snapshot".into();
    };
    match serde_json::from_str::<pack::Pointer>(text) {
        Ok(p) => match p.slot(p.active) {
            Some(info) => format!("version {} (slot {})", info.version, p.active.name()),
            None => format!("an empty slot {}", p.active.name()),
        },
        Err(_) => "an unreadable pointer".into(),
    }
}

/// What the history kept of a change, for the command's last line.
pub fn recorded_note(r: &Recorded) -> String {
    match (r.number, r.payload_kept) {
        (Some(n), true) => format!("recorded as #{n}"),
        (Some(n), false) => format!(
            "recorded as #{n}, without its payload (no room left in the store: `rollback --to` cannot reach it)"
        ),
        (None, _) => "not recorded: the store has no room left for history".into(),
    }
}
