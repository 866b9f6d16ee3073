//! The JSON Schema in `schema/` agrees with the engine: every valid file the repo ships
//! validates against it, and typical mistakes are caught by editors too.

use serde_json::{Value, json};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&read("schema/flags.schema.json"))
        .unwrap_or_else(|e| panic!("the schema is invalid: {e}"))
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_demo_file_and_every_spec_flag_set_validate() {
    let v = validator();
    let demo = read("config-store/flags.json");
    assert_eq!(demo["$schema"], "../schema/flags.schema.json");
    assert_eq!(errors(&v, &demo), Vec::<String>::new());
    let index = read("crates/engine/spec/index.json");
    for f in index["evaluation"].as_array().into_iter().flatten() {
        let doc = read(&format!(
            "crates/engine/spec/{}",
            f.as_str().unwrap_or_default()
        ));
        let mut file = json!({"flags": doc["flags"]});
        for section in ["segments", "layers", "holdouts"] {
            if let Some(v) = doc.get(section) {
                file[section] = v.clone();
            }
        }
        assert_eq!(errors(&v, &file), Vec::<String>::new(), "{f}");
        assert!(edgeflags_engine::compile(&file).is_ok());
    }
}

#[test]
fn the_schema_catches_what_editors_should_flag() {
    let v = validator();
    let flag = |extra: Value| {
        let mut f = json!({"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "off"});
        if let (Some(o), Some(e)) = (f.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({"flags": {"f": f}})
    };
    assert!(errors(&v, &flag(json!({}))).is_empty());
    let sections = json!({"layers": {"pricing": {"slots": 1000}}, "holdouts": {"q4": {"weight": 5}},
        "flags": {"f": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "off",
            "layer": {"name": "pricing", "slots": [0, 500]}, "holdout": ["q4"],
            "ramp": {"variant": "on", "start": "2026-12-01T00:00:00Z", "every_hours": 24, "weights": [5, 25]}}}});
    assert_eq!(errors(&v, &sections), Vec::<String>::new());
    assert!(edgeflags_engine::compile(&sections).is_ok());
    for bad in [
        json!({"layers": {"l": {"slots": 0}}}),
        json!({"holdouts": {"h": {}}}),
    ] {
        let mut file = bad.clone();
        file["flags"] = json!({});
        assert!(!errors(&v, &file).is_empty(), "the schema accepts {bad}");
    }
    for bad in [
        json!({"type": "bool"}),
        json!({"varients": {}}),
        json!({"rules": [{"clauses": [{"attribute": "a", "op": "within", "values": ["x"]}], "serve": "on"}]}),
        json!({"rules": [{"clauses": [{"op": "in", "values": ["x"]}], "serve": "on"}]}),
        json!({"default": {"split": [{"variant": "on", "weight": 150}]}}),
        json!({"expires": "soon"}),
        json!({"layer": {"name": "pricing"}}),
        json!({"layer": {"name": "pricing", "slots": [0, 50, 100]}}),
        json!({"holdout": 5}),
        json!({"ramp": {"variant": "on", "steps": [{"at": "2026-12-01T00:00:00Z", "weight": 150}]}}),
        json!({"ramp": {"variant": "on", "start": "2026-12-01T00:00:00Z", "weights": [5, 25]}}),
        json!({"ramp": {"variant": "on", "steps": [{"at": "2026-12-01T00:00:00Z", "weight": 5}], "every_hours": 24}}),
    ] {
        assert!(
            !errors(&v, &flag(bad.clone())).is_empty(),
            "the schema accepts {bad}"
        );
    }
}

/// The schema's operator list is the engine's operator table, so editors know every
/// operator the engine compiles and nothing else.
#[test]
fn the_schema_names_exactly_the_engines_operators() {
    fn find_op_enum(v: &Value) -> Option<Vec<String>> {
        match v {
            Value::Object(o) => {
                if let Some(list) = o.get("op").and_then(|op| op.get("enum")) {
                    return serde_json::from_value(list.clone()).ok();
                }
                o.values().find_map(find_op_enum)
            }
            Value::Array(a) => a.iter().find_map(find_op_enum),
            _ => None,
        }
    }
    let schema = read("schema/flags.schema.json");
    let in_schema = find_op_enum(&schema).unwrap_or_default();
    let in_engine: Vec<String> = edgeflags_engine::model::operator_names()
        .map(str::to_string)
        .collect();
    assert!(!in_engine.is_empty());
    assert_eq!(in_schema, in_engine);
}
