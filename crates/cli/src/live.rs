//! A live Fastly config store, through Fastly's official API client (`fastly-api`): read
//! every entry, and apply one change as one bulk request. Rate limiting (429) is retried
//! with backoff (1, 2, 4, 8 s; the generated client does not expose `Retry-After` on
//! errors); other errors say what to do next.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use fastly_api::apis::config_store_item_api::{
    BulkUpdateConfigStoreItemParams, ListConfigStoreItemsParams, bulk_update_config_store_item,
    list_config_store_items,
};
use fastly_api::apis::configuration::{ApiKey, Configuration};
use fastly_api::apis::{Error as ApiError, ResponseContent};
use fastly_api::models::{
    BulkUpdateConfigStoreItem, BulkUpdateConfigStoreListRequest, bulk_update_config_store_item::Op,
};

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
