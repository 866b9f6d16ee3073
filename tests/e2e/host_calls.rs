//! Host calls per page request: the count the edge shows a token-holding request in
//! `Server-Timing` (`host;desc="calls=N kind=n ..."`), for the demo page request on a
//! fresh instance and on a reused one. Every call is justified in docs/host-calls.md; an
//! avoidable call that comes back changes the count and fails here.

use std::collections::BTreeMap;
use std::sync::Arc;

use edgeflags_e2e::{App, AppSpec, Behaviour, Reply, Req, app};

/// The demo app in a context of its own, so that what its instances kept from earlier
/// requests (the compiled snapshot, the secrets) is only what this test's requests left.
fn own_demo_app() -> Arc<App> {
    app(AppSpec::demo()
        .origin("origin_us", Behaviour::Demo("us"))
        .origin("origin_eu", Behaviour::Demo("eu"))
        .origin("origin_apac", Behaviour::Demo("apac"))
        .origin("origin_sa", Behaviour::Demo("sa"))
        .secret("explain_token", "host-calls-test"))
}

/// The host calls a response reports: the total and each kind.
fn host_calls(r: &Reply) -> (u32, BTreeMap<String, u32>) {
    let timing = r.header("server-timing").unwrap_or_default();
    let desc = timing
        .split_once("host;desc=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(d, _)| d)
        .unwrap_or_else(|| panic!("no host calls in {timing}"));
    let mut total = None;
    let mut kinds = BTreeMap::new();
    for part in desc.split_whitespace() {
        let (k, n) = part
            .split_once('=')
            .unwrap_or_else(|| panic!("bad part {part} in {desc}"));
        let n: u32 = n.parse().unwrap_or_else(|e| panic!("{part}: {e}"));
        if k == "calls" {
            total = Some(n);
        } else {
            kinds.insert(k.to_string(), n);
        }
    }
    let total = total.unwrap_or_else(|| panic!("no total in {desc}"));
    assert_eq!(total, kinds.values().sum::<u32>(), "{desc}");
    (total, kinds)
}

/// The host calls the demo page request makes, by kind, on a reused instance (the
/// compiled snapshot and the secrets kept from an earlier request); each is justified in
/// docs/host-calls.md.
const REUSED: [(&str, u32); 9] = [
    ("cache", 16),
    ("config", 2),
    ("device", 1),
    ("geo", 1),
    ("header-read", 17),
    ("header-write", 17),
    ("log", 2),
    ("meta", 7),
    ("send", 1),
];

/// What a fresh instance adds: the snapshot's one store entry, and each secret the
/// request needs, read once per instance (the snapshot signing key, the preview key, the
/// user hash key: an open and a read each).
const FRESH_EXTRA: [(&str, u32); 2] = [("config", 1), ("secret", 6)];

/// A user of the demo whose flag `flag` serves `variant`.
fn demo_user(flag: &str, variant: &str) -> String {
    let snapshot = edgeflags_engine::compile_str(&edgeflags_e2e::demo_flags().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    // (The demo's `store-recs` depends on the user alone, not the clock.)
    let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    (0..1000)
        .map(|i| format!("host-calls-user-{i}"))
        .find(|u| {
            let ctx = edgeflags_engine::Context::with_key(u);
            snapshot.evaluate(flag, &ctx, now).variant == Some(variant)
        })
        .unwrap_or_else(|| panic!("no user gets {flag}={variant}"))
}

#[test]
fn the_demo_page_request_makes_only_the_host_calls_it_needs() {
    let app = own_demo_app();
    // A user whose variants fetch no fragment: the edge keeps no copy of the request.
    let user = demo_user("store-recs", "none");
    let page = || app.send(Req::get("/products").user(&user).debug());
    let (mut fresh, mut reused) = (None, None);
    for _ in 0..6 {
        let r = page();
        assert_eq!(r.status, 200);
        let ordinal: u32 = r
            .header("edgeflags-instance-request")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let calls = host_calls(&r);
        match ordinal {
            1 => fresh = Some(calls),
            _ => reused = Some(calls),
        }
        if fresh.is_some() && reused.is_some() {
            break;
        }
    }
    let want: BTreeMap<String, u32> = REUSED.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    let mut want_fresh = want.clone();
    for (k, n) in FRESH_EXTRA {
        *want_fresh.entry(k.to_string()).or_default() += n;
    }
    let total = |m: &BTreeMap<String, u32>| m.values().sum::<u32>();
    let (n, kinds) = reused.unwrap_or_else(|| panic!("no instance served a second request"));
    assert_eq!(kinds, want, "reused instance");
    assert_eq!(n, total(&want));
    let (n, kinds) = fresh.unwrap_or_else(|| panic!("no fresh instance served the page"));
    assert_eq!(kinds, want_fresh, "fresh instance");
    assert_eq!(n, total(&want_fresh));
    // A user whose variant fetches a fragment (`store-recs`): the copy of the request
    // the fragment is fetched with reads the list of header names once more (the page
    // is text, so no fragment is fetched).
    let fetcher = demo_user("store-recs", "fragment");
    let r = app.send(Req::get("/products").user(&fetcher).debug());
    assert_eq!(r.status, 200);
    let fresh_one = r.header("edgeflags-instance-request") == Some("1");
    let mut want_copy = if fresh_one { want_fresh } else { want };
    *want_copy.entry("header-read".to_string()).or_default() += 1;
    let (n, kinds) = host_calls(&r);
    assert_eq!(kinds, want_copy, "a user who fetches a fragment");
    assert_eq!(n, total(&want_copy));
    // Without a token the count is not shown.
    let plain = app.send(Req::get("/products").user(&user));
    assert_eq!(plain.status, 200);
    let timing = plain.header("server-timing").unwrap_or_default();
    assert!(
        !timing.contains("host;"),
        "no count without a token: {timing}"
    );
}
