//! The fault catalogue: each broken store or failing origin, what a user sees (status and
//! page) and what an operator sees (the `edgeflags_ops` line). The torn slot, bad
//! signature and newer format are in `snapshots.rs`, the missing store, broken entries,
//! refusing, hanging and 503 origins in `foundation.rs` and `personalization.rs`.
//! Oversized entries cannot reach the edge (Viceroy refuses the whole store file):
//! `edgeflags pack` refuses them (crates/engine pack tests and crates/cli tests).

use std::collections::BTreeMap;

use edgeflags_e2e::{AppSpec, Behaviour, Req, Store, app, demo_flags, packed};
use edgeflags_engine::pack::{self, POINTER_KEY};

fn version_of(flags: &serde_json::Value) -> String {
    edgeflags_engine::compile(flags)
        .map(|s| s.fingerprint().to_string())
        .unwrap_or_default()
}

/// The demo flags in slot a, a second version in slot b (active).
fn two_versions() -> (BTreeMap<String, String>, serde_json::Value) {
    let v1 = packed(&demo_flags(), None);
    let mut v2_flags = demo_flags();
    v2_flags["flags"]["checkout"]["on"] = serde_json::json!(false);
    let (v2_payload, v2_version) =
        edgeflags_engine::payload::of_file(&v2_flags.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let mut store = v1.clone();
    match pack::pack(&v2_payload, &v2_version, &v1, None) {
        Ok(p) => p.apply(&mut store),
        Err(e) => panic!("{e}"),
    }
    (store, v2_flags)
}

struct Scenario {
    name: &'static str,
    store: BTreeMap<String, String>,
    /// The version users are served, and where it comes from.
    served: String,
    source: &'static str,
    /// What the operator's log line says.
    log: &'static str,
}

#[test]
fn each_store_fault_serves_200_and_tells_the_operator_why() {
    let (good, _) = two_versions();
    let v1 = version_of(&demo_flags());
    let embedded = v1.clone(); // the build embeds config-store/flags.json
    let b0 = pack::Slot::B.part_key(0);
    let mut no_pointer = good.clone();
    no_pointer.remove(POINTER_KEY);
    let mut bad_pointer = good.clone();
    bad_pointer.insert(POINTER_KEY.into(), "{not json".into());
    let mut no_part = good.clone();
    no_part.remove(&b0);
    let mut corrupt = good.clone();
    if let Some(v) = corrupt.get_mut(&b0) {
        v.push_str("corrupted");
    }
    let scenarios = [
        Scenario {
            name: "fault-no-pointer",
            store: no_pointer,
            served: embedded.clone(),
            source: "embedded",
            log: "no `edgeflags.pointer` entry",
        },
        Scenario {
            name: "fault-bad-pointer",
            store: bad_pointer,
            served: embedded.clone(),
            source: "embedded",
            log: "the pointer is not readable",
        },
        Scenario {
            name: "fault-missing-part",
            store: no_part,
            served: v1.clone(),
            source: "store",
            log: "slot b part 0 is missing",
        },
        Scenario {
            name: "fault-corrupt-part",
            store: corrupt,
            served: v1.clone(),
            source: "store",
            log: "slot b fails its checksum",
        },
        Scenario {
            name: "fault-empty-store",
            store: BTreeMap::new(),
            served: embedded,
            source: "embedded",
            log: "no `edgeflags.pointer` entry",
        },
    ];
    for s in scenarios {
        let store = s.store.clone();
        let a = app(AppSpec::demo().store(Store::Entries(store)));
        let r = a.send(Req::get("/").from("203.0.113.10").user("u-fault"));
        assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
        assert_eq!(
            r.header("edgeflags-snapshot"),
            Some(s.served.as_str()),
            "{}",
            s.name
        );
        assert_eq!(
            r.decision("locale").as_deref(),
            Some("ja"),
            "{}: every flag is still served",
            s.name
        );
        let h = a.send(Req::get("/.edgeflags/health")).json();
        assert_eq!(h["source"], s.source, "{}: {h}", s.name);
        let ops = a.log_json("edgeflags_ops");
        assert!(
            ops.iter()
                .any(|l| l["message"].as_str().unwrap_or_default().contains(s.log)),
            "{}: no ops line containing `{}`: {ops:?}",
            s.name,
            s.log
        );
    }
}

#[test]
fn an_origin_500_is_a_plain_502_and_a_log_line() {
    // Every regional origin fails its own way there; origin_us answers 500.
    let a = app(crate::personalization::failing_origins());
    let r = a.send(Req::get("/account").from("203.0.113.30").user("u-500"));
    assert_eq!(r.status, 502);
    assert!(r.body.contains("could not answer"), "{}", r.body);
    assert!(
        !r.body.contains("origin_us") && !r.body.contains("failing with"),
        "internals in the page: {}",
        r.body
    );
    assert!(
        a.log_json("edgeflags_ops").iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("backend origin_us answered 500")),
        "{:?}",
        a.logs()
    );
}

#[test]
fn a_huge_origin_body_streams_through_whole() {
    let size = 24 * 1024 * 1024;
    let a = app(AppSpec::demo().origin("origin_us", Behaviour::Huge(size)));
    let r = a.send(Req::get("/video").from("203.0.113.30").user("u-huge"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), size);
    assert!(r.body.bytes().all(|b| b == b'x'));
    assert!(r.header("edgeflags-snapshot").is_some());
}
