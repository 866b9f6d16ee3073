//! Synthetic event logs for the report's benchmarks (`scripts/bench`): N events of U users
//! over F experiment flags (50/50 splits), a share of them conversions, written by DuckDB
//! straight from a generated range, so a hundred million events stream to Parquet without
//! a text copy first.
//!
//! Every value is a hash of the event's number, so a log is the same on every machine:
//! event i is a conversion when hash(i) says so (`--conversions`), else an exposure of
//! flag hash(2i + 1) mod F (not DuckDB's `hash(i, 'flag')`: that is `hash(i)` combined
//! with a constant, so its low bits followed the user's and each user saw one flag); its user is hash(i) mod U, whose variant of a flag is the user's
//! hash and whose country is fixed. One user in a thousand sees the other variant on
//! every second event (so some users are in both); conversions name the user's variant
//! of every flag, and fall before and after exposures alike.
//!
//! ```sh
//! edgeflags-synth-events OUT --events 10000000 --users 2000000 --flags 2 --format ndjson
//! ```
//!
//! Formats: `ndjson` (the edge's record, version 2), `local` (today's local log: version
//! 1 lines after `edgeflags_events :: `, as `scripts/serve` prints them), `parquet`.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "edgeflags-synth-events", about)]
struct Args {
    /// The file to write.
    out: String,
    /// Events.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Users.
    #[arg(long, default_value_t = 2_000_000)]
    users: u64,
    /// Experiment flags (`exp0`, `exp1`, ...).
    #[arg(long, default_value_t = 1)]
    flags: u64,
    /// The share of events that are conversions (`purchase`).
    #[arg(long, default_value_t = 0.1)]
    conversions: f64,
    /// `ndjson`, `local` or `parquet`.
    #[arg(long, default_value = "ndjson")]
    format: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeflags-synth-events: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The events, as the columns of the events table (version 2).
fn events_sql(a: &Args) -> String {
    let per_mille = (a.conversions * 1000.0).round() as u64;
    let (n, users, flags) = (a.events, a.users.max(1), a.flags.max(1));
    format!(
        "WITH base AS (
           SELECT i, hash(i, 'kind') % 1000 < {per_mille} AS conv, hash(i, 'user') % {users} AS u,
             hash(2 * i + 1) % {flags} AS f
           FROM range({n}) AS t(i)
         ), who AS (
           SELECT *, md5('user-' || u) AS uid,
             ['US', 'JP', 'FR', 'BR', 'DE'][(1 + hash(u, 'country') % 5)::INT] AS country,
             CASE WHEN u % 1000 = 0 AND i % 2 = 1 THEN 1 ELSE 0 END AS flip
           FROM base
         )
         SELECT 2 AS schema_version,
           CASE WHEN conv THEN 'conversion' ELSE 'exposure' END AS kind,
           1764400000000 + i * 10 AS ts,
           CASE WHEN NOT conv THEN 'exp' || f END AS flag,
           CASE WHEN NOT conv THEN ['v1', 'v2'][1 + ((hash(uid, 'exp' || f) % 2 + flip) % 2)::INT] END AS variant,
           CASE WHEN NOT conv THEN 'SPLIT' END AS reason,
           CASE WHEN NOT conv THEN [{{'variant': 'v1', 'weight': 50000}}, {{'variant': 'v2', 'weight': 50000}}]
             ELSE [] END AS split,
           CASE WHEN conv THEN 'purchase' END AS event,
           CASE WHEN conv THEN (hash(i, 'value') % 100) + 0.5 END AS value,
           CASE WHEN conv THEN list_transform(range({flags}), lambda g: {{'flag': 'exp' || g,
             'variant': ['v1', 'v2'][1 + (hash(uid, 'exp' || g) % 2)::INT]}}) ELSE [] END AS variants,
           'synthetic' AS snapshot, uid AS \"user\", country, 'desktop' AS device
         FROM who"
    )
}

fn run(a: Args) -> Result<()> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let events = events_sql(&a);
    let copy = match a.format.as_str() {
        "parquet" => format!(
            "COPY ({events}) TO {} (FORMAT parquet, COMPRESSION zstd)",
            quote(&a.out)
        ),
        "ndjson" => format!("COPY ({events}) TO {} (FORMAT json)", quote(&a.out)),
        // Version 1, as the edge wrote it before the record had a version: no
        // schema_version, rule or split, and a conversion's variants keyed by flag.
        "local" => format!(
            "COPY (SELECT 'edgeflags_events :: ' || CASE WHEN kind = 'exposure' THEN
                 to_json({{'kind': kind, 'ts': ts, 'flag': flag, 'variant': variant, 'reason': reason,
                   'snapshot': snapshot, 'user': \"user\", 'country': country, 'device': device}})
               ELSE to_json({{'kind': kind, 'ts': ts, 'event': event, 'value': value, 'snapshot': snapshot,
                   'user': \"user\", 'variants': map_from_entries(list_transform(variants,
                     lambda v: {{'k': v.flag, 'v': v.variant}})), 'country': country, 'device': device}})
               END AS line FROM ({events}))
             TO {} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER E'\\x01')",
            quote(&a.out)
        ),
        other => bail!("--format {other}: ndjson, local or parquet"),
    };
    let db = duckdb::Connection::open_in_memory().context("cannot start DuckDB")?;
    db.execute_batch("SET preserve_insertion_order = true")
        .context("cannot set DuckDB up")?;
    db.execute_batch(&copy)
        .with_context(|| format!("cannot write {}", a.out))?;
    Ok(())
}
