//! Deriving well-known context attributes from what a request carries: the device class
//! from a User-Agent, the language from `Accept-Language`, the continent from a country.
//! (The IANA zone comes from the whole geolocation record: see [`crate::place`].) Pure
//! functions, so the edge app stays thin and these are tested natively.

use chrono::{DateTime, Utc};

use crate::context::{AttrValue, Context};
use crate::place::{self, Place, Resolution, Source};

/// Attributes the edge derives from the platform (geolocation, device detection): a
/// browser's OFREP call cannot override them, and they go to the origin as trusted headers.
pub const PLATFORM: [&str; 6] = [
    "country",
    "region",
    "city",
    "continent",
    "timezone",
    "device",
];

/// The attribute prefix of a behaviour trait (`traits.watch_genre`): reserved for the
/// edge, which fills it from profiles and the signed traits cookie.
pub const TRAITS_PREFIX: &str = "traits.";

/// Whether the edge sets `name` itself: the platform attributes, the user key, the
/// language, the evaluation instant and the traits (`traits.*`, from the profile store
/// or the signed traits cookie). Custom attributes from requests cannot use these.
pub fn set_by_edge(name: &str) -> bool {
    PLATFORM.contains(&name)
        || ["key", "language", "now"].contains(&name)
        || name.starts_with(TRAITS_PREFIX)
}

/// Device classes, as the `device` attribute spells them.
pub const DEVICE_CLASSES: [&str; 5] = ["mobile", "tablet", "desktop", "tv", "bot"];

/// The device class of a User-Agent, by well-known tokens (the fallback when Fastly's
/// device detection does not know the agent).
pub fn device_class_from_user_agent(ua: &str) -> &'static str {
    let l = ua.to_ascii_lowercase();
    let has = |tokens: &[&str]| tokens.iter().any(|t| l.contains(t));
    if l.is_empty()
        || has(&[
            "bot",
            "crawler",
            "spider",
            "slurp",
            "curl/",
            "wget/",
            "python-requests",
            "headless",
        ])
    {
        "bot"
    } else if has(&[
        "smart-tv", "smarttv", "appletv", "googletv", "hbbtv", "roku", "crkey", "tizen", "webos",
        "bravia",
    ]) {
        "tv"
    } else if has(&["ipad", "tablet", "kindle", "silk/", "playbook"])
        || (l.contains("android") && !l.contains("mobile"))
    {
        "tablet"
    } else if has(&[
        "mobi",
        "iphone",
        "ipod",
        "android",
        "windows phone",
        "blackberry",
        "opera mini",
    ]) {
        "mobile"
    } else {
        "desktop"
    }
}

/// The preferred language of an `Accept-Language` header: the primary subtag (lower
/// case, two or three letters) of the entry with the highest q-value, or `None`.
pub fn language_from_accept_language(header: &str) -> Option<String> {
    let mut best: Option<(f32, &str)> = None;
    for entry in header.split(',').take(32) {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        let ok =
            (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
        if ok && q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, primary));
        }
    }
    best.map(|(_, p)| p.to_ascii_lowercase())
}

/// The continent code (AF, AN, AS, EU, NA, OC, SA) of a country, for the common ones.
pub fn continent_for(country: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &[&str])] = &[
        (
            "AF",
            &[
                "DZ", "EG", "ET", "GH", "KE", "MA", "NG", "SN", "TN", "TZ", "UG", "ZA",
            ],
        ),
        (
            "AS",
            &[
                "AE", "BD", "CN", "HK", "ID", "IL", "IN", "IR", "IQ", "JO", "JP", "KR", "KW", "KZ",
                "LB", "LK", "MY", "NP", "PH", "PK", "QA", "SA", "SG", "TH", "TR", "TW", "VN",
            ],
        ),
        (
            "EU",
            &[
                "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR",
                "HR", "HU", "IE", "IS", "IT", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO",
                "RS", "RU", "SE", "SI", "SK", "UA",
            ],
        ),
        (
            "NA",
            &[
                "CA", "CR", "CU", "DO", "GT", "HN", "JM", "MX", "PA", "PR", "SV", "US",
            ],
        ),
        ("OC", &["AU", "FJ", "NZ", "PG"]),
        (
            "SA",
            &["AR", "BO", "BR", "CL", "CO", "EC", "PE", "PY", "UY", "VE"],
        ),
    ];
    let c = country.to_ascii_uppercase();
    TABLE
        .iter()
        .find(|(_, cs)| cs.contains(&c.as_str()))
        .map(|(k, _)| *k)
}

/// Sets the place attributes (`country`, `region`, `city`, `continent`) of a place; the
/// ones it lacks are left as they are.
pub fn set_place(ctx: &mut Context, place: &Place) {
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

/// Sets the time zone of a place at `now`: the IANA zone resolved from the whole record
/// (so daylight saving time and half-hour shifts are right), else the record's fixed
/// offset. Returns the resolution, whose `fallback` says why an offset was fixed (the
/// edge logs it); `None` when the record gives neither a country nor an offset.
pub fn settle_zone(ctx: &mut Context, place: &Place, now: DateTime<Utc>) -> Option<Resolution> {
    let resolved = place::resolve(&place.record(), now)?;
    ctx.set_resolved_zone(&resolved);
    Some(resolved)
}

/// Resolves the zone again from the context's own `country`, `region` and `city` (a body
/// that names a place but no zone: an explain POST, a server-side OFREP call), unless the
/// context names its zone itself.
pub fn zone_from_attributes(ctx: &mut Context, now: DateTime<Utc>) -> Option<Resolution> {
    if ctx.zone_source() == Some(Source::Given) {
        return None;
    }
    let text = |name: &str| match ctx.get(name) {
        Some(AttrValue::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let place = Place {
        country: text("country"),
        region: text("region"),
        city: text("city"),
        ..Place::default()
    };
    ctx.remove("timezone");
    settle_zone(ctx, &place, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_classes() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
        assert_eq!(device_class_from_user_agent(iphone), "mobile");
        assert_eq!(
            device_class_from_user_agent("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)"),
            "tablet"
        );
        assert_eq!(
            device_class_from_user_agent("Mozilla/5.0 (Linux; Android 14; SM-X700) Safari/537.36"),
            "tablet"
        );
        assert_eq!(
            device_class_from_user_agent(
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36"
            ),
            "mobile"
        );
        assert_eq!(
            device_class_from_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120"),
            "desktop"
        );
        assert_eq!(
            device_class_from_user_agent("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0)"),
            "tv"
        );
        assert_eq!(
            device_class_from_user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)"),
            "bot"
        );
        assert_eq!(device_class_from_user_agent("curl/8.5.0"), "bot");
    }

    #[test]
    fn languages() {
        assert_eq!(
            language_from_accept_language("fr-CH, fr;q=0.9, en;q=0.8").as_deref(),
            Some("fr")
        );
        assert_eq!(
            language_from_accept_language("en;q=0.5, ja;q=0.9").as_deref(),
            Some("ja")
        );
        assert_eq!(language_from_accept_language("*").as_deref(), None);
        assert_eq!(
            language_from_accept_language("PT-br").as_deref(),
            Some("pt")
        );
        assert_eq!(language_from_accept_language("").as_deref(), None);
    }

    #[test]
    fn continents() {
        assert_eq!(continent_for("jp"), Some("AS"));
        assert_eq!(continent_for("BR"), Some("SA"));
        assert_eq!(continent_for("ZZ"), None);
    }
}
