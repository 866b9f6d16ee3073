//! The report on DuckDB, embedded: the event files (JSON lines, with or without a prefix
//! such as `edgeflags_events :: `, optionally gzipped; or Parquet; paths or globs) are
//! read once into an `events` table of the engine's columns, then the report's query
//! ([`super::query`]) runs over it. Progress goes to stderr when a step takes more than a
//! moment.
//!
//! Lines read two ways: a file whose every line is a JSON object goes through DuckDB's
//! JSON reader; any other (a local log with prefixes and other endpoints' lines) is read
//! as lines, each parsed from its first `{`: a line without a `{` (the server's own
//! output) is passed over; one whose JSON does not parse is counted as skipped, as is one
//! without a user or of an unknown kind.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use duckdb::Connection;

use super::query::{Dialect, Filter, Keep};
use super::rows::Row;

/// What the report's query needs of each event, as DuckDB's JSON reader takes it: the
/// engine's columns of either version (`variants` stays JSON: a list in version 2, an
/// object in version 1).
const JSON_COLUMNS: &str = r#"{"kind": "VARCHAR", "ts": "BIGINT", "flag": "VARCHAR", "variant": "VARCHAR", "split": "JSON", "event": "VARCHAR", "value": "DOUBLE", "variants": "JSON", "user": "VARCHAR", "country": "VARCHAR"}"#;

/// `variants` of either version as the list of `{flag, variant}` of version 2.
const VARIANTS: &str = "CASE json_type(variants) \
     WHEN 'ARRAY' THEN try_cast(variants AS STRUCT(flag VARCHAR, variant VARCHAR)[]) \
     WHEN 'OBJECT' THEN list_transform(map_entries(try_cast(variants AS MAP(VARCHAR, VARCHAR))), \
       lambda m: {'flag': m.key, 'variant': m.value}) END";

/// The `events` table: what the report's query reads, and whether the line was JSON.
const CREATE_EVENTS: &str = "CREATE TEMP TABLE events (ok BOOLEAN, kind VARCHAR, ts BIGINT, \
    flag VARCHAR, variant VARCHAR, split JSON, event VARCHAR, value DOUBLE, \"user\" VARCHAR, \
    country VARCHAR, variants STRUCT(flag VARCHAR, variant VARCHAR)[])";

/// The statement that adds `input`'s events to the table.
fn insert(input: &Input) -> String {
    format!("INSERT INTO events BY NAME {}", relation(input))
}

/// The columns of the `events` table, from a relation with the JSON columns.
const EVENT_COLUMNS: &str = "kind, ts, flag, variant, split, event, value, \"user\", country";

/// How the report reads its files.
#[derive(Debug, Clone)]
pub struct Settings {
    /// DuckDB's memory limit (`1GB`, `512MB`); past it, DuckDB spills to a temporary
    /// directory.
    pub memory_limit: String,
}

/// The result of a report run: the query's rows, the events read and skipped.
#[derive(Debug)]
pub struct Run {
    /// The rows.
    pub rows: Vec<Row>,
    /// Events read.
    pub lines: usize,
    /// Events passed over.
    pub skipped: usize,
}

/// A file or glob to read, and how.
#[derive(Debug, Clone, PartialEq)]
enum Input {
    /// Every line a JSON object.
    Json(String),
    /// Lines, each with its JSON from the first `{`.
    Lines(String),
    /// Parquet with the events table's columns.
    Parquet(String),
}

fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// How to read `path`: by its name for Parquet; for a plain (not gzipped) file, by its
/// first 64 KiB: JSON when every whole line there is a JSON object's start.
fn classify(path: &Path) -> Result<Input> {
    let text = path.to_string_lossy().into_owned();
    if text.ends_with(".parquet") {
        return Ok(Input::Parquet(text));
    }
    if has_glob(&text) || text.ends_with(".gz") {
        return Ok(Input::Lines(text));
    }
    let mut head = Vec::with_capacity(64 * 1024);
    std::fs::File::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut whole = head.split(|&b| b == b'\n').collect::<Vec<_>>();
    whole.pop(); // the last piece may be cut short
    let json = !whole.is_empty() && whole.iter().all(|l| l.first() == Some(&b'{'));
    Ok(if json {
        Input::Json(text)
    } else {
        Input::Lines(text)
    })
}

/// The relation of one input with `ok` (the line is a JSON object) and the JSON columns.
fn relation(input: &Input) -> String {
    let lit = |p: &str| Dialect::Duckdb.literal(p);
    match input {
        Input::Json(p) => format!(
            "SELECT true AS ok, {EVENT_COLUMNS}, {VARIANTS} AS variants \
             FROM read_json({}, format = 'newline_delimited', columns = {JSON_COLUMNS})",
            lit(p)
        ),
        Input::Lines(p) => format!(
            "SELECT ok, {EVENT_COLUMNS}, {VARIANTS} AS variants FROM (\
               SELECT e IS NOT NULL AS ok, e.kind AS kind, e.ts AS ts, e.flag AS flag, \
                 e.variant AS variant, e.split AS split, e.event AS event, e.value AS value, \
                 e.user AS \"user\", e.country AS country, e.variants AS variants \
               FROM (SELECT try(from_json(substr(line, strpos(line, '{{')), {})) AS e \
                     FROM read_csv({}, columns = {{'line': 'VARCHAR'}}, header = false, \
                       delim = E'\\x01', quote = '', escape = '', auto_detect = false, \
                       strict_mode = false) \
                     WHERE strpos(line, '{{') > 0))",
            lit(JSON_COLUMNS),
            lit(p)
        ),
        Input::Parquet(p) => format!(
            "SELECT true AS ok, kind, ts, flag, variant, CAST(to_json(split) AS JSON) AS split, \
               event, value, \"user\", country, variants \
             FROM read_parquet({}, union_by_name = true)",
            lit(p)
        ),
    }
}

/// The relation of Parquet files as the `events` view: like [`relation`], but the split
/// stays the list of structs it is in the file, as the query only hashes it and turns
/// one per group into JSON text.
fn parquet_view(path: &str) -> String {
    format!(
        "SELECT true AS ok, kind, ts, flag, variant, split, event, value, \"user\", country, \
           variants FROM read_parquet({}, union_by_name = true)",
        Dialect::Duckdb.literal(path)
    )
}

/// Progress on stderr: each step that is still running after a moment is announced,
/// with the time so far every few seconds; nothing for a quick report.
struct Progress {
    tx: Option<mpsc::Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start() -> Progress {
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut step = String::new();
            // A step is shown once it has run a second, then every five.
            let mut due = Instant::now() + Duration::from_secs(1);
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(next) => {
                        step = next;
                        due = Instant::now() + Duration::from_secs(1);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        if start.elapsed() > Duration::from_secs(1) {
                            eprintln!(
                                "edgeflags: report ready in {:.1} s",
                                start.elapsed().as_secs_f64()
                            );
                        }
                        return;
                    }
                }
                if Instant::now() >= due && !step.is_empty() {
                    eprintln!("edgeflags: {step} ({:.0} s)", start.elapsed().as_secs_f64());
                    due += Duration::from_secs(5);
                }
            }
        });
        Progress {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn step(&self, what: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(what.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The events of some files, loaded into DuckDB as the `events` table (or view), ready
/// for the report's query or the guard's.
pub struct Loaded {
    /// The database, with `events`.
    pub db: Connection,
    /// Events read (lines with a JSON object, or Parquet rows).
    pub lines: usize,
    /// Of those, events passed over: no user, or of a kind the analysis does not know.
    pub skipped: usize,
    // Shows what is running on stderr until dropped; the scratch directory DuckDB spills
    // to lives as long as the database.
    progress: Progress,
    _scratch: tempfile::TempDir,
}

impl Loaded {
    /// Announces the next step on stderr if it takes more than a moment.
    pub fn step(&self, what: impl Into<String>) {
        self.progress.step(what);
    }

    /// Runs a query that returns the report's [`super::query::RESULT_COLUMNS`].
    pub fn rows(&self, sql: &str) -> Result<Vec<Row>> {
        let mut stmt = self.db.prepare(sql).context("the report's query")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    flag: r.get(0)?,
                    variant: r.get(1)?,
                    country: r.get(2)?,
                    split: r.get(3)?,
                    users: r.get::<_, i64>(4)? as f64,
                    converted: r.get::<_, i64>(5)? as f64,
                    value_sum: r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                    value_sq: r.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
                })
            })
            .context("the report's query")?
            .collect::<Result<Vec<_>, _>>()
            .context("the report's query")?;
        // In the query's order (flag, variant, country, split, each absent one last),
        // put again here: DuckDB was seen to return the users in more than one variant
        // first when the per-user step is computed twice, its ORDER BY notwithstanding.
        let mut rows = rows;
        let key = |r: &Row| {
            let last = |o: &Option<String>| (o.is_none(), o.clone());
            (
                r.flag.clone(),
                last(&r.variant),
                last(&r.country),
                last(&r.split),
            )
        };
        rows.sort_by_cached_key(key);
        Ok(rows)
    }
}

/// Reads `files` into DuckDB.
pub fn load(files: &[PathBuf], settings: &Settings) -> Result<Loaded> {
    let mut inputs = Vec::new();
    let mut bytes = 0u64;
    for f in files {
        let text = f.to_string_lossy();
        if !has_glob(&text) {
            let meta =
                std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
            if meta.is_dir() {
                bail!("{} is a directory (give its files, or a glob)", f.display());
            }
            bytes += meta.len();
        }
        inputs.push(classify(f)?);
    }
    let progress = Progress::start();
    // A directory of this run's own for DuckDB to spill to (DuckDB creates only the last
    // part of the path it is given); removed, with what was spilled, when dropped.
    let scratch = tempfile::Builder::new()
        .prefix("edgeflags-report-")
        .tempdir()
        .context("cannot make a temporary directory for DuckDB")?;
    // In memory: DuckDB moves what does not fit its limit to the scratch directory.
    let db = Connection::open_in_memory().context("cannot start DuckDB")?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    db.execute_batch(&format!(
        "SET threads = {threads}; SET memory_limit = {}; SET temp_directory = {}; \
         SET preserve_insertion_order = false; SET enable_progress_bar = false;",
        Dialect::Duckdb.literal(&settings.memory_limit),
        Dialect::Duckdb.literal(&scratch.path().join("spill").to_string_lossy()),
    ))
    .context("cannot set DuckDB up")?;

    progress.step(format!(
        "reading {} file{}{}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if bytes > 0 {
            format!(" ({:.0} MB)", bytes as f64 / 1e6)
        } else {
            String::new()
        }
    ));
    if inputs.iter().all(|i| matches!(i, Input::Parquet(_))) {
        // Columnar files need no copy: the query reads them where they are.
        let parts: Vec<String> = inputs
            .iter()
            .map(|i| match i {
                Input::Parquet(p) => parquet_view(p),
                other => relation(other),
            })
            .collect();
        db.execute_batch(&format!(
            "CREATE VIEW events AS {}",
            parts.join(" UNION ALL BY NAME ")
        ))
        .map_err(|e| anyhow::anyhow!("cannot read the events: {e}"))?;
    } else {
        db.execute_batch(CREATE_EVENTS)
            .context("cannot set DuckDB up")?;
        for (i, input) in inputs.iter().enumerate() {
            if inputs.len() > 1 {
                progress.step(format!("reading file {} of {}", i + 1, inputs.len()));
            }
            let load = |input: &Input| db.execute_batch(&insert(input));
            match (load(input), input) {
                (Ok(()), _) => {}
                // A file that looked like JSON lines but is not all through: read it as
                // lines.
                (Err(_), Input::Json(p)) => load(&Input::Lines(p.clone()))
                    .map_err(|e| anyhow::anyhow!("cannot read {p}: {e}"))?,
                (Err(e), Input::Lines(p) | Input::Parquet(p)) => bail!("cannot read {p}: {e}"),
            }
        }
    }
    let (lines, skipped): (i64, i64) = db
        .query_row(
            &format!(
                "SELECT count(*) FILTER (ok), count(*) FILTER (NOT ok OR \"user\" IS NULL \
                   OR kind IS NULL OR kind NOT IN ({})) FROM events",
                KINDS
                    .iter()
                    .map(|k| Dialect::Duckdb.literal(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("cannot count the events")?;
    Ok(Loaded {
        db,
        lines: lines as usize,
        skipped: skipped as usize,
        progress,
        _scratch: scratch,
    })
}

/// Up to this many events, the report's per-user step is kept in memory between its two
/// uses ([`Keep::InMemory`]); past it, computed at each ([`Keep::Recompute`]). Ten million
/// events make at most ten million users a flag, about 1 GB kept at the very worst (two
/// million users, 2 flags, the bench's 10 M events: well within the default 1.5 GB);
/// the 100 M-event bench ran out of memory kept.
const KEEP_UP_TO: usize = 10_000_000;

impl Loaded {
    /// How the report's query should treat its per-user step for these events.
    pub fn keep(&self) -> Keep {
        if self.lines <= KEEP_UP_TO {
            Keep::InMemory
        } else {
            Keep::Recompute
        }
    }
}

/// The kinds of event the analysis reads: `report` counts exposures and conversions,
/// `guard` exposures and origin errors.
const KINDS: [&str; 3] = ["exposure", "conversion", "error"];

/// Reads `files` and runs the report's query over them.
pub fn run(files: &[PathBuf], filter: Filter<'_>, settings: &Settings) -> Result<Run> {
    let loaded = load(files, settings)?;
    loaded.step(format!("counting users in {} events", loaded.lines));
    let rows =
        loaded.rows(&Dialect::Duckdb.report_query_keeping("events", filter, loaded.keep()))?;
    Ok(Run {
        rows,
        lines: loaded.lines,
        skipped: loaded.skipped,
    })
}

/// The DuckDB script `run` executes for `files`, to run in the `duckdb` shell.
pub fn script(files: &[PathBuf], filter: Filter<'_>) -> Result<String> {
    let mut out = format!("{CREATE_EVENTS};\n");
    for f in files {
        out.push_str(&insert(&classify(f)?));
        out.push_str(";\n");
    }
    out.push_str(&Dialect::Duckdb.report_query("events", filter));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_json_lines_is_told_from_a_local_log() {
        let dir = std::env::temp_dir().join(format!("edgeflags-classify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let json = dir.join("a.ndjson");
        std::fs::write(
            &json,
            "{\"kind\":\"exposure\"}\n{\"kind\":\"conversion\"}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let local = dir.join("b.log");
        std::fs::write(&local, "edgeflags_events :: {\"kind\":\"exposure\"}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let p = |f: &Path| f.to_string_lossy().into_owned();
        assert_eq!(classify(&json).ok(), Some(Input::Json(p(&json))));
        assert_eq!(classify(&local).ok(), Some(Input::Lines(p(&local))));
        let pq = dir.join("c.parquet");
        assert_eq!(classify(&pq).ok(), Some(Input::Parquet(p(&pq))));
        let glob = dir.join("*.log");
        assert_eq!(classify(&glob).ok(), Some(Input::Lines(p(&glob))));
        assert!(classify(&dir.join("missing.log")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The hand-computed log (`tests/data/report.ndjson`, explained line by line there
    /// and in `report_sql.rs`).
    const LOG: &str = include_str!("../../tests/data/report.ndjson");
    const SPLIT: &str = r#"[{"variant":"v1","weight":50000},{"variant":"v2","weight":50000}]"#;

    fn scratch(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edgeflags-duck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap_or_else(|e| panic!("{e}"));
        f
    }

    fn report(files: &[PathBuf], event: Option<&str>) -> Run {
        let settings = Settings {
            memory_limit: "256MB".into(),
        };
        let filter = Filter { flag: None, event };
        let mut run = run(files, filter, &settings).unwrap_or_else(|e| panic!("{e:#}"));
        run.rows.sort_by(|a, b| {
            (&a.variant, &a.country)
                .partial_cmp(&(&b.variant, &b.country))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        run
    }

    fn row(
        variant: Option<&str>,
        country: Option<&str>,
        users: f64,
        conv: f64,
        sum: f64,
        sq: f64,
    ) -> Row {
        Row {
            flag: "checkout".into(),
            variant: variant.map(str::to_string),
            country: country.map(str::to_string),
            split: variant.map(|_| SPLIT.to_string()),
            users,
            converted: conv,
            value_sum: sum,
            value_sq: sq,
        }
    }

    /// The rows of the hand-computed log for `purchase`: v1 is a and b (b bought before
    /// being exposed), v2 is c, e and g (c bought twice, for 5 and 3; g signed up), d saw
    /// both variants, f was never exposed.
    fn expected() -> Vec<Row> {
        vec![
            row(None, None, 1.0, 0.0, 0.0, 0.0),
            row(Some("v1"), Some("JP"), 1.0, 1.0, 10.0, 100.0),
            row(Some("v1"), Some("US"), 1.0, 0.0, 0.0, 0.0),
            row(Some("v2"), Some("FR"), 1.0, 0.0, 0.0, 0.0),
            row(Some("v2"), Some("JP"), 2.0, 1.0, 8.0, 64.0),
        ]
    }

    #[test]
    fn the_query_counts_users_once_after_their_first_exposure() {
        let file = scratch("report.ndjson", LOG);
        assert_eq!(
            classify(&file).ok(),
            Some(Input::Json(file.to_string_lossy().into()))
        );
        let r = report(std::slice::from_ref(&file), Some("purchase"));
        assert_eq!((r.lines, r.skipped), (15, 0));
        assert_eq!(r.rows, expected());
        // Every conversion event: g's sign-up, in the millisecond of its exposure, counts.
        let all = report(std::slice::from_ref(&file), None);
        let g = all
            .rows
            .iter()
            .find(|r| r.variant.as_deref() == Some("v2") && r.country.as_deref() == Some("JP"));
        assert_eq!(
            g.map(|r| (r.users, r.converted, r.value_sum)),
            Some((2.0, 2.0, 8.0))
        );
    }

    #[test]
    fn a_local_log_with_prefixes_other_lines_and_version_1_events_reads_the_same() {
        let mut log = String::from("starting up\n{not json\n");
        for line in LOG.lines() {
            log.push_str(&format!("edgeflags_events :: {line}\n"));
        }
        log.push_str("edgeflags_ops :: {\"kind\":\"heartbeat\",\"user\":\"a\"}\n");
        log.push_str("{\"kind\":\"exposure\",\"flag\":\"checkout\",\"variant\":\"v1\"}\n");
        // Version 1: variants keyed by flag. e buys after being exposed.
        log.push_str("edgeflags_events :: {\"kind\":\"conversion\",\"ts\":600,\"event\":\"purchase\",\"value\":2,\"user\":\"e\",\"variants\":{\"checkout\":\"v2\"}}\n");
        let file = scratch("local.log", &log);
        assert_eq!(
            classify(&file).ok(),
            Some(Input::Lines(file.to_string_lossy().into()))
        );
        let r = report(&[file], Some("purchase"));
        // 15 + heartbeat + no user + version 1 read; not JSON, heartbeat, no user skipped.
        assert_eq!((r.lines, r.skipped), (18, 3));
        let mut want = expected();
        want[3] = row(Some("v2"), Some("FR"), 1.0, 1.0, 2.0, 4.0);
        assert_eq!(r.rows, want);
    }

    #[test]
    fn the_per_user_step_kept_or_computed_twice_gives_the_same_rows() {
        let file = scratch("keep.ndjson", LOG);
        let settings = Settings {
            memory_limit: "256MB".into(),
        };
        let loaded =
            load(std::slice::from_ref(&file), &settings).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(loaded.keep(), Keep::InMemory);
        for event in [Some("purchase"), None] {
            let filter = Filter { flag: None, event };
            let query = |keep| Dialect::Duckdb.report_query_keeping("events", filter, keep);
            assert!(query(Keep::Recompute).contains("assigned AS NOT MATERIALIZED ("));
            assert!(query(Keep::InMemory).contains("assigned AS ("));
            let kept = loaded
                .rows(&query(Keep::InMemory))
                .unwrap_or_else(|e| panic!("{e:#}"));
            let twice = loaded
                .rows(&query(Keep::Recompute))
                .unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(kept, twice);
            if event.is_some() {
                // The users in more than one variant last, then the same rows.
                let mut want = expected();
                want.rotate_left(1);
                assert_eq!(kept, want);
            }
        }
    }

    #[test]
    fn parquet_and_globs_read_the_same() {
        let file = scratch("glob-a.ndjson", LOG);
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let pq = dir.join("events.parquet");
        let db = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        db.execute_batch(&format!(
            "COPY (SELECT * FROM read_json({}, columns = {{schema_version: 'BIGINT', kind: 'VARCHAR', ts: 'BIGINT', flag: 'VARCHAR', variant: 'VARCHAR', reason: 'VARCHAR', split: 'STRUCT(variant VARCHAR, weight BIGINT)[]', event: 'VARCHAR', value: 'DOUBLE', variants: 'STRUCT(flag VARCHAR, variant VARCHAR)[]', snapshot: 'VARCHAR', user: 'VARCHAR', country: 'VARCHAR'}})) TO {} (FORMAT parquet)",
            Dialect::Duckdb.literal(&file.to_string_lossy()),
            Dialect::Duckdb.literal(&pq.to_string_lossy())
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let r = report(std::slice::from_ref(&pq), Some("purchase"));
        assert_eq!((r.lines, r.skipped), (15, 0));
        assert_eq!(r.rows, expected());
        // The log in two files, read by a glob.
        let lines: Vec<&str> = LOG.lines().collect();
        let (a, b) = lines.split_at(8);
        scratch("glob-a.ndjson", &(a.join("\n") + "\n"));
        scratch("glob-b.ndjson", &(b.join("\n") + "\n"));
        let r = report(&[dir.join("glob-*.ndjson")], Some("purchase"));
        assert_eq!(r.lines, 15);
        assert_eq!(r.rows, expected());
    }
}
