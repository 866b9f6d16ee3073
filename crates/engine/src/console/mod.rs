//! The preview console's rules (`/.edgeflags/console`): the signed login link, the
//! session it opens, the cross-site request checks for its forms, the share link, the
//! cookies the edge sets, and (in the submodules) the form a person fills in, the pages
//! and the toolbar. The edge only serves what these functions return.
//!
//! Every token here is sealed like a preview token ([`preview::seal`]) but with a key of
//! its own purpose, derived from the `preview_key` secret
//! (`HMAC-SHA256(preview_key, "edgeflags-console/" PURPOSE)`), so a login link is never a
//! session, a share link never a preview token, and none of them opens another's door.
//!
//! - **Login link**: `/.edgeflags/console/login?t=` a [`Login`] token (`edgeflags
//!   console-link --ttl 8h` mints it). The edge answers with the session cookie and a
//!   small page of the console's own origin that then opens the console: the click comes
//!   from another site (chat, e-mail), and a `SameSite=Strict` cookie is sent only on a
//!   navigation that starts on the site itself.
//! - **Session**: the cookie [`SESSION_COOKIE`], a [`Session`] token naming who logged in
//!   and a random session id, until the login link's expiry at most. Without a valid one
//!   every console path is a 404.
//! - **CSRF**: each form carries [`csrf_token`] of the session id (an HMAC, checked in
//!   constant time) and a POST must come from the console's own origin
//!   ([`same_origin`]).
//! - **Preview**: the form becomes [`preview::Claims`], minted into the existing preview
//!   cookie `ef_preview` (`HttpOnly; Secure; SameSite=Strict`, [`PREVIEW_TTL`]), which
//!   page scripts cannot read.
//! - **Share link**: `/.edgeflags/preview/share?t=` the same claims sealed for sharing;
//!   opening it sets the same preview cookie for whoever opens it.
//! - **Stop**: a POST that clears the preview cookie, carrying [`stop_token`] of the
//!   preview cookie itself, so the toolbar of a shared preview (no console session) can
//!   stop it too.

pub mod csp;
pub mod form;
pub mod html;
pub mod page;

use serde::{Deserialize, Serialize};

use crate::digest;
use crate::preview::{self, Claims, TokenError};

/// The console page.
pub const CONSOLE_PATH: &str = "/.edgeflags/console";
/// Where the login link lands (`?t=TOKEN`).
pub const LOGIN_PATH: &str = "/.edgeflags/console/login";
/// Where the console's form is posted.
pub const PREVIEW_PATH: &str = "/.edgeflags/console/preview";
/// The console's stylesheet.
pub const CSS_PATH: &str = "/.edgeflags/console/console.css";
/// The console's script.
pub const JS_PATH: &str = "/.edgeflags/console/console.js";
/// Where a share link lands (`?t=TOKEN`); no session needed.
pub const SHARE_PATH: &str = "/.edgeflags/preview/share";
/// Where "stop" is posted; no session needed (the preview cookie is the credential).
pub const STOP_PATH: &str = "/.edgeflags/preview/stop";
/// The query parameter of the login and share links.
pub const LINK_PARAM: &str = "t";

/// The console session cookie.
pub const SESSION_COOKIE: &str = "ef_console";
/// The preview cookie (the edge also reads a preview token from it, as before).
pub const PREVIEW_COOKIE: &str = crate::target::PREVIEW_PARAM;
/// How long a preview set from the console lasts, in seconds.
pub const PREVIEW_TTL: i64 = 3600;
/// The longest a login link or session may last, in seconds (7 days).
pub const MAX_SESSION: i64 = 7 * 24 * 3600;

/// A login link's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// Who the link is for (shown on the console; `console` when not named).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// A console session's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who logged in.
    pub sub: String,
    /// A random id for this session (the CSRF token is derived from it).
    pub sid: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// What a token is for: each purpose signs with its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Login links.
    Login,
    /// Session cookies.
    Session,
    /// Share links.
    Share,
    /// CSRF tokens.
    Csrf,
    /// Stop tokens.
    Stop,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Login => b"login",
            Purpose::Session => b"session",
            Purpose::Share => b"share",
            Purpose::Csrf => b"csrf",
            Purpose::Stop => b"stop",
        }
    }
}

/// The key of one purpose, derived from the preview key.
pub fn purpose_key(preview_key: &[u8], purpose: Purpose) -> [u8; 32] {
    digest::hmac(preview_key, &[b"edgeflags-console/", purpose.label()])
}

fn seal_json<T: Serialize>(claims: &T, key: &[u8], purpose: Purpose) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    preview::seal(&payload, &purpose_key(key, purpose))
}

fn open_json<T: for<'de> Deserialize<'de>>(
    token: &str,
    key: Option<&[u8]>,
    purpose: Purpose,
) -> Result<T, TokenError> {
    let key = key.ok_or(TokenError::NoKey)?;
    let raw = preview::open(token, Some(&purpose_key(key, purpose)))?;
    serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)
}

fn live(exp: i64, now: i64) -> Result<(), TokenError> {
    if exp <= now {
        Err(TokenError::Expired(exp))
    } else {
        Ok(())
    }
}

/// Mints a login link's token.
pub fn mint_login(login: &Login, preview_key: &[u8]) -> String {
    seal_json(login, preview_key, Purpose::Login)
}

/// Checks a login link's token: signature, expiry, and a lifetime of at most
/// [`MAX_SESSION`] from `now`.
pub fn verify_login(token: &str, key: Option<&[u8]>, now: i64) -> Result<Login, TokenError> {
    let login: Login = open_json(token, key, Purpose::Login)?;
    live(login.exp, now)?;
    if login.exp > now.saturating_add(MAX_SESSION) || !valid_subject(&login.sub) {
        return Err(TokenError::Malformed);
    }
    Ok(login)
}

/// Whether a login's subject is something the console may show: 1 to 64 printable
/// characters without controls.
pub fn valid_subject(sub: &str) -> bool {
    !sub.is_empty() && sub.chars().count() <= 64 && !sub.chars().any(char::is_control)
}

/// The session a valid login opens: the login's subject and expiry, and `sid` (random,
/// from the edge).
pub fn session_for(login: &Login, sid: &str) -> Session {
    Session {
        sub: login.sub.clone(),
        sid: sid.to_string(),
        exp: login.exp,
    }
}

/// Mints a session cookie's value.
pub fn mint_session(session: &Session, preview_key: &[u8]) -> String {
    seal_json(session, preview_key, Purpose::Session)
}

/// Checks a session cookie's value.
pub fn verify_session(token: &str, key: Option<&[u8]>, now: i64) -> Result<Session, TokenError> {
    let s: Session = open_json(token, key, Purpose::Session)?;
    live(s.exp, now)?;
    Ok(s)
}

/// The CSRF token of a session: 32 hex digits of `HMAC(csrf key, sid)`.
pub fn csrf_token(session: &Session, preview_key: &[u8]) -> String {
    let mac = digest::hmac(
        &purpose_key(preview_key, Purpose::Csrf),
        &[session.sid.as_bytes()],
    );
    digest::hex(mac.get(..16).unwrap_or_default())
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn check_csrf(session: &Session, preview_key: &[u8], given: &str) -> bool {
    digest::constant_time_eq(
        csrf_token(session, preview_key).as_bytes(),
        given.trim().as_bytes(),
    )
}

/// The token that allows stopping a preview: 32 hex digits of `HMAC(stop key, preview
/// cookie)`. Only a page the edge rendered for that cookie carries it.
pub fn stop_token(preview_cookie: &str, preview_key: &[u8]) -> String {
    let mac = digest::hmac(
        &purpose_key(preview_key, Purpose::Stop),
        &[preview_cookie.as_bytes()],
    );
    digest::hex(mac.get(..16).unwrap_or_default())
}

/// Whether `given` is the stop token of `preview_cookie` (constant time).
pub fn check_stop(preview_cookie: &str, preview_key: &[u8], given: &str) -> bool {
    digest::constant_time_eq(
        stop_token(preview_cookie, preview_key).as_bytes(),
        given.trim().as_bytes(),
    )
}

/// Whether a POST comes from the page's own origin, from what the browser says:
/// `Sec-Fetch-Site` when sent (only `same-origin` passes), else `Origin` when sent (its
/// host and port must be the request's `Host`). A request with neither (not a browser)
/// is judged by its token alone.
pub fn same_origin(sec_fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    if let Some(site) = sec_fetch_site {
        return site.trim().eq_ignore_ascii_case("same-origin");
    }
    match origin {
        None => true,
        Some(o) => {
            let authority = o
                .trim()
                .split_once("://")
                .map(|(_, rest)| rest.trim_end_matches('/'));
            match (authority, host) {
                (Some(a), Some(h)) => !a.is_empty() && a.eq_ignore_ascii_case(h.trim()),
                _ => false,
            }
        }
    }
}

/// Mints a share link's token for a preview's claims (it expires with them).
pub fn mint_share(claims: &Claims, preview_key: &[u8]) -> String {
    seal_json(claims, preview_key, Purpose::Share)
}

/// Checks a share link's token and returns the preview's claims.
pub fn verify_share(token: &str, key: Option<&[u8]>, now: i64) -> Result<Claims, TokenError> {
    let claims: Claims = open_json(token, key, Purpose::Share)?;
    live(claims.exp, now)?;
    Ok(claims)
}

/// The path and query of a share link.
pub fn share_path(claims: &Claims, preview_key: &[u8]) -> String {
    format!(
        "{SHARE_PATH}?{LINK_PARAM}={}",
        mint_share(claims, preview_key)
    )
}

/// The path and query of a login link.
pub fn login_path(login: &Login, preview_key: &[u8]) -> String {
    format!(
        "{LOGIN_PATH}?{LINK_PARAM}={}",
        mint_login(login, preview_key)
    )
}

/// A `Set-Cookie` value for one of the console's cookies: `HttpOnly; Secure;
/// SameSite=Strict`, the whole site, for `max_age` seconds (at least 1).
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        max_age.max(1)
    )
}

/// A `Set-Cookie` value that deletes one of the console's cookies.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The `Content-Security-Policy` of every console page: nothing from elsewhere, no
/// inline script or style, forms only to itself, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every console response carries (name, value), besides its content type.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
];

#[cfg(test)]
mod tests;
