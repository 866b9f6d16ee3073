//! The live config store, per environment: `diff`, `push`, `rollback` (to the previous
//! slot, or `--to` any version the history keeps), `history` and `promote`.
//!
//! A store is named by `--store-id`, or by `--env NAME` from the environments file
//! (`edgeflags.toml`). Every change of its live snapshot goes through
//! [`publish::publish`]: recorded in the store's history, written in one bulk request
//! (the idle slot first, the pointer last), and only if the pointer has not moved since
//! the store was read. Another command that changes the live snapshot (a guard turning a
//! flag off) plans its change with the engine's `pack` or `history` and publishes it the
//! same way.

pub(crate) mod changes;
mod environments;
mod history;
mod promote;
mod provenance;
pub(crate) mod publish;
mod push;
mod rollback;
mod store;

use std::path::PathBuf;

use anyhow::{Result, bail};
use edgeflags_engine::history::DEFAULT_KEEP;

use crate::api;

pub use history::{HistoryArgs, history};
pub use promote::{PromoteArgs, promote};
pub use push::{diff, push};
pub use rollback::{RollbackArgs, rollback};

use store::LiveStore;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The config store id (or set EDGEFLAGS_STORE_ID); `fastly config-store list` shows it.
    #[arg(long, env = "EDGEFLAGS_STORE_ID")]
    store_id: Option<String>,
    /// The environment whose config store to use (from the environments file), instead of
    /// --store-id: `--env staging`.
    #[arg(long = "env", value_name = "NAME")]
    env: Option<String>,
    #[command(flatten)]
    place: Place,
    /// Sign (push, rollback --to) or verify (diff, rollback) snapshots with the key in
    /// this file.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// Where environments are described and the API is.
#[derive(Debug, clap::Args)]
pub struct Place {
    /// The environments file (or set EDGEFLAGS_ENVIRONMENTS).
    #[arg(long, env = "EDGEFLAGS_ENVIRONMENTS", default_value = "edgeflags.toml")]
    environments: PathBuf,
    /// The Fastly API address (or set EDGEFLAGS_API_URL; for tests and proxies).
    #[arg(long, env = "EDGEFLAGS_API_URL", default_value = api::DEFAULT_API)]
    api_url: String,
}

/// Who changes the store and why, for its history.
#[derive(Debug, clap::Args)]
pub struct Why {
    /// Why, for the history (a push defaults to the subject of the flag file's commit).
    #[arg(long, short)]
    message: Option<String>,
    /// Who, for the history (or set EDGEFLAGS_AUTHOR; default: git's user.name and
    /// user.email, else $GITHUB_ACTOR, else $USER).
    #[arg(long, env = "EDGEFLAGS_AUTHOR")]
    author: Option<String>,
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

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    live: LiveArgs,
    #[command(flatten)]
    why: Why,
}

/// A store to read or change: the client, how to name it in messages, and how many
/// versions its history keeps.
pub struct Target {
    /// `production (config store 5kxyz, service 7abc)` or `config store 5kxyz`.
    pub label: String,
    /// The client.
    pub store: LiveStore,
    /// Records kept.
    pub keep: usize,
}

impl Target {
    /// A local store file (the JSON object of entries `pack --store` writes and Viceroy
    /// reads), changed the way a live store is: two slots, the pointer, the history.
    pub fn local(path: &std::path::Path) -> Result<Target> {
        Ok(Target {
            label: format!("local store {}", path.display()),
            store: LiveStore::local(path)?,
            keep: DEFAULT_KEEP,
        })
    }
}

impl Place {
    /// The store of environment `name`.
    fn environment(&self, name: &str) -> Result<Target> {
        let env = environments::environment(&self.environments, name)?;
        let service = if env.service_id.is_empty() {
            String::new()
        } else {
            format!(", service {}", env.service_id)
        };
        Ok(Target {
            label: format!("{name} (config store {}{service})", env.config_store_id),
            store: LiveStore::connect(&env.config_store_id, &self.api_url)?,
            keep: env.keep,
        })
    }
}

impl StoreArgs {
    /// The key file for signing and verifying snapshots, if given.
    pub(crate) fn key_file(&self) -> Option<&std::path::Path> {
        self.key_file.as_deref()
    }

    /// The store these options name: `--env` from the environments file, else
    /// `--store-id`. Both naming different stores is an error.
    pub(crate) fn target(&self) -> Result<Target> {
        match (&self.env, &self.store_id) {
            (Some(name), id) => {
                let env = environments::environment(&self.place.environments, name)?;
                if let Some(id) = id
                    && *id != env.config_store_id
                {
                    bail!(
                        "--env {name} names config store {} but --store-id (or EDGEFLAGS_STORE_ID) names {id}: give one of them",
                        env.config_store_id
                    );
                }
                self.place.environment(name)
            }
            (None, Some(id)) => Ok(Target {
                label: format!("config store {id}"),
                store: LiveStore::connect(id, &self.place.api_url)?,
                keep: DEFAULT_KEEP,
            }),
            (None, None) => bail!(
                "name the store: --env NAME (from {}) or --store-id ID",
                self.place.environments.display()
            ),
        }
    }
}
