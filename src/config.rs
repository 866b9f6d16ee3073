//! Loading the flag snapshot: the pointer and one slot from the config store (the other
//! slot if the active one is torn or bad), else the snapshot embedded at build time.
//!
//! An instance may serve many requests (reusable sandboxes). The compiled snapshot is kept
//! in the instance's [`Cache`] with the pointer text it came from; each request opens the
//! store afresh and reads only the pointer, and reloads when the pointer changed. Only a
//! clean load of the active slot is cached: a fallback (torn or bad active slot) is
//! retried on the next request. Problems are logged to the operator endpoint and shown on
//! `/.edgeflags/health`.

use std::rc::Rc;

use edgeflags_engine::{Snapshot, compile_packed, pack, payload};
use fastly::ConfigStore;

use crate::platform::{self, CONFIG_STORE, Call, count, secrets};

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
#[derive(Clone)]
pub struct Loaded {
    pub snapshot: Option<Rc<Snapshot>>,
    pub version: String,
    pub source: Source,
    pub slot: Option<&'static str>,
    /// Config-store lookups made for this request.
    pub lookups: u32,
    /// Whether the compiled snapshot was kept from an earlier request of this instance.
    pub reused: bool,
    pub problems: Vec<String>,
}

/// What an instance keeps between requests.
#[derive(Default)]
pub struct Cache {
    /// The pointer text and the clean load it led to.
    store: Option<(String, Loaded)>,
    /// The embedded snapshot, compiled at most once per instance.
    embedded: Option<Rc<Snapshot>>,
}

/// Loads the snapshot for this request.
pub fn load(cache: &mut Cache) -> Loaded {
    let mut problems = Vec::new();
    count(Call::Config, 1);
    let store = match ConfigStore::try_open(CONFIG_STORE) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("config store `{CONFIG_STORE}`: {e}"));
            return embedded(cache, problems, 0);
        }
    };
    count(Call::Config, 1);
    let Some(pointer) = store.try_get(pack::POINTER_KEY).ok().flatten() else {
        problems.push(format!(
            "no `{}` entry in the config store",
            pack::POINTER_KEY
        ));
        return embedded(cache, problems, 1);
    };
    if let Some((text, loaded)) = &cache.store
        && *text == pointer
    {
        return Loaded {
            lookups: 1,
            reused: true,
            ..loaded.clone()
        };
    }
    let key = signing_key();
    let outcome = pack::read_with_pointer(
        &pointer,
        |k| {
            count(Call::Config, 1);
            store.try_get(k).ok().flatten()
        },
        key.as_deref(),
        1,
    );
    let lookups = outcome.lookups;
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
            match payload::load(&l.payload, &l.version) {
                Ok(snapshot) => {
                    report(&problems);
                    let loaded = Loaded {
                        snapshot: Some(Rc::new(snapshot)),
                        version: l.version,
                        source: Source::Store,
                        slot: Some(l.slot.name()),
                        lookups,
                        reused: false,
                        problems,
                    };
                    cache.store = match l.fell_back {
                        None => Some((pointer, loaded.clone())),
                        Some(_) => None,
                    };
                    return loaded;
                }
                Err(e) => problems.push(format!("slot {} cannot be loaded: {e}", l.slot.name())),
            }
        }
    }
    embedded(cache, problems, lookups)
}

/// The embedded snapshot, with the problems that led to it.
fn embedded(cache: &mut Cache, mut problems: Vec<String>, lookups: u32) -> Loaded {
    cache.store = None;
    problems.push(format!("serving the embedded snapshot {EMBEDDED_VERSION}"));
    report(&problems);
    let reused = cache.embedded.is_some();
    let snapshot = match &cache.embedded {
        Some(s) => Some(s.clone()),
        None => match compile_packed(EMBEDDED, EMBEDDED_VERSION) {
            Ok(s) => {
                let s = Rc::new(s);
                cache.embedded = Some(s.clone());
                Some(s)
            }
            Err(e) => {
                problems.push(format!("the embedded snapshot does not compile: {e}"));
                None
            }
        },
    };
    let (version, source) = match snapshot {
        Some(_) => (EMBEDDED_VERSION.to_string(), Source::Embedded),
        None => ("none".to_string(), Source::Empty),
    };
    Loaded {
        snapshot,
        version,
        source,
        slot: None,
        lookups,
        reused,
        problems,
    }
}

/// The snapshot signing key, when the secret store has one: then unsigned or badly
/// signed snapshots are refused.
fn signing_key() -> Option<Vec<u8>> {
    platform::secret(secrets::SNAPSHOT_KEY)
}

fn report(problems: &[String]) {
    for p in problems {
        platform::log_ops("config", p);
    }
}
