//! Time zones and local-time windows: an IANA zone (DST-correct through chrono-tz) or a
//! fixed UTC offset, and the recurring "days and hours in some zone" window that rules and
//! schedules use.

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// A time zone: an IANA name, or a fixed offset when only the offset is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A named IANA zone, such as `Asia/Tokyo`; daylight saving time is applied.
    Named(Tz),
    /// A fixed offset from UTC, such as `-05:00`; no daylight saving time.
    Fixed(FixedOffset),
}

impl Zone {
    /// Parses `Area/City` (IANA), `UTC`/`Z`, or a fixed offset `±HH:MM`, `±HHMM` or `±HH`.
    pub fn parse(text: &str) -> Option<Zone> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return FixedOffset::east_opt(0).map(Zone::Fixed);
        }
        if let Some(rest) = t.strip_prefix(['+', '-']) {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            let digits: String = rest.chars().filter(|c| *c != ':').collect();
            if !digits.bytes().all(|b| b.is_ascii_digit()) || rest.len() > 5 {
                return None;
            }
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i32>().ok()?, 0),
                4 => (
                    digits[..2].parse::<i32>().ok()?,
                    digits[2..].parse::<i32>().ok()?,
                ),
                _ => return None,
            };
            if h > 14 || m > 59 {
                return None;
            }
            return FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(Zone::Fixed);
        }
        t.parse::<Tz>().ok().map(Zone::Named)
    }

    /// From a Fastly-style `±HHMM` integer offset (`-500` is UTC-05:00); `9999` is unknown.
    pub fn from_hhmm(raw: i32) -> Option<Zone> {
        if raw == 9999 || raw.abs() > 1400 {
            return None;
        }
        let (h, m) = (raw / 100, raw % 100);
        if m.abs() > 59 {
            return None;
        }
        FixedOffset::east_opt(h * 3600 + m * 60).map(Zone::Fixed)
    }

    /// The wall-clock weekday and minute of the day at `now` in this zone.
    pub fn local(&self, now: DateTime<Utc>) -> (Weekday, u32) {
        match self {
            Zone::Named(tz) => {
                let l = tz.from_utc_datetime(&now.naive_utc());
                (l.weekday(), l.hour() * 60 + l.minute())
            }
            Zone::Fixed(off) => {
                let l = off.from_utc_datetime(&now.naive_utc());
                (l.weekday(), l.hour() * 60 + l.minute())
            }
        }
    }

    /// The name as written in a context: the IANA name or `±HH:MM`.
    pub fn name(&self) -> String {
        match self {
            Zone::Named(tz) => tz.name().to_string(),
            Zone::Fixed(off) => off.to_string(),
        }
    }
}

/// A recurring local-time window: some days of the week, from one time of day to another,
/// in a named zone or (when `zone` is `None`) the user's own zone.
///
/// `from == to` means the whole day. When `to` is before `from` the window runs past
/// midnight into the next day, and `days` names the day it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Bit `n` set means the window starts on weekday `n` (Monday = 0).
    pub days: u8,
    /// Start, in minutes after local midnight (inclusive).
    pub from: u32,
    /// End, in minutes after local midnight (exclusive).
    pub to: u32,
    /// A fixed zone for the window; `None` uses the context's zone.
    pub zone: Option<Zone>,
}

impl Window {
    /// Whether `now` falls in the window, seen from `user_zone` unless the window has its
    /// own zone. With no zone at all the window does not match.
    pub fn contains(&self, now: DateTime<Utc>, user_zone: Option<&Zone>) -> bool {
        let Some(zone) = self.zone.as_ref().or(user_zone) else {
            return false;
        };
        let (day, minute) = zone.local(now);
        let today = self.days & (1 << day.num_days_from_monday()) != 0;
        let yesterday = self.days & (1 << day.pred().num_days_from_monday()) != 0;
        if self.from == self.to {
            today
        } else if self.from < self.to {
            today && minute >= self.from && minute < self.to
        } else {
            (today && minute >= self.from) || (yesterday && minute < self.to)
        }
    }
}

/// Parses a day name (`mon`, `monday`, ... case-insensitive) to its bit index (Monday = 0).
pub fn day_index(name: &str) -> Option<u8> {
    let n = name.to_ascii_lowercase();
    let short = n.get(..3)?;
    let idx = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| *d == short)?;
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][idx];
    (n.len() == 3 || n == full).then_some(idx as u8)
}

/// Parses `HH:MM` (00:00 to 24:00) into minutes after midnight.
pub fn time_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn parses_zones() {
        assert!(matches!(Zone::parse("Asia/Tokyo"), Some(Zone::Named(_))));
        assert_eq!(
            Zone::parse("-05:00"),
            FixedOffset::west_opt(5 * 3600).map(Zone::Fixed)
        );
        assert_eq!(
            Zone::parse("+0530"),
            FixedOffset::east_opt(19800).map(Zone::Fixed)
        );
        assert_eq!(Zone::parse("Mars/Olympus"), None);
        assert_eq!(Zone::parse("+25:00"), None);
        assert_eq!(
            Zone::from_hhmm(-700),
            FixedOffset::west_opt(7 * 3600).map(Zone::Fixed)
        );
        assert_eq!(Zone::from_hhmm(9999), None);
    }

    #[test]
    fn window_past_midnight_counts_from_its_start_day() {
        let w = Window {
            days: 1 << 4,
            from: 22 * 60,
            to: 2 * 60,
            zone: None,
        };
        let utc = Zone::parse("UTC");
        // Friday 23:00 and Saturday 01:00 are in; Saturday 23:00 is not.
        assert!(w.contains(at("2026-11-27T23:00:00Z"), utc.as_ref()));
        assert!(w.contains(at("2026-11-28T01:00:00Z"), utc.as_ref()));
        assert!(!w.contains(at("2026-11-28T23:00:00Z"), utc.as_ref()));
        assert!(!w.contains(at("2026-11-28T01:00:00Z"), None));
    }

    #[test]
    fn names() {
        assert_eq!(day_index("Sat"), Some(5));
        assert_eq!(day_index("sunday"), Some(6));
        assert_eq!(day_index("sundae"), None);
        assert_eq!(time_of_day("20:30"), Some(1230));
        assert_eq!(time_of_day("24:00"), Some(1440));
        assert_eq!(time_of_day("24:01"), None);
        assert_eq!(time_of_day("7:00"), None);
    }
}
