//! Behaviour traits at the edge: the user's profile from the `edgeflags_profiles` KV store
//! (one lookup, keyed by the keyed hash of the user key, skipped when no rule tests a
//! trait) and the origin's signed `ef_traits` cookie (HMAC with the `traits_key` secret),
//! set as `traits.NAME` attributes. The cookie wins trait by trait. Every failure degrades
//! to fewer traits, logged once to the ops endpoint, and never fails the request.

use std::sync::atomic::{AtomicU32, Ordering};

use edgeflags_engine::traits::{self, PREFIX, Traits, TraitsError};
use edgeflags_engine::{AttrValue, Snapshot};
use fastly::Request;
use fastly::kv_store::{KVStore, KVStoreError};
use serde_json::{Map, Value, json};

use crate::context::{RequestContext, cookie};

/// The KV store of user profiles.
pub const PROFILE_STORE: &str = "edgeflags_profiles";
/// The cookie an origin sets with signed traits.
pub const TRAITS_COOKIE: &str = "ef_traits";

/// Profile lookups made by the current request (for `Server-Timing`).
static LOOKUPS: AtomicU32 = AtomicU32::new(0);

/// Starts counting a new request's profile lookups.
pub fn reset_lookups() {
    LOOKUPS.store(0, Ordering::Relaxed);
}

/// The profile lookups made since [`reset_lookups`].
pub fn lookups() -> u32 {
    LOOKUPS.load(Ordering::Relaxed)
}

/// Where this request's traits came from, for explain.
#[derive(Debug, Default)]
pub struct Report {
    /// Whether traits were looked for at all (a rule tests one).
    pub wanted: bool,
    /// The profile: `found`, `none`, or why it was not used.
    pub profile: String,
    /// The cookie: `valid`, `none`, or why it was ignored.
    pub cookie: String,
    /// Trait name to (value, source).
    pub sources: Vec<(String, AttrValue, &'static str)>,
}

impl Report {
    /// The report for a context given whole in an explain body: its traits come from it.
    pub fn from_body(ctx: &edgeflags_engine::Context) -> Report {
        Report {
            wanted: false,
            profile: "not read: the context was given in the request body".into(),
            cookie: "not read: the context was given in the request body".into(),
            sources: ctx
                .attributes()
                .filter_map(|(n, v)| {
                    let name = n.strip_prefix(PREFIX)?;
                    Some((name.to_string(), v.clone(), "request body"))
                })
                .collect(),
        }
    }

    /// The report as JSON (explain's `traits` member).
    pub fn to_json(&self) -> Value {
        let mut values = Map::new();
        for (name, v, source) in &self.sources {
            values.insert(
                name.clone(),
                json!({"value": v.to_json(), "source": source}),
            );
        }
        json!({
            "looked_up": self.wanted,
            "profile": self.profile,
            "cookie": self.cookie,
            "values": values,
        })
    }
}

/// Reads the traits of the context's user, when `snapshot` has a rule that tests one and
/// the request's verified identity is that user (a key the client can choose, such as the
/// id cookie, gets none: see `edgeflags_engine::identity`).
pub fn apply(rc: &mut RequestContext, req: &Request, snapshot: &Snapshot) {
    if !snapshot.uses_traits() {
        return;
    }
    let Some(user) = rc.ctx.key().map(str::to_string) else {
        return;
    };
    if !rc.identity.vouches_for(&user) {
        let why = format!(
            "not read: the user key is not a verified identity (it came from: {})",
            match rc.identity.key.as_deref() {
                Some(k) if k == user => rc.identity.source.name(),
                Some(_) => "an OFREP targetingKey",
                None => "a new id",
            }
        );
        rc.traits = Report {
            wanted: true,
            profile: why.clone(),
            cookie: why,
            sources: Vec::new(),
        };
        return;
    }
    let mut report = Report {
        wanted: true,
        profile: "none".into(),
        cookie: "none".into(),
        sources: Vec::new(),
    };
    let now = rc.now.timestamp();
    let mut found: Vec<(String, AttrValue, &'static str)> = Vec::new();
    if rc.new_id.is_none() {
        match profile(rc.hashed_user(), now) {
            Ok(Some(t)) => {
                report.profile = refused_note("found", &t);
                merge(&mut found, t, "profile");
            }
            Ok(None) => {}
            Err(why) => {
                crate::response::log_ops("traits", &format!("profile not used: {why}"));
                report.profile = why;
            }
        }
    }
    if let Some(token) = cookie(req, TRAITS_COOKIE) {
        let key = crate::config::secret("traits_key");
        match traits::verify_cookie(token, key.as_deref(), &user, now) {
            Ok(t) => {
                report.cookie = refused_note("valid", &t);
                merge(&mut found, t, "cookie");
            }
            Err(e) => {
                crate::response::log_ops("traits", &format!("traits cookie ignored: {e}"));
                report.cookie = format!("ignored: {e}");
            }
        }
    }
    for (name, value, _) in &found {
        rc.ctx.set(&format!("{PREFIX}{name}"), value.clone());
    }
    report.sources = found;
    rc.traits = report;
}

fn refused_note(status: &str, t: &Traits) -> String {
    if t.refused.is_empty() {
        return status.to_string();
    }
    let names: Vec<String> = t
        .refused
        .iter()
        .map(|(n, why)| format!("{n}: {why}"))
        .collect();
    format!("{status}; left out {}", names.join(", "))
}

fn merge(into: &mut Vec<(String, AttrValue, &'static str)>, t: Traits, source: &'static str) {
    for (name, value) in t.values {
        into.retain(|(n, _, _)| *n != name);
        into.push((name, value, source));
    }
}

/// The user's profile: `Ok(None)` when there is none, `Err` with the reason when the store
/// or the profile is unusable.
fn profile(hashed: Option<String>, now: i64) -> Result<Option<Traits>, String> {
    let Some(hashed) = hashed else {
        return Err("no user_hash_key secret to hash the user key with".into());
    };
    let store = match KVStore::open(PROFILE_STORE) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("KV store {PROFILE_STORE}: not found")),
        Err(e) => return Err(format!("KV store {PROFILE_STORE}: {e}")),
    };
    LOOKUPS.fetch_add(1, Ordering::Relaxed);
    let mut found = match store.lookup(&hashed) {
        Ok(r) => r,
        Err(KVStoreError::ItemNotFound) => return Ok(None),
        Err(e) => return Err(format!("lookup failed: {e}")),
    };
    let body = found.take_body_bytes();
    match traits::parse_profile(&body, now) {
        Ok(t) => Ok(Some(t)),
        Err(TraitsError::Expired(at)) => Err(format!("expired at {at}")),
        Err(e) => Err(e.to_string()),
    }
}
