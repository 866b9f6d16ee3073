//! The keys the CLI signs and hashes with: a named secret (preview, traits, user hash) from
//! a key file, else an environment variable, else the local dev secrets file; and the
//! snapshot key of `--key-file`, byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// The local dev secrets, relative to the project root.
const LOCAL_SECRETS: &str = "config-store/secrets.json";

/// A key from a file, else an environment variable, else the local dev secrets file.
pub fn secret_key(name: &str, env: &str, key_file: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        return Ok(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec());
    }
    if let Ok(k) = std::env::var(env) {
        return Ok(k.into_bytes());
    }
    let local = Path::new(LOCAL_SECRETS);
    let text = std::fs::read_to_string(local).with_context(|| {
        format!("no {name}: pass --key-file, set {env}, or run from the project root for the local dev key")
    })?;
    let secrets: BTreeMap<String, String> = serde_json::from_str(&text)?;
    match secrets.get(name) {
        Some(k) => {
            eprintln!(
                "edgeflags: using the local dev {name} from {}",
                local.display()
            );
            Ok(k.clone().into_bytes())
        }
        None => bail!("{} has no {name}", local.display()),
    }
}

/// The bytes of a snapshot key file (`--key-file` of pack, push and rollback), if given.
pub fn key_of(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    path.map(|k| {
        std::fs::read(k).with_context(|| format!("cannot read the key file {}", k.display()))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("edgeflags-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn a_key_file_wins_and_loses_only_its_line_end() {
        let path = scratch("preview.key", "s3cret \r\n");
        let key = secret_key("preview_key", "EDGEFLAGS_TEST_UNSET_KEY", Some(&path));
        assert_eq!(key.ok(), Some(b"s3cret ".to_vec()));
        // A snapshot key file is taken byte for byte.
        assert_eq!(
            key_of(Some(&path)).ok().flatten(),
            Some(b"s3cret \r\n".to_vec())
        );
        assert!(matches!(key_of(None), Ok(None)));
    }

    #[test]
    fn a_missing_key_file_is_named() {
        let path = Path::new("/nonexistent/edgeflags.key");
        let err = secret_key("traits_key", "EDGEFLAGS_TEST_UNSET_KEY", Some(path))
            .map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("cannot read the key file /nonexistent")));
        let err = key_of(Some(path)).map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("cannot read the key file /nonexistent")));
    }
}
