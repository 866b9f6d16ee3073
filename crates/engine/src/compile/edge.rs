//! Compiling edge changes: a flag's `edge` object (per variant, its `changes` to the
//! page and its `redirect`) and the file's `edge` settings (`bootstrap`,
//! `redirect_hosts`). Selectors are parsed with the rewriter's own parser; two flags
//! that set the same thing of the same selector conflict; redirects that could send a
//! visitor round in a loop, or to a host the file does not allow, are refused.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Compiler, join, kind_of};
use crate::edit::{Action, Change, Edits, Redirect, Template, VariantEdits};

/// The fields a change may have besides `selector` and `action`, by action.
const CHANGE_FIELDS: &[(&str, &[&str])] = &[
    ("text", &["value"]),
    ("set_attribute", &["attribute", "value"]),
    ("remove_attribute", &["attribute"]),
    ("replace", &["html"]),
    ("prepend", &["html"]),
    ("append", &["html"]),
    ("remove", &[]),
    ("fragment", &["path"]),
];

impl Compiler {
    /// The file's `edge` settings: (bootstrap, redirect hosts).
    pub(super) fn edge_settings(&mut self, v: &Value, path: &str) -> (bool, Vec<String>) {
        let Some(o) = self.object(v, path, "`edge`") else {
            return (false, Vec::new());
        };
        self.fields(o, path, &["bootstrap", "redirect_hosts"]);
        let bootstrap = self.bool_field(o, "bootstrap", path, false);
        let hosts = o
            .get("redirect_hosts")
            .map(|h| self.strings(h, &join(path, "redirect_hosts")))
            .unwrap_or_default();
        for (i, h) in hosts.iter().enumerate() {
            let ok = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
            if !ok {
                self.err(
                    &format!("{path}.redirect_hosts[{i}]"),
                    format!("`{h}` is not a host name"),
                );
            }
        }
        (
            bootstrap,
            hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        )
    }

    /// Flag `flag`'s `edge` object: each variant's changes and redirect.
    pub(super) fn flag_edge(
        &mut self,
        flag: usize,
        v: &Value,
        names: &[String],
        hosts: &[String],
        path: &str,
    ) -> Vec<VariantEdits> {
        let mut out = Vec::new();
        let Some(o) = self.object(v, path, "`edge`") else {
            return out;
        };
        for (variant, spec) in o {
            let vpath = join(path, variant);
            let Some(vi) = self.variant_ref(&Value::String(variant.clone()), names, &vpath) else {
                continue;
            };
            let Some(so) = self.object(spec, &vpath, "a variant's edge changes") else {
                continue;
            };
            self.fields(so, &vpath, &["changes", "redirect"]);
            let mut changes = Vec::new();
            if let Some(list) = so.get("changes") {
                let cpath = join(&vpath, "changes");
                match list.as_array() {
                    None => self.err(&cpath, format!("must be a list, found {}", kind_of(list))),
                    Some(items) => {
                        for (i, item) in items.iter().enumerate() {
                            if let Some(c) = self.change(item, &format!("{cpath}[{i}]")) {
                                changes.push(c);
                            }
                        }
                    }
                }
            }
            let redirect = so
                .get("redirect")
                .and_then(|r| self.redirect(r, hosts, &join(&vpath, "redirect")));
            out.push(VariantEdits {
                flag,
                variant: vi,
                changes,
                redirect,
            });
        }
        out.sort_by_key(|v| v.variant);
        out
    }

    fn change(&mut self, v: &Value, path: &str) -> Option<Change> {
        let o = self.object(v, path, "a change")?;
        let action = match o.get("action").map(|a| (a, a.as_str())) {
            None => {
                self.err(&join(path, "action"), "missing: what the change does");
                return None;
            }
            Some((_, Some(a))) if CHANGE_FIELDS.iter().any(|(n, _)| *n == a) => a,
            Some((a, _)) => {
                let names: Vec<&str> = CHANGE_FIELDS.iter().map(|(n, _)| *n).collect();
                self.err(
                    &join(path, "action"),
                    format!("unknown action {a}: expected one of {}", names.join(", ")),
                );
                return None;
            }
        };
        let extra = CHANGE_FIELDS
            .iter()
            .find(|(n, _)| *n == action)
            .map(|(_, f)| *f)
            .unwrap_or_default();
        let mut allowed = vec!["selector", "action"];
        allowed.extend_from_slice(extra);
        self.fields(o, path, &allowed);
        let selector = match o.get("selector") {
            None => {
                self.err(&join(path, "selector"), "missing: the CSS selector");
                None
            }
            Some(s) => self.string(s, &join(path, "selector")),
        }?;
        if let Some(why) = crate::page::selector_error(&selector) {
            self.err(
                &join(path, "selector"),
                format!("`{selector}` is not a selector the edge can run: {why}"),
            );
        }
        let field = |c: &mut Compiler, name: &str| -> Option<String> {
            match o.get(name) {
                None => {
                    c.err(
                        &join(path, name),
                        format!("missing: `{action}` needs `{name}`"),
                    );
                    None
                }
                Some(v) => c.string(v, &join(path, name)),
            }
        };
        let template = |c: &mut Compiler, name: &str| -> Option<Template> {
            let t = Template(field(c, name)?);
            if let Err(e) = t.pieces() {
                c.err(&join(path, name), e.to_string());
            }
            Some(t)
        };
        let action = match action {
            "text" => Action::Text(template(self, "value")?),
            "set_attribute" => {
                let name = field(self, "attribute")?;
                self.attribute_name(&name, &join(path, "attribute"));
                Action::SetAttribute(name, template(self, "value")?)
            }
            "remove_attribute" => {
                let name = field(self, "attribute")?;
                self.attribute_name(&name, &join(path, "attribute"));
                Action::RemoveAttribute(name)
            }
            "replace" => Action::Replace(template(self, "html")?),
            "prepend" => Action::Prepend(template(self, "html")?),
            "append" => Action::Append(template(self, "html")?),
            "remove" => Action::Remove,
            _ => {
                let p = field(self, "path")?;
                if !p.starts_with('/') || p.starts_with("//") || !crate::target::safe_path(&p) {
                    self.err(
                        &join(path, "path"),
                        format!("`{p}` is not an origin path (one starting with a single `/`)"),
                    );
                }
                Action::Fragment(p)
            }
        };
        Some(Change { selector, action })
    }

    fn attribute_name(&mut self, name: &str, path: &str) {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b));
        if !ok {
            self.err(path, format!("`{name}` is not an attribute name"));
        }
    }

    fn redirect(&mut self, v: &Value, hosts: &[String], path: &str) -> Option<Redirect> {
        let o = self.object(v, path, "a redirect")?;
        self.fields(o, path, &["from", "to", "status"]);
        let from = self.required_string(o, "from", path, "the request path it applies to");
        let to = self.required_string(o, "to", path, "a path or an https:// URL");
        let status = match o.get("status") {
            None => 302,
            Some(s) => match s.as_u64() {
                Some(n @ (302 | 307)) => n as u16,
                _ => {
                    self.err(
                        &join(path, "status"),
                        format!("must be 302 or 307, found {s}"),
                    );
                    302
                }
            },
        };
        let (from, to) = (from?, to?);
        if !from.starts_with('/') || from.contains('?') {
            self.err(
                &join(path, "from"),
                format!("`{from}` is not a path (it starts with `/`, without a query)"),
            );
        }
        match to.strip_prefix("https://") {
            Some(rest) => {
                let host = rest
                    .split(['/', '?', '#'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if !hosts.contains(&host) {
                    self.err(
                        &join(path, "to"),
                        format!(
                            "host `{host}` is not in the file's edge.redirect_hosts ({})",
                            hosts.join(", ")
                        ),
                    );
                }
            }
            None if to.starts_with('/') && !to.starts_with("//") => {}
            None => self.err(
                &join(path, "to"),
                format!("`{to}` is neither a path (`/...`) nor an https:// URL"),
            ),
        }
        if to.chars().any(|c| c.is_control() || c == ' ') {
            self.err(
                &join(path, "to"),
                "a redirect target may not hold spaces or control characters",
            );
        }
        Some(Redirect { from, to, status })
    }

    fn required_string(
        &mut self,
        o: &Map<String, Value>,
        key: &str,
        path: &str,
        what: &str,
    ) -> Option<String> {
        match o.get(key) {
            None => {
                self.err(&join(path, key), format!("missing: {what}"));
                None
            }
            Some(v) => self.string(v, &join(path, key)),
        }
    }

    /// Reports changes of different flags that set the same thing of the same
    /// selector (`paths`: each flag's JSON path), and redirects that form a loop.
    pub(super) fn check_edits(
        &mut self,
        edits: &Edits,
        paths: &[String],
        variant_names: &[Vec<String>],
    ) {
        let where_ = |v: &VariantEdits| {
            let flag = paths.get(v.flag).cloned().unwrap_or_default();
            let variant = variant_names
                .get(v.flag)
                .and_then(|n| n.get(v.variant))
                .cloned()
                .unwrap_or_default();
            join(&join(&flag, "edge"), &variant)
        };
        // (selector, target) -> (flag, where first set).
        let mut seen: HashMap<(String, String), (usize, String)> = HashMap::new();
        for v in &edits.variants {
            for (i, c) in v.changes.iter().enumerate() {
                let Some(target) = c.action.target() else {
                    continue;
                };
                let here = format!("{}.changes[{i}]", where_(v));
                let key = (c.selector.trim().to_string(), target.to_string());
                match seen.get(&key) {
                    Some((flag, first)) if *flag != v.flag => {
                        let msg = format!(
                            "conflicts with {first}: both set the {target} of `{}`",
                            c.selector
                        );
                        self.err(&here, msg);
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(key, (v.flag, here));
                    }
                }
            }
        }
        // Redirect loops: paths are nodes, a redirect to a path of this site an edge.
        let mut node: HashMap<String, usize> = HashMap::new();
        let mut edges: Vec<Vec<usize>> = Vec::new();
        let mut id = |p: &str, edges: &mut Vec<Vec<usize>>| {
            let n = node.len();
            *node.entry(p.to_string()).or_insert_with(|| {
                edges.push(Vec::new());
                n
            })
        };
        let mut sources: Vec<String> = Vec::new();
        for v in &edits.variants {
            let Some(r) = &v.redirect else { continue };
            if !r.to.starts_with('/') {
                continue;
            }
            let to_path = r.to.split(['?', '#']).next().unwrap_or_default();
            let (a, b) = (id(&r.from, &mut edges), id(to_path, &mut edges));
            if let Some(e) = edges.get_mut(a) {
                e.push(b);
            }
            sources.push(format!("{}.redirect", where_(v)));
        }
        if let Some(cycle) = crate::model::prerequisite_cycles(&edges).first() {
            let mut names: Vec<(&String, &usize)> = node.iter().collect();
            names.sort_by_key(|(_, i)| **i);
            let path: Vec<&str> = cycle
                .iter()
                .filter_map(|i| names.get(*i).map(|(p, _)| p.as_str()))
                .collect();
            let at = sources.first().cloned().unwrap_or_else(|| "$".into());
            self.err(&at, format!("redirects form a loop: {}", path.join(" -> ")));
        }
    }
}
