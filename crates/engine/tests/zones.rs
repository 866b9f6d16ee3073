//! The zone resolver against the whole tz database: every zone of `zone1970.tab`, as a
//! synthetic geolocation record at its principal coordinates, with the first country on
//! its line and its standard-time offset, must resolve to a zone on the same clock at
//! 2026-01-15, 2026-07-15 and on both sides of each of its 2026–2027 transitions. Links
//! and zones on the same clock count as right.
//!
//! `cargo test -p edgeflags-engine --test zones -- --nocapture` prints the counts.

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, Tz};

/// chrono-tz's zone of the engine's zone (the same tz database release: `tests/tzdb.rs`).
fn truth(tz: edgeflags_engine::zone::Tz) -> Tz {
    tz.name()
        .parse()
        .expect("chrono-tz knows every zone the engine knows")
}
use edgeflags_engine::place::{self, Record};

fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Every instant in [from, to) at which the zone's offset changes, to the second (offsets
/// last longer than a day between changes).
fn transitions(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let next = t + Duration::days(1);
        if offset_at(tz, next) != offset_at(tz, t) {
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == offset_at(tz, lo) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi);
        }
        t = next;
    }
    out
}

/// Fastly's `±HHMM` for an offset in seconds.
fn hhmm(seconds: i64) -> i32 {
    let sign = if seconds < 0 { -1 } else { 1 };
    let minutes = (seconds.abs() / 60) as i32;
    sign * (minutes / 60 * 100 + minutes % 60)
}

#[test]
fn the_tables_are_the_engines_tz_release() {
    assert_eq!(
        place::TZDB_RELEASE,
        chrono_tz::IANA_TZDB_VERSION,
        "the zone tables and chrono-tz must come from the same tz database release: \
         regenerate them with scripts/gen-zone-tables from tzdata {}",
        chrono_tz::IANA_TZDB_VERSION
    );
}

#[test]
fn every_zone_of_zone1970_resolves_to_its_own_clock() {
    let jan = at("2026-01-15T00:00:00Z");
    let jul = at("2026-07-15T00:00:00Z");
    let (from, to) = (at("2026-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z"));
    let mut zones = 0;
    let mut instants = 0;
    let mut with_transitions = 0;
    let mut failures = Vec::new();
    for (ours, lat, lon, countries) in place::zone1970() {
        let tz = truth(ours);
        zones += 1;
        let country = countries.split(',').next().unwrap_or("");
        let standard = tz
            .offset_from_utc_datetime(&jan.naive_utc())
            .base_utc_offset()
            .num_seconds();
        let record = Record {
            country: Some(country),
            latitude: Some(lat),
            longitude: Some(lon),
            utc_offset: Some(hhmm(standard)),
            ..Record::default()
        };
        let changes = transitions(tz, from, to);
        if !changes.is_empty() {
            with_transitions += 1;
        }
        let mut when = vec![jan, jul];
        for t in changes {
            when.push(t - Duration::seconds(1));
            when.push(t);
        }
        for now in when {
            instants += 1;
            let got = place::resolve(&record, now);
            let right = offset_at(tz, now);
            let ok = match got.map(|r| r.zone) {
                Some(edgeflags_engine::Zone::Named(z)) => offset_at(truth(z), now) == right,
                Some(edgeflags_engine::Zone::Fixed(f)) => f.local_minus_utc() == right,
                None => false,
            };
            if !ok {
                failures.push(format!(
                    "{} ({country} {lat},{lon} {:+05}) at {now}: got {:?}",
                    tz.name(),
                    hhmm(standard),
                    got.map(|r| (r.zone.name(), r.source.as_str()))
                ));
            }
        }
    }
    println!(
        "zone1970.tab ({}): {zones} zones checked ({with_transitions} with transitions in \
         2026-2027), {instants} instants, {} wrong",
        place::TZDB_RELEASE,
        failures.len()
    );
    assert!(zones >= 300, "only {zones} zones in the tables");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The generated tables hold exactly what this machine's tz database says, when it is the
/// same release (Debian's `tzdata` package: /usr/share/zoneinfo, or $TZDIR).
#[test]
fn the_tables_match_the_systems_tz_database() {
    let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".into());
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}"));
    let (Ok(zi), Ok(z1970), Ok(ztab)) = (read("tzdata.zi"), read("zone1970.tab"), read("zone.tab"))
    else {
        println!("skipped: no tz database in {dir} (install Debian's tzdata package)");
        return;
    };
    let release = zi
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# version "))
        .unwrap_or("")
        .trim();
    if release != place::TZDB_RELEASE {
        println!(
            "skipped: {dir} holds tzdata {release}, the tables {}",
            place::TZDB_RELEASE
        );
        return;
    }
    let rows = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                Some((cols.first()?.to_string(), cols.get(2)?.to_string()))
            })
            .collect()
    };
    let ours: Vec<(String, String)> = place::zone1970()
        .map(|(tz, _, _, countries)| (countries.to_string(), tz.name().to_string()))
        .collect();
    assert_eq!(ours, rows(&z1970), "zone1970.tab differs from the tables");
    for (country, zone) in rows(&ztab) {
        assert!(
            place::country_zones_of(&country).any(|tz| tz.name() == zone),
            "zone.tab lists {zone} for {country}; the tables do not"
        );
    }
}
