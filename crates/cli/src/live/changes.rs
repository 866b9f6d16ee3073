//! What a change of the live store changes, flag by flag: the flag file a store's live
//! snapshot was packed from, and the flag-level diff between two flag files (shown before
//! a push or promotion, and kept in each history record).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use edgeflags_engine::pack;

/// The flag file a snapshot payload was packed from.
pub fn flag_file(payload: &str) -> Result<serde_json::Value> {
    let source = edgeflags_engine::payload::source(payload)
        .context("the snapshot's flag file is unreadable")?;
    serde_json::from_str(&source).context("the snapshot's flag file is not JSON")
}

/// The version and flag file the store serves (its active slot, or the other one when
/// the active one is unusable), if it has a snapshot.
pub fn live(
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
) -> Result<Option<(String, serde_json::Value)>> {
    if !items.contains_key(pack::POINTER_KEY) {
        return Ok(None);
    }
    let outcome = pack::read(|k| items.get(k).cloned(), key);
    let loaded = outcome.result.map_err(|why| {
        anyhow::anyhow!(
            "the live store's snapshot is unreadable: {}",
            why.join("; ")
        )
    })?;
    Ok(Some((loaded.version, flag_file(&loaded.payload)?)))
}

/// Prints what making `new` (version `version`) live would change in `items`; false
/// when that version is live already.
pub fn print_diff(
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
    new: &serde_json::Value,
    version: &str,
) -> Result<bool> {
    match live(items, key)? {
        None => {
            println!(
                "the store has no snapshot yet; pushing writes version {version} with {} flags",
                new["flags"].as_object().map(|o| o.len()).unwrap_or(0)
            );
            Ok(true)
        }
        Some((live_version, _)) if live_version == version => {
            println!("version {version} is already live: no changes");
            Ok(false)
        }
        Some((live_version, old)) => {
            println!("live {live_version} -> file {version}");
            let lines = flag_diff(&old, new);
            if lines.is_empty() {
                println!("  (formatting only)");
            }
            for l in lines {
                println!("  {l}");
            }
            Ok(true)
        }
    }
}

/// What the store's live flag file and `new` differ in, flag by flag (everything is
/// new when nothing is live).
pub fn changes_from_live(
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
    new: &serde_json::Value,
) -> Result<Vec<String>> {
    let old = live(items, key)?
        .map(|(_, f)| f)
        .unwrap_or_else(|| serde_json::json!({}));
    Ok(flag_diff(&old, new))
}

/// Flag-level differences between two flag files.
pub fn flag_diff(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let mut lines = Vec::new();
    let (of, nf) = (
        old["flags"].as_object().unwrap_or(&empty),
        new["flags"].as_object().unwrap_or(&empty),
    );
    for (k, v) in nf {
        match of.get(k) {
            None => lines.push(format!("+ flag {k}")),
            Some(o) if o != v => {
                let (oo, no) = (
                    o.as_object().unwrap_or(&empty),
                    v.as_object().unwrap_or(&empty),
                );
                let mut fields: Vec<&str> = no
                    .keys()
                    .chain(oo.keys())
                    .map(String::as_str)
                    .filter(|f| oo.get(*f) != no.get(*f))
                    .collect();
                fields.sort();
                fields.dedup();
                lines.push(format!("~ flag {k}: {}", fields.join(", ")));
            }
            Some(_) => {}
        }
    }
    for k in of.keys().filter(|k| !nf.contains_key(*k)) {
        lines.push(format!("- flag {k}"));
    }
    for section in [
        "segments", "routes", "context", "ofrep", "layers", "holdouts",
    ] {
        if old.get(section) != new.get(section) {
            lines.push(format!("~ {section}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_diff_names_flags_added_removed_and_the_fields_changed() {
        let old = json!({
            "flags": {
                "banner": {"on": true, "default": "a", "variants": {"a": 1}},
                "gone": {"default": "x"},
                "same": {"default": "x"}
            },
            "segments": {"beta": {}},
            "routes": []
        });
        let new = json!({
            "flags": {
                "banner": {"on": false, "default": "a", "variants": {"a": 2}, "salt": "s"},
                "new": {"default": "y"},
                "same": {"default": "x"}
            },
            "segments": {"beta": {}},
            "routes": [{"id": "jp"}],
            "ofrep": {"auth": "required"}
        });
        assert_eq!(
            flag_diff(&old, &new),
            [
                "~ flag banner: on, salt, variants",
                "+ flag new",
                "- flag gone",
                "~ routes",
                "~ ofrep"
            ]
        );
        assert!(flag_diff(&new, &new).is_empty());
        // A file without flags reads as one with none.
        assert_eq!(
            flag_diff(&json!({}), &json!({"flags": {"a": {}}})),
            ["+ flag a"]
        );
    }
}
