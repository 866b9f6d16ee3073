//! Behaviour traits: what the company's own systems know about a user (`watch_genre`,
//! `buyer`, `plan`, `language_pref`), reaching the edge from two places.
//!
//! - **Profiles** in a KV store, one per user, keyed by [`user_hash`] (a keyed hash of the
//!   user key, never the raw key): `{"traits": {...}, "expires": SECONDS}`.
//! - **A signed traits cookie** that an origin sets: a token sealed like a preview token
//!   ([`crate::preview::seal`]) over `{"sub": USER, "exp": SECONDS, "traits": {...}}`,
//!   valid only for the user it names.
//!
//! Rules test a trait as the attribute `traits.NAME`. The cookie, being newer, wins over
//! the profile trait by trait. Anything missing, expired, unsigned or tampered degrades to
//! no traits, with a reason the edge logs and explain shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{AttrValue, Context};
use crate::preview::{self, TokenError};

/// The attribute prefix of a trait: `traits.watch_genre`.
pub use crate::attributes::TRAITS_PREFIX as PREFIX;
/// The most traits one profile or cookie may carry.
pub const MAX_TRAITS: usize = 64;
/// The longest trait name.
pub const MAX_NAME: usize = 64;
/// The longest string value (and list element); lists hold at most 32 elements.
pub const MAX_VALUE: usize = 256;
const MAX_LIST: usize = 32;
/// The largest profile value read from the store, in bytes.
pub const MAX_PROFILE_BYTES: usize = 16 * 1024;

/// The user as profiles and events name them: HMAC-SHA256 of the user key with the
/// `user_hash_key` secret, the first 16 bytes in hex (32 characters).
pub fn user_hash(key: &[u8], user: &str) -> String {
    crate::digest::hex(&crate::digest::hmac(key, &[user.as_bytes()])[..16])
}

/// A profile as stored: traits and an optional expiry (seconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Trait name to value.
    pub traits: BTreeMap<String, Value>,
    /// When the profile stops applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// What the traits cookie carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieClaims {
    /// The user key the traits belong to.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Trait name to value.
    pub traits: BTreeMap<String, Value>,
}

/// Why traits were not used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraitsError {
    /// Not JSON of the expected shape.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(i64),
    /// The cookie's signature did not verify, or no key is configured.
    #[error("{0}")]
    Token(TokenError),
    /// The cookie names another user.
    #[error("issued for another user")]
    OtherUser,
}

/// Checked traits: the ones usable as attributes, and the names refused (with why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traits {
    /// `(name, value)`, the name without the prefix.
    pub values: Vec<(String, AttrValue)>,
    /// Traits that were left out, and why.
    pub refused: Vec<(String, &'static str)>,
    /// The expiry the traits came with.
    pub expires: Option<i64>,
}

/// Whether `name` is a valid trait name: 1 to 64 of `a-z`, `0-9`, `_`, starting with a
/// letter.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks one trait value: a string, number, boolean or list of strings, bounded.
pub fn check_value(v: &Value) -> Result<AttrValue, &'static str> {
    match v {
        Value::String(s) if s.len() > MAX_VALUE => Err("string over 256 bytes"),
        Value::String(s) if s.chars().any(char::is_control) => Err("control characters"),
        Value::Array(items) if items.len() > MAX_LIST => Err("list over 32 elements"),
        Value::Array(items)
            if items
                .iter()
                .any(|i| !i.is_string() || i.as_str().is_some_and(|s| s.len() > MAX_VALUE)) =>
        {
            Err("lists hold strings of at most 256 bytes")
        }
        Value::Null | Value::Object(_) => Err("not a string, number, boolean or list"),
        _ => AttrValue::from_json(v).ok_or("not a string, number, boolean or list"),
    }
}

/// Checks a trait map: valid names and values are kept, the rest refused (at most
/// [`MAX_TRAITS`] are kept).
pub fn check(traits: &BTreeMap<String, Value>, expires: Option<i64>) -> Traits {
    let mut out = Traits {
        expires,
        ..Traits::default()
    };
    for (name, v) in traits {
        if !valid_name(name) {
            out.refused.push((name.clone(), "invalid name"));
        } else if out.values.len() >= MAX_TRAITS {
            out.refused.push((name.clone(), "over 64 traits"));
        } else {
            match check_value(v) {
                Ok(a) => out.values.push((name.clone(), a)),
                Err(why) => out.refused.push((name.clone(), why)),
            }
        }
    }
    out
}

/// Reads a stored profile at `now_secs`.
pub fn parse_profile(bytes: &[u8], now_secs: i64) -> Result<Traits, TraitsError> {
    if bytes.len() > MAX_PROFILE_BYTES {
        return Err(TraitsError::Malformed(format!(
            "{} bytes, over {MAX_PROFILE_BYTES}",
            bytes.len()
        )));
    }
    let malformed = |e: serde_json::Error| TraitsError::Malformed(e.to_string());
    // A profile written through Fastly's generated API client arrives JSON-encoded as a
    // string (its upsert sends the body as a JSON value); both forms are read.
    let p: Profile = if bytes.trim_ascii_start().starts_with(b"\"") {
        let inner: String = serde_json::from_slice(bytes).map_err(malformed)?;
        serde_json::from_str(&inner).map_err(malformed)?
    } else {
        serde_json::from_slice(bytes).map_err(malformed)?
    };
    if let Some(exp) = p.expires
        && exp <= now_secs
    {
        return Err(TraitsError::Expired(exp));
    }
    Ok(check(&p.traits, p.expires))
}

/// Seals a traits cookie with `key`.
pub fn mint_cookie(claims: &CookieClaims, key: &[u8]) -> String {
    preview::seal(&serde_json::to_vec(claims).unwrap_or_default(), key)
}

/// Verifies a traits cookie for `user` at `now_secs`: signature (constant time), subject
/// and expiry.
pub fn verify_cookie(
    token: &str,
    key: Option<&[u8]>,
    user: &str,
    now_secs: i64,
) -> Result<Traits, TraitsError> {
    let raw = preview::open(token, key).map_err(TraitsError::Token)?;
    let c: CookieClaims =
        serde_json::from_slice(&raw).map_err(|e| TraitsError::Malformed(e.to_string()))?;
    if c.sub != user {
        return Err(TraitsError::OtherUser);
    }
    if c.exp <= now_secs {
        return Err(TraitsError::Expired(c.exp));
    }
    Ok(check(&c.traits, Some(c.exp)))
}

/// Where a request's traits came from, for explain: whether they were looked for, what
/// happened to the profile and to the cookie, and each trait's value and source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Whether traits were looked for at all (a rule tests one).
    pub wanted: bool,
    /// The profile: `found`, `none`, or why it was not used.
    pub profile: String,
    /// The cookie: `valid`, `none`, or why it was ignored.
    pub cookie: String,
    /// Trait name (without the prefix), value and source (`profile`, `cookie`, or
    /// `request body`), in the order they were set.
    pub sources: Vec<(String, AttrValue, &'static str)>,
}

impl Report {
    /// The traits of a profile (`Ok(None)`: there is none; `Err`: why it is unusable)
    /// and of a cookie (`None`: the request has none), the cookie winning trait by trait
    /// (it is the origin's newer knowledge).
    pub fn gather(
        profile: Result<Option<Traits>, String>,
        cookie: Option<Result<Traits, TraitsError>>,
    ) -> Report {
        let mut report = Report {
            wanted: true,
            profile: "none".into(),
            cookie: "none".into(),
            sources: Vec::new(),
        };
        match profile {
            Ok(Some(t)) => {
                report.profile = refused_note("found", &t);
                report.merge(t, "profile");
            }
            Ok(None) => {}
            Err(why) => report.profile = why,
        }
        match cookie {
            Some(Ok(t)) => {
                report.cookie = refused_note("valid", &t);
                report.merge(t, "cookie");
            }
            Some(Err(e)) => report.cookie = format!("ignored: {e}"),
            None => {}
        }
        report
    }

    /// The report when traits were wanted but the user key is not a verified identity
    /// (`came_from` says where the key came from): nothing is read.
    pub fn unverified(came_from: &str) -> Report {
        let why = format!(
            "not read: the user key is not a verified identity (it came from: {came_from})"
        );
        Report {
            wanted: true,
            profile: why.clone(),
            cookie: why,
            sources: Vec::new(),
        }
    }

    /// The report for a context given whole in a request body: its traits come from it.
    pub fn from_body(ctx: &Context) -> Report {
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

    /// Adds a preview's traits (source `preview`), winning over the profile's and the
    /// cookie's; a name that is not a valid trait name is left out.
    pub fn add_preview(&mut self, traits: &BTreeMap<String, String>) {
        for (name, value) in traits.iter().filter(|(n, _)| valid_name(n)) {
            self.sources.retain(|(n, _, _)| n != name);
            self.sources
                .push((name.clone(), AttrValue::Str(value.clone()), "preview"));
        }
    }

    fn merge(&mut self, t: Traits, source: &'static str) {
        for (name, value) in t.values {
            self.sources.retain(|(n, _, _)| *n != name);
            self.sources.push((name, value, source));
        }
    }

    /// Sets every trait as the attribute `traits.NAME`.
    pub fn apply_to(&self, ctx: &mut Context) {
        for (name, value, _) in &self.sources {
            ctx.set(&format!("{PREFIX}{name}"), value.clone());
        }
    }

    /// The report as JSON (explain's `traits` member).
    pub fn to_json(&self) -> Value {
        let values: serde_json::Map<String, Value> = self
            .sources
            .iter()
            .map(|(name, v, source)| {
                (
                    name.clone(),
                    serde_json::json!({"value": v.to_json(), "source": source}),
                )
            })
            .collect();
        serde_json::json!({
            "looked_up": self.wanted,
            "profile": self.profile,
            "cookie": self.cookie,
            "values": values,
        })
    }
}

/// `status`, with the traits that were left out and why.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn profiles_expire_and_bad_traits_are_refused_one_by_one() {
        let p = br#"{"traits":{"plan":"pro","buyer":true,"score":3,"Bad":"x","genres":["anime","drama"],"deep":{"a":1}},"expires":2000}"#;
        let t = parse_profile(p, 1000).unwrap_or_default();
        let names: Vec<&str> = t.values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["buyer", "genres", "plan", "score"]);
        assert_eq!(
            t.refused,
            [
                ("Bad".to_string(), "invalid name"),
                ("deep".to_string(), "not a string, number, boolean or list")
            ]
        );
        assert_eq!(parse_profile(p, 2000), Err(TraitsError::Expired(2000)));
        let quoted = serde_json::to_vec(&String::from_utf8_lossy(p)).unwrap_or_default();
        assert_eq!(parse_profile(&quoted, 1000), Ok(t));
        assert!(matches!(
            parse_profile(b"{\"traits\":1}", 0),
            Err(TraitsError::Malformed(_))
        ));
        assert!(matches!(
            parse_profile(b"{\"traits\":{},\"owner\":\"x\"}", 0),
            Err(TraitsError::Malformed(_))
        ));
    }

    #[test]
    fn cookies_verify_signature_subject_and_expiry() {
        let claims = CookieClaims {
            sub: "alice".into(),
            exp: 2000,
            traits: map(json!({"buyer": "bargain_hunter"})),
        };
        let c = mint_cookie(&claims, b"k");
        let ok = verify_cookie(&c, Some(b"k"), "alice", 1000).unwrap_or_default();
        assert_eq!(
            ok.values,
            [("buyer".to_string(), AttrValue::from("bargain_hunter"))]
        );
        assert_eq!(
            verify_cookie(&c, Some(b"k"), "bob", 1000),
            Err(TraitsError::OtherUser)
        );
        assert_eq!(
            verify_cookie(&c, Some(b"other"), "alice", 1000),
            Err(TraitsError::Token(TokenError::BadSignature))
        );
        assert_eq!(
            verify_cookie(&c, None, "alice", 1000),
            Err(TraitsError::Token(TokenError::NoKey))
        );
        assert_eq!(
            verify_cookie(&c, Some(b"k"), "alice", 2000),
            Err(TraitsError::Expired(2000))
        );
        // A payload swapped under the old signature is refused.
        let (_, sig) = c.split_once('.').unwrap_or_default();
        let forged = preview::seal(
            &serde_json::to_vec(&CookieClaims {
                traits: map(json!({"buyer": "vip"})),
                ..claims
            })
            .unwrap_or_default(),
            b"k",
        );
        let (body, _) = forged.split_once('.').unwrap_or_default();
        assert_eq!(
            verify_cookie(&format!("{body}.{sig}"), Some(b"k"), "alice", 1000),
            Err(TraitsError::Token(TokenError::BadSignature))
        );
    }

    #[test]
    fn user_hash_is_keyed() {
        let a = user_hash(b"k1", "alice");
        assert_eq!(a.len(), 32);
        assert_eq!(a, user_hash(b"k1", "alice"));
        assert_ne!(a, user_hash(b"k2", "alice"));
        assert_ne!(a, user_hash(b"k1", "bob"));
        assert!(!a.contains("alice"));
    }

    #[test]
    fn the_cookie_wins_trait_by_trait_and_the_report_says_where_each_came_from() {
        let profile = check(
            &map(json!({"plan": "pro", "buyer": "casual", "Bad": 1})),
            None,
        );
        let cookie = check(&map(json!({"buyer": "bargain_hunter"})), Some(99));
        let r = Report::gather(Ok(Some(profile)), Some(Ok(cookie)));
        assert_eq!(r.profile, "found; left out Bad: invalid name");
        assert_eq!(r.cookie, "valid");
        let mut ctx = Context::with_key("u");
        r.apply_to(&mut ctx);
        assert_eq!(ctx.get("traits.buyer"), Some(&"bargain_hunter".into()));
        assert_eq!(ctx.get("traits.plan"), Some(&"pro".into()));
        let doc = r.to_json();
        assert_eq!(doc["values"]["buyer"]["source"], "cookie");
        assert_eq!(doc["values"]["plan"]["source"], "profile");
        assert_eq!(doc["looked_up"], true);
    }

    #[test]
    fn an_unusable_profile_or_cookie_degrades_to_fewer_traits_with_the_reason() {
        let r = Report::gather(
            Err("expired at 5".into()),
            Some(Err(TraitsError::OtherUser)),
        );
        assert_eq!(r.profile, "expired at 5");
        assert_eq!(r.cookie, "ignored: issued for another user");
        assert!(r.sources.is_empty());
        let none = Report::gather(Ok(None), None);
        assert_eq!(
            (none.profile.as_str(), none.cookie.as_str()),
            ("none", "none")
        );
        let u = Report::unverified("the id cookie");
        assert!(u.wanted && u.profile.contains("the id cookie") && u.sources.is_empty());
        let body = Report::from_body(
            &Context::with_key("u")
                .with("traits.plan", "pro")
                .with("country", "JP"),
        );
        assert_eq!(body.sources.len(), 1);
        assert_eq!(body.sources[0].2, "request body");
    }
}
