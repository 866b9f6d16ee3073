//! The spec suite: the engine's semantics as data (`spec/index.json` and the files it
//! lists). Every case runs, and every failure is reported, not just the first.

use chrono::{DateTime, Utc};
use edgeflags_engine::{Context, Evaluation, Reason, compile, compile_str};
use serde_json::{Value, json};

fn spec_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec")
}

fn load(name: &str) -> Value {
    let path = spec_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(kind: &str) -> Vec<String> {
    load("index.json")[kind]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What an evaluation returned, in the spec's terms.
fn observed(e: &Evaluation) -> Value {
    let mut o = json!({
        "variant": e.variant,
        "value": e.value.cloned().unwrap_or(Value::Null),
        "reason": e.reason.kind(),
    });
    match e.reason {
        Reason::RuleMatch { index, id } => {
            o["rule"] = json!(id);
            o["rule_index"] = json!(index);
        }
        Reason::PrerequisiteFailed { flag } => o["prerequisite"] = json!(flag),
        Reason::Error(code) => o["error"] = json!(code.as_str()),
        Reason::Off { scheduled: true } => o["scheduled"] = json!(true),
        Reason::Holdout { id } => o["holdout"] = json!(id),
        Reason::Ramp { step } => o["ramp_step"] = json!(step),
        _ => {}
    }
    if let Some(b) = e.bucket {
        o["bucket"] = json!(b);
    }
    o
}

fn run_evaluation_file(name: &str, failures: &mut Vec<String>) -> usize {
    let doc = load(name);
    let mut file = json!({ "flags": doc["flags"] });
    for section in ["segments", "layers", "holdouts"] {
        if let Some(v) = doc.get(section) {
            file[section] = v.clone();
        }
    }
    let snapshot = match compile(&file) {
        Ok(s) => s,
        Err(e) => {
            failures.push(format!("{name}: the flags do not compile: {e}"));
            return 0;
        }
    };
    // The edge runs the packed form (compiled, encoded, decoded): every case must hold
    // for it too.
    let packed = match edgeflags_engine::codec::decode(&edgeflags_engine::codec::encode(&snapshot))
    {
        Ok(s) => s,
        Err(e) => {
            failures.push(format!("{name}: the packed snapshot does not decode: {e}"));
            return 0;
        }
    };
    let cases = doc["cases"].as_array().cloned().unwrap_or_default();
    for (i, c) in cases.iter().enumerate() {
        let label = format!("{name} #{i} {}", c["name"].as_str().unwrap_or("?"));
        let mut ctx = Context::from_json(c["context"].as_object().unwrap_or(&Default::default()));
        // Variants a preview forces: {"flag": "variant"}.
        for (flag, variant) in c["force"].as_object().into_iter().flatten() {
            ctx.force(flag, variant.as_str().unwrap_or_default());
        }
        let now: DateTime<Utc> = match c["now"].as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => t.with_timezone(&Utc),
            _ => {
                failures.push(format!("{label}: bad `now`"));
                continue;
            }
        };
        let flag = c["flag"].as_str().unwrap_or("");
        let got = observed(&snapshot.evaluate(flag, &ctx, now));
        let via_pack = observed(&packed.evaluate(flag, &ctx, now));
        if via_pack != got {
            failures.push(format!(
                "{label}: the packed snapshot decides {via_pack}, the compiled one {got}"
            ));
        }
        // Every field the case states must hold; fields it leaves out are not checked,
        // except that an unstated rule/bucket/prerequisite/error must be absent.
        let expect = &c["expect"];
        let mut wrong = Vec::new();
        for key in [
            "variant",
            "value",
            "reason",
            "rule",
            "rule_index",
            "prerequisite",
            "error",
            "bucket",
            "scheduled",
            "holdout",
            "ramp_step",
        ] {
            let want = expect.get(key).unwrap_or(&Value::Null);
            let have = got.get(key).unwrap_or(&Value::Null);
            if want != have {
                wrong.push(format!("{key}: want {want}, got {have}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{label}: {}", wrong.join("; ")));
        }
    }
    cases.len()
}

fn run_error_file(name: &str, failures: &mut Vec<String>) -> usize {
    let doc = load(name);
    let cases = doc["cases"].as_array().cloned().unwrap_or_default();
    for (i, c) in cases.iter().enumerate() {
        let label = format!("{name} #{i} {}", c["name"].as_str().unwrap_or("?"));
        let result = match c.get("text").and_then(Value::as_str) {
            Some(text) => compile_str(text),
            None => compile(&c["file"]),
        };
        let problems = match result {
            Ok(_) => {
                failures.push(format!("{label}: compiled, but should have failed"));
                continue;
            }
            Err(e) => e.problems(),
        };
        for want in c["errors"].as_array().cloned().unwrap_or_default() {
            let (path, text) = (
                want["path"].as_str().unwrap_or(""),
                want["contains"].as_str().unwrap_or(""),
            );
            let found = problems
                .iter()
                .any(|p| p.path.contains(path) && p.message.contains(text));
            if !found {
                let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
                failures.push(format!(
                    "{label}: no problem at `{path}` containing `{text}`; got: {listed:?}"
                ));
            }
        }
    }
    cases.len()
}

#[test]
fn spec_suite() {
    let mut failures = Vec::new();
    let mut count = 0;
    for f in files("evaluation") {
        count += run_evaluation_file(&f, &mut failures);
    }
    for f in files("compile_errors") {
        count += run_error_file(&f, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {count} spec cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 150, "the spec suite has only {count} cases");
    println!("{count} spec cases passed");
}
