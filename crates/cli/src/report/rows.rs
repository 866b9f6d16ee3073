//! The report query's result rows (see [`super::query`]), from DuckDB or from a file of a
//! warehouse's result (JSON: an array of objects, or one object per line, numbers as
//! numbers or as strings, as BigQuery and ClickHouse print them), folded into counts per
//! flag and variant. Everything after this works on the counts alone.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use edgeflags_engine::events::Weight;
use serde::{Deserialize, Deserializer};

/// One row of the query's result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Row {
    /// The flag.
    pub flag: String,
    /// The variant; `None` for the users exposed to more than one variant.
    pub variant: Option<String>,
    /// The country of the users' first exposure (`??` when unknown).
    pub country: Option<String>,
    /// The split of the users' first exposure, as JSON text; `None` or `[]` for none.
    pub split: Option<String>,
    /// Users.
    #[serde(deserialize_with = "number")]
    pub users: f64,
    /// Of those, users with a conversion counted.
    #[serde(deserialize_with = "number")]
    pub converted: f64,
    /// The sum of the users' converted values.
    #[serde(deserialize_with = "number")]
    pub value_sum: f64,
    /// The sum of their squares.
    #[serde(deserialize_with = "number")]
    pub value_sq: f64,
}

/// A number, or a string holding one (BigQuery's and ClickHouse's JSON output quote
/// 64-bit integers), or null for 0 (a sum over no rows).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Number(f64),
        Text(String),
        Null(()),
    }
    match Num::deserialize(d)? {
        Num::Number(n) => Ok(n),
        Num::Text(t) => t.trim().parse().map_err(serde::de::Error::custom),
        Num::Null(()) => Ok(0.0),
    }
}

/// Rows from the text of a result file: a JSON array of objects, or JSON lines.
pub fn parse(text: &str) -> Result<Vec<Row>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).context("not an array of result rows");
    }
    trimmed
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("line {}: not a result row", i + 1))
        })
        .collect()
}

/// One variant's users, counted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    /// Users exposed to the variant (and to no other).
    pub exposed: usize,
    /// Of those, users with a conversion counted.
    pub converted: usize,
    /// The summed value of their counted conversions.
    pub value: f64,
    /// The sum of the squares of each user's summed value.
    pub value_sq: f64,
    /// Per country of first exposure: `(exposed, converted)`.
    pub countries: BTreeMap<String, (usize, usize)>,
}

/// The counts of a whole log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// Flag -> variant -> counts, for every exposed variant.
    pub flags: BTreeMap<String, BTreeMap<String, Counts>>,
    /// Flag -> users exposed to more than one variant (left out of `flags`).
    pub mixed: BTreeMap<String, usize>,
    /// Flag -> split of first exposure -> variant -> users, for the users a split placed.
    pub splits: BTreeMap<String, BTreeMap<Vec<Weight>, BTreeMap<String, usize>>>,
    /// Events read (lines with a JSON object, or rows).
    pub lines: usize,
    /// Events passed over: not JSON, without a user, or of an unknown kind.
    pub skipped: usize,
}

/// Folds result rows into counts; `lines` and `skipped` are the reader's.
pub fn tally(rows: &[Row], lines: usize, skipped: usize) -> Result<Tally> {
    let mut t = Tally {
        lines,
        skipped,
        ..Tally::default()
    };
    for r in rows {
        let users = r.users as usize;
        let Some(variant) = &r.variant else {
            *t.mixed.entry(r.flag.clone()).or_default() += users;
            continue;
        };
        let converted = r.converted as usize;
        let c = t
            .flags
            .entry(r.flag.clone())
            .or_default()
            .entry(variant.clone())
            .or_default();
        c.exposed += users;
        c.converted += converted;
        c.value += r.value_sum;
        c.value_sq += r.value_sq;
        let country = r.country.clone().unwrap_or_else(|| "??".into());
        let n = c.countries.entry(country).or_default();
        n.0 += users;
        n.1 += converted;
        let split: Vec<Weight> = match r.split.as_deref() {
            None | Some("") => Vec::new(),
            Some(text) => serde_json::from_str(text)
                .with_context(|| format!("flag {}: the split {text} is not a list", r.flag))?,
        };
        if !split.is_empty() {
            *t.splits
                .entry(r.flag.clone())
                .or_default()
                .entry(split)
                .or_default()
                .entry(variant.clone())
                .or_default() += users;
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPLIT: &str = r#"[{"variant":"v1","weight":50000},{"variant":"v2","weight":50000}]"#;

    #[test]
    fn rows_read_from_bigquery_and_clickhouse_output() {
        // BigQuery's `bq query --format=json`: an array, integers as strings.
        let bq = format!(
            r#"[{{"flag":"f","variant":"v1","country":"JP","split":{s},"users":"3","converted":"1","value_sum":"2.5","value_sq":"6.25"}}]"#,
            s = serde_json::json!(SPLIT)
        );
        // ClickHouse's JSONEachRow: one object per line, 64-bit integers quoted.
        let ch = format!(
            "{{\"flag\":\"f\",\"variant\":\"v1\",\"country\":\"JP\",\"split\":{s},\"users\":\"3\",\"converted\":\"1\",\"value_sum\":2.5,\"value_sq\":6.25}}\n",
            s = serde_json::json!(SPLIT)
        );
        let a = parse(&bq).unwrap_or_else(|e| panic!("{e:#}"));
        let b = parse(&ch).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(a, b);
        assert_eq!(
            (a[0].users, a[0].converted, a[0].value_sum),
            (3.0, 1.0, 2.5)
        );
        assert!(parse("[{\"flag\": 1}]").is_err());
        assert!(parse("{\"flag\":\"f\",\"users\":\"x\"}").is_err());
    }

    fn row(
        variant: Option<&str>,
        country: &str,
        split: Option<&str>,
        users: f64,
        conv: f64,
    ) -> Row {
        Row {
            flag: "f".into(),
            variant: variant.map(str::to_string),
            country: Some(country.into()),
            split: split.map(str::to_string),
            users,
            converted: conv,
            value_sum: conv * 2.0,
            value_sq: conv * 4.0,
        }
    }

    #[test]
    fn rows_fold_into_variants_countries_splits_and_mixed_users() {
        let rows = [
            row(Some("v1"), "JP", Some(SPLIT), 10.0, 2.0),
            row(Some("v1"), "US", Some(SPLIT), 5.0, 1.0),
            row(Some("v1"), "US", None, 4.0, 0.0),
            row(Some("v2"), "JP", Some(SPLIT), 12.0, 6.0),
            row(None, "", None, 3.0, 0.0),
        ];
        let t = tally(&rows, 100, 7).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((t.lines, t.skipped), (100, 7));
        let v1 = &t.flags["f"]["v1"];
        assert_eq!(
            (v1.exposed, v1.converted, v1.value, v1.value_sq),
            (19, 3, 6.0, 12.0)
        );
        assert_eq!(
            v1.countries,
            BTreeMap::from([("JP".into(), (10, 2)), ("US".into(), (9, 1))])
        );
        assert_eq!(t.mixed["f"], 3);
        let split: Vec<Weight> = serde_json::from_str(SPLIT).unwrap_or_default();
        assert_eq!(
            t.splits["f"][&split],
            BTreeMap::from([("v1".into(), 15), ("v2".into(), 12)])
        );
        let bad = [row(Some("v1"), "JP", Some("{oops"), 1.0, 0.0)];
        assert!(tally(&bad, 1, 0).is_err());
    }
}
