//! Deriving well-known context attributes from what a request carries: the device class
//! from a User-Agent, the language from `Accept-Language`, the IANA zone from a country
//! and region. Pure functions, so the edge app stays thin and these are tested natively.

use chrono_tz::Tz;

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

/// Whether the edge sets `name` itself: the platform attributes, the user key, the
/// language, the evaluation instant and the traits (`traits.*`, from the profile store
/// or the signed traits cookie). Custom attributes from requests cannot use these.
pub fn set_by_edge(name: &str) -> bool {
    PLATFORM.contains(&name)
        || ["key", "language", "now"].contains(&name)
        || name.starts_with(crate::traits::PREFIX)
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

/// The IANA zone of a country (ISO 3166-1 alpha-2) and region (the ISO 3166-2 part after
/// the dash), when that is unambiguous; `None` when the country spans several zones and
/// the region does not settle it.
pub fn zone_for(country: &str, region: Option<&str>) -> Option<Tz> {
    let c = country.to_ascii_uppercase();
    let r = region.map(str::to_ascii_uppercase);
    let name: Option<&str> = match c.as_str() {
        "US" => return us_zone(r.as_deref()),
        "BR" => return br_zone(r.as_deref()),
        "AU" => return au_zone(r.as_deref()),
        "CA" => return ca_zone(r.as_deref()),
        "MX" => match r.as_deref() {
            Some("BCN" | "SON" | "CHH" | "SIN" | "NAY" | "BCS" | "ROO") | None => None,
            Some(_) => Some("America/Mexico_City"),
        },
        "RU" | "ID" | "KZ" | "CL" | "AR" | "CD" | "MN" | "PT" | "ES" | "EC" | "NZ" | "UA"
        | "PF" | "KI" | "FM" => match (c.as_str(), r.as_deref()) {
            ("ES", Some("CN")) => None,
            ("ES", _) => Some("Europe/Madrid"),
            ("PT", Some("20" | "30")) => None,
            ("PT", _) => Some("Europe/Lisbon"),
            ("NZ", Some("CIT")) => None,
            ("NZ", _) => Some("Pacific/Auckland"),
            ("AR", _) => Some("America/Argentina/Buenos_Aires"),
            (
                "CL",
                Some(
                    "VS" | "RM" | "BI" | "AR" | "LI" | "ML" | "NB" | "CO" | "AT" | "AP" | "TA"
                    | "AN" | "LL" | "LR" | "AI" | "MA",
                ),
            ) => Some("America/Santiago"),
            ("UA", _) => Some("Europe/Kyiv"),
            ("RU", Some("MOW" | "SPE" | "MOS" | "LEN")) => Some("Europe/Moscow"),
            _ => None,
        },
        _ => single_zone(&c),
    };
    name.and_then(|n| n.parse().ok())
}

fn single_zone(c: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("AE", "Asia/Dubai"),
        ("AT", "Europe/Vienna"),
        ("BE", "Europe/Brussels"),
        ("BG", "Europe/Sofia"),
        ("CH", "Europe/Zurich"),
        ("CN", "Asia/Shanghai"),
        ("CO", "America/Bogota"),
        ("CZ", "Europe/Prague"),
        ("DE", "Europe/Berlin"),
        ("DK", "Europe/Copenhagen"),
        ("EE", "Europe/Tallinn"),
        ("EG", "Africa/Cairo"),
        ("FI", "Europe/Helsinki"),
        ("FR", "Europe/Paris"),
        ("GB", "Europe/London"),
        ("GR", "Europe/Athens"),
        ("HK", "Asia/Hong_Kong"),
        ("HR", "Europe/Zagreb"),
        ("HU", "Europe/Budapest"),
        ("IE", "Europe/Dublin"),
        ("IL", "Asia/Jerusalem"),
        ("IN", "Asia/Kolkata"),
        ("IS", "Atlantic/Reykjavik"),
        ("IT", "Europe/Rome"),
        ("JP", "Asia/Tokyo"),
        ("KE", "Africa/Nairobi"),
        ("KR", "Asia/Seoul"),
        ("LT", "Europe/Vilnius"),
        ("LU", "Europe/Luxembourg"),
        ("LV", "Europe/Riga"),
        ("MY", "Asia/Kuala_Lumpur"),
        ("NG", "Africa/Lagos"),
        ("NL", "Europe/Amsterdam"),
        ("NO", "Europe/Oslo"),
        ("PE", "America/Lima"),
        ("PH", "Asia/Manila"),
        ("PK", "Asia/Karachi"),
        ("PL", "Europe/Warsaw"),
        ("RO", "Europe/Bucharest"),
        ("RS", "Europe/Belgrade"),
        ("SA", "Asia/Riyadh"),
        ("SE", "Europe/Stockholm"),
        ("SG", "Asia/Singapore"),
        ("SI", "Europe/Ljubljana"),
        ("SK", "Europe/Bratislava"),
        ("TH", "Asia/Bangkok"),
        ("TR", "Europe/Istanbul"),
        ("TW", "Asia/Taipei"),
        ("VN", "Asia/Ho_Chi_Minh"),
        ("ZA", "Africa/Johannesburg"),
    ];
    TABLE.iter().find(|(k, _)| *k == c).map(|(_, z)| *z)
}

fn us_zone(r: Option<&str>) -> Option<Tz> {
    let z = match r? {
        "NY" | "NJ" | "PA" | "MA" | "CT" | "RI" | "VT" | "NH" | "ME" | "DE" | "MD" | "DC"
        | "VA" | "WV" | "NC" | "SC" | "GA" | "OH" | "MI" => "America/New_York",
        "IL" | "WI" | "MN" | "IA" | "MO" | "AR" | "LA" | "MS" | "AL" | "OK" => "America/Chicago",
        "CO" | "UT" | "WY" | "MT" | "NM" => "America/Denver",
        "AZ" => "America/Phoenix",
        "CA" | "WA" | "NV" => "America/Los_Angeles",
        "AK" => "America/Anchorage",
        "HI" => "Pacific/Honolulu",
        _ => return None,
    };
    z.parse().ok()
}

fn br_zone(r: Option<&str>) -> Option<Tz> {
    let z = match r? {
        "SP" | "RJ" | "MG" | "ES" | "PR" | "SC" | "RS" | "GO" | "DF" | "BA" | "SE" | "AL"
        | "PE" | "PB" | "RN" | "CE" | "PI" | "MA" | "PA" | "AP" | "TO" => "America/Sao_Paulo",
        "AM" | "RR" | "RO" | "MT" | "MS" => "America/Manaus",
        "AC" => "America/Rio_Branco",
        _ => return None,
    };
    z.parse().ok()
}

fn au_zone(r: Option<&str>) -> Option<Tz> {
    let z = match r? {
        "NSW" | "ACT" => "Australia/Sydney",
        "VIC" => "Australia/Melbourne",
        "QLD" => "Australia/Brisbane",
        "SA" => "Australia/Adelaide",
        "WA" => "Australia/Perth",
        "TAS" => "Australia/Hobart",
        "NT" => "Australia/Darwin",
        _ => return None,
    };
    z.parse().ok()
}

fn ca_zone(r: Option<&str>) -> Option<Tz> {
    let z = match r? {
        "ON" | "QC" => "America/Toronto",
        "BC" => "America/Vancouver",
        "AB" => "America/Edmonton",
        "MB" => "America/Winnipeg",
        "SK" => "America/Regina",
        "NS" | "NB" | "PE" => "America/Halifax",
        "NL" => "America/St_Johns",
        _ => return None,
    };
    z.parse().ok()
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

    #[test]
    fn zones() {
        let name = |c, r| zone_for(c, r).map(|z: Tz| z.name().to_string());
        assert_eq!(name("JP", Some("13")).as_deref(), Some("Asia/Tokyo"));
        assert_eq!(name("US", Some("NY")).as_deref(), Some("America/New_York"));
        assert_eq!(name("US", None), None);
        assert_eq!(name("BR", Some("SP")).as_deref(), Some("America/Sao_Paulo"));
        assert_eq!(name("AU", Some("NSW")).as_deref(), Some("Australia/Sydney"));
        assert_eq!(name("FR", Some("IDF")).as_deref(), Some("Europe/Paris"));
        assert_eq!(name("ES", Some("CN")), None);
    }
}
