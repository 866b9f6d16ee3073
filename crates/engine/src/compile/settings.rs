//! Compiling the file-wide settings: the routes table, the custom attributes allowed
//! from requests, and OFREP.

use serde_json::{Map, Value};

use super::{Compiler, join};
use crate::model::*;

impl Compiler {
    pub(super) fn routes(
        &mut self,
        v: &Value,
        path: &str,
    ) -> (Vec<RouteRule>, Option<Route>, Option<Route>) {
        let Some(o) = self.object(v, path, "`routes`") else {
            return (Vec::new(), None, None);
        };
        self.fields(o, path, &["default", "rules", "fallback"]);
        let fallback = o
            .get("fallback")
            .and_then(|f| self.route_target(f, "fallback".into(), &join(path, "fallback")));
        let default = match o.get("default") {
            Some(d) => self.route_target(d, "default".into(), &join(path, "default")),
            None => {
                self.err(
                    &join(path, "default"),
                    "missing: the route used when no route rule matches",
                );
                None
            }
        };
        let mut rules = Vec::new();
        if let Some(r) = o.get("rules") {
            let rpath = join(path, "rules");
            match r.as_array() {
                None => self.err(&rpath, "must be a list of route rules"),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{rpath}[{i}]");
                        let Some(ro) = self.object(item, &p, "a route rule") else {
                            continue;
                        };
                        let id = self
                            .opt_string(ro, "id", &p)
                            .unwrap_or_else(|| format!("route-{i}"));
                        let clauses = match ro.get("clauses") {
                            Some(_) => self.clauses(ro.get("clauses"), &join(&p, "clauses"), true),
                            None => Some(Vec::new()),
                        };
                        let mut flags = Vec::new();
                        if let Some(fv) = ro.get("flags") {
                            let fpath = join(&p, "flags");
                            if let Some(fm) = self.object(fv, &fpath, "`flags`") {
                                for (flag, variants) in fm {
                                    let fp = join(&fpath, flag);
                                    let Some(&fi) = self.flag_index.get(flag) else {
                                        self.err(&fp, format!("unknown flag `{flag}`"));
                                        continue;
                                    };
                                    let names =
                                        self.flag_variants.get(fi).cloned().unwrap_or_default();
                                    let mut vs = Vec::new();
                                    for (j, w) in self.strings(variants, &fp).iter().enumerate() {
                                        match names.iter().position(|n| n == w) {
                                            Some(x) => vs.push(x),
                                            None => self.err(
                                                &format!("{fp}[{j}]"),
                                                format!("flag `{flag}` has no variant `{w}`"),
                                            ),
                                        }
                                    }
                                    flags.push((fi, vs));
                                }
                            }
                        }
                        let target =
                            self.route_target_fields(ro, id, &p, &["id", "clauses", "flags"]);
                        if let (Some(clauses), Some(route)) = (clauses, target) {
                            rules.push(RouteRule {
                                clauses: Span::push(&mut self.arena.clauses, clauses),
                                flags,
                                route,
                            });
                        }
                    }
                }
            }
        }
        (rules, default, fallback)
    }

    pub(super) fn context_settings(&mut self, v: &Value, path: &str) -> ContextSettings {
        let mut out = ContextSettings::default();
        let Some(o) = self.object(v, path, "`context`") else {
            return out;
        };
        self.fields(o, path, &["headers", "cookies", "query"]);
        for (field, list) in [
            ("headers", &mut out.headers),
            ("cookies", &mut out.cookies),
            ("query", &mut out.query),
        ] {
            let Some(m) = o.get(field) else { continue };
            let fpath = join(path, field);
            let Some(m) = self.object(m, &fpath, "an allow-list (source name to attribute name)")
            else {
                continue;
            };
            for (source, attr) in m {
                let p = join(&fpath, source);
                let Some(attr) = self.string(attr, &p) else {
                    continue;
                };
                if crate::attributes::set_by_edge(&attr) {
                    self.err(
                        &p,
                        format!(
                            "`{attr}` is set by the edge itself and cannot come from a request"
                        ),
                    );
                    continue;
                }
                if field == "headers" && source.to_ascii_lowercase().starts_with("edgeflags-") {
                    self.err(
                        &p,
                        "headers starting with edgeflags- are removed before the edge reads them",
                    );
                    continue;
                }
                list.push((source.clone(), attr));
            }
        }
        out
    }

    pub(super) fn ofrep(&mut self, v: &Value, path: &str) -> OfrepSettings {
        let mut out = OfrepSettings::default();
        let Some(o) = self.object(v, path, "`ofrep`") else {
            return out;
        };
        self.fields(o, path, &["cors_origins", "auth"]);
        if let Some(c) = o.get("cors_origins") {
            out.cors_origins = self.strings(c, &join(path, "cors_origins"));
        }
        match o.get("auth").map(|a| (a, a.as_str())) {
            None | Some((_, Some("optional"))) => {}
            Some((_, Some("required"))) => out.require_auth = true,
            Some((a, _)) => self.err(
                &join(path, "auth"),
                format!("{a} is not `optional` or `required`"),
            ),
        }
        out
    }

    pub(super) fn route_target(&mut self, v: &Value, id: String, path: &str) -> Option<Route> {
        let o = self.object(v, path, "a route")?;
        self.route_target_fields(o, id, path, &[])
    }

    pub(super) fn route_target_fields(
        &mut self,
        o: &Map<String, Value>,
        id: String,
        path: &str,
        extra: &[&str],
    ) -> Option<Route> {
        let mut allowed = vec!["backend", "path_prefix", "host"];
        allowed.extend_from_slice(extra);
        self.fields(o, path, &allowed);
        let backend = match o.get("backend") {
            Some(b) => self.string(b, &join(path, "backend"))?,
            None => {
                self.err(&join(path, "backend"), "missing: the backend name");
                return None;
            }
        };
        if backend.is_empty()
            || !backend
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.err(
                &join(path, "backend"),
                format!("`{backend}` is not a backend name (letters, digits, _ and -)"),
            );
        }
        let path_prefix = self.opt_string(o, "path_prefix", path);
        if let Some(p) = &path_prefix
            && (!p.starts_with('/')
                || p.contains("..")
                || p.contains("//")
                || p.bytes()
                    .any(|b| b.is_ascii_control() || b == b'?' || b == b'#'))
        {
            self.err(
                &join(path, "path_prefix"),
                format!(
                    "`{p}` must start with / and hold no `..`, `//`, `?`, `#` or control characters"
                ),
            );
        }
        let host = self.opt_string(o, "host", path);
        if let Some(h) = &host
            && (h.is_empty()
                || h.bytes()
                    .any(|b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')))
        {
            self.err(&join(path, "host"), format!("`{h}` is not a host name"));
        }
        Some(Route {
            id,
            backend,
            path_prefix: path_prefix.map(|p| p.trim_end_matches('/').to_string()),
            host,
        })
    }
}
