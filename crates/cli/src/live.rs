//! `edgeflags diff`, `push` and `rollback`, and the live Fastly config store they work on,
//! through Fastly's official API client (`fastly-api`): read every entry, and apply one
//! change as one bulk request. `push` writes the idle slot and flips the pointer;
//! `rollback` flips back. Rate limiting (429) is retried with backoff (1, 2, 4, 8 s; the
//! generated client does not expose `Retry-After` on errors); other errors say what to do
//! next.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::pack;
use fastly_api::apis::config_store_item_api::{
    BulkUpdateConfigStoreItemParams, ListConfigStoreItemsParams, bulk_update_config_store_item,
    list_config_store_items,
};
use fastly_api::apis::configuration::{ApiKey, Configuration};
use fastly_api::apis::{Error as ApiError, ResponseContent};
use fastly_api::models::{
    BulkUpdateConfigStoreItem, BulkUpdateConfigStoreListRequest, bulk_update_config_store_item::Op,
};

use crate::flagfile::compile_file;
use crate::keys::key_of;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The config store id (or set EDGEFLAGS_STORE_ID); `fastly config-store list` shows it.
    #[arg(long, env = "EDGEFLAGS_STORE_ID")]
    store_id: String,
    /// The Fastly API address (for tests and proxies).
    #[arg(long, default_value = DEFAULT_API)]
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
    let mut store = LiveStore::connect(&a.store.store_id, Some(&a.store.api_url))?;
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
    let mut store = LiveStore::connect(&a.store.store_id, Some(&a.store.api_url))?;
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
    let mut store = LiveStore::connect(&a.store_id, Some(&a.api_url))?;
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

/// The Fastly API's address.
pub const DEFAULT_API: &str = "https://api.fastly.com";
/// How many times a rate-limited request is tried.
const TRIES: u32 = 5;

/// The API client's configuration (base address, the token in `FASTLY_API_TOKEN`, our
/// user agent) and a runtime to drive it; `what` names what the token must be allowed to
/// write, for the error.
pub fn api(api_url: &str, what: &str) -> Result<(Configuration, tokio::runtime::Runtime)> {
    let token = std::env::var("FASTLY_API_TOKEN").map_err(|_| {
        anyhow::anyhow!("set FASTLY_API_TOKEN to a Fastly API token that may write {what}")
    })?;
    let cfg = Configuration {
        base_path: api_url.trim_end_matches('/').to_string(),
        api_key: Some(ApiKey {
            prefix: None,
            key: token,
        }),
        user_agent: Some(format!("edgeflags/{}", env!("CARGO_PKG_VERSION"))),
        ..Configuration::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((cfg, rt))
}

/// A config store reached through the API.
pub struct LiveStore {
    cfg: Configuration,
    store_id: String,
    rt: tokio::runtime::Runtime,
}

impl LiveStore {
    /// Connects with the token in `FASTLY_API_TOKEN`.
    pub fn connect(store_id: &str, api_url: Option<&str>) -> Result<LiveStore> {
        let (cfg, rt) = api(api_url.unwrap_or(DEFAULT_API), "config stores")?;
        Ok(LiveStore {
            cfg,
            store_id: store_id.to_string(),
            rt,
        })
    }

    /// Every entry of the store.
    pub fn items(&mut self) -> Result<BTreeMap<String, String>> {
        let store_id = self.store_id.clone();
        let mut tries = 0;
        loop {
            tries += 1;
            let params = ListConfigStoreItemsParams {
                config_store_id: store_id.clone(),
            };
            match self
                .rt
                .block_on(list_config_store_items(&mut self.cfg, params))
            {
                Ok(items) => {
                    return Ok(items
                        .into_iter()
                        .filter_map(|i| Some((i.item_key?, i.item_value.unwrap_or_default())))
                        .collect());
                }
                Err(e) => self.wait_or_fail(e, tries, "reading the config store")?,
            }
        }
    }

    /// Applies upserts (in order) and deletes as one bulk request.
    pub fn apply(&mut self, upserts: &[(String, String)], deletes: &[String]) -> Result<()> {
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
        let mut tries = 0;
        loop {
            tries += 1;
            let params = BulkUpdateConfigStoreItemParams {
                config_store_id: self.store_id.clone(),
                bulk_update_config_store_list_request: Some(BulkUpdateConfigStoreListRequest {
                    items: Some(items.clone()),
                }),
            };
            match self
                .rt
                .block_on(bulk_update_config_store_item(&mut self.cfg, params))
            {
                Ok(_) => return Ok(()),
                Err(e) => self.wait_or_fail(e, tries, "writing the config store")?,
            }
        }
    }

    /// Sleeps and returns Ok when `e` is a rate limit worth retrying; else the error.
    fn wait_or_fail<T>(&self, e: ApiError<T>, tries: u32, what: &str) -> Result<()> {
        match e {
            ApiError::ResponseError(ResponseContent {
                status, content, ..
            }) => {
                let code = status.as_u16();
                if code == 429 && tries < TRIES {
                    // The client does not expose headers on errors: back off 1, 2, 4, 8 s.
                    let wait = Duration::from_secs(1 << (tries - 1).min(3));
                    eprintln!(
                        "edgeflags: rate limited by the Fastly API, retrying in {} s",
                        wait.as_secs()
                    );
                    std::thread::sleep(wait);
                    return Ok(());
                }
                let hint = match code {
                    401 | 403 => "check that FASTLY_API_TOKEN is valid and may write config stores",
                    404 => "check the config store id (fastly config-store list)",
                    429 => "the API kept rate-limiting; wait a minute and run the command again",
                    _ => {
                        "run the command again; if it keeps failing, check https://www.fastlystatus.com"
                    }
                };
                bail!(
                    "{what} failed: the API answered {code}: {}\n{hint}",
                    content.chars().take(300).collect::<String>()
                )
            }
            other => Err(anyhow::anyhow!("{other}"))
                .with_context(|| format!("{what} failed (could not reach the API)")),
        }
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
