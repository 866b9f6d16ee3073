//! A rollout that guards itself: the edge logs an origin error event with the request's
//! variants when the origin fails, `edgeflags guard` reads the captured events log, and
//! when one variant's origin fails it turns the flag off through a push to the store the
//! edge reads; with healthy variants it does nothing.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use edgeflags_e2e::{
    AppSpec, Behaviour, Req, Store, app, cli_binary, demo_flags, dev_user_hash, packed,
};
use edgeflags_engine::events::{Event, Kind, Served};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeflags-e2e-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

/// A local store file holding the demo flags, packed.
fn demo_store(name: &str) -> PathBuf {
    let file = scratch(name);
    let entries = packed(&demo_flags(), None);
    std::fs::write(&file, serde_json::to_string(&entries).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    file
}

/// The status of `GET /` for `user`, over loopback TCP.
fn get(addr: SocketAddr, user: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(20)));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nCookie: ef_uid={user}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("cannot send: {e}"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends one page request per user, four connections at a time.
fn load(addr: SocketAddr, users: &[String]) -> Vec<u16> {
    std::thread::scope(|s| {
        let workers: Vec<_> = users
            .chunks(users.len().div_ceil(4))
            .map(|chunk| s.spawn(move || chunk.iter().map(|u| get(addr, u)).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    })
}

/// Writes the events lines of `users` from `logs` to a file, as a log endpoint's.
fn events_log(logs: &[String], users: &[String], name: &str) -> PathBuf {
    let mine: std::collections::BTreeSet<String> = users.iter().map(|u| dev_user_hash(u)).collect();
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| {
            l.strip_prefix("edgeflags_events :: ")
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                .is_some_and(|e| e["user"].as_str().is_some_and(|u| mine.contains(u)))
        })
        .map(String::as_str)
        .collect();
    let file = scratch(name);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    file
}

fn guard(log: &Path, store: &Path) -> Output {
    std::process::Command::new(cli_binary())
        .args(["guard", &log.to_string_lossy(), "--local"])
        .arg(store)
        .output()
        .unwrap_or_else(|e| panic!("cannot run edgeflags: {e}"))
}

#[test]
fn guard_turns_off_the_flag_whose_variant_fails_at_the_origin_and_the_edge_serves_its_off_variant()
{
    let store = demo_store("failing-store.json");
    // New York's origin fails every request decided with checkout=v2.
    let app = app(AppSpec::demo()
        .store(Store::File(store.clone()))
        .origin("origin_us", Behaviour::FailFor("checkout=v2")));
    let addr = app.serve_http().unwrap_or_else(|e| panic!("{e}"));
    let users: Vec<String> = (0..80).map(|i| format!("u-guard-{i}")).collect();
    let statuses = load(addr, &users);
    let failed = statuses.iter().filter(|s| **s == 502).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 502) && (20..=60).contains(&failed),
        "{statuses:?}"
    );
    // Each failure is an error event naming the variant, beside the user's exposure.
    let logs = app.logs();
    let errors: Vec<serde_json::Value> = app
        .log_json("edgeflags_events")
        .into_iter()
        .filter(|e| e["kind"] == "error")
        .collect();
    assert_eq!(errors.len(), failed, "{errors:?}");
    for e in errors {
        let e: Event = serde_json::from_value(e).unwrap_or_else(|err| panic!("{err}"));
        let v2 = Served {
            flag: "checkout".into(),
            variant: "v2".into(),
        };
        assert_eq!(
            (e.kind, e.error.as_deref(), e.status, e.variants),
            (Kind::Error, Some("status"), Some(500), vec![v2])
        );
    }
    let log = events_log(&logs, &users, "failing.log");
    let out = guard(&log, &store);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "origin errors: v2 {failed} of {failed} (100.0%), v1 0 of "
        )),
        "{text}"
    );
    assert!(text.contains("pushed version"), "{text}");
    // The edge serves the off_variant to a user who was in v2, from the new version.
    let v2_user = users
        .iter()
        .zip(&statuses)
        .find(|(_, s)| **s == 502)
        .map(|(u, _)| u.clone())
        .unwrap_or_default();
    let after = app.send(Req::get("/").user(&v2_user));
    assert_eq!(after.status, 200);
    assert_eq!(after.decision("checkout").as_deref(), Some("v1"));
    let items: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap_or_default())
            .unwrap_or_default();
    let live = edgeflags_engine::pack::read(|k| items.get(k).cloned(), None)
        .result
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        after.header("edgeflags-snapshot"),
        Some(live.version.as_str())
    );
}

#[test]
fn guard_does_nothing_while_every_variant_is_healthy() {
    let app = app(AppSpec::demo());
    let addr = app.serve_http().unwrap_or_else(|e| panic!("{e}"));
    let users: Vec<String> = (0..40).map(|i| format!("u-guard-ok-{i}")).collect();
    assert!(load(addr, &users).iter().all(|s| *s == 200));
    let log = events_log(&app.logs(), &users, "healthy.log");
    let store = demo_store("healthy-store.json");
    let before = std::fs::read_to_string(&store).unwrap_or_default();
    let out = guard(&log, &store);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("40 events read, 0 origin errors"), "{text}");
    assert!(
        text.contains("no variant is worse than its control: nothing done"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&store).unwrap_or_default(), before);
}
