//! Who a request speaks for, and whether the edge may believe it.
//!
//! The **user key** decides splits and targets. A client may choose it: the `ef_uid`
//! cookie the edge mints is an identifier, not a credential, and a browser's OFREP
//! `targetingKey` is whatever the page says. That is how every flag system's client-side
//! key works, and all it can get a visitor is another bucket.
//!
//! A stored profile and signed traits are read only for a **verified identity**, one the
//! client cannot forge:
//!
//! - the subject of the **signed identity cookie** `ef_id` that the origin sets once it
//!   knows who the user is: `base64url(JSON {"sub": USER, "exp": SECONDS})` `.`
//!   `base64url(HMAC-SHA256(traits_key, first part))`, sealed like a traits cookie
//!   ([`crate::preview::seal`]) but told apart from one by its shape (each refuses the
//!   other's members);
//! - the user a **server** names (`edgeflags-user` on pages and explain, `targetingKey` on
//!   OFREP) when it presents the endpoint's server token (`ofrep_token`, or
//!   `explain_token` on explain). Without the token `edgeflags-user` is ignored.
//!
//! The order is: a server's named user, else the signed identity cookie, else the id
//! cookie (unverified), else none (the edge mints a new random id).

use serde::{Deserialize, Serialize};

use crate::preview::{self, TokenError};

/// The cookie that keeps a user's id (minted by the edge, or set by anyone).
pub const ID_COOKIE: &str = "ef_uid";
/// The cookie with the origin's signed statement of who the user is.
pub const SIGNED_ID_COOKIE: &str = "ef_id";
/// The header a server names its user with (honoured only with the server token).
pub const USER_HEADER: &str = "edgeflags-user";
/// The longest user key accepted.
pub const MAX_KEY: usize = 128;

/// A user key is 1 to 128 characters of letters, digits, `-`, `_`, `.`, `:` and `@`.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

/// What the signed identity cookie says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdClaims {
    /// The user key.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// Why a signed identity cookie was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The signature did not verify, the token is malformed, or no key is configured.
    #[error("{0}")]
    Token(TokenError),
    /// Not `{"sub", "exp"}` (a traits cookie is refused here).
    #[error("malformed: {0}")]
    Malformed(String),
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(i64),
    /// The subject is not a valid user key.
    #[error("not a valid user key")]
    BadUser,
}

/// Seals an identity cookie with `key` (the `traits_key`).
pub fn mint(claims: &IdClaims, key: &[u8]) -> String {
    preview::seal(&serde_json::to_vec(claims).unwrap_or_default(), key)
}

/// Verifies an identity cookie at `now_secs` (signature in constant time, shape, expiry)
/// and returns the user it names.
pub fn verify(token: &str, key: Option<&[u8]>, now_secs: i64) -> Result<String, IdentityError> {
    let raw = preview::open(token, key).map_err(IdentityError::Token)?;
    let c: IdClaims =
        serde_json::from_slice(&raw).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    if c.exp <= now_secs {
        return Err(IdentityError::Expired(c.exp));
    }
    if !valid_key(&c.sub) {
        return Err(IdentityError::BadUser);
    }
    Ok(c.sub)
}

/// What a request presents about its user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The user the caller names: `edgeflags-user`, or an authenticated OFREP call's
    /// `targetingKey`.
    pub named: Option<&'a str>,
    /// Whether the caller presented the endpoint's server token.
    pub server: bool,
    /// The signed identity cookie (`ef_id`).
    pub signed: Option<&'a str>,
    /// The id cookie (`ef_uid`).
    pub cookie: Option<&'a str>,
}

/// Where the user key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Named by a caller holding the server token: verified.
    Server,
    /// The origin's signed identity cookie: verified.
    Signed,
    /// The id cookie: anyone can set it.
    Cookie,
    /// Nothing usable: the edge mints a new id.
    None,
}

impl Source {
    /// The name explain shows.
    pub fn name(self) -> &'static str {
        match self {
            Source::Server => "server",
            Source::Signed => "signed cookie",
            Source::Cookie => "id cookie",
            Source::None => "none",
        }
    }
}

/// The user a request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user key, if the request has a usable one.
    pub key: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// What was presented and not believed, with why (for the operator log).
    pub ignored: Vec<String>,
}

impl Identity {
    /// A user named by a caller holding the server token.
    pub fn server(key: &str) -> Identity {
        Identity {
            key: Some(key.to_string()),
            source: Source::Server,
            ignored: Vec::new(),
        }
    }

    /// Whether the key is one the client cannot forge.
    pub fn verified(&self) -> bool {
        matches!(self.source, Source::Server | Source::Signed)
    }

    /// Whether a profile or signed traits of `user` may be read: only for the verified
    /// identity itself.
    pub fn vouches_for(&self, user: &str) -> bool {
        self.verified() && self.key.as_deref() == Some(user)
    }
}

/// Decides who a request speaks for (see the module documentation for the rules).
/// `key` is the `traits_key`, which signs identity cookies.
pub fn decide(p: &Presented, key: Option<&[u8]>, now_secs: i64) -> Identity {
    let mut ignored = Vec::new();
    if let Some(named) = p.named.map(str::trim) {
        match (p.server, valid_key(named)) {
            (true, true) => return Identity::server(named),
            (true, false) => ignored.push("the named user is not a valid user key".to_string()),
            (false, _) => ignored.push(format!(
                "{USER_HEADER} ignored: the caller did not present the server token"
            )),
        }
    }
    if let Some(token) = p.signed {
        match verify(token, key, now_secs) {
            Ok(sub) => {
                return Identity {
                    key: Some(sub),
                    source: Source::Signed,
                    ignored,
                };
            }
            Err(e) => ignored.push(format!("identity cookie ignored: {e}")),
        }
    }
    if let Some(c) = p.cookie.map(str::trim).filter(|c| valid_key(c)) {
        return Identity {
            key: Some(c.to_string()),
            source: Source::Cookie,
            ignored,
        };
    }
    Identity {
        key: None,
        source: Source::None,
        ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::{CookieClaims, mint_cookie};

    const K: &[u8] = b"traits-key";

    fn id(user: &str, exp: i64) -> String {
        mint(
            &IdClaims {
                sub: user.into(),
                exp,
            },
            K,
        )
    }

    #[test]
    fn a_key_the_client_chooses_is_never_verified() {
        let chosen = [
            Presented {
                cookie: Some("alice"),
                ..Presented::default()
            },
            Presented {
                named: Some("alice"),
                ..Presented::default()
            },
            Presented {
                named: Some("alice"),
                cookie: Some("bob"),
                ..Presented::default()
            },
        ];
        for p in chosen {
            let who = decide(&p, Some(K), 1000);
            assert!(!who.verified(), "{p:?}");
            assert!(!who.vouches_for("alice"), "{p:?}");
        }
        // The header without the token is ignored (and said so); the cookie still buckets.
        let who = decide(&chosen[2], Some(K), 1000);
        assert_eq!(who.key.as_deref(), Some("bob"));
        assert_eq!(who.source, Source::Cookie);
        assert!(who.ignored[0].contains("server token"), "{:?}", who.ignored);
        assert_eq!(
            decide(&Presented::default(), Some(K), 1000).source,
            Source::None
        );
    }

    #[test]
    fn a_server_or_a_signed_cookie_verifies_the_user() {
        let p = Presented {
            named: Some(" alice "),
            server: true,
            signed: Some(&id("carol", 2000)),
            cookie: Some("bob"),
        };
        let who = decide(&p, Some(K), 1000);
        assert_eq!(
            (who.key.as_deref(), who.source),
            (Some("alice"), Source::Server)
        );
        assert!(who.vouches_for("alice") && !who.vouches_for("bob"));
        let signed = id("carol", 2000);
        let p = Presented {
            signed: Some(&signed),
            cookie: Some("bob"),
            ..Presented::default()
        };
        let who = decide(&p, Some(K), 1000);
        assert_eq!(
            (who.key.as_deref(), who.source),
            (Some("carol"), Source::Signed)
        );
        assert!(who.vouches_for("carol"));
        // Expired, foreign-key or missing-key cookies fall back to the id cookie.
        for (key, now, why) in [
            (Some(K), 2000, "expired at 2000"),
            (Some(&b"other"[..]), 1000, "bad signature"),
            (None, 1000, "no signing key"),
        ] {
            let who = decide(&p, key, now);
            assert_eq!(
                (who.key.as_deref(), who.source),
                (Some("bob"), Source::Cookie)
            );
            assert!(who.ignored[0].contains(why), "{:?}", who.ignored);
        }
    }

    #[test]
    fn identity_and_traits_cookies_cannot_stand_in_for_each_other() {
        let traits = mint_cookie(
            &CookieClaims {
                sub: "alice".into(),
                exp: 2000,
                traits: Default::default(),
            },
            K,
        );
        assert!(matches!(
            verify(&traits, Some(K), 1000),
            Err(IdentityError::Malformed(_))
        ));
        assert!(crate::traits::verify_cookie(&id("alice", 2000), Some(K), "alice", 1000).is_err());
        // A subject that is not a user key is refused.
        assert_eq!(
            verify(&id("al ice", 2000), Some(K), 1000),
            Err(IdentityError::BadUser)
        );
        assert_eq!(
            verify(&id("alice", 2000), Some(K), 1000).as_deref(),
            Ok("alice")
        );
    }

    #[test]
    fn user_keys_are_bounded() {
        assert!(valid_key("u-42@example.com"));
        assert!(valid_key(&"u".repeat(MAX_KEY)));
        assert!(!valid_key(&"u".repeat(MAX_KEY + 1)));
        assert!(!valid_key(""));
        assert!(!valid_key("a b"));
        assert!(!valid_key("a\nb"));
    }
}
