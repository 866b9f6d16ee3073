//! The guard's counts, read the way the report reads: the same files and globs through
//! the same DuckDB load ([`super::duck::load`]) and the same query
//! ([`super::query`]), so a user is counted once, in the variant of their exposures, and
//! an event counts for them only at or after their first exposure. Origin errors are
//! counted as the query counts conversions: over a view of the events in which `error`
//! events stand where conversions do, so "converted" reads "had at least one origin
//! error". With an event name, the conversions of that event are counted as `report
//! --event` counts them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::duck;
use super::query::{Dialect, Filter};
use super::rows::{Row, tally};

/// One variant's users: exposed, and of those, the users the guardrail counts (with an
/// origin error, or converted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Users {
    /// Users exposed to the variant only.
    pub exposed: usize,
    /// Of those, users with an origin error (or a conversion) at or after their first
    /// exposure.
    pub counted: usize,
}

/// Flag -> variant -> users.
pub type PerVariant = BTreeMap<String, BTreeMap<String, Users>>;

/// What the guard reads from the logs.
#[derive(Debug, Default)]
pub struct Counts {
    /// Users with an origin error, per flag and variant.
    pub errors: PerVariant,
    /// Users who converted (the event asked for), per flag and variant.
    pub conversions: Option<PerVariant>,
    /// Events read (lines with a JSON object).
    pub lines: usize,
    /// Of those, origin error events.
    pub error_events: usize,
}

/// The view in which origin errors stand where conversions do.
const ERRORS_AS_CONVERSIONS: &str = "CREATE TEMP VIEW guard_errors AS \
    SELECT * REPLACE (CASE WHEN kind = 'error' THEN 'conversion' ELSE kind END AS kind) \
    FROM events WHERE kind IN ('exposure', 'error')";

/// Reads `files` (paths or globs, as `report` takes them) and counts, per flag (only
/// `flag` when given) and variant, the users with an origin error and, with `event`, the
/// users who converted. `memory_limit` is DuckDB's, as `report --memory-limit`.
pub fn counts(
    files: &[PathBuf],
    flag: Option<&str>,
    event: Option<&str>,
    memory_limit: &str,
) -> Result<Counts> {
    let every = Filter { flag, event: None };
    let loaded = duck::load(
        files,
        &duck::Settings {
            memory_limit: memory_limit.to_string(),
        },
    )?;
    let error_events: i64 = loaded
        .db
        .query_row(
            "SELECT count(*) FILTER (ok AND kind = 'error') FROM events",
            [],
            |r| r.get(0),
        )
        .context("cannot count the events")?;
    loaded
        .db
        .execute_batch(ERRORS_AS_CONVERSIONS)
        .context("cannot set DuckDB up")?;
    loaded.step("counting users with origin errors");
    let errors = per_variant(&loaded.rows(&Dialect::Duckdb.report_query_keeping(
        "guard_errors",
        every,
        loaded.keep(),
    ))?)?;
    let conversions = match event {
        Some(e) => {
            let filter = Filter {
                flag,
                event: Some(e),
            };
            loaded.step(format!("counting users who converted ({e})"));
            Some(per_variant(&loaded.rows(
                &Dialect::Duckdb.report_query_keeping("events", filter, loaded.keep()),
            )?)?)
        }
        None => None,
    };
    Ok(Counts {
        errors,
        conversions,
        lines: loaded.lines,
        error_events: error_events as usize,
    })
}

/// Folds the report query's rows into users per flag and variant.
fn per_variant(rows: &[Row]) -> Result<PerVariant> {
    let t = tally(rows, 0, 0)?;
    Ok(t.flags
        .into_iter()
        .map(|(flag, variants)| {
            let users = variants
                .into_iter()
                .map(|(v, c)| {
                    (
                        v,
                        Users {
                            exposed: c.exposed,
                            counted: c.converted,
                        },
                    )
                })
                .collect();
            (flag, users)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v1: a, b exposed; b has an error before exposure (not counted) and one after.
    /// v2: c, d, e exposed; c and d have errors (c twice), e bought; f saw both
    /// variants and has an error (left out); g was never exposed and has an error.
    const LOG: &str = r#"edgeflags_events :: {"kind":"exposure","ts":100,"flag":"checkout","variant":"v1","user":"a"}
edgeflags_events :: {"kind":"error","ts":90,"user":"b","error":"status","status":502,"variants":[{"flag":"checkout","variant":"v1"}]}
edgeflags_events :: {"kind":"exposure","ts":100,"flag":"checkout","variant":"v1","user":"b"}
edgeflags_events :: {"kind":"error","ts":110,"user":"b","error":"timeout","variants":[{"flag":"checkout","variant":"v1"}]}
edgeflags_events :: {"kind":"exposure","ts":100,"flag":"checkout","variant":"v2","user":"c"}
edgeflags_events :: {"kind":"error","ts":100,"user":"c","error":"status","status":500,"variants":[{"flag":"checkout","variant":"v2"}]}
edgeflags_events :: {"kind":"error","ts":120,"user":"c","error":"status","status":500,"variants":[{"flag":"checkout","variant":"v2"}]}
edgeflags_events :: {"kind":"exposure","ts":100,"flag":"checkout","variant":"v2","user":"d"}
edgeflags_events :: {"kind":"error","ts":101,"user":"d","error":"unreachable","variants":[{"flag":"checkout","variant":"v2"}]}
edgeflags_events :: {"kind":"exposure","ts":100,"flag":"checkout","variant":"v2","user":"e"}
edgeflags_events :: {"kind":"conversion","ts":130,"event":"buy","user":"e","variants":[{"flag":"checkout","variant":"v2"}]}
edgeflags_events :: {"kind":"exposure","ts":100,"flag":"checkout","variant":"v1","user":"f"}
edgeflags_events :: {"kind":"exposure","ts":105,"flag":"checkout","variant":"v2","user":"f"}
edgeflags_events :: {"kind":"error","ts":110,"user":"f","error":"status","status":500,"variants":[{"flag":"checkout","variant":"v2"}]}
edgeflags_events :: {"kind":"error","ts":110,"user":"g","error":"status","status":500,"variants":[{"flag":"checkout","variant":"v2"}]}
edgeflags_ops :: {"kind":"origin","message":"backend origin_eu answered 500"}
"#;

    #[test]
    fn errors_count_per_exposed_user_after_the_first_exposure_as_conversions_do() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("events.log");
        std::fs::write(&file, LOG).unwrap_or_else(|e| panic!("{e}"));
        let c = counts(&[file], None, Some("buy"), "256MB").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((c.lines, c.error_events), (16, 7));
        let users = |exposed, counted| Users { exposed, counted };
        let checkout = &c.errors["checkout"];
        assert_eq!(checkout["v1"], users(2, 1));
        assert_eq!(checkout["v2"], users(3, 2));
        assert_eq!(checkout.len(), 2);
        let bought = c.conversions.as_ref().map(|p| p["checkout"].clone());
        assert_eq!(
            bought,
            Some(BTreeMap::from([
                ("v1".to_string(), users(2, 0)),
                ("v2".to_string(), users(3, 1)),
            ]))
        );
        // The same events as plain JSON lines (a log endpoint's files): the same counts.
        let plain: String = LOG
            .lines()
            .filter_map(|l| l.strip_prefix("edgeflags_events :: "))
            .map(|l| format!("{l}\n"))
            .collect();
        let ndjson = dir.path().join("events.ndjson");
        std::fs::write(&ndjson, plain).unwrap_or_else(|e| panic!("{e}"));
        let same =
            counts(&[ndjson], None, Some("buy"), "256MB").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((same.lines, same.error_events), (15, 7));
        assert_eq!((same.errors, same.conversions), (c.errors, c.conversions));
        let none = counts(
            &[dir.path().join("events.log")],
            Some("other"),
            None,
            "256MB",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(none.errors.is_empty() && none.conversions.is_none());
    }
}
