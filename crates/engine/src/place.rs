//! Where a visitor is, and the IANA zone that follows from it: the resolver that picks a
//! zone from a whole geolocation record (country, region, city, coordinates and the
//! record's UTC offset), shared by the edge, the CLI and OFREP.
//!
//! The rules, in order:
//!
//! 1. The candidates are the country's zones (the tz database's `zone.tab`).
//! 2. A city hint that names one zone decides; so does a region (the ISO 3166-2 code, as
//!    Fastly's `region` gives it) whose area keeps one clock. The offset never overrides
//!    them: it may be stale.
//! 3. Otherwise the region's zones (or the country's) are the candidates, and a zone is
//!    *consistent* with the record when the record's offset is the zone's offset at the
//!    instant or any offset the zone uses within a year of it (the offset may be standard
//!    time, or stale: local test data never changes with the seasons). Without an offset
//!    every candidate is consistent.
//! 4. Among the consistent zones the nearest by principal coordinates wins when the record
//!    has coordinates, else the most populous.
//! 5. When no zone of the region is consistent, the country's zones are tried; when none
//!    of them is either, the record's offset is used as a fixed offset, with the reason
//!    (the edge logs it).
//!
//! Fastly's conventions are applied here, so the edge passes its raw values: `utc_offset`
//! is `±HHMM`, with `9999` for an invalid region and `0` for "absent" (0 is also a real
//! offset: it is used as one only when some candidate is consistent with it); latitude and
//! longitude are `999.9` when absent.
//!
//! The tables come from `scripts/gen-zone-tables` (see [`TZDB_RELEASE`]); nothing here is
//! typed by hand.

use std::fmt;

use chrono::{DateTime, Duration, FixedOffset, Utc};

use crate::zone::{Tz, Zone};

mod tables;

pub use tables::TZDB_RELEASE;

/// A geolocation record, with Fastly's raw values (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Record<'a> {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<&'a str>,
    /// ISO 3166-2 subdivision code, the part after the dash (`NSW`, `13`, `IDF`).
    pub region: Option<&'a str>,
    /// City name.
    pub city: Option<&'a str>,
    /// Latitude in degrees (`999.9` is absent).
    pub latitude: Option<f64>,
    /// Longitude in degrees (`999.9` is absent).
    pub longitude: Option<f64>,
    /// UTC offset as `±HHMM` (`-930` is −09:30; `0` is absent, `9999` invalid).
    pub utc_offset: Option<i32>,
}

/// What the edge knows of where a client is, owned: from the geolocation record of the
/// client address, or from a preview token. [`Place::record`] is what the resolver reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Place {
    /// Country code (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Region code (ISO 3166-2 part after the dash).
    pub region: Option<String>,
    /// City name.
    pub city: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// Latitude in degrees, as Fastly reports it.
    pub latitude: Option<f64>,
    /// Longitude in degrees, as Fastly reports it.
    pub longitude: Option<f64>,
    /// UTC offset as `±HHMM`, as Fastly reports it.
    pub utc_offset: Option<i32>,
}

impl Place {
    /// The record as the zone resolver reads it.
    pub fn record(&self) -> Record<'_> {
        Record {
            country: self.country.as_deref(),
            region: self.region.as_deref(),
            city: self.city.as_deref(),
            latitude: self.latitude,
            longitude: self.longitude,
            utc_offset: self.utc_offset,
        }
    }
}

/// How a context's time zone was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A city the tables know to keep another clock than its region.
    City,
    /// The region: its area keeps one clock, or nothing else told its zones apart (then its
    /// most populous zone).
    Region,
    /// The nearest zone, by principal coordinates, of those consistent with the record.
    Coordinates,
    /// The record's offset: the most populous zone consistent with it.
    Offset,
    /// The country: it has one zone, or nothing else was known (its most populous zone).
    Country,
    /// No zone is consistent with the record: its offset, as a fixed offset.
    FixedOffset,
    /// A preview token named the zone.
    Token,
    /// The caller named the zone (a `timezone` attribute, the CLI's `--zone`).
    Given,
}

impl Source {
    /// The name explain and OFREP metadata show: `city`, `region`, `coordinates`,
    /// `offset`, `country`, `fixed offset`, `token` or `given`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::City => "city",
            Source::Region => "region",
            Source::Coordinates => "coordinates",
            Source::Offset => "offset",
            Source::Country => "country",
            Source::FixedOffset => "fixed offset",
            Source::Token => "token",
            Source::Given => "given",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a record got a fixed offset instead of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The record names no country.
    NoCountry,
    /// The tz database lists no zone for the country.
    UnknownCountry,
    /// No zone of the country uses the record's offset within a year of the instant.
    OffsetNotUsed,
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fallback::NoCountry => "the record names no country",
            Fallback::UnknownCountry => "the tz database lists no zone for the country",
            Fallback::OffsetNotUsed => {
                "no zone of the country uses the record's offset within a year"
            }
        })
    }
}

/// A resolved zone and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolution {
    /// The zone.
    pub zone: Zone,
    /// How it was chosen.
    pub source: Source,
    /// Why it is a fixed offset, when it is one.
    pub fallback: Option<Fallback>,
}

impl Resolution {
    fn named(tz: Tz, source: Source) -> Resolution {
        Resolution {
            zone: Zone::Named(tz),
            source,
            fallback: None,
        }
    }
}

/// The zone of `record` at `now`, and how it was chosen; `None` when the record gives
/// neither a country nor an offset.
pub fn resolve(record: &Record, now: DateTime<Utc>) -> Option<Resolution> {
    let offset = record.utc_offset.and_then(offset_seconds);
    let fixed = |why| {
        offset
            .filter(|o| *o != 0)
            .and_then(FixedOffset::east_opt)
            .map(|o| Resolution {
                zone: Zone::Fixed(o),
                source: Source::FixedOffset,
                fallback: Some(why),
            })
    };
    let Some(country) = record.country.and_then(code::<2>) else {
        return fixed(Fallback::NoCountry);
    };
    let Some(zones) = country_zones(&country) else {
        return fixed(Fallback::UnknownCountry);
    };
    let region = record.region.and_then(code::<8>);
    let region_zones = region.as_ref().and_then(|r| region_zones(&country, r));
    if let Some(tz) = record
        .city
        .and_then(|c| city_zone(&country, region.as_ref(), c))
    {
        return Some(Resolution::named(tz, Source::City));
    }
    if let Some([only]) = region_zones {
        return Some(Resolution::named(zone_at(*only), Source::Region));
    }
    let here = coordinates(record);
    let candidates = Candidates { now, here };
    let (set, scope) = match region_zones {
        Some(rz) => (rz, Source::Region),
        None => (zones, Source::Country),
    };
    let found = candidates
        .pick(set, scope, offset)
        .or_else(|| {
            // No zone of the region keeps that offset: the region may be wrong.
            region_zones.and_then(|_| candidates.pick(zones, Source::Country, offset))
        })
        .or_else(|| {
            // Fastly's 0 means "absent" as often as UTC: without a zone that uses it, it
            // is no offset at all.
            (offset == Some(0))
                .then(|| candidates.pick(set, scope, None))
                .flatten()
        });
    found.or_else(|| fixed(Fallback::OffsetNotUsed))
}

/// zone1970.tab's rows as generated: each zone, its principal coordinates (latitude,
/// longitude) and the countries it covers (comma-separated, the first its own).
pub fn zone1970() -> impl Iterator<Item = (Tz, f64, f64, &'static str)> {
    tables::ZONE1970.iter().filter_map(|(i, countries)| {
        let (tz, lat, lon) = tables::ZONES.get(usize::from(*i))?;
        Some((*tz, degrees(*lat), degrees(*lon), *countries))
    })
}

/// The subdivisions the tables know (country, ISO 3166-2 code after the dash): those of
/// countries with more than one clock.
pub fn regions() -> impl Iterator<Item = (&'static str, &'static str)> {
    tables::REGIONS.iter().map(|(c, r, _)| (*c, *r))
}

/// The zones of a country, most populous first.
pub fn country_zones_of(country: &str) -> impl Iterator<Item = Tz> {
    code::<2>(country)
        .and_then(|c| country_zones(&c))
        .unwrap_or(&[])
        .iter()
        .map(|i| zone_at(*i))
}

/// How candidates are chosen at one instant, from one place.
struct Candidates {
    now: DateTime<Utc>,
    here: Option<(f64, f64)>,
}

impl Candidates {
    /// The zone of `set` for the record: the nearest consistent one when the record has
    /// coordinates, else the most populous consistent one.
    fn pick(&self, set: &[u16], scope: Source, offset: Option<i32>) -> Option<Resolution> {
        let ok = |tz: Tz| offset.is_none_or(|o| consistent(tz, o, self.now));
        if let ([_, _, ..], Some(here)) = (set, self.here) {
            let mut by_distance: Vec<(f64, Tz)> = set
                .iter()
                .filter_map(|i| tables::ZONES.get(usize::from(*i)))
                .map(|(tz, lat, lon)| (distance(here, (degrees(*lat), degrees(*lon))), *tz))
                .collect();
            by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
            return by_distance
                .into_iter()
                .map(|(_, tz)| tz)
                .find(|tz| ok(*tz))
                .map(|tz| Resolution::named(tz, Source::Coordinates));
        }
        let source = match (set.len(), offset) {
            (0 | 1, _) | (_, None) => scope,
            (_, Some(_)) => Source::Offset,
        };
        // Without coordinates a zone on the offset now beats one that uses it only at
        // another season (-07:00 in January is Denver, not Los Angeles in summer).
        let zones = || set.iter().map(|i| zone_at(*i));
        offset
            .and_then(|o| zones().find(|tz| offset_at(*tz, self.now) == o))
            .or_else(|| zones().find(|tz| ok(*tz)))
            .map(|tz| Resolution::named(tz, source))
    }
}

/// Whether `tz` uses the offset `seconds` at `now` or within a year of it. A zone more
/// than three hours off at `now` is not (daylight saving time moves clocks by two hours
/// at most); others are sampled weekly over the two years around `now`.
fn consistent(tz: Tz, seconds: i32, now: DateTime<Utc>) -> bool {
    let (total, base) = tz.offsets(now.timestamp());
    if total == seconds {
        return true;
    }
    if (total - seconds).abs() > 3 * 3600 {
        return false;
    }
    if base == seconds {
        return true;
    }
    (1..=53).any(|week| {
        let step = Duration::weeks(week);
        [now.checked_sub_signed(step), now.checked_add_signed(step)]
            .into_iter()
            .flatten()
            .any(|t| offset_at(tz, t) == seconds)
    })
}

/// The zone's UTC offset at `t`, in seconds.
fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_at(t)
}

/// Fastly's `±HHMM` as seconds east of UTC; `None` for 9999 and anything that is not an
/// offset.
fn offset_seconds(raw: i32) -> Option<i32> {
    if raw == 9999 || !(-1400..=1400).contains(&raw) {
        return None;
    }
    let (h, m) = (raw / 100, raw % 100);
    (m.abs() < 60).then_some(h * 3600 + m * 60)
}

/// The record's coordinates, when both are present and on Earth (not Fastly's 999.9, and
/// not 0,0, which is what a record without coordinates often carries).
fn coordinates(record: &Record) -> Option<(f64, f64)> {
    let lat = record
        .latitude
        .filter(|l| l.is_finite() && l.abs() <= 90.0)?;
    let lon = record
        .longitude
        .filter(|l| l.is_finite() && l.abs() <= 180.0)?;
    (lat != 0.0 || lon != 0.0).then_some((lat, lon))
}

/// Seconds of arc (the tables' unit) in degrees.
fn degrees(arcseconds: i32) -> f64 {
    f64::from(arcseconds) / 3600.0
}

/// Great-circle distance in radians (haversine).
fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let (dp, dl) = (p2 - p1, (b.1 - a.1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * h.sqrt().min(1.0).asin()
}

/// An upper-case ASCII code of at most N letters and digits, as a fixed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Code<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Code<N> {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

fn code<const N: usize>(text: &str) -> Option<Code<N>> {
    let t = text.trim();
    if t.is_empty() || t.len() > N || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut bytes = [0u8; N];
    for (slot, b) in bytes.iter_mut().zip(t.bytes()) {
        *slot = b.to_ascii_uppercase();
    }
    Some(Code {
        bytes,
        len: t.len(),
    })
}

fn zone_at(index: u16) -> Tz {
    tables::ZONES
        .get(usize::from(index))
        .map(|z| z.0)
        .unwrap_or(Tz::UTC)
}

fn country_zones(country: &Code<2>) -> Option<&'static [u16]> {
    let c = country.as_str();
    tables::COUNTRIES
        .binary_search_by(|(k, _)| (*k).cmp(c))
        .ok()
        .map(|i| tables::COUNTRIES[i].1)
}

fn region_zones(country: &Code<2>, region: &Code<8>) -> Option<&'static [u16]> {
    let key = (country.as_str(), region.as_str());
    tables::REGIONS
        .binary_search_by(|(c, r, _)| (*c, *r).cmp(&key))
        .ok()
        .map(|i| tables::REGIONS[i].2)
}

/// The folded form of a city name the hints are keyed by: lower-case ASCII letters and
/// digits, everything else dropped (the generator adds a key for accented names both
/// with their accents stripped and dropped). At most 64 bytes are kept.
fn fold(city: &str) -> ([u8; 64], usize) {
    let mut out = [0u8; 64];
    let mut n = 0;
    for b in city.bytes().filter(u8::is_ascii_alphanumeric) {
        if n == out.len() {
            return (out, 0);
        }
        out[n] = b.to_ascii_lowercase();
        n += 1;
    }
    (out, n)
}

/// The zone a city hint names: the entry for the record's region, else the name's entries
/// that need no region, when they agree.
fn city_zone(country: &Code<2>, region: Option<&Code<8>>, city: &str) -> Option<Tz> {
    let (buf, len) = fold(city);
    let key = std::str::from_utf8(&buf[..len])
        .ok()
        .filter(|k| !k.is_empty())?;
    let c = country.as_str();
    let start = tables::CITIES.partition_point(|(cc, _, k, _, _)| (*cc, *k) < (c, key));
    let entries = tables::CITIES[start..]
        .iter()
        .take_while(|(cc, _, k, _, _)| *cc == c && *k == key);
    let (mut anywhere, mut agree) = (None, true);
    for (_, r, _, zone, alone) in entries {
        if region.is_some_and(|reg| reg.as_str() == *r) {
            return Some(zone_at(*zone));
        }
        if *alone {
            agree &= anywhere.is_none_or(|z| z == *zone);
            anywhere = Some(*zone);
        }
    }
    anywhere.filter(|_| agree).map(zone_at)
}

#[cfg(test)]
mod tests;
