//! Replays the fuzz corpora and any crash inputs committed under `fuzz/` through the same
//! entry points the fuzz targets use, so `cargo test` keeps them passing.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 8] = [
    ("compile", edgeflags_engine::fuzzing::compile),
    (
        "snapshot_decode",
        edgeflags_engine::fuzzing::snapshot_decode,
    ),
    ("evaluate", edgeflags_engine::fuzzing::evaluate),
    ("request_fields", edgeflags_engine::fuzzing::request_fields),
    ("ofrep_body", edgeflags_engine::fuzzing::ofrep_body),
    ("request", edgeflags_engine::fuzzing::request),
    ("console", edgeflags_engine::fuzzing::console),
    ("page", edgeflags_engine::fuzzing::page),
];

#[test]
fn fuzz_corpora_and_crash_inputs_replay_cleanly() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, target) in TARGETS {
        let mut replayed = 0;
        for dir in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else {
                continue;
            };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).unwrap_or_default();
                target(&data);
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no corpus for fuzz target {name}");
    }
}
