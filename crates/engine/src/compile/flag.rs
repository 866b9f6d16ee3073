//! Compiling a flag: variants, targets, rules and what they serve, prerequisites, and
//! the segments rules refer to.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::{Compiler, FLAG_FIELDS, join, kind_of};
use crate::bucket::BUCKETS;
use crate::model::*;

impl Compiler {
    pub(super) fn flag(&mut self, key: &str, v: &Value, path: &str) -> Option<Flag> {
        let o = self.object(v, path, "a flag")?;
        self.fields(o, path, FLAG_FIELDS);
        let kind = match o.get("type").map(|t| (t, t.as_str())) {
            None => {
                self.err(
                    &join(path, "type"),
                    "missing: one of boolean, string, number, json",
                );
                None
            }
            Some((_, Some("boolean"))) => Some(FlagType::Boolean),
            Some((_, Some("string"))) => Some(FlagType::String),
            Some((_, Some("number"))) => Some(FlagType::Number),
            Some((_, Some("json"))) => Some(FlagType::Json),
            Some((t, _)) => {
                self.err(
                    &join(path, "type"),
                    format!("unknown type {t}: expected boolean, string, number or json"),
                );
                None
            }
        };
        let vpath = join(path, "variants");
        let mut variants = Vec::new();
        match o.get("variants") {
            None => self.err(&vpath, "missing: a flag needs at least one variant"),
            Some(vs) => {
                if let Some(m) = self.object(vs, &vpath, "`variants`") {
                    if m.is_empty() {
                        self.err(&vpath, "a flag needs at least one variant");
                    }
                    for (name, value) in m {
                        if let Some(k) = kind
                            && !k.admits(value)
                        {
                            self.err(
                                &join(&vpath, name),
                                format!(
                                    "a {} flag's variant must be a {}, found {}",
                                    k.name(),
                                    k.name(),
                                    kind_of(value)
                                ),
                            );
                        }
                        variants.push(Variant {
                            name: self.name(name),
                            value: Arc::new(value.clone()),
                        });
                    }
                }
            }
        }
        let names: Vec<String> = variants.iter().map(|v| v.name.to_string()).collect();
        let on = self.bool_field(o, "on", path, true);
        let off_variant = match o.get("off_variant") {
            Some(v) => self.variant_ref(v, &names, &join(path, "off_variant")),
            None => {
                self.err(
                    &join(path, "off_variant"),
                    "missing: the variant served when the flag is off",
                );
                None
            }
        };
        let salt = self
            .opt_string(o, "salt", path)
            .unwrap_or_else(|| key.to_string());
        if salt.contains('\u{1f}') {
            self.err(
                &join(path, "salt"),
                "a salt may not contain the unit separator U+001F",
            );
        }
        let fallthrough = match o.get("default") {
            Some(v) => self.serve(v, &names, &salt, &join(path, "default")),
            None => {
                self.err(
                    &join(path, "default"),
                    "missing: the variant or split served when no rule matches",
                );
                None
            }
        };
        let mut targets: HashMap<Name, usize> = HashMap::new();
        if let Some(t) = o.get("targets") {
            let tpath = join(path, "targets");
            if let Some(m) = self.object(t, &tpath, "`targets`") {
                for (variant, keys) in m {
                    let p = join(&tpath, variant);
                    let vi = self.variant_ref(&Value::String(variant.clone()), &names, &p);
                    for (i, k) in self.strings(keys, &p).into_iter().enumerate() {
                        if let Some(vi) = vi
                            && let Some(prev) = targets.insert(self.name(&k), vi)
                            && prev != vi
                        {
                            self.err(
                                &format!("{p}[{i}]"),
                                format!("user `{k}` is targeted to two variants"),
                            );
                        }
                    }
                }
            }
        }
        let mut rules = Vec::new();
        if let Some(r) = o.get("rules") {
            let rpath = join(path, "rules");
            match r.as_array() {
                None => self.err(
                    &rpath,
                    format!("must be a list of rules, found {}", kind_of(r)),
                ),
                Some(items) => {
                    let mut ids = HashSet::new();
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{rpath}[{i}]");
                        if let Some(rule) = self.rule(item, i, &names, &salt, &p) {
                            if !ids.insert(rule.id.clone()) {
                                self.err(
                                    &join(&p, "id"),
                                    format!("rule id `{}` is used twice", rule.id),
                                );
                            }
                            rules.push(rule);
                        }
                    }
                }
            }
        }
        let mut prerequisites = Vec::new();
        if let Some(p) = o.get("prerequisites") {
            let ppath = join(path, "prerequisites");
            match p.as_array() {
                None => self.err(&ppath, format!("must be a list, found {}", kind_of(p))),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(pr) = self.prerequisite(item, key, &format!("{ppath}[{i}]")) {
                            prerequisites.push(pr);
                        }
                    }
                }
            }
        }
        let schedule = o
            .get("schedule")
            .and_then(|s| self.schedule(s, &join(path, "schedule")));
        let allocation = self.allocation(o, key, &salt, &names, fallthrough.as_ref(), path);
        let meta = self.metadata(o, path);
        let mut targets: Vec<(Name, usize)> = targets.into_iter().collect();
        targets.sort();
        Some(Flag {
            key: self.name(key),
            kind: kind?,
            on,
            variants: Span::push(&mut self.arena.variants, variants),
            off_variant: off_variant?,
            rules: Span::push(&mut self.arena.rules, rules),
            fallthrough: fallthrough?,
            extra: Extra {
                prerequisites,
                targets,
                schedule,
                allocation: allocation.map(|a| *a),
            }
            .boxed(),
            meta,
        })
    }

    pub(super) fn metadata(&mut self, o: &Map<String, Value>, path: &str) -> Metadata {
        let tags = o
            .get("tags")
            .map(|t| self.strings(t, &join(path, "tags")))
            .unwrap_or_default();
        let expires = self.opt_string(o, "expires", path);
        if let Some(e) = &expires
            && NaiveDate::parse_from_str(e, "%Y-%m-%d").is_err()
        {
            self.err(
                &join(path, "expires"),
                format!("`{e}` is not a date (YYYY-MM-DD)"),
            );
        }
        let exposure_sample = match o.get("exposure_sample") {
            None => 0.0,
            Some(v) => match v.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => f,
                _ => {
                    self.err(
                        &join(path, "exposure_sample"),
                        "must be a number from 0 to 1",
                    );
                    0.0
                }
            },
        };
        Metadata {
            about: Some(Box::new(About {
                description: self.opt_string(o, "description", path),
                owner: self.opt_string(o, "owner", path),
                tags,
                expires,
            })),
            temporary: self.bool_field(o, "temporary", path, false),
            content: self.bool_field(o, "content", path, false),
            exposure_sample,
        }
    }

    pub(super) fn variant_ref(&mut self, v: &Value, names: &[String], path: &str) -> Option<usize> {
        let name = self.string(v, path)?;
        match names.iter().position(|n| *n == name) {
            Some(i) => Some(i),
            None => {
                self.err(
                    path,
                    format!("unknown variant `{name}` (variants: {})", names.join(", ")),
                );
                None
            }
        }
    }

    pub(super) fn serve(
        &mut self,
        v: &Value,
        names: &[String],
        salt: &str,
        path: &str,
    ) -> Option<Serve> {
        if v.is_string() {
            return self.variant_ref(v, names, path).map(Serve::Variant);
        }
        let Some(o) = v.as_object() else {
            self.err(
                path,
                format!(
                    "must be a variant name or {{\"split\": [...]}}, found {}",
                    kind_of(v)
                ),
            );
            return None;
        };
        self.fields(o, path, &["split", "by", "salt"]);
        let by = self
            .opt_string(o, "by", path)
            .unwrap_or_else(|| "key".to_string());
        let salt = self
            .opt_string(o, "salt", path)
            .unwrap_or_else(|| salt.to_string());
        let spath = join(path, "split");
        let Some(items) = o.get("split").and_then(Value::as_array) else {
            self.err(
                &spath,
                "missing: a list of {\"variant\": name, \"weight\": percent}",
            );
            return None;
        };
        if items.is_empty() {
            self.err(&spath, "a split needs at least one variant");
            return None;
        }
        let mut slots = Vec::new();
        let mut total: u64 = 0;
        let mut ok = true;
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{spath}[{i}]");
            let Some(io) = self.object(item, &p, "a split entry") else {
                ok = false;
                continue;
            };
            self.fields(io, &p, &["variant", "weight"]);
            let variant = match io.get("variant") {
                Some(v) => self.variant_ref(v, names, &join(&p, "variant")),
                None => {
                    self.err(&join(&p, "variant"), "missing");
                    None
                }
            };
            if let Some(vi) = variant
                && !seen.insert(vi)
            {
                self.err(&join(&p, "variant"), "a variant may appear once in a split");
            }
            let weight = match io.get("weight") {
                Some(w) => self.weight_units(w, &join(&p, "weight")).map(u64::from),
                None => {
                    self.err(&join(&p, "weight"), "must be a percentage from 0 to 100");
                    None
                }
            };
            match (variant, weight) {
                (Some(v), Some(w)) => {
                    total += w;
                    slots.push((total.min(u64::from(BUCKETS)) as u32, v));
                }
                _ => ok = false,
            }
        }
        if ok && total != u64::from(BUCKETS) {
            self.err(
                &spath,
                format!(
                    "weights add up to {}%, not 100%",
                    total as f64 * 100.0 / f64::from(BUCKETS)
                ),
            );
            return None;
        }
        if !ok {
            return None;
        }
        self.draws.push(super::Draw {
            salt: salt.clone(),
            by: by.clone(),
            what: format!("the split at {path}"),
            path: path.to_string(),
            spans_flags: false,
        });
        let split = Split {
            prefix: crate::bucket::Prefix::new(&salt),
            word: crate::context::short_word(&by),
            by: self.name(&by),
            salt: self.name(&salt),
            slots: Span::push(&mut self.arena.slots, slots),
        };
        self.arena.splits.push(split);
        Some(Serve::Split(self.arena.splits.len() - 1))
    }

    pub(super) fn rule(
        &mut self,
        v: &Value,
        i: usize,
        names: &[String],
        salt: &str,
        path: &str,
    ) -> Option<Rule> {
        let o = self.object(v, path, "a rule")?;
        self.fields(
            o,
            path,
            &["id", "description", "clauses", "serve", "schedule"],
        );
        let id = self
            .opt_string(o, "id", path)
            .unwrap_or_else(|| format!("rule-{i}"));
        let clauses = self.clauses(o.get("clauses"), &join(path, "clauses"), true);
        let serve = match o.get("serve") {
            Some(s) => self.serve(s, names, salt, &join(path, "serve")),
            None => {
                self.err(&join(path, "serve"), "missing: a variant name or a split");
                None
            }
        };
        let schedule = o
            .get("schedule")
            .and_then(|s| self.schedule(s, &join(path, "schedule")));
        Some(Rule {
            id: self.name(&id),
            clauses: Span::push(&mut self.arena.clauses, clauses?),
            serve: serve?,
            schedule: schedule.map(Box::new),
        })
    }

    pub(super) fn prerequisite(
        &mut self,
        v: &Value,
        own: &str,
        path: &str,
    ) -> Option<Prerequisite> {
        let o = self.object(v, path, "a prerequisite")?;
        self.fields(o, path, &["flag", "variants"]);
        let flag = match o.get("flag") {
            Some(f) => self.string(f, &join(path, "flag"))?,
            None => {
                self.err(&join(path, "flag"), "missing: the prerequisite flag's key");
                return None;
            }
        };
        let Some(&fi) = self.flag_index.get(&flag) else {
            self.err(&join(path, "flag"), format!("unknown flag `{flag}`"));
            return None;
        };
        if flag == own {
            self.err(&join(path, "flag"), "a flag cannot be its own prerequisite");
            return None;
        }
        let names = self.flag_variants.get(fi).cloned().unwrap_or_default();
        let vpath = join(path, "variants");
        let mut variants = Vec::new();
        let wanted = match o.get("variants") {
            Some(v) => self.strings(v, &vpath),
            None => {
                self.err(
                    &vpath,
                    "missing: the variants of the prerequisite that let this flag run",
                );
                return None;
            }
        };
        for (i, w) in wanted.iter().enumerate() {
            match names.iter().position(|n| n == w) {
                Some(x) => variants.push(x),
                None => self.err(
                    &format!("{vpath}[{i}]"),
                    format!("flag `{flag}` has no variant `{w}`"),
                ),
            }
        }
        Some(Prerequisite { flag: fi, variants })
    }

    pub(super) fn report_prerequisite_cycles(&mut self, raw: &Map<String, Value>) {
        // The prerequisite graph is read from the raw file, so that a cycle is reported
        // even when the flags in it have other problems too.
        let edges: Vec<Vec<usize>> = raw
            .values()
            .map(|f| {
                f.get("prerequisites")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| p.get("flag").and_then(Value::as_str))
                            .filter_map(|k| self.flag_index.get(k).copied())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let keys: Vec<&String> = raw.keys().collect();
        let mut reported = HashSet::new();
        for cycle in prerequisite_cycles(&edges) {
            let names: Vec<&str> = cycle.iter().map(|&x| keys[x].as_str()).collect();
            let mut members = names.clone();
            members.sort();
            members.dedup();
            if let Some(&last) = cycle.last()
                && reported.insert(members)
            {
                self.err(
                    &format!("{}.prerequisites", join("$.flags", keys[last])),
                    format!("prerequisite cycle: {}", names.join(" -> ")),
                );
            }
        }
    }

    pub(super) fn segment(&mut self, v: &Value, path: &str) -> Option<Segment> {
        let o = self.object(v, path, "a segment")?;
        self.fields(o, path, &["description", "included", "excluded", "rules"]);
        let included = o
            .get("included")
            .map(|x| self.strings(x, &join(path, "included")))
            .unwrap_or_default();
        let excluded = o
            .get("excluded")
            .map(|x| self.strings(x, &join(path, "excluded")))
            .unwrap_or_default();
        let mut rules = Vec::new();
        if let Some(r) = o.get("rules") {
            let rpath = join(path, "rules");
            match r.as_array() {
                None => self.err(&rpath, "must be a list of rules"),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{rpath}[{i}]");
                        if let Some(ro) = self.object(item, &p, "a segment rule") {
                            self.fields(ro, &p, &["id", "description", "clauses"]);
                            if let Some(clauses) =
                                self.clauses(ro.get("clauses"), &join(&p, "clauses"), false)
                            {
                                rules.push(Span::push(&mut self.arena.clauses, clauses));
                            }
                        }
                    }
                }
            }
        }
        Some(Segment {
            included: {
                let names = self.names(included);
                StrSet::new(&mut self.arena.strings, names)
            },
            excluded: {
                let names = self.names(excluded);
                StrSet::new(&mut self.arena.strings, names)
            },
            rules,
        })
    }
}
