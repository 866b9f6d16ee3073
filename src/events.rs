//! Exposure, conversion and origin error events to the `edgeflags_events` log endpoint:
//! the edge's part is only I/O. The engine's events module decides which evaluations are
//! logged ([`sampled_exposures`]), which variants a conversion or an error carries
//! ([`served`], [`served_of`]) and the
//! record itself ([`Event`], documented in `docs/events.md`); this module looks up the
//! user's keyed hash (a secret, through [`RequestContext::hashed_user`], only once an
//! event is written) and writes each record as one JSON line through
//! [`platform::log_event`].

use edgeflags_engine::events::{
    Event, Origin, OriginFailure, sampled_exposures, served, served_of,
};
use edgeflags_engine::{Evaluation, Snapshot};

use crate::context::RequestContext;
use crate::platform;

/// Logs the exposures of one request: every evaluated flag whose `exposure_sample`
/// selects this user.
pub fn exposures(snapshot: &Snapshot, version: &str, rc: &RequestContext, evals: &[Evaluation]) {
    let logged = sampled_exposures(snapshot, &rc.ctx, evals);
    if logged.is_empty() {
        return;
    }
    let user = rc.hashed_user();
    let at = Origin::of(&rc.ctx, rc.now, version, user.as_deref());
    for e in logged {
        platform::log_event(&Event::exposure(snapshot, e, at).to_line());
    }
}

/// Logs a conversion with the variants the user is served now (recomputed by the
/// engine, never taken from the client).
pub fn conversion(
    snapshot: &Snapshot,
    version: &str,
    rc: &RequestContext,
    event: &str,
    value: Option<f64>,
) {
    let variants = served(snapshot, &rc.ctx, rc.now);
    let user = rc.hashed_user();
    let at = Origin::of(&rc.ctx, rc.now, version, user.as_deref());
    platform::log_event(&Event::conversion(event, value, variants, at).to_line());
}

/// Logs an origin failure of a page request with the variants it was decided with
/// (`evals`, the request's evaluations), so errors can be counted per variant.
pub fn origin_error(
    snapshot: &Snapshot,
    version: &str,
    rc: &RequestContext,
    evals: &[Evaluation],
    failure: OriginFailure,
) {
    let variants = served_of(snapshot, evals);
    let user = rc.hashed_user();
    let at = Origin::of(&rc.ctx, rc.now, version, user.as_deref());
    platform::log_event(&Event::origin_error(failure, variants, at).to_line());
}
