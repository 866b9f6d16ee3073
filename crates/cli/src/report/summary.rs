//! The report's figures from the counts: per flag and variant, the conversion rate with its
//! interval, the difference against the control (fixed-horizon and always-valid), and the
//! value per user; per flag, the users left out for being in more than one variant and the
//! sample-ratio check. One typed record, which `--json` prints and the table and chart
//! read.

use std::collections::BTreeMap;

use serde::Serialize;

use edgeflags_engine::events::Weight;

use super::rows::{Counts, Tally};
use super::stats::{
    SEQUENTIAL_ALPHA, always_valid, chi_square, chi_square_p, difference, mean_variance, ratio,
    wilson,
};

/// The p-value under which the sample-ratio check warns: a split this far from its
/// weights means the assignment or the logging is broken, not that a variant is better.
pub const SRM_ALPHA: f64 = 0.001;

// The fields of each record are in alphabetical order: the order `--json` has always
// printed them in.

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Flag -> variant -> figures.
    pub flags: BTreeMap<String, BTreeMap<String, VariantSummary>>,
    /// Lines with a JSON object (or rows of a Parquet file).
    pub lines: usize,
    /// Flag -> users exposed to more than one variant, left out of its figures.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mixed: BTreeMap<String, usize>,
    /// Lines passed over.
    pub skipped: usize,
    /// Flag -> the sample-ratio check, for flags whose users a split placed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub srm: BTreeMap<String, SampleRatio>,
}

/// The sample-ratio check of one flag: the users each split placed, per variant, against
/// the split's weights (Pearson's chi-square over every split's variants; a user counts
/// under the split of their first exposure).
#[derive(Debug, Serialize)]
pub struct SampleRatio {
    /// The chi-square statistic.
    pub chi2: f64,
    /// Its degrees of freedom: the variants of each split less one, added up.
    pub df: usize,
    /// Variant -> users expected from the weights.
    pub expected: BTreeMap<String, f64>,
    /// Variant -> users placed by a split.
    pub observed: BTreeMap<String, usize>,
    /// The probability of a statistic this large if the users follow the weights.
    pub p: f64,
    /// Whether `p` is under 0.001: the users do not follow the weights.
    pub warning: bool,
}

/// One variant's figures.
#[derive(Debug, Serialize)]
pub struct VariantSummary {
    /// The 95% (Wilson) interval of the rate.
    pub ci95: [f64; 2],
    /// Users exposed who converted.
    pub converted: usize,
    /// The same per country of exposure.
    pub countries: BTreeMap<String, CountrySummary>,
    /// Users exposed.
    pub exposed: usize,
    /// Converted over exposed.
    pub rate: f64,
    /// The summed value of the variant's counted conversions.
    pub value: f64,
    /// The value per exposed user (0 for those who did not convert).
    pub value_mean: f64,
    /// The sample variance of the value per exposed user.
    pub value_var: f64,
    /// The difference against the control; absent for the control itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_control: Option<VsControl>,
}

/// One variant's figures in one country.
#[derive(Debug, Serialize)]
pub struct CountrySummary {
    /// Users exposed in the country who converted.
    pub converted: usize,
    /// Users exposed in the country.
    pub exposed: usize,
    /// Converted over exposed.
    pub rate: f64,
}

/// A variant's rate minus the control's, with Newcombe's 95% interval, and the
/// always-valid comparison beside it.
#[derive(Debug, Serialize)]
pub struct VsControl {
    /// The 95% interval of the difference.
    pub ci95: [f64; 2],
    /// The control variant.
    pub control: String,
    /// The difference of the rates.
    pub diff: f64,
    /// The always-valid (sequential) comparison; absent when the variant or the control
    /// has no users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Sequential>,
}

/// The always-valid comparison of a variant with the control at this look: the mixture
/// SPRT of Johari et al. (see `edgeflags_engine::sequential`) on Agresti and Caffo's
/// adjusted counts. Valid whenever it is read: checking every day and acting on the
/// first `p` at or under 0.05 keeps the chance of a false call at 5%.
#[derive(Debug, Serialize)]
pub struct Sequential {
    /// The always-valid 95% interval of the difference, within [-1, 1].
    pub ci95: [f64; 2],
    /// The always-valid p-value against "no difference".
    pub p: f64,
    /// The mixture's standard deviation on the difference of rates (`--tau`).
    pub tau: f64,
}

/// The control of a flag's variants: `asked` when the flag has it, else `control` when it
/// has one, else the first by name.
pub fn control_of(variants: &BTreeMap<String, Counts>, asked: Option<&str>) -> String {
    asked
        .filter(|c| variants.contains_key(*c))
        .map(str::to_string)
        .or_else(|| {
            variants
                .contains_key("control")
                .then(|| "control".to_string())
        })
        .or_else(|| variants.keys().next().cloned())
        .unwrap_or_default()
}

/// The sample-ratio check over the users each split placed (split -> variant -> users).
pub fn sample_ratio(splits: &BTreeMap<Vec<Weight>, BTreeMap<String, usize>>) -> SampleRatio {
    let mut cells = Vec::new();
    let mut df = 0;
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut observed: BTreeMap<String, usize> = BTreeMap::new();
    for (split, users) in splits {
        let n: usize = users.values().sum();
        let total: f64 = split.iter().map(|w| f64::from(w.weight)).sum();
        let weighted = split.iter().filter(|w| w.weight > 0).count();
        df += weighted.saturating_sub(1);
        for w in split {
            let e = if total > 0.0 {
                n as f64 * f64::from(w.weight) / total
            } else {
                0.0
            };
            let o = users.get(&w.variant).copied().unwrap_or(0);
            cells.push((o as f64, e));
            *expected.entry(w.variant.clone()).or_default() += e;
        }
        // Users in a variant the split does not name: none were expected.
        for (variant, &o) in users {
            if !split.iter().any(|w| &w.variant == variant) {
                cells.push((o as f64, 0.0));
                expected.entry(variant.clone()).or_default();
            }
        }
        for (variant, &o) in users {
            *observed.entry(variant.clone()).or_default() += o;
        }
    }
    for variant in expected.keys() {
        observed.entry(variant.clone()).or_default();
    }
    let chi2 = chi_square(&cells);
    let p = chi_square_p(chi2, df);
    SampleRatio {
        chi2,
        df,
        expected,
        observed,
        p,
        warning: p < SRM_ALPHA,
    }
}

/// The figures of every counted variant, each compared with its flag's control (the
/// `asked` one when the flag has it, see [`control_of`]; always-valid figures with the
/// mixture scale `tau`), and of every flag.
pub fn summarise(tally: &Tally, asked: Option<&str>, tau: f64) -> Summary {
    let mut flags = BTreeMap::new();
    for (flag, variants) in &tally.flags {
        let control = control_of(variants, asked);
        let control_counts = variants
            .get(&control)
            .map(|c| (c.converted, c.exposed))
            .unwrap_or((0, 0));
        let mut vs = BTreeMap::new();
        for (variant, counts) in variants {
            let (c, n) = (counts.converted, counts.exposed);
            let (lo, hi) = wilson(c as f64, n as f64);
            let countries = counts
                .countries
                .iter()
                .map(|(k, &(exposed, converted))| {
                    let rate = ratio(converted, exposed);
                    let figures = CountrySummary {
                        converted,
                        exposed,
                        rate,
                    };
                    (k.clone(), figures)
                })
                .collect();
            let vs_control = (*variant != control).then(|| {
                let (diff, dlo, dhi) = difference((c, n), control_counts);
                let sequential = always_valid((c, n), control_counts, SEQUENTIAL_ALPHA, tau).map(
                    |(p, lo, hi)| Sequential {
                        ci95: [lo, hi],
                        p,
                        tau,
                    },
                );
                VsControl {
                    ci95: [dlo, dhi],
                    control: control.clone(),
                    diff,
                    sequential,
                }
            });
            let (value_mean, value_var) = mean_variance(n, counts.value, counts.value_sq);
            let figures = VariantSummary {
                ci95: [lo, hi],
                converted: c,
                countries,
                exposed: n,
                rate: ratio(c, n),
                value: counts.value,
                value_mean,
                value_var,
                vs_control,
            };
            vs.insert(variant.clone(), figures);
        }
        flags.insert(flag.clone(), vs);
    }
    Summary {
        flags,
        lines: tally.lines,
        mixed: tally.mixed.clone(),
        skipped: tally.skipped,
        srm: tally
            .splits
            .iter()
            .map(|(flag, splits)| (flag.clone(), sample_ratio(splits)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(converted: usize, exposed: usize) -> Counts {
        Counts {
            exposed,
            converted,
            value: converted as f64 * 10.0,
            value_sq: converted as f64 * 100.0,
            countries: BTreeMap::from([("JP".to_string(), (exposed, converted))]),
        }
    }

    fn variants(names: &[&str]) -> BTreeMap<String, Counts> {
        names
            .iter()
            .map(|n| (n.to_string(), counts(1, 10)))
            .collect()
    }

    #[test]
    fn the_control_is_the_one_asked_for_else_control_else_the_first() {
        let vs = variants(&["b", "control", "a"]);
        assert_eq!(control_of(&vs, Some("b")), "b");
        assert_eq!(control_of(&vs, Some("missing")), "control");
        assert_eq!(control_of(&vs, None), "control");
        assert_eq!(control_of(&variants(&["v2", "v1"]), None), "v1");
        assert_eq!(control_of(&BTreeMap::new(), None), "");
    }

    #[test]
    fn every_variant_but_the_control_is_compared_with_it() {
        let tally = Tally {
            flags: BTreeMap::from([(
                "checkout".to_string(),
                BTreeMap::from([
                    ("v1".into(), counts(10, 100)),
                    ("v2".into(), counts(20, 100)),
                ]),
            )]),
            lines: 7,
            skipped: 2,
            ..Tally::default()
        };
        let s = summarise(&tally, None, 0.01);
        assert_eq!((s.lines, s.skipped), (7, 2));
        let (v1, v2) = (&s.flags["checkout"]["v1"], &s.flags["checkout"]["v2"]);
        assert!(v1.vs_control.is_none());
        assert_eq!(
            (v2.exposed, v2.converted, v2.rate, v2.value),
            (100, 20, 0.2, 200.0)
        );
        assert_eq!(v2.ci95, {
            let (lo, hi) = wilson(20.0, 100.0);
            [lo, hi]
        });
        let d = v2
            .vs_control
            .as_ref()
            .map(|d| (d.control.as_str(), d.diff, d.ci95));
        let (_, lo, hi) = difference((20, 100), (10, 100));
        assert_eq!(d, Some(("v1", 0.2 - 0.1, [lo, hi])));
        let seq = v2
            .vs_control
            .as_ref()
            .and_then(|d| d.sequential.as_ref())
            .map(|s| (s.p, s.ci95, s.tau));
        let (p, slo, shi) =
            always_valid((20, 100), (10, 100), 0.05, 0.01).unwrap_or((f64::NAN, 0.0, 0.0));
        assert_eq!(seq, Some((p, [slo, shi], 0.01)));
        let json = serde_json::to_value(&v2.vs_control).unwrap_or_default();
        assert_eq!(
            json["sequential"],
            serde_json::json!({"ci95": [slo, shi], "p": p, "tau": 0.01})
        );
        assert_eq!(v2.countries["JP"].rate, 0.2);
        // Asking for v2 as the control turns the comparison around.
        let s = summarise(&tally, Some("v2"), 0.01);
        let d = s.flags["checkout"]["v1"]
            .vs_control
            .as_ref()
            .map(|d| d.diff);
        assert_eq!(d, Some(0.1 - 0.2));
        assert!(s.flags["checkout"]["v2"].vs_control.is_none());
    }

    #[test]
    fn json_has_the_fields_in_the_order_it_always_had() {
        let tally = Tally {
            flags: BTreeMap::from([(
                "f".to_string(),
                BTreeMap::from([("a".into(), counts(0, 0)), ("b".into(), counts(1, 2))]),
            )]),
            lines: 1,
            skipped: 0,
            ..Tally::default()
        };
        let json = serde_json::to_string(&summarise(&tally, None, 0.01)).unwrap_or_default();
        let (lo, hi) = wilson(1.0, 2.0);
        let (d, dlo, dhi) = difference((1, 2), (0, 0));
        let want = format!(
            concat!(
                r#"{{"flags":{{"f":{{"a":{{"ci95":[0.0,0.0],"converted":0,"countries":{{"JP":{{"converted":0,"exposed":0,"rate":0.0}}}},"exposed":0,"rate":0.0,"value":0.0,"value_mean":0.0,"value_var":0.0}},"#,
                r#""b":{{"ci95":[{},{}],"converted":1,"countries":{{"JP":{{"converted":1,"exposed":2,"rate":0.5}}}},"exposed":2,"rate":0.5,"value":10.0,"value_mean":5.0,"value_var":50.0,"#,
                r#""vs_control":{{"ci95":[{},{}],"control":"a","diff":{}}}}}}}}},"lines":1,"skipped":0}}"#
            ),
            serde_json::json!(lo),
            serde_json::json!(hi),
            serde_json::json!(dlo),
            serde_json::json!(dhi),
            serde_json::json!(d),
        );
        assert_eq!(json, want);
    }

    fn split(pairs: &[(&str, u32)]) -> Vec<Weight> {
        pairs
            .iter()
            .map(|(v, w)| Weight {
                variant: v.to_string(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn the_sample_ratio_check_fires_on_a_skewed_split_and_not_on_a_fair_one() {
        let half = split(&[("v1", 50_000), ("v2", 50_000)]);
        let users =
            |a: usize, b: usize| BTreeMap::from([("v1".to_string(), a), ("v2".to_string(), b)]);
        // 5,080 against 4,920: chi-square (80² + 80²) / 5,000 = 2.56, p = 0.11.
        let fair = sample_ratio(&BTreeMap::from([(half.clone(), users(5_080, 4_920))]));
        assert!((fair.chi2 - 2.56).abs() < 1e-9 && fair.df == 1, "{fair:?}");
        assert!(!fair.warning && (fair.p - 0.1096).abs() < 1e-3, "{fair:?}");
        // 5,300 against 4,700: chi-square 36, p about 2e-9.
        let skewed = sample_ratio(&BTreeMap::from([(half.clone(), users(5_300, 4_700))]));
        assert!(skewed.warning && skewed.p < 1e-8, "{skewed:?}");
        assert_eq!(skewed.expected["v1"], 5_000.0);
        // Each split against its own weights: 80/20 and 50/50 both kept.
        let eighty = split(&[("v1", 80_000), ("v2", 20_000)]);
        let two = sample_ratio(&BTreeMap::from([
            (eighty, users(8_000, 2_000)),
            (half, users(1_000, 1_000)),
        ]));
        assert_eq!((two.chi2, two.df, two.warning), (0.0, 2, false));
        assert_eq!(two.expected["v1"], 9_000.0);
        assert_eq!(two.observed["v2"], 3_000);
    }

    #[test]
    fn users_in_a_variant_the_split_does_not_weigh_are_a_mismatch() {
        let s = split(&[("v1", 100_000), ("v2", 0)]);
        let users = BTreeMap::from([("v1".to_string(), 1_000), ("v2".to_string(), 3)]);
        let r = sample_ratio(&BTreeMap::from([(s, users)]));
        // One weighted variant: no degree of freedom of its own, but users where none
        // were expected make the statistic infinite.
        assert!(r.warning && r.p == 0.0 && r.chi2.is_infinite(), "{r:?}");
    }

    #[test]
    fn the_summary_carries_mixed_users_and_the_check() {
        let tally = Tally {
            flags: BTreeMap::from([(
                "f".to_string(),
                BTreeMap::from([("v1".into(), counts(1, 10)), ("v2".into(), counts(2, 10))]),
            )]),
            mixed: BTreeMap::from([("f".to_string(), 4)]),
            splits: BTreeMap::from([(
                "f".to_string(),
                BTreeMap::from([(
                    split(&[("v1", 50_000), ("v2", 50_000)]),
                    BTreeMap::from([("v1".to_string(), 10), ("v2".to_string(), 10)]),
                )]),
            )]),
            ..Tally::default()
        };
        let s = summarise(&tally, None, 0.01);
        assert_eq!(s.mixed["f"], 4);
        assert_eq!((s.srm["f"].chi2, s.srm["f"].p), (0.0, 1.0));
        // v2: two users with 10 each of ten: mean 2, variance (2·100 - 10·4) / 9.
        let v2 = &s.flags["f"]["v2"];
        assert_eq!(v2.value_mean, 2.0);
        assert!((v2.value_var - 160.0 / 9.0).abs() < 1e-9);
    }
}
