//! Reading an events log into counts: per flag and variant, the users exposed, those of
//! them who converted, and the conversions' summed value, overall and per country. A user
//! counts once per variant however many lines name them. This is the step a query engine
//! would do instead; everything after it works on the counts alone.

use std::collections::{BTreeMap, BTreeSet};

/// What to count: every flag and conversion event unless narrowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    /// Only this flag's exposures.
    pub flag: Option<&'a str>,
    /// Only conversions of this event.
    pub event: Option<&'a str>,
}

/// One variant's users, counted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    /// Users exposed to the variant.
    pub exposed: usize,
    /// Of those, users with a conversion that names the variant.
    pub converted: usize,
    /// The summed value of the conversions that name the variant (exposed or not).
    pub value: f64,
    /// Per country of exposure: `(exposed, converted)`.
    pub countries: BTreeMap<String, (usize, usize)>,
}

/// The counts of a whole log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// Flag -> variant -> counts, for every exposed variant.
    pub flags: BTreeMap<String, BTreeMap<String, Counts>>,
    /// Lines with a JSON object.
    pub lines: usize,
    /// Lines passed over: not JSON, without a user, or of an unknown kind.
    pub skipped: usize,
}

/// Flag -> variant -> users.
type Users = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Reads the log's lines (each may carry a prefix before the JSON, such as
/// `edgeflags_events :: `) and counts them.
pub fn read(text: &str, filter: Filter<'_>) -> Tally {
    // flag -> variant -> users; flag -> variant -> country -> users; converters; values
    let mut exposed: Users = BTreeMap::new();
    let mut by_country: BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeSet<String>>>> =
        BTreeMap::new();
    let mut converted: Users = BTreeMap::new();
    let mut values: BTreeMap<(String, String), f64> = BTreeMap::new();
    let (mut lines, mut skipped) = (0usize, 0usize);
    for line in text.lines() {
        let Some(start) = line.find('{') else {
            continue;
        };
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line[start..]) else {
            skipped += 1;
            continue;
        };
        lines += 1;
        let Some(user) = ev["user"].as_str().map(str::to_string) else {
            skipped += 1;
            continue;
        };
        match ev["kind"].as_str() {
            Some("exposure") => {
                let (Some(flag), Some(variant)) = (ev["flag"].as_str(), ev["variant"].as_str())
                else {
                    continue;
                };
                if filter.flag.is_some_and(|f| f != flag) {
                    continue;
                }
                exposed
                    .entry(flag.into())
                    .or_default()
                    .entry(variant.into())
                    .or_default()
                    .insert(user.clone());
                let country = ev["country"].as_str().unwrap_or("??").to_string();
                by_country
                    .entry(flag.into())
                    .or_default()
                    .entry(variant.into())
                    .or_default()
                    .entry(country)
                    .or_default()
                    .insert(user);
            }
            Some("conversion") => {
                if filter
                    .event
                    .is_some_and(|e| Some(e) != ev["event"].as_str())
                {
                    continue;
                }
                for (flag, variant) in ev["variants"].as_object().into_iter().flatten() {
                    let Some(variant) = variant.as_str() else {
                        continue;
                    };
                    converted
                        .entry(flag.clone())
                        .or_default()
                        .entry(variant.into())
                        .or_default()
                        .insert(user.clone());
                    *values.entry((flag.clone(), variant.into())).or_default() +=
                        ev["value"].as_f64().unwrap_or(0.0);
                }
            }
            _ => skipped += 1,
        }
    }
    let none = BTreeSet::new();
    let mut flags = BTreeMap::new();
    for (flag, variants) in &exposed {
        let mut counted = BTreeMap::new();
        for (variant, users) in variants {
            let conv = converted
                .get(flag)
                .and_then(|m| m.get(variant))
                .unwrap_or(&none);
            let countries = by_country
                .get(flag)
                .and_then(|m| m.get(variant))
                .into_iter()
                .flatten()
                .map(|(c, u)| (c.clone(), (u.len(), conv.intersection(u).count())))
                .collect();
            let value = values.get(&(flag.clone(), variant.clone())).copied();
            counted.insert(
                variant.clone(),
                Counts {
                    exposed: users.len(),
                    converted: conv.intersection(users).count(),
                    value: value.unwrap_or(0.0),
                    countries,
                },
            );
        }
        flags.insert(flag.clone(), counted);
    }
    Tally {
        flags,
        lines,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"starting up
edgeflags_events :: {"kind":"exposure","flag":"checkout","variant":"v1","user":"a","country":"JP"}
edgeflags_events :: {"kind":"exposure","flag":"checkout","variant":"v1","user":"a","country":"JP"}
{"kind":"exposure","flag":"checkout","variant":"v2","user":"b","country":"US"}
{"kind":"exposure","flag":"checkout","variant":"v2","user":"c"}
{"kind":"exposure","flag":"banner","variant":"night","user":"a","country":"JP"}
{"kind":"conversion","event":"purchase","value":12.5,"user":"b","variants":{"checkout":"v2","banner":"night"}}
{"kind":"conversion","event":"purchase","value":5,"user":"z","variants":{"checkout":"v2"}}
{"kind":"conversion","event":"signup","user":"a","variants":{"checkout":"v1"}}
{"kind":"exposure","flag":"checkout","variant":"v1"}
{"kind":"heartbeat","user":"a"}
{not json
"#;

    #[test]
    fn users_count_once_and_conversions_only_for_users_exposed() {
        let t = read(LOG, Filter::default());
        assert_eq!((t.lines, t.skipped), (10, 3));
        let v1 = &t.flags["checkout"]["v1"];
        assert_eq!((v1.exposed, v1.converted, v1.value), (1, 1, 0.0));
        assert_eq!(v1.countries, BTreeMap::from([("JP".into(), (1, 1))]));
        // b converted and was exposed; z converted without an exposure: counted in the
        // value, not as a converted user. c has no country.
        let v2 = &t.flags["checkout"]["v2"];
        assert_eq!((v2.exposed, v2.converted, v2.value), (2, 1, 17.5));
        assert_eq!(
            v2.countries,
            BTreeMap::from([("??".into(), (1, 0)), ("US".into(), (1, 1))])
        );
        // b converted on `banner=night` without being exposed to it.
        let night = &t.flags["banner"]["night"];
        assert_eq!((night.exposed, night.converted, night.value), (1, 0, 12.5));
    }

    #[test]
    fn a_filter_narrows_flags_and_conversion_events() {
        let filter = Filter {
            flag: Some("checkout"),
            event: Some("signup"),
        };
        let t = read(LOG, filter);
        assert_eq!(t.flags.keys().collect::<Vec<_>>(), ["checkout"]);
        let (v1, v2) = (&t.flags["checkout"]["v1"], &t.flags["checkout"]["v2"]);
        assert_eq!((v1.converted, v1.value), (1, 0.0));
        assert_eq!((v2.converted, v2.value), (0, 0.0));
        assert_eq!((t.lines, t.skipped), (10, 3));
    }
}
