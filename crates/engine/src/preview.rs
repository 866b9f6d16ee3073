//! Signed preview tokens: a QA person or a test forces the visitor's geo, the clock and
//! variants for one request. A token is `base64url(claims JSON) "." base64url(HMAC-SHA256
//! of the first part)`, with an expiry; bad, unsigned or expired tokens are refused with
//! a reason, and the edge then ignores them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::attributes;
use crate::context::Context;
use crate::digest;
use crate::place::{Place, Source};
use crate::zone::Zone;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN: usize = 4096;

/// What a token may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Country (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Region (ISO 3166-2 subdivision part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Continent code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// Time zone (IANA name or ±HH:MM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Device class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The instant to evaluate at (RFC 3339), instead of the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Variants to force, by flag key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, String>,
    /// Traits to set (`traits.NAME`), winning over the profile's and the cookie's; the
    /// edge adds them after it has read those (`traits::Report::add_preview`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub traits: BTreeMap<String, String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `claims.signature`, not base64url, or not JSON claims.
    #[error("malformed token")]
    Malformed,
    /// No key is configured at the edge, so no token can be trusted.
    #[error("no signing key is configured")]
    NoKey,
    /// The signature does not match (tampered, or signed with another key).
    #[error("bad signature")]
    BadSignature,
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(i64),
}

/// Mints a token for `claims` with `key`.
pub fn mint(claims: &Claims, key: &[u8]) -> String {
    seal(&serde_json::to_vec(claims).unwrap_or_default(), key)
}

/// Signs `payload`: `base64url(payload) "." base64url(HMAC-SHA256(key, first part))`.
/// Preview tokens and traits cookies share this form.
pub fn seal(payload: &[u8], key: &[u8]) -> String {
    let body = B64.encode(payload);
    let sig = B64.encode(digest::hmac(key, &[body.as_bytes()]));
    format!("{body}.{sig}")
}

/// Checks a sealed token's signature in constant time and returns its payload.
pub fn open(token: &str, key: Option<&[u8]>) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed);
    }
    let (body, sig) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    let key = key.ok_or(TokenError::NoKey)?;
    if !digest::hmac_verify(key, &[body.as_bytes()], &sig) {
        return Err(TokenError::BadSignature);
    }
    B64.decode(body).map_err(|_| TokenError::Malformed)
}

/// Checks a token's signature (in constant time) and expiry against `now_secs`.
pub fn verify(token: &str, key: Option<&[u8]>, now_secs: i64) -> Result<Claims, TokenError> {
    let raw = open(token, key)?;
    let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now_secs {
        return Err(TokenError::Expired(claims.exp));
    }
    Ok(claims)
}

/// Applies a valid token's claims to a request's context, its place and its clock. A
/// token that names a country replaces the client's place (the place attributes and the
/// zone are cleared; the continent follows from the country unless the token names it),
/// so the zone is then resolved from the token's place as for a client; one that names a
/// zone sets it (source `token`), and then this returns true: the caller must not resolve
/// the zone from the place. A device, the instant (`at`) and forced variants apply as
/// given; an `at` that is not RFC 3339 is ignored.
pub fn apply(
    claims: &Claims,
    ctx: &mut Context,
    place: &mut Place,
    now: &mut DateTime<Utc>,
) -> bool {
    if claims.country.is_some() {
        for name in ["country", "region", "city", "continent", "timezone"] {
            ctx.remove(name);
        }
        *place = Place {
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
            ..Place::default()
        };
    }
    attributes::set_place(ctx, place);
    let zone = claims.zone.as_deref().and_then(Zone::parse);
    if let Some(z) = zone {
        ctx.set_zone_from(z, Source::Token);
    }
    if let Some(d) = &claims.device {
        ctx.set("device", d.as_str());
    }
    if let Some(at) = claims
        .at
        .as_deref()
        .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
    {
        *now = at.with_timezone(&Utc);
    }
    for (flag, variant) in &claims.variants {
        ctx.force(flag, variant);
    }
    zone.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let claims = Claims {
            exp: 2000,
            country: Some("JP".into()),
            ..Claims::default()
        };
        let t = mint(&claims, b"k");
        assert_eq!(verify(&t, Some(b"k"), 1000), Ok(claims.clone()));
        assert_eq!(
            verify(&t, Some(b"other"), 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&t, Some(b"k"), 2000), Err(TokenError::Expired(2000)));
        assert_eq!(verify(&t, None, 1000), Err(TokenError::NoKey));
        assert_eq!(
            verify("nonsense", Some(b"k"), 1000),
            Err(TokenError::Malformed)
        );
        // Changing the claims breaks the signature.
        let (_, sig) = t.split_once('.').unwrap_or_default();
        let forged_claims = Claims {
            exp: 9999,
            country: Some("FR".into()),
            ..Claims::default()
        };
        let forged = format!(
            "{}.{sig}",
            B64.encode(serde_json::to_vec(&forged_claims).unwrap_or_default())
        );
        assert_eq!(
            verify(&forged, Some(b"k"), 1000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_replaces_the_place_and_sets_the_clock_device_and_variants() {
        let mut ctx = Context::with_key("u1")
            .with("country", "US")
            .with("region", "NY")
            .with("city", "New York");
        let mut place = Place {
            country: Some("US".into()),
            region: Some("NY".into()),
            city: Some("New York".into()),
            latitude: Some(40.7),
            longitude: Some(-74.0),
            utc_offset: Some(-500),
            ..Place::default()
        };
        let mut now = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let claims = Claims {
            exp: 10,
            country: Some("NP".into()),
            device: Some("tv".into()),
            at: Some("2026-11-28T12:00:00+05:45".into()),
            variants: [("checkout".to_string(), "v2".to_string())].into(),
            ..Claims::default()
        };
        assert!(!apply(&claims, &mut ctx, &mut place, &mut now));
        // The client's place is gone, coordinates and offset included; the continent
        // follows from the country.
        assert_eq!(place.country.as_deref(), Some("NP"));
        assert_eq!(place.continent.as_deref(), Some("AS"));
        assert_eq!(
            (place.region.as_deref(), place.latitude, place.utc_offset),
            (None, None, None)
        );
        assert_eq!(ctx.get("region"), None);
        assert_eq!(ctx.get("city"), None);
        assert_eq!(ctx.get("country"), Some(&"NP".into()));
        assert_eq!(ctx.get("device"), Some(&"tv".into()));
        assert_eq!(ctx.forced("checkout"), Some("v2"));
        assert_eq!(now.to_rfc3339(), "2026-11-28T06:15:00+00:00");
        // The zone comes from the place, later: the resolver gives Nepal its zone.
        let resolved = attributes::settle_zone(&mut ctx, &place, now);
        assert_eq!(
            ctx.zone().map(Zone::name).as_deref(),
            Some("Asia/Kathmandu")
        );
        assert!(resolved.is_some_and(|r| r.fallback.is_none()));
    }

    #[test]
    fn a_token_that_names_a_zone_sets_it_and_keeps_the_clients_place() {
        let mut ctx = Context::with_key("u1").with("country", "FR");
        let mut place = Place {
            country: Some("FR".into()),
            ..Place::default()
        };
        let mut now = DateTime::from_timestamp(1_000, 0).unwrap_or_default();
        let claims = Claims {
            exp: 10,
            zone: Some("-09:30".into()),
            at: Some("not an instant".into()),
            ..Claims::default()
        };
        assert!(apply(&claims, &mut ctx, &mut place, &mut now));
        assert_eq!(ctx.get("country"), Some(&"FR".into()));
        assert_eq!(ctx.zone().map(Zone::name).as_deref(), Some("-09:30"));
        assert_eq!(ctx.zone_source(), Some(Source::Token));
        assert_eq!(now.timestamp(), 1_000, "a bad `at` is ignored");
    }
}
