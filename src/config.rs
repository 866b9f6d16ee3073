//! Loading the flag snapshot: the pointer and one slot from the config store (the other
//! slot if the active one is torn or bad), else the snapshot embedded at build time.
//! Problems are logged to the operator endpoint and shown on `/.edgeflags/health`.

use edgeflags_engine::{Snapshot, compile_str, pack};
use fastly::{ConfigStore, SecretStore};

use crate::{CONFIG_STORE, SECRET_STORE};

/// The flag file embedded at build time, and its version.
const EMBEDDED: &str = include_str!(concat!(env!("OUT_DIR"), "/embedded-flags.json"));
const EMBEDDED_VERSION: &str = include_str!(concat!(env!("OUT_DIR"), "/embedded-version.txt"));

/// Where the snapshot in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config store.
    Store,
    /// The copy embedded in the wasm.
    Embedded,
    /// Nothing usable (the embedded copy failed too): every flag is an error.
    Empty,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Store => "store",
            Source::Embedded => "embedded",
            Source::Empty => "none",
        }
    }
}

/// The snapshot for this request and how it was obtained.
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    pub version: String,
    pub source: Source,
    pub slot: Option<&'static str>,
    pub lookups: u32,
    pub problems: Vec<String>,
}

/// Loads the snapshot for this request.
pub fn load() -> Loaded {
    let mut problems = Vec::new();
    let mut lookups = 0;
    match ConfigStore::try_open(CONFIG_STORE) {
        Err(e) => problems.push(format!("config store `{CONFIG_STORE}`: {e}")),
        Ok(store) => {
            let key = signing_key();
            let outcome = pack::read(|k| store.try_get(k).ok().flatten(), key.as_deref());
            lookups = outcome.lookups;
            match outcome.result {
                Err(reasons) => problems.extend(reasons),
                Ok(l) => {
                    if let Some(why) = &l.fell_back {
                        problems.push(format!(
                            "served slot {} (version {}): {why}",
                            l.slot.name(),
                            l.version
                        ));
                    }
                    match compile_str(&l.payload) {
                        Ok(snapshot) => {
                            report(&problems);
                            return Loaded {
                                snapshot: Some(snapshot),
                                version: l.version,
                                source: Source::Store,
                                slot: Some(l.slot.name()),
                                lookups,
                                problems,
                            };
                        }
                        Err(e) => {
                            problems.push(format!("slot {} does not compile: {e}", l.slot.name()))
                        }
                    }
                }
            }
        }
    }
    problems.push(format!("serving the embedded snapshot {EMBEDDED_VERSION}"));
    report(&problems);
    match compile_str(EMBEDDED) {
        Ok(snapshot) => Loaded {
            snapshot: Some(snapshot),
            version: EMBEDDED_VERSION.to_string(),
            source: Source::Embedded,
            slot: None,
            lookups,
            problems,
        },
        Err(e) => {
            problems.push(format!("the embedded snapshot does not compile: {e}"));
            Loaded {
                snapshot: None,
                version: "none".into(),
                source: Source::Empty,
                slot: None,
                lookups,
                problems,
            }
        }
    }
}

/// The snapshot signing key, when the secret store has one: then unsigned or badly
/// signed snapshots are refused.
fn signing_key() -> Option<Vec<u8>> {
    secret("snapshot_key")
}

/// A secret from the edgeflags secret store, if the store and the secret exist.
pub fn secret(name: &str) -> Option<Vec<u8>> {
    let store = SecretStore::open(SECRET_STORE).ok()?;
    let secret = store.try_get(name).ok().flatten()?;
    Some(secret.plaintext().to_vec())
}

fn report(problems: &[String]) {
    for p in problems {
        crate::response::log_ops("config", p);
    }
}
