//! The report's SQL in every engine: the queries `report --sql` prints are the ones kept in
//! `docs/sql/`, and the ClickHouse query, run by chDB (ClickHouse in-process, installed by
//! scripts/test) over the hand-computed log, gives what DuckDB gives, down to the JSON
//! report made from its rows.

use std::path::PathBuf;
use std::process::{Command, Output};

fn edgeflags(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run edgeflags: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = edgeflags(args);
    assert!(
        out.status.success(),
        "edgeflags {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeflags-report-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

/// The hand-computed log: see `src/report/duck.rs`'s tests for what each line is.
const LOG: &str = "crates/cli/tests/data/report.ndjson";

#[test]
fn the_printed_queries_and_table_definitions_are_the_ones_in_docs() {
    for (args, file) in [
        (&["--sql", "bigquery"][..], "report.bigquery.sql"),
        (&["--sql", "clickhouse"][..], "report.clickhouse.sql"),
        (
            &["--sql", "bigquery", "--schema"][..],
            "events.bigquery.json",
        ),
        (
            &["--sql", "clickhouse", "--schema"][..],
            "events.clickhouse.sql",
        ),
    ] {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--table",
            "analytics.edgeflags_events",
            "--event",
            "purchase",
        ]);
        let printed = ok(&all);
        let kept = std::fs::read_to_string(root().join("docs/sql").join(file))
            .unwrap_or_else(|e| panic!("docs/sql/{file}: {e}"));
        assert_eq!(
            printed,
            kept,
            "docs/sql/{file} is not what `edgeflags {}` prints: write it again",
            all.join(" ")
        );
    }
}

#[test]
fn the_dialects_quote_names_and_values_each_their_own_way() {
    let hostile = "it's a \\ test";
    let bq = ok(&[
        "report", "--sql", "bigquery", "--table", "p.d.t", "--flag", hostile,
    ]);
    assert!(
        bq.contains("FROM `p.d.t` AS e CROSS JOIN UNNEST(e.variants) AS v"),
        "{bq}"
    );
    assert!(bq.contains(r"AND flag = 'it\'s a \\ test'"), "{bq}");
    assert!(
        bq.contains("MIN_BY(split_key, COALESCE(ts, 0))")
            && bq.contains("FARM_FINGERPRINT(TO_JSON_STRING(split))")
            && bq.contains("MIN(TO_JSON_STRING(split))"),
        "{bq}"
    );
    let ch = ok(&["report", "--sql", "clickhouse", "--flag", hostile]);
    assert!(
        ch.contains("ARRAY JOIN e.variants AS v")
            && ch.contains("argMin(country_key, COALESCE(ts, 0))")
            && ch.contains("cityHash64(variant)"),
        "{ch}"
    );
    assert!(
        ch.trim_end().ends_with("SETTINGS join_use_nulls = 1"),
        "{ch}"
    );
    let duck = ok(&["report", LOG, "--sql", "duckdb", "--flag", hostile]);
    assert!(duck.contains("AND flag = 'it''s a \\ test'"), "{duck}");
    assert!(
        duck.contains("read_json('crates/cli/tests/data/report.ndjson'"),
        "{duck}"
    );
    let bad = edgeflags(&["report", "--sql", "bigquery", "--table", "t; DROP TABLE x"]);
    assert!(!bad.status.success());
}

#[test]
fn the_clickhouse_query_in_chdb_gives_what_duckdb_gives() {
    let chdb = std::env::var_os("EDGEFLAGS_CHDB")
        .map(PathBuf::from)
        .filter(|p| p.join("chdb").exists())
        .unwrap_or_else(|| {
            panic!(
                "chDB is not installed: run scripts/test (it installs PyPI's chdb-core and sets \
                 EDGEFLAGS_CHDB)"
            )
        });
    let table = ok(&[
        "report",
        "--sql",
        "clickhouse",
        "--schema",
        "--table",
        "events",
    ]);
    let query = ok(&[
        "report",
        "--sql",
        "clickhouse",
        "--table",
        "events",
        "--event",
        "purchase",
    ]);
    let script = r#"
import sys, chdb.session
table, query, log = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
s = chdb.session.Session()
s.query(table)
s.query("INSERT INTO events FORMAT JSONEachRow\n" + log)
sys.stdout.write(str(s.query(query, "JSONEachRow")))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &table, &query, LOG])
        .current_dir(root())
        .env("PYTHONPATH", &chdb)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        out.status.success(),
        "chDB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = scratch("clickhouse-rows.json");
    std::fs::write(&rows, &out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let from_clickhouse: serde_json::Value = serde_json::from_str(&ok(&[
        "report",
        &rows.to_string_lossy(),
        "--rows",
        "--json",
    ]))
    .unwrap_or_default();
    let from_duckdb: serde_json::Value =
        serde_json::from_str(&ok(&["report", LOG, "--event", "purchase", "--json"]))
            .unwrap_or_default();
    for part in ["flags", "mixed", "srm"] {
        assert_eq!(from_clickhouse[part], from_duckdb[part], "{part}");
    }
    // And both are the hand-computed figures.
    let v1 = &from_duckdb["flags"]["checkout"]["v1"];
    let v2 = &from_duckdb["flags"]["checkout"]["v2"];
    assert_eq!(
        (v1["exposed"].as_u64(), v1["converted"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (v2["exposed"].as_u64(), v2["converted"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(from_duckdb["mixed"]["checkout"].as_u64(), Some(1));
    assert_eq!(
        from_duckdb["srm"]["checkout"]["observed"]["v2"].as_u64(),
        Some(3)
    );
}
