//! Whether the edge may keep an origin's response in its shared cache, and for how long
//! (RFC 9111 as Fastly reads it): `s-maxage` before `max-age`, minus the `Age` the
//! response already has. A response that sets a cookie, is `private` or `no-store`, or
//! says nothing of its freshness is not stored: it is fetched again for the next request
//! (an origin that wants one shared copy says `max-age` or `s-maxage`). A leaf: it
//! imports nothing of the engine.

/// What the cache does with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Stored, fresh for this many seconds from now.
    Store {
        /// Seconds of freshness left (the lifetime less the response's age).
        ttl: u64,
        /// The response's age when it arrived, in seconds.
        age: u64,
    },
    /// Not stored, for this reason.
    Pass(&'static str),
}

/// The statuses whose responses may be stored.
const STORABLE_STATUSES: [u16; 7] = [200, 203, 204, 300, 301, 404, 410];

/// The longest lifetime kept, whatever the origin says (one year).
pub const MAX_TTL: u64 = 365 * 24 * 3600;

/// The storage decision for a response of status `status` with these header values
/// (`None` when the response has no such header).
pub fn storage(
    status: u16,
    cache_control: Option<&str>,
    age: Option<&str>,
    set_cookie: bool,
    vary: Option<&str>,
) -> Storage {
    if !STORABLE_STATUSES.contains(&status) {
        return Storage::Pass("status not cacheable");
    }
    if set_cookie {
        return Storage::Pass("sets a cookie");
    }
    if vary.is_some_and(|v| v.split(',').any(|n| n.trim() == "*")) {
        return Storage::Pass("Vary: *");
    }
    let mut max_age = None;
    let mut s_maxage = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = || value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "private" => return Storage::Pass("private"),
            "no-store" => return Storage::Pass("no-store"),
            "no-cache" => return Storage::Pass("no-cache"),
            "max-age" => max_age = max_age.or(Some(seconds())),
            "s-maxage" => s_maxage = s_maxage.or(Some(seconds())),
            _ => {}
        }
    }
    // A malformed lifetime is treated as stale (RFC 9111 4.2.1).
    let lifetime = match (s_maxage, max_age) {
        (Some(s), _) => s.unwrap_or(0),
        (None, Some(m)) => m.unwrap_or(0),
        (None, None) => return Storage::Pass("no max-age or s-maxage"),
    }
    .min(MAX_TTL);
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    match lifetime.checked_sub(age) {
        Some(ttl) if ttl > 0 => Storage::Store { ttl, age },
        _ => Storage::Pass("already stale"),
    }
}

/// How long a page found not storable is remembered as such, in seconds (hit-for-pass;
/// Varnish's built-in VCL keeps its hit-for-miss objects as long). Meanwhile a request
/// for the page (one that agrees with the response on the headers its `Vary` names) goes
/// to the origin at once instead of waiting for another request's fetch to see whether
/// that one can be shared (request collapsing): requests for a page that is never shared
/// do not queue behind each other. Then, for as long again, one request at a time fetches
/// the page to look again: a response that has become storable is stored in the marker's
/// place, else the marker is renewed.
pub const HIT_FOR_PASS_TTL: u64 = 120;

/// What a response that is not stored leaves behind for the requests after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitForPass {
    /// Nothing: a server error is taken as passing trouble, so the next request looks
    /// the page up again, and concurrent ones wait for one fetch at a time, which spares
    /// a failing origin.
    None,
    /// The marker in the shared cache, but no instance skips its lookup on the strength
    /// of it: whether such a response can be stored may depend on who asked (a cookie
    /// set for this visitor, a redirect or a refusal for this request, or anything its
    /// `Vary` names), and a lookup still finds any stored copy kept for other requests.
    Marker,
    /// The marker, and the instance remembers the page and skips its lookups while the
    /// marker lasts: the response says of itself that it is never shared (no lifetime,
    /// `private`, `no-store`, `no-cache`, already stale) and varies on nothing.
    Remembered,
}

/// What a response of `status` that is not stored leaves behind (`set_cookie`: it sets
/// a cookie; `varies`: it has a `Vary` header).
pub fn hit_for_pass(status: u16, set_cookie: bool, varies: bool) -> HitForPass {
    if (500..600).contains(&status) {
        HitForPass::None
    } else if set_cookie || varies || !STORABLE_STATUSES.contains(&status) {
        HitForPass::Marker
    } else {
        HitForPass::Remembered
    }
}

/// How a hit-for-pass marker's metadata begins. A stored response's metadata is a JSON
/// object, so it never begins this way.
const PASS_MARK: &[u8] = b"edgeflags-pass ";

/// The metadata of the cached marker that says a page is not stored, and why.
pub fn pass_mark(why: &str) -> Vec<u8> {
    let mut mark = PASS_MARK.to_vec();
    mark.extend_from_slice(why.as_bytes());
    mark
}

/// The reason a cached object's metadata gives when it is a hit-for-pass marker (`None`
/// for anything else, a stored response's included).
pub fn read_pass_mark(meta: &[u8]) -> Option<&str> {
    std::str::from_utf8(meta.strip_prefix(PASS_MARK)?).ok()
}

/// The header names a `Vary` value lists, lower case, without duplicates, in order.
pub fn vary_names(vary: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in vary.unwrap_or_default().split(',') {
        let n = n.trim().to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(cc: &str) -> Storage {
        storage(200, Some(cc), None, false, None)
    }

    #[test]
    fn lifetimes_come_from_s_maxage_then_max_age_less_the_age() {
        assert_eq!(s("max-age=60"), Storage::Store { ttl: 60, age: 0 });
        assert_eq!(
            s("public, max-age=60, s-maxage=600"),
            Storage::Store { ttl: 600, age: 0 }
        );
        assert_eq!(
            storage(200, Some("max-age=60"), Some("50"), false, None),
            Storage::Store { ttl: 10, age: 50 }
        );
        assert_eq!(
            storage(200, Some("max-age=60"), Some("60"), false, None),
            Storage::Pass("already stale")
        );
        assert_eq!(s("MAX-AGE=\"30\""), Storage::Store { ttl: 30, age: 0 });
        assert_eq!(
            s("max-age=99999999999"),
            Storage::Store {
                ttl: MAX_TTL,
                age: 0
            }
        );
        assert_eq!(s("max-age=soon"), Storage::Pass("already stale"));
    }

    #[test]
    fn private_no_store_cookies_and_silence_are_never_stored() {
        assert_eq!(s("private, max-age=60"), Storage::Pass("private"));
        assert_eq!(s("max-age=60, no-store"), Storage::Pass("no-store"));
        assert_eq!(s("no-cache"), Storage::Pass("no-cache"));
        assert_eq!(
            storage(200, Some("max-age=60"), None, true, None),
            Storage::Pass("sets a cookie")
        );
        assert_eq!(
            storage(200, None, None, false, None),
            Storage::Pass("no max-age or s-maxage")
        );
        assert_eq!(
            storage(500, Some("max-age=60"), None, false, None),
            Storage::Pass("status not cacheable")
        );
        assert_eq!(
            storage(200, Some("max-age=60"), None, false, Some("Accept, *")),
            Storage::Pass("Vary: *")
        );
    }

    #[test]
    fn errors_leave_nothing_and_responses_that_may_depend_on_the_request_no_memory() {
        for status in [500, 502, 503, 504, 599] {
            for (cookie, varies) in [(false, false), (true, false), (false, true)] {
                assert_eq!(hit_for_pass(status, cookie, varies), HitForPass::None);
            }
        }
        for status in [200, 203, 204, 300, 301, 404, 410] {
            let remembered = hit_for_pass(status, false, false);
            assert_eq!(remembered, HitForPass::Remembered, "{status}");
            assert_eq!(hit_for_pass(status, true, false), HitForPass::Marker);
            assert_eq!(hit_for_pass(status, false, true), HitForPass::Marker);
        }
        for status in [201, 206, 302, 303, 307, 400, 401, 403, 429, 499] {
            assert_eq!(hit_for_pass(status, false, false), HitForPass::Marker);
        }
    }

    #[test]
    fn a_pass_mark_gives_its_reason_and_nothing_else_is_one() {
        for why in ["private", "sets a cookie", "no max-age or s-maxage", ""] {
            assert_eq!(read_pass_mark(&pass_mark(why)), Some(why));
        }
        // A stored response's metadata, and anything not the marker, is not one.
        for other in [
            &br#"{"status":200,"headers":[["content-type","text/html"]]}"#[..],
            b"",
            b"edgeflags-pass",
            b"edgeflags-passprivate",
            b"edgeflags-pass \xff",
        ] {
            assert_eq!(read_pass_mark(other), None, "{other:?}");
        }
    }

    #[test]
    fn vary_names_are_lower_case_and_distinct() {
        assert_eq!(
            vary_names(Some("Accept-Language, edgeflags-route ,accept-language")),
            ["accept-language", "edgeflags-route"]
        );
        assert!(vary_names(None).is_empty());
    }
}
