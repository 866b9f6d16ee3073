//! `edgeflags report`: exposure/conversion logs (the `edgeflags_events` endpoint's JSON
//! lines, or Parquet) summarised per flag and variant. Arrows point one way: `duck` reads
//! the files into DuckDB and runs the query `query` writes (or `rows` reads a warehouse's
//! result of that query), `rows` folds the result into counts, `summary` turns counts
//! into figures with `stats`, `chart` draws figures; this file runs them and prints the
//! table or the JSON, or prints the query for another engine. `guardrail` counts what
//! `edgeflags guard` compares, through the same load and query.

mod chart;
mod duck;
pub(crate) mod guardrail;
mod query;
mod rows;
mod stats;
mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use crate::input::read;
use query::Dialect;
use summary::{Summary, VariantSummary};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The event files: JSON lines (lines may carry a prefix before the JSON, such as
    /// `edgeflags_events :: `; `.gz` is read gzipped) or Parquet (`.parquet`), as paths or
    /// quoted globs (`'logs/*.log.gz'`). With `--rows`, one file of query results.
    file: Vec<PathBuf>,
    /// Count only conversions of this event.
    #[arg(long)]
    event: Option<String>,
    /// Only this flag.
    #[arg(long)]
    flag: Option<String>,
    /// The variant others are compared with (default: `control` if there is one, else
    /// the first variant by name).
    #[arg(long)]
    control: Option<String>,
    /// Show conversion rates per country.
    #[arg(long)]
    by_country: bool,
    /// Write an SVG chart of the rates and their intervals to this file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The always-valid comparison's mixing scale: the standard deviation of the normal
    /// mixture over the difference of rates, about the size of difference you expect
    /// (0.01 is one point, suited to rates near 10%).
    #[arg(long, default_value_t = 0.01)]
    tau: f64,
    /// Print the report's query for this engine instead of running it (`duckdb`: the
    /// script `report` runs over FILE; `bigquery`, `clickhouse`: over `--table`).
    #[arg(long, value_name = "ENGINE")]
    sql: Option<Dialect>,
    /// With `--sql`: print the events table's definition instead (BigQuery: a schema file
    /// for `bq mk --table`; ClickHouse and DuckDB: `CREATE TABLE`).
    #[arg(long, requires = "sql")]
    schema: bool,
    /// With `--sql`: the events table (`project.dataset.table`, `database.table`).
    #[arg(long, default_value = "edgeflags_events")]
    table: String,
    /// FILE holds the result of the report's query run elsewhere (JSON: an array of
    /// rows, as `bq query --format=json` prints, or a row per line, as ClickHouse's
    /// `FORMAT JSONEachRow`): report on it.
    #[arg(long, conflicts_with = "sql")]
    rows: bool,
    /// DuckDB's memory limit; past it DuckDB spills to a temporary directory.
    #[arg(long, default_value = "1.5GB", value_name = "SIZE")]
    memory_limit: String,
}

/// Runs `report`.
pub fn report(a: ReportArgs) -> Result<ExitCode> {
    let filter = query::Filter {
        flag: a.flag.as_deref(),
        event: a.event.as_deref(),
    };
    if let Some(dialect) = a.sql {
        if !query::valid_table(&a.table) {
            bail!(
                "--table: `{}` is not a table name (letters, digits, _ - .)",
                a.table
            );
        }
        let text = match (dialect, a.schema) {
            (_, true) => dialect.table_definition(&a.table),
            (Dialect::Duckdb, false) => {
                if a.file.is_empty() {
                    bail!("--sql duckdb: give the event files the script reads");
                }
                duck::script(&a.file, filter)?
            }
            (_, false) => dialect.report_query(&a.table, filter),
        };
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if a.file.is_empty() {
        bail!("give the event files to report on (or --sql ENGINE to print the query)");
    }
    if !(a.tau > 0.0 && a.tau.is_finite()) {
        bail!("--tau must be a positive number (got {})", a.tau);
    }
    let (tally, source) = if a.rows {
        let [file] = a.file.as_slice() else {
            bail!("--rows reads one file of query results");
        };
        let rows = rows::parse(&read(file)?)
            .with_context(|| format!("{}: not the report query's result", file.display()))?;
        let n = rows.len();
        (rows::tally(&rows, 0, 0)?, format!("{n} result rows read"))
    } else {
        let settings = duck::Settings {
            memory_limit: a.memory_limit.clone(),
        };
        let run = duck::run(&a.file, filter, &settings)?;
        let tally = rows::tally(&run.rows, run.lines, run.skipped)?;
        let source = format!("{} events read, {} skipped", run.lines, run.skipped);
        (tally, source)
    };
    let summary = summary::summarise(&tally, a.control.as_deref(), a.tau);
    if let Some(path) = &a.chart {
        std::fs::write(path, chart::chart_svg(&summary.flags))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("edgeflags: chart written to {}", path.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        table(&summary, &source, a.event.as_deref(), a.by_country)
    );
    Ok(ExitCode::SUCCESS)
}

/// The report for people: per flag, a row per variant with its rate, interval, difference
/// against the control and a bar; a line per variant with the always-valid comparison;
/// then users exposed per country (with `by_country`, conversions and rates too); the
/// value per user when conversions have values; the users left out for being in more than
/// one variant; the sample-ratio check.
fn table(summary: &Summary, source: &str, event: Option<&str>, by_country: bool) -> String {
    let mut out = format!(
        "{source}{}\n",
        event
            .map(|e| format!("; conversions: {e}"))
            .unwrap_or_default()
    );
    for (flag, vs) in &summary.flags {
        out.push_str(&format!("\n{flag}\n"));
        out.push_str(&format!(
            "  {:<14} {:>9} {:>10} {:>8}  {:<17}  {:<26}  rate (▏= 95% interval)\n",
            "variant", "exposed", "converted", "rate", "95% interval", "vs control (95% interval)"
        ));
        let top = vs
            .values()
            .map(|v| v.ci95[1])
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        for (variant, v) in vs {
            out.push_str(&row(variant, v, top));
        }
        for (variant, v) in vs {
            if let Some((d, seq)) = v
                .vs_control
                .as_ref()
                .and_then(|d| d.sequential.as_ref().map(|s| (d, s)))
            {
                out.push_str(&format!(
                    "  always valid, {variant} vs {}: [{:+.2}, {:+.2}] pts, p = {} (mSPRT, tau {})\n",
                    d.control,
                    seq.ci95[0] * 100.0,
                    seq.ci95[1] * 100.0,
                    p_text(seq.p),
                    seq.tau
                ));
            }
        }
        let mut countries: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (variant, v) in vs {
            for (c, n) in &v.countries {
                let entry = if by_country {
                    format!(
                        "{variant} {}/{} ({:.2}%)",
                        n.converted,
                        n.exposed,
                        n.rate * 100.0
                    )
                } else {
                    format!("{variant} {}", n.exposed)
                };
                countries.entry(c).or_default().push(entry);
            }
        }
        for (c, parts) in countries {
            if by_country {
                out.push_str(&format!("  in {c}: {}\n", parts.join(", ")));
            } else {
                out.push_str(&format!("  exposed in {c}: {}\n", parts.join(", ")));
            }
        }
        if vs.values().any(|v| v.value != 0.0) {
            let parts: Vec<String> = vs
                .iter()
                .map(|(variant, v)| {
                    let half = 1.959_964 * (v.value_var / v.exposed.max(1) as f64).sqrt();
                    format!(
                        "{variant} {:.2} [{:.2}, {:.2}]",
                        v.value_mean,
                        v.value_mean - half,
                        v.value_mean + half
                    )
                })
                .collect();
            out.push_str(&format!(
                "  value per exposed user (95% interval): {}\n",
                parts.join(", ")
            ));
        }
        if let Some(n) = summary.mixed.get(flag) {
            out.push_str(&format!(
                "  {n} user{} in more than one variant, left out\n",
                if *n == 1 { "" } else { "s" }
            ));
        }
        if let Some(srm) = summary.srm.get(flag) {
            let parts: Vec<String> = srm
                .observed
                .iter()
                .map(|(variant, o)| {
                    let e = srm.expected.get(variant).copied().unwrap_or(0.0);
                    format!("{variant} {o} (expected {e:.0})")
                })
                .collect();
            let verdict = if srm.warning {
                "WARNING: sample ratio mismatch, the users do not follow the split weights"
            } else {
                "sample ratio"
            };
            out.push_str(&format!(
                "  {verdict}: {}; chi-square {:.2}, {} df, p = {:.3e}\n",
                parts.join(", "),
                srm.chi2,
                srm.df,
                srm.p
            ));
        }
    }
    out
}

/// A p-value for people: three decimals, or two significant digits under 0.001.
fn p_text(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// One variant's row: figures, then a bar of 30 cells up to `top`, the rate filled (█)
/// and the rest of the interval marked (▏).
fn row(variant: &str, v: &VariantSummary, top: f64) -> String {
    let [lo, hi] = v.ci95;
    let width = 30.0;
    let bar: String = (0..width as usize)
        .map(|i| {
            let x = (i as f64 + 0.5) / width * top;
            if x <= v.rate {
                '█'
            } else if x <= hi && x >= lo {
                '▏'
            } else {
                ' '
            }
        })
        .collect();
    let vs_control = match &v.vs_control {
        Some(d) => format!(
            "{:+.2} pts [{:+.2}, {:+.2}]",
            d.diff * 100.0,
            d.ci95[0] * 100.0,
            d.ci95[1] * 100.0
        ),
        None => "control".to_string(),
    };
    format!(
        "  {:<14} {:>9} {:>10} {:>7.2}%  [{:>5.2}%, {:>5.2}%]  {:<26}  {}\n",
        variant,
        v.exposed,
        v.converted,
        v.rate * 100.0,
        lo * 100.0,
        hi * 100.0,
        vs_control,
        bar.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"kind":"exposure","flag":"checkout","variant":"v1","user":"a","country":"JP"}
{"kind":"exposure","flag":"checkout","variant":"v1","user":"b","country":"US"}
{"kind":"exposure","flag":"checkout","variant":"v2","user":"c","country":"JP"}
{"kind":"exposure","flag":"checkout","variant":"v2","user":"d","country":"JP"}
{"kind":"conversion","event":"purchase","value":3,"user":"a","variants":{"checkout":"v1"}}
{"kind":"conversion","event":"purchase","value":4,"user":"c","variants":{"checkout":"v2"}}
{"kind":"conversion","event":"purchase","value":4,"user":"d","variants":{"checkout":"v2"}}
"#;

    fn summary() -> Summary {
        summary::summarise(&local(LOG, query::Filter::default()), None, 0.01)
    }

    /// The counts of a log, by DuckDB.
    fn local(log: &str, filter: query::Filter<'_>) -> rows::Tally {
        let dir =
            std::env::temp_dir().join(format!("edgeflags-report-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        // A file of this call's own: the tests run in parallel, and each removes its file.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.join(format!("{n}.log"));
        std::fs::write(&file, log).unwrap_or_else(|e| panic!("{e}"));
        let settings = duck::Settings {
            memory_limit: "256MB".into(),
        };
        let run = duck::run(std::slice::from_ref(&file), filter, &settings)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let _ = std::fs::remove_file(&file);
        rows::tally(&run.rows, run.lines, run.skipped).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn the_table_has_a_row_per_variant_and_users_per_country() {
        let text = table(
            &summary(),
            "7 events read, 0 skipped",
            Some("purchase"),
            false,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "7 events read, 0 skipped; conversions: purchase");
        assert_eq!(lines[2], "checkout");
        assert!(lines[4].starts_with(
            "  v1                     2          1   50.00%  [ 9.45%, 90.55%]  control                     "
        ), "{text}");
        // v2: 2 of 2, against v1's 1 of 2.
        assert!(lines[5].starts_with(
            "  v2                     2          2  100.00%  [34.24%, 100.00%]  +50.00 pts [-27.26, +90.55]  "
        ), "{text}");
        // Two users a side: the always-valid interval is every difference rates can have.
        assert_eq!(
            lines[6],
            "  always valid, v2 vs v1: [-100.00, +100.00] pts, p = 1.000 (mSPRT, tau 0.01)"
        );
        assert_eq!(lines[7], "  exposed in JP: v1 1, v2 2");
        assert_eq!(lines[8], "  exposed in US: v1 1");
        // a: 3 of two users; c, d: 4 each. v1's values 3 and 0: mean 1.5, variance 4.5,
        // half-width 1.96 √(4.5 / 2) = 2.94.
        assert_eq!(
            lines[9],
            "  value per exposed user (95% interval): v1 1.50 [-1.44, 4.44], v2 4.00 [4.00, 4.00]"
        );
        assert_eq!(lines.len(), 10);
        let by_country = table(&summary(), "7 events read, 0 skipped", None, true);
        assert!(by_country.starts_with("7 events read, 0 skipped\n"));
        assert!(by_country.contains("  in JP: v1 1/1 (100.00%), v2 2/2 (100.00%)\n"));
        assert!(by_country.contains("  in US: v1 0/1 (0.00%)\n"));
    }

    #[test]
    fn the_always_valid_line_has_the_hand_computed_figures() {
        // 1,000 users a side, 150 against 100 converted: see stats.rs for the figures.
        let mut log = String::new();
        for (variant, converted) in [("v1", 100), ("v2", 150)] {
            for u in 0..1000 {
                log.push_str(&format!(
                    "{{\"kind\":\"exposure\",\"flag\":\"f\",\"variant\":\"{variant}\",\"user\":\"{variant}-{u}\"}}\n"
                ));
                if u < converted {
                    log.push_str(&format!(
                        "{{\"kind\":\"conversion\",\"event\":\"buy\",\"user\":\"{variant}-{u}\",\"variants\":[{{\"flag\":\"f\",\"variant\":\"{variant}\"}}]}}\n"
                    ));
                }
            }
        }
        let s = summary::summarise(&local(&log, query::Filter::default()), None, 0.01);
        let text = table(&s, "", Some("buy"), false);
        assert!(
            text.contains(
                "  always valid, v2 vs v1: [-1.66, +11.64] pts, p = 0.201 (mSPRT, tau 0.01)\n"
            ),
            "{text}"
        );
        // Beside it, the fixed-horizon interval already excludes 0.
        assert!(text.contains("+5.00 pts [+2.10, +7.90]"), "{text}");
    }

    #[test]
    fn a_bar_fills_the_rate_and_marks_the_rest_of_the_interval() {
        let s = summary();
        let (v1, v2) = (&s.flags["checkout"]["v1"], &s.flags["checkout"]["v2"]);
        // On a scale to 1.0, 30 cells of 1/30: v1's rate 0.5 fills 15 cells, its
        // interval 0.0945..0.9055 marks cells 15 to 26; v2 fills all 30.
        let bar = |r: &str| r.rsplit("  ").next().unwrap_or("").to_string();
        assert_eq!(
            bar(&row("v1", v1, 1.0)),
            format!("{}{}\n", "█".repeat(15), "▏".repeat(12))
        );
        assert_eq!(bar(&row("v2", v2, 1.0)), format!("{}\n", "█".repeat(30)));
    }
}
