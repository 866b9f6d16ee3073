//! Signed preview tokens: a QA person or a test forces the visitor's geo, the clock and
//! variants for one request. A token is `base64url(claims JSON) "." base64url(HMAC-SHA256
//! of the first part)`, with an expiry; bad, unsigned or expired tokens are refused with
//! a reason, and the edge then ignores them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::digest;

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
}
