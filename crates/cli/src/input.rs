//! What the user hands the CLI, read the same way by every command: text files, instants
//! (`--at`), the clock, typed `NAME=VALUE` values (`--attr`, `--trait`) and lifetimes
//! (`--ttl`). Problems are errors that say what to write instead.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// Reads a text file the user named.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Parses an instant: RFC 3339, also without seconds (2026-11-28T21:00+09:00).
pub fn parse_at(text: &str) -> Result<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%:z"))
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%#z"))
        .with_context(|| {
            format!("`{text}` is not an instant: use RFC 3339, such as 2026-11-28T21:00+09:00")
        })
}

/// The instant `--at` names, or now.
pub fn instant(at: Option<&str>) -> Result<chrono::DateTime<chrono::Utc>> {
    match at {
        Some(a) => Ok(parse_at(a)?.with_timezone(&chrono::Utc)),
        None => Ok(chrono::DateTime::<chrono::Utc>::from(
            std::time::SystemTime::now(),
        )),
    }
}

/// Now, in seconds since the Unix epoch (the unit of token and profile expiries).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A command-line value: a number or true/false when it reads as one, else a string.
pub fn typed(v: &str) -> serde_json::Value {
    if let Ok(b) = v.parse::<bool>() {
        return b.into();
    }
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() => serde_json::json!(n),
        _ => v.into(),
    }
}

/// Parses `--ttl`: seconds, or a number with s, m, h or d; `never` is `None`.
pub fn parse_ttl(text: &str) -> Result<Option<i64>> {
    if text == "never" {
        return Ok(None);
    }
    let (num, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: i64 = num
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("--ttl `{text}`: use 3600, 90m, 12h, 30d or never"))?;
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86400,
        _ => bail!("--ttl `{text}`: the unit is s, m, h or d"),
    };
    Ok(Some(secs))
}

/// A UTC offset as Fastly's `±HHMM` integer: `1030`, `-300`, or `±HH:MM`.
pub fn parse_utc_offset(text: &str) -> Result<i32> {
    let bad = || {
        format!("`{text}` is not a UTC offset: use ±HHMM as Fastly gives it (1030, -300) or ±HH:MM")
    };
    if let Ok(n) = text.trim().parse::<i32>() {
        return Ok(n);
    }
    match edgeflags_engine::Zone::parse(text) {
        Some(edgeflags_engine::Zone::Fixed(o)) if text.contains(':') => {
            let minutes = o.local_minus_utc() / 60;
            Ok(minutes.signum() * (minutes.abs() / 60 * 100 + minutes.abs() % 60))
        }
        _ => bail!(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_take_rfc3339_with_or_without_seconds() {
        let full = parse_at("2026-11-28T21:00:00+09:00").map(|t| t.to_rfc3339());
        let short = parse_at("2026-11-28T21:00+09:00").map(|t| t.to_rfc3339());
        assert_eq!(full.ok().as_deref(), Some("2026-11-28T21:00:00+09:00"));
        assert_eq!(short.ok().as_deref(), Some("2026-11-28T21:00:00+09:00"));
        let utc = instant(Some("2026-11-28T21:00+09:00")).map(|t| t.to_rfc3339());
        assert_eq!(utc.ok().as_deref(), Some("2026-11-28T12:00:00+00:00"));
        let bad = parse_at("tomorrow").map_err(|e| e.to_string());
        assert!(bad.is_err_and(|e| e.contains("`tomorrow` is not an instant")));
    }

    #[test]
    fn values_are_typed_when_they_read_as_numbers_or_booleans() {
        assert_eq!(typed("31"), serde_json::json!(31.0));
        assert_eq!(typed("-2.5"), serde_json::json!(-2.5));
        assert_eq!(typed("true"), serde_json::json!(true));
        assert_eq!(typed("pro"), serde_json::json!("pro"));
        // Not finite: kept as the text the user wrote.
        assert_eq!(typed("inf"), serde_json::json!("inf"));
        assert_eq!(typed("NaN"), serde_json::json!("NaN"));
    }

    #[test]
    fn lifetimes_have_units_and_never() {
        let secs = |t: &str| parse_ttl(t).ok().flatten();
        assert_eq!(secs("3600"), Some(3600));
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("90m"), Some(5400));
        assert_eq!(secs("12h"), Some(43_200));
        assert_eq!(secs("30d"), Some(2_592_000));
        assert!(matches!(parse_ttl("never"), Ok(None)));
        for bad in ["0", "-5m", "h", "", "12w", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
