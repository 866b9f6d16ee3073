//! The request as the engine sees it: who it speaks for (the engine's identity rules: a
//! server's named user, the origin's signed identity cookie, the id cookie, else a new
//! anonymous id), where the client is, what device it uses, its language and the current
//! instant.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use edgeflags_engine::identity::{self, Identity, Presented};
use edgeflags_engine::place::{self, Source};
use edgeflags_engine::{Context, Zone, attributes, preview};
use fastly::Request;

use crate::config::Loaded;
use crate::geo;

pub use edgeflags_engine::identity::{ID_COOKIE, USER_HEADER};

/// The header, cookie or query parameter that carries a preview token.
pub const PREVIEW_HEADER: &str = "edgeflags-preview";
const PREVIEW_COOKIE: &str = edgeflags_engine::target::PREVIEW_PARAM;

/// The engine's view of one request.
pub struct RequestContext {
    pub ctx: Context,
    pub now: DateTime<Utc>,
    /// A freshly minted id, to be set as a cookie on the response.
    pub new_id: Option<String>,
    /// Whether a valid preview token shaped this context.
    pub preview: bool,
    /// Who the request speaks for, and whether that is verified.
    pub identity: Identity,
    /// Where the traits came from.
    pub traits: crate::traits::Report,
    /// The user key and its keyed hash, once computed (profiles and events both need it).
    hashed: std::cell::OnceCell<(String, Option<String>)>,
}

impl RequestContext {
    /// The user as profiles and events name them: HMAC-SHA256 of the user key with the
    /// `user_hash_key` secret, or `None` without a key or a user. Computed once per
    /// request for the user it was asked for.
    pub fn hashed_user(&self) -> Option<String> {
        let user = self.ctx.key()?;
        let compute = || {
            let key = crate::config::secret("user_hash_key")?;
            Some(edgeflags_engine::traits::user_hash(&key, user))
        };
        let (for_user, hash) = self.hashed.get_or_init(|| (user.to_string(), compute()));
        if for_user == user {
            hash.clone()
        } else {
            compute()
        }
    }
}

/// Builds the context of a client request, traits included. `server`: whether the caller
/// presented the endpoint's server token, so that the user `edgeflags-user` names is
/// believed.
pub fn from_request(req: &Request, loaded: &Loaded, server: bool) -> RequestContext {
    let mut rc = without_traits(req, loaded, server, header(req, USER_HEADER));
    if let Some(snapshot) = loaded.snapshot.as_deref() {
        crate::traits::apply(&mut rc, req, snapshot);
    }
    rc
}

/// Builds the context of a client request without reading traits (the caller reads them
/// once it knows whose they are). `named` is the user the caller names, believed only
/// when `server` (the caller presented the endpoint's server token).
pub fn without_traits(
    req: &Request,
    loaded: &Loaded,
    server: bool,
    named: Option<&str>,
) -> RequestContext {
    let now = now();
    let signed = cookie(req, identity::SIGNED_ID_COOKIE);
    // The traits key signs identity cookies; read only when there is one to check.
    let key = signed.and_then(|_| crate::config::secret("traits_key"));
    let identity = identity::decide(
        &Presented {
            named,
            server,
            signed,
            cookie: cookie(req, ID_COOKIE),
        },
        key.as_deref(),
        now.timestamp(),
    );
    for why in &identity.ignored {
        crate::response::log_ops("identity", why);
    }
    let (key, new_id) = match &identity.key {
        Some(k) => (k.clone(), None),
        None => {
            let id = new_anonymous_id();
            (id.clone(), Some(id))
        }
    };
    let mut ctx = Context::with_key(&key);
    let mut place = req
        .get_client_ip_addr()
        .and_then(geo::lookup)
        .unwrap_or_default();
    set_place(&mut ctx, &place);
    let ua = header(req, "user-agent").unwrap_or("");
    let ua = if ua.len() > 1024 { "" } else { ua };
    ctx.set("device", device_class(ua));
    if let Some(lang) = header(req, "accept-language")
        .filter(|h| h.len() <= 512)
        .and_then(attributes::language_from_accept_language)
    {
        ctx.set("language", lang);
    }
    if let Some(snapshot) = loaded.snapshot.as_deref() {
        set_custom(&mut ctx, req, snapshot.request_context());
    }
    let mut rc = RequestContext {
        ctx,
        now,
        new_id,
        preview: false,
        identity,
        traits: crate::traits::Report::default(),
        hashed: std::cell::OnceCell::new(),
    };
    let mut token_zone = false;
    if let Some(token) = preview_token(req) {
        token_zone = apply_preview(&mut rc, &token, &mut place);
    }
    // The zone is resolved last, at the request's instant (a token's `at` included).
    if !token_zone {
        set_zone(&mut rc.ctx, &place, rc.now);
    }
    rc
}

/// The longest custom attribute value taken from a request.
const MAX_CUSTOM: usize = 256;

/// Sets the custom attributes the flag file allows from headers, cookies and query
/// parameters. Oversized values, and values with control characters, are ignored.
fn set_custom(ctx: &mut Context, req: &Request, allowed: &edgeflags_engine::ContextSettings) {
    let ok = |v: &str| v.len() <= MAX_CUSTOM && !v.chars().any(char::is_control);
    for (name, attr) in &allowed.headers {
        if let Some(v) = header(req, name.as_str()).filter(|v| ok(v)) {
            ctx.set(attr, v.trim());
        }
    }
    for (name, attr) in &allowed.cookies {
        if let Some(v) = cookie(req, name).filter(|v| ok(v)) {
            ctx.set(attr, v);
        }
    }
    if !allowed.query.is_empty() && req.get_query_str().is_some_and(|q| q.len() <= 4096) {
        for (param, attr) in &allowed.query {
            if let Some(v) = req.get_query_parameter(param).filter(|v| ok(v)) {
                ctx.set(attr, v);
            }
        }
    }
}

/// The preview token of a request: the header, else the cookie, else the query parameter.
fn preview_token(req: &Request) -> Option<String> {
    header(req, PREVIEW_HEADER)
        .map(str::to_string)
        .or_else(|| cookie(req, PREVIEW_COOKIE).map(str::to_string))
        .or_else(|| req.get_query_parameter(PREVIEW_COOKIE).map(str::to_string))
}

/// Applies a valid token's geo, clock and variants; logs why an invalid one is ignored.
/// A token that names a country replaces the client's place (its zone is then resolved
/// from the token's place, as for a client); one that names a zone sets it, and then
/// this returns true.
fn apply_preview(rc: &mut RequestContext, token: &str, place: &mut geo::Place) -> bool {
    let key = crate::config::secret("preview_key");
    let now_secs = rc.now.timestamp();
    let claims = match preview::verify(token, key.as_deref(), now_secs) {
        Ok(c) => c,
        Err(e) => {
            crate::response::log_ops("preview", &format!("preview token ignored: {e}"));
            return false;
        }
    };
    if claims.country.is_some() {
        for name in ["country", "region", "city", "continent", "timezone"] {
            rc.ctx.remove(name);
        }
        *place = geo::Place {
            country: claims.country.clone(),
            region: claims.region.clone(),
            city: claims.city.clone(),
            continent: claims.continent.clone().or_else(|| {
                claims
                    .country
                    .as_deref()
                    .and_then(attributes::continent_for)
                    .map(str::to_string)
            }),
            ..geo::Place::default()
        };
    }
    set_place(&mut rc.ctx, place);
    let zone = claims.zone.as_deref().and_then(Zone::parse);
    if let Some(z) = zone {
        rc.ctx.set_zone_from(z, Source::Token);
    }
    if let Some(d) = &claims.device {
        rc.ctx.set("device", d.as_str());
    }
    if let Some(at) = claims
        .at
        .as_deref()
        .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
    {
        rc.now = at.with_timezone(&Utc);
    }
    for (flag, variant) in &claims.variants {
        rc.ctx.force(flag, variant);
    }
    rc.preview = true;
    zone.is_some()
}

/// A header's value, when it is UTF-8. (The fastly crate's `get_header_str` panics on a
/// value that is not, and a client chooses the bytes.)
pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.get_header(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Every value of a header that is UTF-8.
pub fn headers<'r>(req: &'r Request, name: &str) -> impl Iterator<Item = &'r str> {
    req.get_header_all(name)
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// A cookie's value (the first 16 `Cookie` headers, 64 cookies each, are searched).
pub fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    edgeflags_engine::cookie::find(headers(req, "cookie"), name)
}

/// Sets the geo attributes (country, region, city, continent) of a place.
pub fn set_place(ctx: &mut Context, place: &geo::Place) {
    let fields = [
        ("country", &place.country),
        ("region", &place.region),
        ("city", &place.city),
        ("continent", &place.continent),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            ctx.set(name, v.as_str());
        }
    }
}

/// Sets the time zone of a place at `now`: the IANA zone the engine resolves from the
/// whole record (so daylight saving time and half-hour shifts are right), else the
/// record's fixed offset, which is logged with the reason.
pub fn set_zone(ctx: &mut Context, place: &geo::Place, now: DateTime<Utc>) {
    let Some(resolved) = place::resolve(&place.record(), now) else {
        return;
    };
    if let Some(why) = resolved.fallback {
        crate::response::log_ops(
            "geo",
            &format!(
                "time zone: fixed offset {} for country {:?} region {:?} city {:?} offset {:?}: {why}",
                resolved.zone.name(),
                place.country.as_deref().unwrap_or("-"),
                place.region.as_deref().unwrap_or("-"),
                place.city.as_deref().unwrap_or("-"),
                place.utc_offset,
            ),
        );
    }
    ctx.set_resolved_zone(&resolved);
}

/// Re-resolves the zone from the context's own `country`, `region` and `city` (a body
/// that names a place but no zone: an explain POST, a server-side OFREP call), unless
/// the context names its zone itself.
pub fn zone_from_attributes(ctx: &mut Context, now: DateTime<Utc>) {
    if ctx.zone_source() == Some(Source::Given) {
        return;
    }
    let text = |name: &str| match ctx.get(name) {
        Some(edgeflags_engine::AttrValue::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let place = geo::Place {
        country: text("country"),
        region: text("region"),
        city: text("city"),
        ..geo::Place::default()
    };
    ctx.remove("timezone");
    set_zone(ctx, &place, now);
}

fn device_class(ua: &str) -> &'static str {
    if let Some(d) = fastly::device_detection::lookup(ua) {
        let yes = |b: Option<bool>| b.unwrap_or(false);
        if yes(d.is_bot()) {
            return "bot";
        }
        if yes(d.is_smarttv()) || yes(d.is_tvplayer()) {
            return "tv";
        }
        if yes(d.is_tablet()) {
            return "tablet";
        }
        if yes(d.is_mobile()) {
            return "mobile";
        }
        if yes(d.is_desktop()) {
            return "desktop";
        }
    }
    attributes::device_class_from_user_agent(ua)
}

/// 128 random bits as 32 hex digits (from WASI's random source).
fn new_anonymous_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness, fall back to the clock: unique enough, and never a panic.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    edgeflags_engine::digest::hex(&bytes)
}

fn now() -> DateTime<Utc> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
