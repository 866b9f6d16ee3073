//! Credentials: bearer tokens for OFREP and explain, compared in constant time, and the
//! preview token as an alternative credential for explain.

use edgeflags_engine::digest::constant_time_eq;
use fastly::Request;

use crate::platform::{header, secret};

/// What a request proved about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No credentials: a browser, whose context cannot override the edge's knowledge.
    Anonymous,
    /// Presented the configured token: a server speaking for its own end user.
    Authenticated,
    /// Presented credentials that are wrong.
    Refused,
}

/// The bearer token or API key a request carries (`Authorization: Bearer …` or
/// `X-API-Key: …`).
pub fn presented(req: &Request) -> Option<&str> {
    presented_in(req).map(|(_, token)| token)
}

/// The header that carries the presented token, and the token.
fn presented_in(req: &Request) -> Option<(&'static str, &str)> {
    header(req, "authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| ("authorization", t.trim()))
        .or_else(|| header(req, "x-api-key").map(|t| ("x-api-key", t.trim())))
}

/// The header that carried the presented token (to remove it once it has proved the
/// caller: the edge's token is not the origin's business).
pub fn credential_header(req: &Request) -> Option<&'static str> {
    presented_in(req).map(|(name, _)| name)
}

/// Checks a request's credentials against the secret `secret_name`.
pub fn caller(req: &Request, secret_name: &str) -> Caller {
    let Some(given) = presented(req) else {
        return Caller::Anonymous;
    };
    match secret(secret_name) {
        Some(expected) if constant_time_eq(given.as_bytes(), &expected) => Caller::Authenticated,
        _ => Caller::Refused,
    }
}
