//! The report's figures from the counts: per flag and variant, the conversion rate with its
//! interval and the difference against the control. One typed record, which `--json`
//! prints and the table and chart read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::log::{Counts, Tally};
use super::stats::{difference, ratio, wilson};

// The fields of each record are in alphabetical order: the order `--json` has always
// printed them in.

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Flag -> variant -> figures.
    pub flags: BTreeMap<String, BTreeMap<String, VariantSummary>>,
    /// Lines with a JSON object.
    pub lines: usize,
    /// Lines passed over.
    pub skipped: usize,
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
    /// The summed value of the variant's conversions.
    pub value: f64,
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

/// A variant's rate minus the control's, with Newcombe's 95% interval.
#[derive(Debug, Serialize)]
pub struct VsControl {
    /// The 95% interval of the difference.
    pub ci95: [f64; 2],
    /// The control variant.
    pub control: String,
    /// The difference of the rates.
    pub diff: f64,
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

/// The figures of every counted variant, each compared with its flag's control (the
/// `asked` one when the flag has it, see [`control_of`]).
pub fn summarise(tally: &Tally, asked: Option<&str>) -> Summary {
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
                VsControl {
                    ci95: [dlo, dhi],
                    control: control.clone(),
                    diff,
                }
            });
            let figures = VariantSummary {
                ci95: [lo, hi],
                converted: c,
                countries,
                exposed: n,
                rate: ratio(c, n),
                value: counts.value,
                vs_control,
            };
            vs.insert(variant.clone(), figures);
        }
        flags.insert(flag.clone(), vs);
    }
    Summary {
        flags,
        lines: tally.lines,
        skipped: tally.skipped,
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
        };
        let s = summarise(&tally, None);
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
        assert_eq!(v2.countries["JP"].rate, 0.2);
        // Asking for v2 as the control turns the comparison around.
        let s = summarise(&tally, Some("v2"));
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
        };
        let json = serde_json::to_string(&summarise(&tally, None)).unwrap_or_default();
        let (lo, hi) = wilson(1.0, 2.0);
        let (d, dlo, dhi) = difference((1, 2), (0, 0));
        let want = format!(
            concat!(
                r#"{{"flags":{{"f":{{"a":{{"ci95":[0.0,0.0],"converted":0,"countries":{{"JP":{{"converted":0,"exposed":0,"rate":0.0}}}},"exposed":0,"rate":0.0,"value":0.0}},"#,
                r#""b":{{"ci95":[{},{}],"converted":1,"countries":{{"JP":{{"converted":1,"exposed":2,"rate":0.5}}}},"exposed":2,"rate":0.5,"value":10.0,"#,
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
}
