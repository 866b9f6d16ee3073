//! What the edge tells the origin about a request: the decisions, the trusted attributes
//! (geo, zone, device, language), and which decisions shape content (the cache key's
//! input). Every value goes through [`crate::header_value::encode`]; a header whose value
//! cannot be encoded is left out. Traits and custom attributes stay in the context: they
//! are never written to a header.

use crate::attributes::PLATFORM;
use crate::context::{AttrValue, Context};
use crate::eval::Evaluation;
use crate::header_value;
use crate::model::Snapshot;

/// The prefix of every header the edge writes for the origin (a client's are removed).
pub const HEADER_PREFIX: &str = "edgeflags-";
/// The decisions header: `flag=variant; flag=variant`.
pub const DECISIONS_HEADER: &str = "edgeflags-decisions";
/// The attributes the origin gets, each as `edgeflags-NAME`.
pub const FORWARDED: [&str; 7] = [
    PLATFORM[0],
    PLATFORM[1],
    PLATFORM[2],
    PLATFORM[3],
    PLATFORM[4],
    PLATFORM[5],
    "language",
];

/// Whether a client header of this name is the edge's to set (and so removed first).
pub fn reserved(name: &str) -> bool {
    name.len() >= HEADER_PREFIX.len()
        && name.as_bytes()[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX.as_bytes())
}

/// The headers for the origin, and the content decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// `(name, encoded value)`, the decisions first.
    pub headers: Vec<(String, String)>,
    /// The decisions of the flags marked `"content": true` (the cache key's input), as
    /// written in the decisions header.
    pub content: String,
}

/// What the edge tells the origin for `ctx`, given its evaluations.
pub fn forwarded(snapshot: &Snapshot, ctx: &Context, evals: &[Evaluation]) -> Forwarded {
    let mut decisions = String::new();
    let mut content = String::new();
    for e in evals {
        let Some(v) = e.variant else { continue };
        let is_content = snapshot.flag(e.key).is_some_and(|f| f.metadata().content);
        for out in [Some(&mut decisions), is_content.then_some(&mut content)]
            .into_iter()
            .flatten()
        {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(e.key);
            out.push('=');
            out.push_str(v);
        }
    }
    let mut out = Forwarded {
        headers: Vec::new(),
        content,
    };
    out.push(DECISIONS_HEADER.to_string(), &decisions);
    for name in FORWARDED {
        if let Some(AttrValue::Str(v)) = ctx.get(name) {
            out.push(format!("{HEADER_PREFIX}{name}"), v);
        }
    }
    out
}

impl Forwarded {
    fn push(&mut self, name: String, value: &str) {
        if let Some(v) = header_value::encode(value) {
            self.headers.push((name, v.into_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    #[test]
    fn every_forwarded_value_is_a_valid_header_value() {
        let snapshot = crate::compile_str(include_str!("../../../config-store/flags.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        // Values from each source: preview claims (control characters), geolocation
        // (letters outside ASCII), device, traits and custom attributes.
        let mut ctx = Context::with_key("u1");
        ctx.set("country", "JP");
        ctx.set("region", "1\u{0}3");
        ctx.set("city", "To\r\nkyo");
        ctx.set("continent", "A\rS");
        ctx.set("device", "mo\nbile");
        ctx.set("language", "ja");
        ctx.set("timezone", "Asia/Tokyo");
        ctx.set("traits.watch_genre", "an\nime");
        ctx.set("plan", "p\r\nro");
        let evals: Vec<_> = snapshot.evaluate_all(&ctx, now).collect();
        let f = forwarded(&snapshot, &ctx, &evals);
        let get = |n: &str| {
            f.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("edgeflags-city"), Some("To%0D%0Akyo"));
        assert_eq!(get("edgeflags-region"), Some("1%003"));
        assert_eq!(get("edgeflags-continent"), Some("A%0DS"));
        assert_eq!(get("edgeflags-device"), Some("mo%0Abile"));
        assert_eq!(get("edgeflags-language"), Some("ja"));
        assert!(get(DECISIONS_HEADER).is_some_and(|d| d.contains("locale=ja")));
        assert!(f.content.contains("locale=ja"), "{}", f.content);
        // Traits and custom attributes never become headers.
        let names: Vec<&str> = f.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "edgeflags-decisions",
                "edgeflags-country",
                "edgeflags-region",
                "edgeflags-city",
                "edgeflags-continent",
                "edgeflags-timezone",
                "edgeflags-device",
                "edgeflags-language"
            ]
        );
        for (name, value) in &f.headers {
            assert!(reserved(name));
            assert!(
                header_value::is_valid(value.as_bytes()),
                "{name}: {value:?}"
            );
        }
        // Geolocation: a city with letters outside ASCII.
        let zurich = Context::with_key("u2").with("city", "Zürich");
        let evals: Vec<_> = snapshot.evaluate_all(&zurich, now).collect();
        let f = forwarded(&snapshot, &zurich, &evals);
        assert!(
            f.headers
                .contains(&("edgeflags-city".into(), "Z%C3%BCrich".into()))
        );
    }

    #[test]
    fn reserved_names_are_the_edges_prefix_in_any_case() {
        for n in ["edgeflags-user", "EdgeFlags-Decisions", "edgeflags-"] {
            assert!(reserved(n), "{n}");
        }
        for n in ["edgeflags", "x-edgeflags-user", "cookie", ""] {
            assert!(!reserved(n), "{n}");
        }
    }
}
