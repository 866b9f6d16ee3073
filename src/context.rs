//! The request as the engine sees it. The edge reads what only the platform knows (the
//! cookies and headers, the geolocation record of the client address, device detection,
//! the clock, the keys) and the engine decides what it means: who the request speaks for
//! (`edgeflags_engine::identity`), the place and its zone (`attributes::set_place`,
//! `attributes::settle_zone`), what a preview token changes (`preview::apply`).

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use edgeflags_engine::identity::{self, Identity, Presented};
use edgeflags_engine::place::Place;
use edgeflags_engine::{Context, ContextSettings, attributes, preview, target, traits};
use fastly::Request;

use crate::config::Loaded;
use crate::geo;
use crate::platform::{self, Call, cookie, count, header, log_ops, secrets};

/// The header that carries a preview token (also a cookie or query parameter named
/// `ef_preview`).
pub const PREVIEW_HEADER: &str = "edgeflags-preview";
/// The longest User-Agent read for device detection.
const MAX_USER_AGENT: usize = 1024;
/// The longest `Accept-Language` read.
const MAX_ACCEPT_LANGUAGE: usize = 512;
/// The longest custom attribute value taken from a request.
const MAX_CUSTOM: usize = 256;

/// The engine's view of one request.
pub struct RequestContext {
    pub ctx: Context,
    pub now: DateTime<Utc>,
    /// A freshly minted id, to be set as a cookie on the response.
    pub new_id: Option<String>,
    /// Whether a valid preview token shaped this context.
    pub preview: bool,
    /// The valid preview token's claims (the console and the toolbar show them).
    pub claims: Option<preview::Claims>,
    /// Who the request speaks for, and whether that is verified.
    pub identity: Identity,
    /// Where the traits came from.
    pub traits: traits::Report,
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
            let key = platform::secret(secrets::USER_HASH_KEY)?;
            Some(traits::user_hash(&key, user))
        };
        let (for_user, hash) = self.hashed.get_or_init(|| (user.to_string(), compute()));
        if for_user == user {
            hash.clone()
        } else {
            compute()
        }
    }
}

/// Builds the context of a client request without traits (`traits::request_context`
/// adds them; OFREP reads them once it knows whose they are). `named` is the user the
/// caller names, believed only when `server` (the caller presented the endpoint's
/// server token).
pub fn build(req: &Request, loaded: &Loaded, server: bool, named: Option<&str>) -> RequestContext {
    let now = platform::now();
    let signed = cookie(req, identity::SIGNED_ID_COOKIE);
    // The traits key signs identity cookies; read only when there is one to check.
    let key = signed.and_then(|_| platform::secret(secrets::TRAITS_KEY));
    let identity = identity::decide(
        &Presented {
            named,
            server,
            signed,
            cookie: cookie(req, identity::ID_COOKIE),
        },
        key.as_deref(),
        now.timestamp(),
    );
    for why in &identity.ignored {
        log_ops("identity", why);
    }
    let (key, new_id) = match &identity.key {
        Some(k) => (k.clone(), None),
        None => {
            let id = platform::random_id();
            (id.clone(), Some(id))
        }
    };
    let mut ctx = Context::with_key(&key);
    count(Call::Meta, 1);
    let mut place = req
        .get_client_ip_addr()
        .and_then(geo::lookup)
        .unwrap_or_default();
    attributes::set_place(&mut ctx, &place);
    let ua = header(req, "user-agent")
        .filter(|ua| ua.len() <= MAX_USER_AGENT)
        .unwrap_or("");
    ctx.set("device", device_class(ua));
    if let Some(lang) = header(req, "accept-language")
        .filter(|h| h.len() <= MAX_ACCEPT_LANGUAGE)
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
        claims: None,
        identity,
        traits: traits::Report::default(),
        hashed: std::cell::OnceCell::new(),
    };
    let mut zone_given = false;
    if let Some(found) = preview(req) {
        match found.checked {
            Ok(claims) => {
                zone_given = preview::apply(&claims, &mut rc.ctx, &mut place, &mut rc.now);
                rc.preview = true;
                rc.claims = Some(claims);
            }
            Err(e) => log_ops("preview", &format!("preview token ignored: {e}")),
        }
    }
    // The zone is resolved last, at the request's instant (a token's `at` included).
    if !zone_given {
        settle_zone(&mut rc.ctx, &place, rc.now);
    }
    rc
}

/// Sets the custom attributes the flag file allows from headers, cookies and query
/// parameters. Oversized values, and values with control characters, are ignored.
fn set_custom(ctx: &mut Context, req: &Request, allowed: &ContextSettings) {
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

/// A request's preview token and what its check found.
#[derive(Clone)]
pub struct Preview {
    /// The token as the request carries it.
    pub token: String,
    /// Its claims, or why it is ignored.
    pub checked: Result<preview::Claims, preview::TokenError>,
}

thread_local! {
    /// The current request's preview, once read (`None` until then).
    static PREVIEW: RefCell<Option<Option<Preview>>> = const { RefCell::new(None) };
}

/// Forgets the previous request's preview; called as each request starts.
pub fn forget_preview() {
    PREVIEW.with(|p| *p.borrow_mut() = None);
}

/// The request's preview token, checked against the preview key. Read and verified once
/// per request, however many parts of the edge ask (the debug headers, the context, the
/// toolbar).
pub fn preview(req: &Request) -> Option<Preview> {
    if let Some(known) = PREVIEW.with(|p| p.borrow().clone()) {
        return known;
    }
    let found = preview_token(req).map(|token| {
        let key = platform::secret(secrets::PREVIEW_KEY);
        let checked = preview::verify(&token, key.as_deref(), platform::now().timestamp());
        Preview { token, checked }
    });
    PREVIEW.with(|p| *p.borrow_mut() = Some(found.clone()));
    found
}

/// The preview token of a request: the header, else the cookie, else the query parameter.
fn preview_token(req: &Request) -> Option<String> {
    header(req, PREVIEW_HEADER)
        .map(str::to_string)
        .or_else(|| cookie(req, target::PREVIEW_PARAM).map(str::to_string))
        .or_else(|| {
            req.get_query_parameter(target::PREVIEW_PARAM)
                .map(str::to_string)
        })
}

/// Sets the zone of a place at `now` (see `attributes::settle_zone`), logging a fixed
/// offset with the reason.
fn settle_zone(ctx: &mut Context, place: &Place, now: DateTime<Utc>) {
    if let Some(resolved) = attributes::settle_zone(ctx, place, now)
        && let Some(why) = resolved.fallback
    {
        log_fixed_offset(&resolved.zone.name(), ctx, &why.to_string());
    }
}

/// Resolves the zone again from the context's own place attributes (a body that names a
/// place but no zone), logging a fixed offset.
pub fn zone_from_attributes(ctx: &mut Context, now: DateTime<Utc>) {
    if let Some(resolved) = attributes::zone_from_attributes(ctx, now)
        && let Some(why) = resolved.fallback
    {
        log_fixed_offset(&resolved.zone.name(), ctx, &why.to_string());
    }
}

/// Logs that a context's zone is a fixed offset, with the place it was resolved for.
pub fn log_fixed_offset(zone: &str, ctx: &Context, why: &str) {
    let text = |name: &str| match ctx.get(name) {
        Some(edgeflags_engine::AttrValue::Str(s)) => s.clone(),
        _ => "-".into(),
    };
    log_ops(
        "geo",
        &format!(
            "time zone: fixed offset {zone} for country {} region {} city {}: {why}",
            text("country"),
            text("region"),
            text("city"),
        ),
    );
}

/// The device class: Fastly's device detection, else the engine's User-Agent rules.
fn device_class(ua: &str) -> &'static str {
    count(Call::Device, 1);
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
