//! A live config store reached through the Fastly API (`crate::api`, which retries rate
//! limits): read whole, one entry read again, changed in one bulk request.

use std::collections::BTreeMap;

use anyhow::Result;
use fastly_api::apis::config_store_item_api::{
    BulkUpdateConfigStoreItemParams, GetConfigStoreItemParams, ListConfigStoreItemsParams,
    bulk_update_config_store_item, get_config_store_item, list_config_store_items,
};
use fastly_api::models::{
    BulkUpdateConfigStoreItem, BulkUpdateConfigStoreListRequest, bulk_update_config_store_item::Op,
};

use crate::api::{self, Api, StoreKind};

/// A config store reached through the API.
pub struct LiveStore {
    api: Api,
    store_id: String,
    rt: tokio::runtime::Runtime,
}

impl LiveStore {
    /// Connects with the token in `FASTLY_API_TOKEN`.
    pub fn connect(store_id: &str, api_url: &str) -> Result<LiveStore> {
        let (api, rt) = api::connect(api_url, StoreKind::Config)?;
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

    /// One entry, read now (`None` when the store has no such entry).
    pub fn get(&self, key: &str) -> Result<Option<String>> {
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
