//! The environments file (`edgeflags.toml`, checked in): each environment's Fastly
//! service and config store, and how many versions its history keeps. `--env NAME` and
//! `promote FROM TO` name them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::history::DEFAULT_KEEP;
use serde::Deserialize;

/// The file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// By name.
    #[serde(default)]
    environments: BTreeMap<String, Environment>,
}

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The Fastly service (`fastly service list`), shown with the store.
    #[serde(default)]
    pub service_id: String,
    /// The config store the edge of that service reads (`fastly config-store list`).
    #[serde(default)]
    pub config_store_id: String,
    /// How many records (and their payloads) the store's history keeps.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_keep() -> usize {
    DEFAULT_KEEP
}

/// Environment `name` of the file at `path`, with a config store id.
pub fn environment(path: &Path, name: &str) -> Result<Environment> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} to find environment `{name}`: run from the repository root, or pass --environments FILE",
            path.display()
        )
    })?;
    environment_in(&text, name).with_context(|| format!("in {}", path.display()))
}

fn environment_in(text: &str, name: &str) -> Result<Environment> {
    let file: File = toml::from_str(text)?;
    let Some(env) = file.environments.get(name) else {
        let known: Vec<&str> = file.environments.keys().map(String::as_str).collect();
        bail!(
            "no environment `{name}` (the file names {}); add an [environments.{name}] table",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    if env.config_store_id.trim().is_empty() {
        bail!(
            "environment `{name}` has no config_store_id: set it (`fastly config-store list` shows the id)"
        );
    }
    if env.keep == 0 {
        bail!("environment `{name}`: keep must be at least 1");
    }
    Ok(env.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [environments.staging]
        service_id = "svc-staging"
        config_store_id = "store-staging"

        [environments.production]
        service_id = "svc-prod"
        config_store_id = "store-prod"
        keep = 50

        [environments.draft]
        service_id = "svc-draft"
    "#;

    #[test]
    fn environments_are_read_with_their_store_and_history_depth() {
        let staging = environment_in(FILE, "staging").map_err(|e| e.to_string());
        assert_eq!(
            staging,
            Ok(Environment {
                service_id: "svc-staging".into(),
                config_store_id: "store-staging".into(),
                keep: DEFAULT_KEEP,
            })
        );
        let prod = environment_in(FILE, "production").map(|e| e.keep);
        assert_eq!(prod.ok(), Some(50));
    }

    #[test]
    fn a_missing_environment_or_store_id_says_what_to_write() {
        let err = |name: &str, text: &str| {
            environment_in(text, name)
                .map_err(|e| format!("{e:#}"))
                .err()
                .unwrap_or_default()
        };
        assert_eq!(
            err("qa", FILE),
            "no environment `qa` (the file names draft, production, staging); add an [environments.qa] table"
        );
        assert!(err("draft", FILE).contains("environment `draft` has no config_store_id"));
        assert!(err("x", "[environments.x]\nstore = 1\n").contains("unknown field `store`"));
        assert!(err("x", "").contains("the file names none"));
        let path = Path::new("/nonexistent/edgeflags.toml");
        let missing = environment(path, "staging").map_err(|e| e.to_string());
        assert!(missing.is_err_and(|e| e.contains("pass --environments FILE")));
    }
}
