//! `edgeflags diff`, `push` and `rollback`: the live Fastly config store, read whole and
//! changed in one bulk request through the API (`crate::api`, which retries rate limits).
//! `push` writes the idle slot and flips the pointer; `rollback` flips back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::pack;
use fastly_api::apis::config_store_item_api::{
    BulkUpdateConfigStoreItemParams, ListConfigStoreItemsParams, bulk_update_config_store_item,
    list_config_store_items,
};
use fastly_api::models::{
    BulkUpdateConfigStoreItem, BulkUpdateConfigStoreListRequest, bulk_update_config_store_item::Op,
};

use crate::api::{self, Api, StoreKind};
use crate::flagfile::compile_file;
use crate::keys::key_of;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The config store id (or set EDGEFLAGS_STORE_ID); `fastly config-store list` shows it.
    #[arg(long, env = "EDGEFLAGS_STORE_ID")]
    store_id: String,
    /// The Fastly API address (for tests and proxies).
    #[arg(long, default_value = api::DEFAULT_API)]
    api_url: String,
    /// Sign (push) or verify (rollback) snapshots with the key in this file.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// The flag file.
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Show what would be written, write nothing (push).
    #[arg(long)]
    dry_run: bool,
}

/// The flag file the store's active slot holds (as JSON), if any.
fn live_active(
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
    let source = edgeflags_engine::binary::source(&loaded.payload)
        .context("the live snapshot's flag file is unreadable")?;
    let doc = serde_json::from_str(&source).context("the live snapshot is not JSON")?;
    Ok(Some((loaded.version, doc)))
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
    for section in ["segments", "routes", "context", "ofrep"] {
        if old.get(section) != new.get(section) {
            lines.push(format!("~ {section}"));
        }
    }
    lines
}

/// Runs `diff`.
pub fn diff(a: LiveArgs) -> Result<ExitCode> {
    let (payload, version) = compile_file(&a.file)?;
    let key = key_of(a.store.key_file.as_deref())?;
    let store = LiveStore::connect(&a.store.store_id, Some(&a.store.api_url))?;
    eprintln!("edgeflags: reading config store {}", a.store.store_id);
    let items = store.items()?;
    let new: serde_json::Value = serde_json::from_str(&payload)?;
    print_diff(&items, key.as_deref(), &new, &version)?;
    Ok(ExitCode::SUCCESS)
}

fn print_diff(
    items: &BTreeMap<String, String>,
    key: Option<&[u8]>,
    new: &serde_json::Value,
    version: &str,
) -> Result<bool> {
    match live_active(items, key)? {
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

/// Runs `push`.
pub fn push(a: LiveArgs) -> Result<ExitCode> {
    let (payload, version) = compile_file(&a.file)?;
    let key = key_of(a.store.key_file.as_deref())?;
    let store = LiveStore::connect(&a.store.store_id, Some(&a.store.api_url))?;
    eprintln!("edgeflags: reading config store {}", a.store.store_id);
    let items = store.items()?;
    let new: serde_json::Value = serde_json::from_str(&payload)?;
    if !print_diff(&items, key.as_deref(), &new, &version)? {
        return Ok(ExitCode::SUCCESS);
    }
    let packed = pack::pack(&payload, &version, &items, key.as_deref())?;
    let slot = packed.slot.map(|s| s.name()).unwrap_or("?");
    if a.dry_run {
        println!(
            "dry run: would write slot {slot} ({} parts) and flip the pointer; nothing written",
            packed.upserts.len().saturating_sub(1)
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "edgeflags: writing slot {slot} ({} parts), then the pointer, in one bulk request",
        packed.upserts.len().saturating_sub(1)
    );
    store.apply(&packed.upserts, &packed.deletes)?;
    println!("pushed version {version} to slot {slot}; the edge serves it on the next request");
    Ok(ExitCode::SUCCESS)
}

/// Runs `rollback`.
pub fn rollback(a: StoreArgs) -> Result<ExitCode> {
    let key = key_of(a.key_file.as_deref())?;
    let store = LiveStore::connect(&a.store_id, Some(&a.api_url))?;
    eprintln!("edgeflags: reading config store {}", a.store_id);
    let items = store.items()?;
    let text = items
        .get(pack::POINTER_KEY)
        .context("the store has no snapshot: nothing to roll back")?;
    let pointer: pack::Pointer =
        serde_json::from_str(text).context("the store's pointer is unreadable")?;
    let current = pointer.active;
    let previous = current.other();
    let (ok, _) = pack::read_slot(
        |k| items.get(k).cloned(),
        &pointer,
        previous,
        key.as_deref(),
    );
    if let Err(why) = ok {
        bail!("cannot roll back: the previous slot is not usable ({why})");
    }
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
    let upserts = vec![(
        pack::POINTER_KEY.to_string(),
        serde_json::to_string(&flipped)?,
    )];
    let deletes: Vec<String> = (0..parts).map(|n| current.part_key(n)).collect();
    eprintln!(
        "edgeflags: flipping the pointer to slot {} and dropping slot {}",
        previous.name(),
        current.name()
    );
    store.apply(&upserts, &deletes)?;
    println!("rolled back from version {from} to {to}");
    Ok(ExitCode::SUCCESS)
}

/// A config store reached through the API.
pub struct LiveStore {
    api: Api,
    store_id: String,
    rt: tokio::runtime::Runtime,
}

impl LiveStore {
    /// Connects with the token in `FASTLY_API_TOKEN`.
    pub fn connect(store_id: &str, api_url: Option<&str>) -> Result<LiveStore> {
        let (api, rt) = api::connect(api_url.unwrap_or(api::DEFAULT_API), StoreKind::Config)?;
        Ok(LiveStore {
            api,
            store_id: store_id.to_string(),
            rt,
        })
    }

    /// Every entry of the store.
    pub fn items(&self) -> Result<BTreeMap<String, String>> {
        let items = self
            .rt
            .block_on(self.api.call("reading the config store", |mut cfg| {
                let params = ListConfigStoreItemsParams {
                    config_store_id: self.store_id.clone(),
                };
                async move { list_config_store_items(&mut cfg, params).await }
            }))?;
        Ok(items
            .into_iter()
            .filter_map(|i| Some((i.item_key?, i.item_value.unwrap_or_default())))
            .collect())
    }

    /// Applies upserts (in order) and deletes as one bulk request.
    pub fn apply(&self, upserts: &[(String, String)], deletes: &[String]) -> Result<()> {
        let mut items: Vec<BulkUpdateConfigStoreItem> = upserts
            .iter()
            .map(|(k, v)| BulkUpdateConfigStoreItem {
                item_key: Some(k.clone()),
                item_value: Some(v.clone()),
                op: Some(Op::Upsert),
            })
            .collect();
        items.extend(deletes.iter().map(|k| BulkUpdateConfigStoreItem {
            item_key: Some(k.clone()),
            item_value: None,
            op: Some(Op::Delete),
        }));
        self.rt
            .block_on(self.api.call("writing the config store", |mut cfg| {
                let params = BulkUpdateConfigStoreItemParams {
                    config_store_id: self.store_id.clone(),
                    bulk_update_config_store_list_request: Some(BulkUpdateConfigStoreListRequest {
                        items: Some(items.clone()),
                    }),
                };
                async move { bulk_update_config_store_item(&mut cfg, params).await }
            }))?;
        Ok(())
    }
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
