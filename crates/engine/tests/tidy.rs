//! Structure checks over the repository's own sources, in the manner of rust-analyzer's
//! tidy tests: module imports point one way (no cycle among the modules of a crate), the
//! engine's leaves import nothing of the engine, and no hand-written source file grows
//! past 1,000 lines. The allowed directions are in the README's layout section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The source folders whose file-level modules must not import each other in a cycle.
const CRATES: &[&str] = &[
    "crates/engine/src",
    "src",
    "crates/cli/src",
    "crates/cli/src/report",
];

/// Engine modules that import nothing of the engine.
const LEAVES: &[&str] = &[
    "zone",
    "bucket",
    "digest",
    "sequential",
    "inject",
    "edit",
    "freshness",
];

/// A module's text without its comments and its unit-test module (tests may reach
/// anywhere).
fn code_of(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The file-level modules of a source folder: `name.rs` and `name/mod.rs`, with their
/// code (a folder module's files are read together).
fn modules(folder: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            let mut code = String::new();
            for f in walk(&path) {
                code.push_str(&code_of(&std::fs::read_to_string(f).unwrap_or_default()));
                code.push('\n');
            }
            if !code.is_empty() {
                out.insert(name, code);
            }
        } else if path.extension().is_some_and(|x| x == "rs")
            && !["lib", "main", "mod"].contains(&name.as_str())
        {
            out.insert(
                name,
                code_of(&std::fs::read_to_string(&path).unwrap_or_default()),
            );
        }
    }
    out
}

/// Every `.rs` file under a folder.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The sibling modules a module's code names: `crate::m`, `super::m` (from a top-level
/// file), and the members of `crate::{a, b::c}` groups.
fn imports(code: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        }
    }
    out.retain(|n| siblings.contains(n));
    out
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn strong<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                strong(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            strong(&mut s, v);
        }
    }
    s.out
}

fn graph(folder: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(&root().join(folder));
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    mods.iter()
        .map(|(m, code)| {
            let mut deps = imports(code, &names);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect()
}

#[test]
fn module_imports_point_one_way() {
    let mut found = Vec::new();
    for folder in CRATES {
        let g = graph(folder);
        assert!(!g.is_empty(), "{folder}: modules not found");
        for c in cycles(&g) {
            found.push(format!("{folder}: {}", c.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "import cycles (move the shared helper into a module both can import):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_engines_leaves_import_nothing_of_the_engine() {
    let g = graph("crates/engine/src");
    for leaf in LEAVES {
        let deps = g.get(*leaf).unwrap_or_else(|| panic!("no module {leaf}"));
        assert!(deps.is_empty(), "{leaf} imports {deps:?}");
    }
}

#[test]
fn the_checker_sees_a_cycle() {
    let names: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), imports("use crate::b::X;", &names));
    g.insert("b".to_string(), imports("use crate::{c, zz};", &names));
    g.insert("c".to_string(), imports("fn f() { super::a::g() }", &names));
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    g.insert(
        "c".to_string(),
        imports(&code_of("// crate::a\nfn f() {}"), &names),
    );
    assert!(cycles(&g).is_empty());
}

/// Hand-written sources stay under 1,000 lines (a file that grows past it has two nouns
/// in it); tests, fuzz corpora and generated tables are exempt.
#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let mut long = Vec::new();
    for folder in [
        "crates/engine/src",
        "src",
        "crates/cli/src",
        "tests/harness",
        "tests/bin",
    ] {
        for f in walk(&root().join(folder)) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if text.contains("@generated") {
                continue;
            }
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            let n = code.lines().count();
            if n > 1000 {
                long.push(format!("{} ({n} lines)", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these: {long:?}");
}
