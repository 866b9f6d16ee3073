//! The console's form (`application/x-www-form-urlencoded`) turned into preview claims:
//! a place from the searchable list, a local date and time in that place's zone, a
//! device, traits and forced variants. Every field is checked; a bad one is a
//! [`FormError`] the console shows, never a panic.
//!
//! A place is written `[CITY, ][REGION, ]COUNTRY[ (ZONE)]`: `Tokyo, JP (Asia/Tokyo)`,
//! `New York, NY, US`, `NSW, AU`, `JP`. With two parts, the first is a region when it is
//! a code of one to three letters and digits in capitals (`NY`, `13`, `IDF`), else a
//! city. The zone in brackets, when given, is the preview's zone; otherwise the edge
//! resolves it from the place as for a visitor.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Offset, TimeZone, Timelike, Utc};

use crate::Snapshot;
use crate::place::{self, Record};
use crate::preview::Claims;
use crate::traits;
use crate::zone::{Tz, Zone};

/// The devices the form offers.
pub const DEVICES: [&str; 5] = ["mobile", "tablet", "desktop", "tv", "bot"];
/// The most traits one preview sets.
pub const MAX_TRAITS: usize = 16;
/// The prefix of a forced variant's field name: `v.checkout`.
pub const VARIANT_FIELD: &str = "v.";

/// What is wrong with a submitted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The place is not `[CITY, ][REGION, ]COUNTRY[ (ZONE)]`.
    #[error("place: {0}")]
    Place(String),
    /// The date and time is not `YYYY-MM-DDTHH:MM`.
    #[error("clock: `{0}` is not a date and time such as 2026-11-28T10:00")]
    Clock(String),
    /// Not one of [`DEVICES`].
    #[error("device: `{0}` is not one of mobile, tablet, desktop, tv, bot")]
    Device(String),
    /// A trait line that is not `name=value` with a valid name and a short value.
    #[error(
        "traits: `{0}` is not name=value (name: a-z, 0-9, _; value up to 256 characters; at most 16)"
    )]
    Trait(String),
    /// A flag or variant the snapshot does not have.
    #[error("variant: flag `{0}` has no variant `{1}`")]
    Variant(String, String),
}

/// A chosen place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceChoice {
    /// Country code, upper case.
    pub country: String,
    /// Region code.
    pub region: Option<String>,
    /// City name.
    pub city: Option<String>,
    /// The zone named in brackets.
    pub zone: Option<String>,
}

impl PlaceChoice {
    /// The place as the list writes it (the form's value for it).
    pub fn label(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(self.city.as_deref());
        parts.extend(self.region.as_deref());
        parts.push(&self.country);
        let mut text = parts.join(", ");
        if let Some(z) = &self.zone {
            text.push_str(&format!(" ({z})"));
        }
        text
    }

    /// The zone of this place at `now`: the one in brackets, else the resolver's.
    pub fn zone_at(&self, now: DateTime<Utc>) -> Option<Zone> {
        if let Some(z) = self.zone.as_deref() {
            return Zone::parse(z);
        }
        let record = Record {
            country: Some(&self.country),
            region: self.region.as_deref(),
            city: self.city.as_deref(),
            ..Record::default()
        };
        place::resolve(&record, now).map(|r| r.zone)
    }
}

fn region_like(part: &str) -> bool {
    (1..=3).contains(&part.len())
        && part
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Parses a place (see the module docs); `Ok(None)` for an empty field.
pub fn parse_place(text: &str) -> Result<Option<PlaceChoice>, FormError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 200 {
        return Err(FormError::Place("too long".into()));
    }
    let (rest, zone) = match text.strip_suffix(')').and_then(|t| t.rsplit_once('(')) {
        Some((rest, zone)) => {
            let zone = zone.trim();
            if Zone::parse(zone).is_none() {
                return Err(FormError::Place(format!("unknown time zone `{zone}`")));
            }
            (rest.trim(), Some(zone.to_string()))
        }
        None => (text, None),
    };
    let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
    let bad = |why: &str| Err(FormError::Place(why.to_string()));
    if parts
        .iter()
        .any(|p| p.is_empty() || p.chars().any(char::is_control))
    {
        return bad("write it as City, Region, Country (country: two letters)");
    }
    let Some((country, before)) = parts.split_last() else {
        return bad("empty");
    };
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return bad("the last part must be a two-letter country code");
    }
    let country = country.to_ascii_uppercase();
    let (city, region) = match before {
        [] => (None, None),
        [one] if region_like(one) => (None, Some(one.to_string())),
        [one] => (Some(one.to_string()), None),
        [city, region] => (Some(city.to_string()), Some(region.to_string())),
        _ => return bad("at most city, region and country"),
    };
    Ok(Some(PlaceChoice {
        country,
        region,
        city,
        zone,
    }))
}

/// The instant at which the wall clock of `zone` shows `local` (the earlier one when the
/// clock shows it twice; in a gap of a change to summer time, one hour later).
pub fn local_instant(local: NaiveDateTime, zone: &Zone) -> Option<DateTime<Utc>> {
    match zone {
        Zone::Named(tz) => named_instant(*tz, local)
            .or_else(|| named_instant(*tz, local + chrono::Duration::hours(1))),
        Zone::Fixed(o) => o
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// The earliest instant at which `tz`'s clock shows `local`, if it ever does: an offset
/// the zone uses within a day of it, that it uses at the instant it gives.
fn named_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let wall = local.and_utc().timestamp();
    let mut found: Option<i64> = None;
    for probe in [wall - 86_400, wall, wall + 86_400] {
        let (offset, _) = tz.offsets(probe);
        let t = wall - i64::from(offset);
        if i64::from(tz.offsets(t).0) == wall - t && found.is_none_or(|f| t < f) {
            found = Some(t);
        }
    }
    found.and_then(|t| DateTime::from_timestamp(t, 0))
}

/// `instant` as RFC 3339 with `zone`'s offset at that instant (what the claims carry).
pub fn in_zone(instant: DateTime<Utc>, zone: &Zone) -> String {
    let offset = match zone {
        Zone::Named(tz) => FixedOffset::east_opt(tz.offset_at(instant)).unwrap_or(Utc.fix()),
        Zone::Fixed(o) => *o,
    };
    instant.with_timezone(&offset).to_rfc3339()
}

/// The wall-clock date and time of `t` to the minute: `2026-11-28 10:00`.
pub fn local_minute<T: Datelike + Timelike>(t: &T) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn parse_local(text: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

/// The fields of a submitted form, by name (the last value of a repeated name wins).
pub fn fields(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Turns the console's form into preview claims expiring at `exp`. `visitor_zone` is
/// the zone the clock is read in when the form names no place; `now` resolves a place's
/// zone.
pub fn claims(
    fields: &BTreeMap<String, String>,
    snapshot: Option<&Snapshot>,
    visitor_zone: Option<&Zone>,
    now: DateTime<Utc>,
    exp: i64,
) -> Result<Claims, FormError> {
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
    let mut c = Claims {
        exp,
        ..Claims::default()
    };
    let place = parse_place(field("place"))?;
    let zone = match &place {
        Some(p) => p.zone_at(now),
        None => visitor_zone.copied(),
    };
    if let Some(p) = place {
        c.country = Some(p.country);
        c.region = p.region;
        c.city = p.city;
        c.zone = p.zone;
    }
    let clock = field("at");
    if !clock.is_empty() {
        let local = parse_local(clock).ok_or_else(|| FormError::Clock(clock.to_string()))?;
        let zone = zone.unwrap_or(Zone::Fixed(Utc.fix()));
        let at = local_instant(local, &zone).ok_or_else(|| FormError::Clock(clock.to_string()))?;
        c.at = Some(in_zone(at, &zone));
    }
    let device = field("device");
    if !device.is_empty() {
        if !DEVICES.contains(&device) {
            return Err(FormError::Device(device.to_string()));
        }
        c.device = Some(device.to_string());
    }
    for line in field("traits")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let parsed = line
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .filter(|(n, v)| traits::valid_name(n) && v.chars().count() <= traits::MAX_VALUE);
        match parsed {
            Some((n, v)) if c.traits.len() < MAX_TRAITS => {
                c.traits.insert(n.to_string(), v.to_string());
            }
            _ => return Err(FormError::Trait(line.chars().take(80).collect())),
        }
    }
    for (name, variant) in fields {
        let (Some(flag), variant) = (name.strip_prefix(VARIANT_FIELD), variant.trim()) else {
            continue;
        };
        if variant.is_empty() {
            continue;
        }
        let known = snapshot.is_some_and(|s| s.variant_names(flag).contains(&variant));
        if !known {
            return Err(FormError::Variant(
                flag.chars().take(64).collect(),
                variant.chars().take(64).collect(),
            ));
        }
        c.variants.insert(flag.to_string(), variant.to_string());
    }
    Ok(c)
}

/// The form's values for claims (to fill the form in again): place, local date and time
/// in the preview's zone (`YYYY-MM-DDTHH:MM`), device, traits (one `name=value` a line).
pub fn values_of(claims: &Claims) -> (String, String, String, String) {
    let place = claims
        .country
        .as_ref()
        .map(|country| {
            PlaceChoice {
                country: country.clone(),
                region: claims.region.clone(),
                city: claims.city.clone(),
                zone: claims.zone.clone(),
            }
            .label()
        })
        .unwrap_or_default();
    let at = claims
        .at
        .as_deref()
        .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
        .map(|t| local_minute(&t).replacen(' ', "T", 1))
        .unwrap_or_default();
    let traits: Vec<String> = claims
        .traits
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    (
        place,
        at,
        claims.device.clone().unwrap_or_default(),
        traits.join("\n"),
    )
}
