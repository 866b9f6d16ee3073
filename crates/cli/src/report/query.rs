//! The report as SQL: one query over the events table (the engine's
//! [`edgeflags_engine::events::COLUMNS`]), rendered for DuckDB (run here, embedded), BigQuery
//! and ClickHouse (printed by `report --sql`, run there), and the table's definition in
//! each. The query is written once; a [`Dialect`] supplies only what the engines spell
//! differently: quoting, the first value by time, a 64-bit hash, a list as JSON text, one
//! row per variant a conversion names, and settings.
//!
//! What the query counts, per flag: each user once, by the variants of their exposures; a
//! user exposed to more than one variant is counted apart (the rows whose `variant` is
//! NULL) and left out of the rest; a conversion counts for a user's variant only when it
//! names that variant and comes at or after the user's first exposure (events without a
//! time, as in hand-written logs, cannot be ordered and count); the country and split of
//! a user are those of their first exposure.
//!
//! How it stays within memory: the steps with a row per user (100 million events from 10
//! million users make 40 million of them) hold numbers only: the user's variant, country
//! and split are carried as 64-bit hashes, turned back into text by the small `names`
//! table at the end. An engine spills numbers to disk when the rows do not fit its memory
//! limit; DuckDB 1.5 cannot spill the state of `arg_min` or `min` over a long string, which
//! is what ran out of memory at 20 million events under the default 1.5 GB limit; and it
//! keeps a CTE used twice (`assigned`) in memory it cannot spill, so past a few million
//! events DuckDB is told to compute that one at each use, which costs its aggregate twice
//! ([`Keep`]). Two distinct values of one flag would have to share a 64-bit hash to be
//! confused.

use edgeflags_engine::events::{COLUMNS, ColumnType};

/// A SQL engine the report's query is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// DuckDB: what `edgeflags report` runs, embedded.
    Duckdb,
    /// Google BigQuery (GoogleSQL).
    Bigquery,
    /// ClickHouse (and chDB).
    Clickhouse,
}

/// What to count: every flag and conversion event unless narrowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    /// Only this flag's exposures.
    pub flag: Option<&'a str>,
    /// Only conversions of this event.
    pub event: Option<&'a str>,
}

/// What DuckDB does with the per-user step (`assigned`), which the query uses twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep it in memory between its two uses: faster and smaller while it fits (the
    /// 2.2 million lines of a local log: 1.1 s and 775 MB against 1.6 s and 960 MB),
    /// but DuckDB cannot move that memory to disk.
    InMemory,
    /// Compute it at each use: its aggregate twice, every byte of it spillable. What any
    /// number of events needs, and what `report --sql duckdb` prints.
    Recompute,
}

/// The columns the query returns, in order: the grain is flag, variant, country of first
/// exposure and split of first exposure; then users, users converted, and the sum and sum
/// of squares of each user's converted value.
pub const RESULT_COLUMNS: [&str; 8] = [
    "flag",
    "variant",
    "country",
    "split",
    "users",
    "converted",
    "value_sum",
    "value_sq",
];

impl Dialect {
    /// The column `user` (a keyword in some engines), quoted.
    fn user(self) -> &'static str {
        match self {
            Dialect::Duckdb => "\"user\"",
            Dialect::Bigquery | Dialect::Clickhouse => "`user`",
        }
    }

    /// A string literal.
    pub fn literal(self, text: &str) -> String {
        match self {
            // Standard SQL: a quote is doubled, a backslash is a backslash.
            Dialect::Duckdb => format!("'{}'", text.replace('\'', "''")),
            // Backslash escapes.
            Dialect::Bigquery | Dialect::Clickhouse => {
                format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
    }

    /// A table name (letters, digits, `_`, `-` and `.` only), quoted where needed.
    fn table(self, name: &str) -> String {
        match self {
            Dialect::Bigquery => format!("`{name}`"),
            Dialect::Duckdb | Dialect::Clickhouse => name.to_string(),
        }
    }

    /// `x` at the smallest `ts` of the group (an event without a time counts as the
    /// earliest).
    fn first_by_time(self, x: &str) -> String {
        match self {
            Dialect::Duckdb => format!("arg_min({x}, COALESCE(ts, 0))"),
            Dialect::Bigquery => format!("MIN_BY({x}, COALESCE(ts, 0))"),
            Dialect::Clickhouse => format!("argMin({x}, COALESCE(ts, 0))"),
        }
    }

    /// A 64-bit hash of the string `x`: the per-user step keeps these numbers rather than
    /// the strings, as an engine's aggregate states for strings (DuckDB's `arg_min` and
    /// `min` of a long string) are held in memory that is not spilled to disk.
    fn key(self, x: &str) -> String {
        match self {
            Dialect::Duckdb => format!("hash({x})"),
            Dialect::Bigquery => format!("FARM_FINGERPRINT({x})"),
            Dialect::Clickhouse => format!("cityHash64({x})"),
        }
    }

    /// A 64-bit hash of the split list `x`.
    fn split_key(self, x: &str) -> String {
        match self {
            Dialect::Duckdb => format!("hash({x})"),
            Dialect::Bigquery => format!("FARM_FINGERPRINT(TO_JSON_STRING({x}))"),
            Dialect::Clickhouse => format!("cityHash64({x})"),
        }
    }

    /// One split list of the group, as JSON text, `[{"variant": ..., "weight": ...}, ...]`
    /// (the groups it is taken over hold one split each).
    fn split_text(self, x: &str) -> String {
        match self {
            // DuckDB's events are either a table whose split is the JSON it was written
            // as, or a view of Parquet files whose split is a list of structs: `to_json`
            // gives the same text for both, and only once per group.
            Dialect::Duckdb => format!("CAST(to_json(MIN({x})) AS VARCHAR)"),
            Dialect::Bigquery => format!("MIN(TO_JSON_STRING({x}))"),
            Dialect::Clickhouse => format!("MIN(toJSONString({x}))"),
        }
    }

    /// The conversions of `source` that pass `filter`, one row per variant they name:
    /// `user_id, ts, value, v` where `v` has `flag` and `variant`.
    fn conversion_rows(self, source: &str, filter: &str) -> String {
        let user = self.user();
        match self {
            Dialect::Duckdb => format!(
                "SELECT {user} AS user_id, ts, value, unnest(variants) AS v\n    FROM {source}\n    WHERE kind = 'conversion' AND {user} IS NOT NULL{filter}"
            ),
            Dialect::Bigquery => format!(
                "SELECT e.{user} AS user_id, e.ts, e.value, v\n    FROM {source} AS e CROSS JOIN UNNEST(e.variants) AS v\n    WHERE e.kind = 'conversion' AND e.{user} IS NOT NULL{filter}"
            ),
            Dialect::Clickhouse => format!(
                "SELECT e.{user} AS user_id, e.ts, e.value, v\n    FROM {source} AS e ARRAY JOIN e.variants AS v\n    WHERE e.kind = 'conversion' AND e.{user} IS NOT NULL{filter}"
            ),
        }
    }

    /// What goes between `name AS` and the body of a CTE that is used twice, to have it
    /// computed at each use rather than kept: DuckDB keeps a CTE used twice in memory it
    /// cannot spill (the per-user step of 100 million events ran out of memory there);
    /// BigQuery and ClickHouse compute a CTE at each use anyway.
    fn recomputed(self, keep: Keep) -> &'static str {
        match (self, keep) {
            (Dialect::Duckdb, Keep::Recompute) => "NOT MATERIALIZED ",
            (Dialect::Duckdb, Keep::InMemory) | (Dialect::Bigquery | Dialect::Clickhouse, _) => "",
        }
    }

    /// What goes after the query.
    fn settings(self) -> &'static str {
        match self {
            // Unmatched rows of a LEFT JOIN are NULL, not the type's default.
            Dialect::Clickhouse => "\nSETTINGS join_use_nulls = 1",
            Dialect::Duckdb | Dialect::Bigquery => "",
        }
    }

    /// The report's query over the events table `table`.
    pub fn report_query(self, table: &str, filter: Filter<'_>) -> String {
        self.report_query_keeping(table, filter, Keep::Recompute)
    }

    /// The report's query, with the per-user step kept in memory for its second use
    /// ([`Keep::InMemory`], DuckDB only) or computed again ([`Keep::Recompute`]).
    pub fn report_query_keeping(self, table: &str, filter: Filter<'_>, keep: Keep) -> String {
        let source = self.table(table);
        let user = self.user();
        let flag_filter = filter
            .flag
            .map(|f| format!(" AND flag = {}", self.literal(f)))
            .unwrap_or_default();
        let event_column = match self {
            Dialect::Duckdb => "event",
            Dialect::Bigquery | Dialect::Clickhouse => "e.event",
        };
        let event_filter = filter
            .event
            .map(|e| format!(" AND {event_column} = {}", self.literal(e)))
            .unwrap_or_default();
        let conversion_rows = self.conversion_rows(&source, &event_filter);
        let exposed_where = format!(
            "FROM {source}\n  WHERE kind = 'exposure' AND {user} IS NOT NULL AND flag IS NOT NULL AND variant IS NOT NULL{flag_filter}"
        );
        let variant_key = self.key("variant");
        let country_key = self.key("COALESCE(country, '??')");
        let split_key = self.split_key("split");
        let split_text = self.split_text("split");
        let first_country = self.first_by_time("country_key");
        let first_split = self.first_by_time("split_key");
        let conversion_key = self.key("v.variant");
        let settings = self.settings();
        let recomputed = self.recomputed(keep);
        format!(
            "-- edgeflags report ({dialect}): users per flag, variant, country and split; users in more than
-- one variant are the rows whose variant is NULL. Columns: {columns}.
-- The per-user steps carry 64-bit hashes of variant, country and split (numbers, which
-- every engine can move to disk), and `names` turns them back into text at the end.
WITH exposures AS (
  SELECT flag, {user} AS user_id, {variant_key} AS variant_key, ts,
    {country_key} AS country_key, {split_key} AS split_key
  {exposed_where}
),
names AS (
  SELECT flag, {variant_key} AS variant_key, {country_key} AS country_key,
    {split_key} AS split_key, MIN(variant) AS variant_name, MIN(COALESCE(country, '??')) AS country_name,
    {split_text} AS split_text
  {exposed_where}
  GROUP BY flag, variant_key, country_key, split_key
),
assigned AS {recomputed}(
  SELECT flag, user_id, MIN(variant_key) AS low_key, MAX(variant_key) AS high_key,
    MIN(ts) AS first_ts, {first_country} AS first_country, {first_split} AS first_split
  FROM exposures
  GROUP BY flag, user_id
),
conversions AS (
  SELECT user_id, ts, value, v.flag AS flag, {conversion_key} AS variant_key FROM (
    {conversion_rows}
  ) AS named
),
converted AS (
  SELECT a.flag AS flag, a.user_id AS user_id, SUM(COALESCE(c.value, 0)) AS value
  FROM assigned AS a
  JOIN conversions AS c ON c.user_id = a.user_id AND c.flag = a.flag AND c.variant_key = a.low_key
  WHERE a.low_key = a.high_key AND (c.ts >= a.first_ts OR c.ts IS NULL OR a.first_ts IS NULL)
  GROUP BY a.flag, a.user_id
),
per_user AS (
  SELECT a.flag AS flag,
    CASE WHEN a.low_key = a.high_key THEN a.low_key END AS variant_key,
    CASE WHEN a.low_key = a.high_key THEN a.first_country END AS country_key,
    CASE WHEN a.low_key = a.high_key THEN a.first_split END AS split_key,
    CASE WHEN c.user_id IS NULL THEN 0 ELSE 1 END AS is_converted,
    COALESCE(c.value, 0) AS user_value
  FROM assigned AS a
  LEFT JOIN converted AS c ON c.flag = a.flag AND c.user_id = a.user_id
),
grouped AS (
  SELECT flag, variant_key, country_key, split_key, COUNT(*) AS users,
    SUM(is_converted) AS converted, SUM(user_value) AS value_sum,
    SUM(user_value * user_value) AS value_sq
  FROM per_user
  GROUP BY flag, variant_key, country_key, split_key
)
SELECT g.flag AS flag, v.variant_name AS variant, c.country_name AS country, s.split_text AS split, g.users AS users,
  g.converted AS converted, g.value_sum AS value_sum, g.value_sq AS value_sq
FROM grouped AS g
LEFT JOIN (SELECT DISTINCT flag, variant_key, variant_name FROM names) AS v
  ON v.flag = g.flag AND v.variant_key = g.variant_key
LEFT JOIN (SELECT DISTINCT flag, country_key, country_name FROM names) AS c
  ON c.flag = g.flag AND c.country_key = g.country_key
LEFT JOIN (SELECT DISTINCT flag, split_key, split_text FROM names) AS s
  ON s.flag = g.flag AND s.split_key = g.split_key
ORDER BY g.flag, v.variant_name NULLS LAST, c.country_name NULLS LAST, s.split_text NULLS LAST{settings}
",
            dialect = self.name(),
            columns = RESULT_COLUMNS.join(", "),
        )
    }

    /// The engine's name, as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Duckdb => "DuckDB",
            Dialect::Bigquery => "BigQuery",
            Dialect::Clickhouse => "ClickHouse",
        }
    }

    /// The events table's definition: for BigQuery a schema file for `bq mk --table`, for
    /// ClickHouse a `CREATE TABLE`, for DuckDB a `CREATE TABLE` too.
    pub fn table_definition(self, table: &str) -> String {
        match self {
            Dialect::Bigquery => {
                let fields: Vec<serde_json::Value> = COLUMNS
                    .iter()
                    .map(|c| {
                        let sub = |a: &str, at: &str, b: &str, bt: &str| {
                            serde_json::json!([
                                {"name": a, "type": at, "mode": "NULLABLE"},
                                {"name": b, "type": bt, "mode": "NULLABLE"}
                            ])
                        };
                        let (ty, mode, fields) = match c.ty {
                            ColumnType::Int64 => ("INTEGER", "NULLABLE", None),
                            ColumnType::Float64 => ("FLOAT", "NULLABLE", None),
                            ColumnType::String => ("STRING", "NULLABLE", None),
                            ColumnType::Weights => (
                                "RECORD",
                                "REPEATED",
                                Some(sub("variant", "STRING", "weight", "INTEGER")),
                            ),
                            ColumnType::Served => (
                                "RECORD",
                                "REPEATED",
                                Some(sub("flag", "STRING", "variant", "STRING")),
                            ),
                        };
                        let mut field = serde_json::json!({
                            "name": c.name, "type": ty, "mode": mode,
                            "description": plain(c.meaning),
                        });
                        if let (Some(f), Some(o)) = (fields, field.as_object_mut()) {
                            o.insert("fields".into(), f);
                        }
                        field
                    })
                    .collect();
                let mut text = serde_json::to_string_pretty(&fields).unwrap_or_default();
                text.push('\n');
                text
            }
            Dialect::Clickhouse | Dialect::Duckdb => {
                let columns: Vec<String> = COLUMNS
                    .iter()
                    .map(|c| format!("  `{}` {}", c.name, self.column_type(c.name, c.ty)))
                    .collect();
                let engine = match self {
                    Dialect::Clickhouse => "\nENGINE = MergeTree\nORDER BY (kind, ts)",
                    _ => "",
                };
                format!(
                    "CREATE TABLE {} (\n{}\n){engine};\n",
                    self.table(table),
                    columns.join(",\n")
                )
            }
        }
    }

    fn column_type(self, name: &str, ty: ColumnType) -> String {
        match (self, ty) {
            (Dialect::Clickhouse, ColumnType::Weights) => {
                "Array(Tuple(variant String, weight Int64))".into()
            }
            (Dialect::Clickhouse, ColumnType::Served) => {
                "Array(Tuple(flag String, variant String))".into()
            }
            // The sorting key cannot be NULL; the edge always writes both.
            (Dialect::Clickhouse, _) if name == "kind" => "LowCardinality(String)".into(),
            (Dialect::Clickhouse, _) if name == "ts" => "Int64".into(),
            (Dialect::Clickhouse, ColumnType::Int64) => "Nullable(Int64)".into(),
            (Dialect::Clickhouse, ColumnType::Float64) => "Nullable(Float64)".into(),
            (Dialect::Clickhouse, ColumnType::String) => "Nullable(String)".into(),
            (_, ColumnType::Weights) => "STRUCT(variant VARCHAR, weight BIGINT)[]".into(),
            (_, ColumnType::Served) => "STRUCT(flag VARCHAR, variant VARCHAR)[]".into(),
            (_, ColumnType::Int64) => "BIGINT".into(),
            (_, ColumnType::Float64) => "DOUBLE".into(),
            (_, ColumnType::String) => "VARCHAR".into(),
        }
    }
}

/// Markdown's backticks left out, for a warehouse's column description.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

/// Whether `name` may be used as a table name: letters, digits, `_`, `-` and `.` (a
/// BigQuery `project.dataset.table`, a ClickHouse `database.table`).
pub fn valid_table(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
