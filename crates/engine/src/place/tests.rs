//! Unit tests of the zone resolver: regions that span several zones, records without a
//! region, a city, coordinates or an offset, and the fallbacks.

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A record: country, region, city, coordinates, offset (`±HHMM`).
fn rec<'a>(
    country: &'a str,
    region: Option<&'a str>,
    city: Option<&'a str>,
    here: Option<(f64, f64)>,
    offset: Option<i32>,
) -> Record<'a> {
    Record {
        country: Some(country),
        region,
        city,
        latitude: here.map(|h| h.0),
        longitude: here.map(|h| h.1),
        utc_offset: offset,
    }
}

/// The zone's name and how it was chosen, or "none".
fn zone(record: Record, now: &str) -> (String, &'static str) {
    match resolve(&record, at(now)) {
        Some(r) => (r.zone.name(), r.source.as_str()),
        None => ("none".into(), "none"),
    }
}

const JULY: &str = "2026-07-15T00:00:00Z";
const JANUARY: &str = "2026-01-15T00:00:00Z";
const LORD_HOWE: (f64, f64) = (-31.55, 159.08);
const BROKEN_HILL: (f64, f64) = (-31.95, 141.45);
const SYDNEY: (f64, f64) = (-33.87, 151.21);

fn pair(name: &str, source: &'static str) -> (String, &'static str) {
    (name.to_string(), source)
}

#[test]
fn new_south_wales_spans_three_zones() {
    let nsw = |city, here, offset| rec("AU", Some("NSW"), city, here, offset);
    // By coordinates and offset, whatever the season the offset was recorded in.
    for offset in [1030, 1100] {
        assert_eq!(
            zone(nsw(None, Some(LORD_HOWE), Some(offset)), JULY),
            pair("Australia/Lord_Howe", "coordinates"),
            "{offset}"
        );
    }
    for offset in [930, 1030] {
        assert_eq!(
            zone(nsw(None, Some(BROKEN_HILL), Some(offset)), JANUARY),
            pair("Australia/Broken_Hill", "coordinates"),
            "{offset}"
        );
    }
    assert_eq!(
        zone(nsw(None, Some(SYDNEY), Some(1100)), JANUARY),
        pair("Australia/Sydney", "coordinates")
    );
    // A Sydney-time town near Broken Hill: the offset rules Broken Hill's zone out.
    assert_eq!(
        zone(nsw(None, Some((-34.11, 141.91)), Some(1000)), JULY),
        pair("Australia/Sydney", "coordinates")
    );
    // By city, with nothing else (a preview token), and over a contradicting offset.
    for (city, name) in [
        ("Lord Howe Island", "Australia/Lord_Howe"),
        ("broken hill", "Australia/Broken_Hill"),
    ] {
        assert_eq!(zone(nsw(Some(city), None, None), JULY), pair(name, "city"));
        assert_eq!(
            zone(nsw(Some(city), Some(SYDNEY), Some(1000)), JULY),
            pair(name, "city")
        );
    }
    // No city, no coordinates: the offset alone tells them apart.
    assert_eq!(
        zone(nsw(None, None, Some(930)), JULY),
        pair("Australia/Broken_Hill", "offset")
    );
    assert_eq!(
        zone(nsw(None, None, Some(1030)), JULY),
        pair("Australia/Lord_Howe", "offset")
    );
    // Nothing but the region: its most populous zone.
    assert_eq!(
        zone(nsw(None, None, None), JULY),
        pair("Australia/Sydney", "region")
    );
    assert_eq!(
        zone(nsw(Some("Newcastle"), None, None), JULY),
        pair("Australia/Sydney", "region")
    );
}

#[test]
fn other_regions_that_span_several_zones() {
    let cases = [
        // Punta Arenas keeps -03:00 all year; Magallanes is on its clock.
        (
            rec(
                "CL",
                Some("MA"),
                Some("Punta Arenas"),
                Some((-53.16, -70.91)),
                Some(-300),
            ),
            "America/Punta_Arenas",
            "region",
        ),
        // Easter Island is in Valparaíso.
        (
            rec("CL", Some("VS"), None, Some((-27.15, -109.43)), Some(-600)),
            "Pacific/Easter",
            "coordinates",
        ),
        (
            rec(
                "CL",
                Some("VS"),
                Some("Valparaíso"),
                Some((-33.05, -71.62)),
                Some(-400),
            ),
            "America/Santiago",
            "coordinates",
        ),
        // Labrador: Happy Valley-Goose Bay is on Atlantic time, St. John's is not.
        (
            rec("CA", Some("NL"), None, Some((53.30, -60.33)), Some(-400)),
            "America/Goose_Bay",
            "coordinates",
        ),
        (
            rec("CA", Some("NL"), None, Some((47.56, -52.71)), Some(-330)),
            "America/St_Johns",
            "coordinates",
        ),
        (
            rec("CA", Some("NL"), Some("Happy Valley-Goose Bay"), None, None),
            "America/Goose_Bay",
            "city",
        ),
        // Michigan: Menominee is on Central time, Detroit on Eastern.
        (
            rec("US", Some("MI"), None, Some((45.11, -87.61)), Some(-600)),
            "America/Menominee",
            "coordinates",
        ),
        (
            rec(
                "US",
                Some("MI"),
                Some("Detroit"),
                Some((42.33, -83.05)),
                Some(-500),
            ),
            "America/Detroit",
            "coordinates",
        ),
        // Arizona: the Navajo Nation keeps daylight saving time.
        (
            rec("US", Some("AZ"), None, Some((35.68, -109.05)), Some(-600)),
            "America/Denver",
            "coordinates",
        ),
        (
            rec(
                "US",
                Some("AZ"),
                Some("Phoenix"),
                Some((33.45, -112.07)),
                Some(-700),
            ),
            "America/Phoenix",
            "coordinates",
        ),
        (
            rec("US", Some("AZ"), Some("Window Rock"), None, None),
            "America/Denver",
            "city",
        ),
        // Pernambuco: Fernando de Noronha is an hour ahead of Recife.
        (
            rec("BR", Some("PE"), None, Some((-3.85, -32.42)), Some(-200)),
            "America/Noronha",
            "coordinates",
        ),
        (
            rec("BR", Some("PE"), None, Some((-8.05, -34.88)), Some(-300)),
            "America/Recife",
            "coordinates",
        ),
        // Chihuahua: Ciudad Juárez is on US Mountain time, the city of Chihuahua is not.
        (
            rec("MX", Some("CHH"), Some("Ciudad Juárez"), None, None),
            "America/Ciudad_Juarez",
            "city",
        ),
        (
            rec("MX", None, Some("ciudad juarez"), None, None),
            "America/Ciudad_Juarez",
            "city",
        ),
    ];
    for (record, name, source) in cases {
        assert_eq!(zone(record, JULY), pair(name, source), "{record:?}");
    }
}

#[test]
fn a_region_with_one_clock_decides_over_the_offset() {
    assert_eq!(
        zone(rec("US", Some("NY"), None, None, Some(-800)), JULY),
        pair("America/New_York", "region")
    );
    assert_eq!(
        zone(
            rec("US", Some("ny"), None, Some((34.05, -118.24)), None),
            JULY
        ),
        pair("America/New_York", "region")
    );
}

#[test]
fn records_without_a_region() {
    // Chicago, by coordinates and offset; without coordinates, the most populous zone
    // that uses the offset; with neither, the country's most populous zone.
    assert_eq!(
        zone(
            rec(
                "US",
                None,
                Some("Chicago"),
                Some((41.88, -87.63)),
                Some(-600)
            ),
            JULY
        ),
        pair("America/Chicago", "coordinates")
    );
    assert_eq!(
        zone(rec("US", None, None, None, Some(-600)), JANUARY),
        pair("America/Chicago", "offset")
    );
    assert_eq!(
        zone(rec("US", None, None, None, Some(-1000)), JANUARY),
        pair("Pacific/Honolulu", "offset")
    );
    assert_eq!(
        zone(rec("US", None, None, None, None), JANUARY),
        pair("America/New_York", "country")
    );
    // An unknown region code is no region.
    assert_eq!(
        zone(
            rec("AU", Some("XX"), None, Some(LORD_HOWE), Some(1100)),
            JANUARY
        ),
        pair("Australia/Lord_Howe", "coordinates")
    );
}

#[test]
fn single_zone_countries_get_their_zone() {
    for (country, offset, name) in [
        ("NP", Some(545), "Asia/Kathmandu"),
        ("NP", None, "Asia/Kathmandu"),
        ("LK", Some(530), "Asia/Colombo"),
        ("IR", Some(330), "Asia/Tehran"),
        ("AF", None, "Asia/Kabul"),
        ("MM", Some(630), "Asia/Yangon"),
        ("jp", Some(0), "Asia/Tokyo"),
    ] {
        assert_eq!(
            zone(rec(country, None, None, None, offset), JULY),
            pair(name, "country"),
            "{country}"
        );
    }
}

#[test]
fn records_without_an_offset_or_with_fastly_markers() {
    // 9999 (invalid) and 0 (absent) are no offset when no zone uses them.
    for offset in [None, Some(9999), Some(0), Some(12345), Some(-199)] {
        assert_eq!(
            zone(
                rec("AU", Some("NSW"), None, Some(BROKEN_HILL), offset),
                JULY
            ),
            pair("Australia/Broken_Hill", "coordinates"),
            "{offset:?}"
        );
    }
    // 0 is a real offset where a zone uses it: London, not the Canaries' neighbours.
    assert_eq!(
        zone(rec("GB", None, None, None, Some(0)), JANUARY),
        pair("Europe/London", "country")
    );
    // 999.9 (absent) and 0,0 are no coordinates.
    assert_eq!(
        zone(
            rec("AU", Some("NSW"), None, Some((999.9, 999.9)), Some(1030)),
            JULY
        ),
        pair("Australia/Lord_Howe", "offset")
    );
    assert_eq!(
        zone(rec("US", None, None, Some((0.0, 0.0)), Some(-700)), JANUARY),
        pair("America/Denver", "offset")
    );
}

#[test]
fn fixed_offset_when_no_zone_is_consistent() {
    let r = resolve(&rec("NP", None, None, None, Some(500)), at(JULY));
    assert_eq!(
        r.map(|r| (r.zone.name(), r.source, r.fallback)),
        Some((
            "+05:00".to_string(),
            Source::FixedOffset,
            Some(Fallback::OffsetNotUsed)
        ))
    );
    let unknown = resolve(&rec("ZZ", None, None, None, Some(-930)), at(JULY));
    assert_eq!(
        unknown.map(|r| (r.zone.name(), r.fallback)),
        Some(("-09:30".to_string(), Some(Fallback::UnknownCountry)))
    );
    let nowhere = Record {
        utc_offset: Some(-500),
        ..Record::default()
    };
    assert_eq!(
        resolve(&nowhere, at(JULY)).and_then(|r| r.fallback),
        Some(Fallback::NoCountry)
    );
    assert_eq!(resolve(&Record::default(), at(JULY)), None);
    assert_eq!(
        resolve(
            &Record {
                utc_offset: Some(0),
                ..Record::default()
            },
            at(JULY)
        ),
        None
    );
}

#[test]
fn a_stale_offset_is_still_consistent_within_a_year() {
    // Lord Howe's summer offset (+11:00) seen in winter, Sydney's (+11:00) likewise.
    assert!(consistent(Tz::Australia__Lord_Howe, 11 * 3600, at(JULY)));
    assert!(consistent(Tz::Australia__Sydney, 11 * 3600, at(JULY)));
    assert!(!consistent(
        Tz::Australia__Sydney,
        10 * 3600 + 1800,
        at(JULY)
    ));
    assert!(!consistent(Tz::Asia__Kathmandu, 5 * 3600, at(JULY)));
    // Offsets Fastly sends: ±HHMM.
    assert_eq!(offset_seconds(-930), Some(-(9 * 3600 + 30 * 60)));
    assert_eq!(offset_seconds(545), Some(5 * 3600 + 45 * 60));
    assert_eq!(offset_seconds(9999), None);
    assert_eq!(offset_seconds(175), None);
}

#[test]
fn nothing_panics_on_odd_records() {
    let odd = [
        Record {
            country: Some(""),
            region: Some("ÿÿÿÿÿÿÿÿÿÿÿ"),
            city: Some(&"x".repeat(10_000)),
            latitude: Some(f64::NAN),
            longitude: Some(f64::INFINITY),
            utc_offset: Some(i32::MIN),
        },
        rec(
            "ÅÅ",
            Some(""),
            Some(""),
            Some((-90.0, 180.0)),
            Some(i32::MAX),
        ),
        rec(
            "US",
            Some("NY-"),
            Some("🗽"),
            Some((90.0, -180.0)),
            Some(-1400),
        ),
        rec("KI", None, None, Some((1.87, -157.4)), Some(1400)),
    ];
    for r in odd {
        for t in [i64::MIN / 1000, -1, 0, 4_000_000_000, 253_402_300_799] {
            let now = DateTime::from_timestamp(t, 0).unwrap_or_default();
            let _ = resolve(&r, now);
        }
    }
}

#[test]
fn the_tables_are_sorted_and_in_range() {
    assert!(tables::COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        tables::REGIONS
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
    );
    assert!(
        tables::CITIES
            .windows(2)
            .all(|w| (w[0].0, w[0].2, w[0].1) < (w[1].0, w[1].2, w[1].1))
    );
    let n = tables::ZONES.len();
    let in_range = |i: &u16| usize::from(*i) < n;
    assert!(tables::COUNTRIES.iter().all(|c| c.1.iter().all(in_range)));
    assert!(tables::REGIONS.iter().all(|r| r.2.iter().all(in_range)));
    assert!(tables::CITIES.iter().all(|c| in_range(&c.3)));
    assert!(tables::ZONE1970.iter().all(|z| in_range(&z.0)));
}
