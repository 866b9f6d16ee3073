//! Config snapshots at the edge: live store edits, a version put back from the history,
//! torn and badly signed slots, formats from the future, lookup counts, and reused
//! instances that forget every request.

use std::collections::BTreeMap;

use edgeflags_e2e::{AppSpec, Reply, Req, Store, app, demo_flags, packed};
use edgeflags_engine::history::{self, Action, Change};
use edgeflags_engine::pack::{self, POINTER_KEY, Pointer};
use edgeflags_engine::preview::{Claims, mint};
use serde_json::json;

fn version_of(flags: &serde_json::Value) -> String {
    edgeflags_engine::compile(flags)
        .map(|s| s.fingerprint().to_string())
        .unwrap_or_default()
}

/// The demo flags with the checkout experiment switched off.
fn demo_v2() -> serde_json::Value {
    let mut f = demo_flags();
    f["flags"]["checkout"]["on"] = json!(false);
    f
}

/// Packs `next` on top of `store` (into the idle slot), as a push would.
fn repack(
    store: &BTreeMap<String, String>,
    next: &serde_json::Value,
    key: Option<&[u8]>,
) -> BTreeMap<String, String> {
    let mut s = store.clone();
    let (payload, version) =
        edgeflags_engine::payload::of_file(&next.to_string()).unwrap_or_else(|e| panic!("{e}"));
    match pack::pack(&payload, &version, store, key) {
        Ok(p) => p.apply(&mut s),
        Err(e) => panic!("{e}"),
    }
    s
}

fn health(app: &edgeflags_e2e::App) -> serde_json::Value {
    app.send(Req::get("/.edgeflags/health")).json()
}

fn lookups(r: &Reply) -> u32 {
    let timing = r.header("server-timing").unwrap_or_default();
    timing
        .split("lookups=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn an_edit_to_the_store_is_served_on_the_next_request() {
    let dir = std::env::temp_dir().join(format!("edgeflags-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("store.json");
    let v1 = packed(&demo_flags(), None);
    std::fs::write(&file, serde_json::to_string(&v1).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let app = app(AppSpec::demo().store(Store::File(file.clone())));
    let before = app.send(Req::get("/").user("u-live"));
    assert_eq!(
        before.header("edgeflags-snapshot"),
        Some(version_of(&demo_flags()).as_str())
    );
    let v2 = repack(&v1, &demo_v2(), None);
    std::fs::write(&file, serde_json::to_string(&v2).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let after = app.send(Req::get("/").user("u-live"));
    assert_eq!(
        after.header("edgeflags-snapshot"),
        Some(version_of(&demo_v2()).as_str())
    );
    assert_eq!(
        after.decision("checkout").as_deref(),
        Some("v1"),
        "checkout is off in v2"
    );
    assert_eq!(health(&app)["slot"], "b");
}

#[test]
fn a_version_put_back_from_the_history_is_served_byte_for_byte() {
    // Three pushes recorded in the store's history, as `edgeflags push` writes them, then
    // `rollback --to` the second: checkout off for everyone.
    let releases = [demo_flags(), demo_v2(), {
        let mut f = demo_flags();
        f["flags"]["banner"]["on"] = json!(false);
        f
    }];
    let mut store = BTreeMap::new();
    let mut payloads = Vec::new();
    for (i, flags) in releases.iter().enumerate() {
        let (payload, version) = edgeflags_engine::payload::of_file(&flags.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let packed = pack::pack(&payload, &version, &history::without_history(&store), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let about = Change {
            action: Action::Push,
            at: format!("2026-11-29T12:00:0{i}Z"),
            author: "e2e".into(),
            commit: Some(format!("commit{i}")),
            message: format!("release {i}"),
            changes: Vec::new(),
        };
        match history::record(&store, packed, about, 20) {
            Ok(r) => r.change.apply(&mut store),
            Err(e) => panic!("{e}"),
        }
        let served = pack::read(|k| store.get(k).cloned(), None).result;
        payloads.push(
            served
                .map(|l| l.payload)
                .unwrap_or_else(|e| panic!("{e:?}")),
        );
    }
    let v2 = version_of(&demo_v2());
    let kept = history::read(&store);
    let record = history::find(&kept, &v2[..8]).unwrap_or_else(|e| panic!("{e}"));
    let restored = history::restore(&store, record, None).unwrap_or_else(|e| panic!("{e}"));
    let about = Change {
        action: Action::Rollback,
        at: "2026-11-29T12:01:00Z".into(),
        author: "e2e".into(),
        commit: record.commit.clone(),
        message: format!("rollback to {v2}"),
        changes: Vec::new(),
    };
    match history::record(&store, restored, about, 20) {
        Ok(r) => r.change.apply(&mut store),
        Err(e) => panic!("{e}"),
    }
    let live = pack::read(|k| store.get(k).cloned(), None).result;
    assert_eq!(
        live.map(|l| l.payload).ok().as_ref(),
        Some(&payloads[1]),
        "byte for byte"
    );

    let dir = std::env::temp_dir().join(format!("edgeflags-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("history-store.json");
    std::fs::write(&file, serde_json::to_string(&store).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let app = app(AppSpec::demo().store(Store::File(file.clone())));
    // visitor-3 is in checkout's v2 half; the restored version has checkout off.
    let r = app.send(Req::get("/").user("visitor-3").debug());
    assert_eq!(r.header("edgeflags-snapshot"), Some(v2.as_str()));
    assert_eq!(r.decision("checkout").as_deref(), Some("v1"));
    assert_eq!(
        lookups(&r),
        2,
        "the pointer and one part: the history costs no lookup"
    );
    // Pushes went to slots a, b, a; the version put back went to the idle one.
    let h = health(&app);
    assert_eq!(
        (h["source"].as_str(), h["slot"].as_str()),
        (Some("store"), Some("b"))
    );
}

#[test]
fn a_torn_slot_is_served_from_the_other_slot_and_logged() {
    let v1 = packed(&demo_flags(), None);
    let mut torn = repack(&v1, &demo_v2(), None);
    // The new slot's part is from yet another version: a write seen half-way.
    let part = pack::Slot::B.part_key(0);
    let body = torn
        .get(&part)
        .and_then(|v| v.split_once(':').map(|(_, b)| b.to_string()))
        .unwrap_or_default();
    torn.insert(part, format!("0123456789abcdef:{body}"));
    let app = app(AppSpec::demo().store(Store::Entries(torn)));
    let r = app.send(Req::get("/").user("u-torn"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("edgeflags-snapshot"),
        Some(version_of(&demo_flags()).as_str())
    );
    let h = health(&app);
    assert_eq!(
        (h["source"].as_str(), h["slot"].as_str()),
        (Some("store"), Some("a"))
    );
    assert!(
        app.log_json("edgeflags_ops").iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("slot b is torn")),
        "{:?}",
        app.logs()
    );
}

#[test]
fn a_bad_signature_is_served_from_the_other_slot_and_logged() {
    let good = packed(&demo_flags(), Some(b"snapshot-key"));
    let forged = repack(&good, &demo_v2(), Some(b"not-the-key"));
    let app = app(AppSpec::demo()
        .store(Store::Entries(forged))
        .secret("snapshot_key", "snapshot-key"));
    let r = app.send(Req::get("/").user("u-sig"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("edgeflags-snapshot"),
        Some(version_of(&demo_flags()).as_str())
    );
    assert!(app.log_json("edgeflags_ops").iter().any(|l| {
        l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bad signature")
    }));
    // Properly signed snapshots are accepted with the key configured.
    let signed = edgeflags_e2e::app(
        AppSpec::demo()
            .store(Store::Entries(packed(&demo_v2(), Some(b"snapshot-key"))))
            .secret("snapshot_key", "snapshot-key"),
    );
    let r = signed.send(Req::get("/").user("u-sig"));
    assert_eq!(
        r.header("edgeflags-snapshot"),
        Some(version_of(&demo_v2()).as_str())
    );
}

#[test]
fn a_snapshot_in_a_newer_format_falls_back() {
    let v1 = packed(&demo_flags(), None);
    let mut future = repack(&v1, &demo_v2(), None);
    let mut pointer: Pointer =
        serde_json::from_str(future.get(POINTER_KEY).map(String::as_str).unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("{e}"));
    if let Some(b) = pointer.b.as_mut() {
        b.format = pack::FORMAT + 1;
    }
    future.insert(
        POINTER_KEY.into(),
        serde_json::to_string(&pointer).unwrap_or_default(),
    );
    let app = app(AppSpec::demo().store(Store::Entries(future)));
    let r = app.send(Req::get("/").user("u-future"));
    assert_eq!(
        (r.status, r.header("edgeflags-snapshot")),
        (200, Some(version_of(&demo_flags()).as_str()))
    );
    assert!(
        health(&app)["problems"]
            .to_string()
            .contains(&format!("format {}", pack::FORMAT + 1))
    );
}

/// 100 flags like a real rollout set.
fn hundred_flags() -> serde_json::Value {
    let mut f = demo_flags();
    for i in 0..96 {
        f["flags"][format!("rollout-{i:03}")] = json!({
            "type": "string", "description": format!("rollout number {i} of the spring release"),
            "owner": "web-team", "variants": {"control": "control", "treatment": "treatment", "eu": "eu"},
            "off_variant": "control",
            "rules": [{"id": "eu", "clauses": [{"attribute": "country", "op": "in", "values": ["DE", "FR", "IT", "ES", "NL"]}], "serve": "eu"}],
            "default": {"split": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}
        });
    }
    f
}

#[test]
fn lookups_stay_within_the_bars_for_100_flags() {
    let v1 = packed(&hundred_flags(), None);
    let parts = v1.len() - 1;
    let fresh = app(AppSpec::demo().store(Store::Entries(v1.clone())));
    let r = fresh.send(Req::get("/").user("u-100").debug());
    assert_eq!(r.status, 200);
    assert!(r.decision("rollout-042").is_some());
    let n = lookups(&r);
    assert!(n <= 8, "{n} lookups for 100 flags ({parts} parts)");
    let clean = n;
    // Falling back reads the pointer and both slots: still within 15.
    let mut torn = repack(
        &v1,
        &{
            let mut f = hundred_flags();
            f["flags"]["banner"]["on"] = json!(false);
            f
        },
        None,
    );
    // Tear slot b's last part (100 flags pack into one or two entries).
    let last = (0..)
        .take_while(|&n| torn.contains_key(&pack::Slot::B.part_key(n)))
        .last();
    let part = pack::Slot::B.part_key(last.unwrap_or_else(|| panic!("slot b was not written")));
    torn.insert(part, "0123456789abcdef:x".into());
    let app = app(AppSpec::demo().store(Store::Entries(torn)));
    let r = app.send(Req::get("/").user("u-100").debug());
    let n = lookups(&r);
    assert!(n <= 15, "{n} lookups on fallback");
    assert!(n > clean, "the fallback read both slots ({n} lookups)");
}

#[test]
fn a_reused_instance_answers_each_request_as_a_fresh_one_would() {
    let app = app(AppSpec::demo());
    let tokyo = mint(
        &Claims {
            exp: 4_000_000_000,
            country: Some("JP".into()),
            region: Some("13".into()),
            ..Claims::default()
        },
        b"dev-preview-key-not-for-production",
    );
    let snapshot = edgeflags_engine::compile(&demo_flags()).unwrap_or_else(|e| panic!("{e}"));
    let mut ordinals = Vec::new();
    let mut cached = 0;
    for i in 0..24 {
        // Interleave: known users from different places, new visitors, preview tokens.
        let (req, expect_country, new_visitor) = match i % 4 {
            0 => (
                Req::get("/")
                    .from("203.0.113.20")
                    .user(&format!("reuse-{i}")),
                "FR",
                false,
            ),
            1 => (
                Req::get("/")
                    .from("203.0.113.30")
                    .header("edgeflags-preview", &tokyo)
                    .user(&format!("reuse-{i}")),
                "JP",
                false,
            ),
            2 => (Req::get("/").from("203.0.113.30"), "US", true),
            _ => (
                Req::get("/")
                    .from("203.0.113.10")
                    .user(&format!("reuse-{i}")),
                "JP",
                false,
            ),
        };
        let r = app.send(req.debug());
        assert_eq!(r.status, 200);
        let saw = r.origin_saw();
        assert_eq!(
            saw["headers"]["edgeflags-country"], expect_country,
            "request {i}"
        );
        assert_eq!(
            r.header("set-cookie").is_some(),
            new_visitor,
            "request {i}: cookie only for new visitors"
        );
        if !new_visitor {
            let ctx = edgeflags_engine::Context::with_key(&format!("reuse-{i}"));
            let want = snapshot.evaluate(
                "checkout",
                &ctx,
                chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()),
            );
            assert_eq!(
                r.decision("checkout").as_deref(),
                want.variant,
                "request {i}"
            );
        }
        ordinals.push(
            r.header("edgeflags-instance-request")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        );
        cached += usize::from(
            r.header("server-timing")
                .unwrap_or_default()
                .contains("cached=true"),
        );
    }
    assert!(
        ordinals.iter().any(|&n| n >= 2),
        "no instance was reused: {ordinals:?}"
    );
    assert!(cached > 0, "no request reused the compiled snapshot");
}
