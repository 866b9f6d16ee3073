//! A live config store reached through the Fastly API (`crate::api`, which retries rate
//! limits): read whole, one entry read again, changed in one bulk request. Or a local
//! store file (the JSON object of entries `pack --store` writes and Viceroy reads, as
//! `scripts/serve` and the end-to-end tests use it), changed by one atomic rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use fastly_api::apis::config_store_item_api::{
    BulkUpdateConfigStoreItemParams, GetConfigStoreItemParams, ListConfigStoreItemsParams,
    bulk_update_config_store_item, get_config_store_item, list_config_store_items,
};
use fastly_api::models::{
    BulkUpdateConfigStoreItem, BulkUpdateConfigStoreListRequest, bulk_update_config_store_item::Op,
};

use crate::api::{self, Api, StoreKind};

/// A config store reached through the API, or a local store file.
pub struct LiveStore {
    at: At,
}

enum At {
    Api(Box<ApiStore>),
    File(PathBuf),
}

/// A config store reached through the API.
struct ApiStore {
    api: Api,
    store_id: String,
    rt: tokio::runtime::Runtime,
}

impl LiveStore {
    /// Connects with the token in `FASTLY_API_TOKEN`.
    pub fn connect(store_id: &str, api_url: &str) -> Result<LiveStore> {
        let (api, rt) = api::connect(api_url, StoreKind::Config)?;
        Ok(LiveStore {
            at: At::Api(Box::new(ApiStore {
                api,
                store_id: store_id.to_string(),
                rt,
            })),
        })
    }

    /// The local store file at `path` (it must exist).
    pub fn local(path: &Path) -> Result<LiveStore> {
        read_file(path)?;
        Ok(LiveStore {
            at: At::File(path.to_path_buf()),
        })
    }

    /// Every entry of the store.
    pub fn items(&self) -> Result<BTreeMap<String, String>> {
        match &self.at {
            At::Api(s) => s.items(),
            At::File(path) => read_file(path),
        }
    }

    /// One entry, read now (`None` when the store has no such entry).
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        match &self.at {
            At::Api(s) => s.get(key),
            At::File(path) => Ok(read_file(path)?.remove(key)),
        }
    }

    /// Applies upserts (in order) and deletes as one change.
    pub fn apply(&self, upserts: &[(String, String)], deletes: &[String]) -> Result<()> {
        match &self.at {
            At::Api(s) => s.apply(upserts, deletes),
            At::File(path) => {
                let mut items = read_file(path)?;
                for (k, v) in upserts {
                    items.insert(k.clone(), v.clone());
                }
                for k in deletes {
                    items.remove(k);
                }
                let text = serde_json::to_string_pretty(&items)? + "\n";
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, text)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }
}

/// The entries of a local store file.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON object of strings", path.display()))
}

impl ApiStore {
    /// Every entry of the store.
    fn items(&self) -> Result<BTreeMap<String, String>> {
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

    /// One entry, read now (`None` when the store has no such entry).
    fn get(&self, key: &str) -> Result<Option<String>> {
        let item = self
            .rt
            .block_on(self.api.call("reading the config store", |mut cfg| {
                let params = GetConfigStoreItemParams {
                    config_store_id: self.store_id.clone(),
                    config_store_item_key: key.to_string(),
                };
                async move { api::found(get_config_store_item(&mut cfg, params).await) }
            }))?;
        Ok(item.map(|i| i.item_value.unwrap_or_default()))
    }

    /// Applies upserts (in order) and deletes as one bulk request.
    fn apply(&self, upserts: &[(String, String)], deletes: &[String]) -> Result<()> {
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
