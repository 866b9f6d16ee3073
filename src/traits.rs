//! Behaviour traits at the edge: the user's profile from the profile KV store (one
//! lookup, keyed by the keyed hash of the user key, skipped when no rule tests a trait)
//! and the origin's signed `ef_traits` cookie. The edge reads them; the engine decides
//! what they mean (`edgeflags_engine::traits`: checks, the cookie winning trait by trait,
//! the report explain shows). Read only for a verified identity. Every failure degrades to
//! fewer traits, logged to the ops endpoint, and never fails the request.

use std::sync::atomic::{AtomicU32, Ordering};

use edgeflags_engine::Snapshot;
use edgeflags_engine::traits::{self, Report, Traits, TraitsError};
use fastly::Request;
use fastly::kv_store::{KVStore, KVStoreError};

use crate::config::Loaded;
use crate::context::{self, RequestContext};
use crate::platform::{self, Call, PROFILE_STORE, cookie, count, header, log_ops, secrets};

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

/// The context of a client request, traits included. `server`: whether the caller
/// presented the endpoint's server token, so that the user `edgeflags-user` names is
/// believed.
pub fn request_context(req: &Request, loaded: &Loaded, server: bool) -> RequestContext {
    let named = header(req, edgeflags_engine::identity::USER_HEADER);
    let mut rc = context::build(req, loaded, server, named);
    if let Some(snapshot) = loaded.snapshot.as_deref() {
        apply(&mut rc, req, snapshot);
    }
    // A preview's traits win over the profile's and the cookie's, verified user or not.
    if let Some(claims) = rc.claims.as_ref().filter(|c| !c.traits.is_empty()) {
        rc.traits.add_preview(&claims.traits);
        rc.traits.apply_to(&mut rc.ctx);
    }
    rc
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
        let came_from = match rc.identity.key.as_deref() {
            Some(k) if k == user => rc.identity.source.name(),
            Some(_) => "an OFREP targetingKey",
            None => "a new id",
        };
        rc.traits = Report::unverified(came_from);
        return;
    }
    let now = rc.now.timestamp();
    let profile = match rc.new_id {
        Some(_) => Ok(None),
        None => profile(rc.hashed_user(), now),
    };
    if let Err(why) = &profile {
        log_ops("traits", &format!("profile not used: {why}"));
    }
    let cookie = cookie(req, TRAITS_COOKIE).map(|token| {
        let key = platform::secret(secrets::TRAITS_KEY);
        let checked = traits::verify_cookie(token, key.as_deref(), &user, now);
        if let Err(e) = &checked {
            log_ops("traits", &format!("traits cookie ignored: {e}"));
        }
        checked
    });
    let report = Report::gather(profile, cookie);
    report.apply_to(&mut rc.ctx);
    rc.traits = report;
}

/// The user's profile: `Ok(None)` when there is none, `Err` with the reason when the store
/// or the profile is unusable.
fn profile(hashed: Option<String>, now: i64) -> Result<Option<Traits>, String> {
    let Some(hashed) = hashed else {
        return Err("no user_hash_key secret to hash the user key with".into());
    };
    count(Call::Kv, 1);
    let store = match KVStore::open(PROFILE_STORE) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("KV store {PROFILE_STORE}: not found")),
        Err(e) => return Err(format!("KV store {PROFILE_STORE}: {e}")),
    };
    LOOKUPS.fetch_add(1, Ordering::Relaxed);
    count(Call::Kv, 1);
    let mut found = match store.lookup(&hashed) {
        Ok(r) => r,
        Err(KVStoreError::ItemNotFound) => return Ok(None),
        Err(e) => return Err(format!("lookup failed: {e}")),
    };
    count(Call::Body, 1);
    let body = found.take_body_bytes();
    match traits::parse_profile(&body, now) {
        Ok(t) => Ok(Some(t)),
        Err(TraitsError::Expired(at)) => Err(format!("expired at {at}")),
        Err(e) => Err(e.to_string()),
    }
}
