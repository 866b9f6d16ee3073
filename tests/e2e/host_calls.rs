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
        .origin("origin_us", Behaviour::Site("us"))
        .origin("origin_eu", Behaviour::Site("eu"))
        .origin("origin_apac", Behaviour::Site("apac"))
        .origin("origin_sa", Behaviour::Site("sa"))
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
/// compiled snapshot and the secrets kept from an earlier request), leaving out the cache
/// lookup's. Each is justified in docs/host-calls.md.
const WITHOUT_LOOKUP: [(&str, u32); 8] = [
    ("config", 2),
    ("device", 1),
    ("geo", 1),
    ("header-read", 12),
    ("header-write", 17),
    ("log", 2),
    ("meta", 7),
    ("send", 1),
];

/// What the cache lookup adds when it finds nothing and, the page not being storable,
/// leaves the hit-for-pass marker: the list of header names read for the lookup, and the
/// response's 4 headers that say whether it may be stored; the lookup's request and its
/// 11 headers, the lookup and the state read that waits for it, its state, whether this
/// request must store, the marker's
/// insert and its end.
const LOOKUP_MARKING: [(&str, u32); 2] = [("cache", 18), ("header-read", 5)];

/// What the cache lookup adds when it finds the marker (fresh): as above, but whether
/// what it found is stale and its metadata are read, and nothing is written (no request
/// is asked to store while the marker is fresh).
const LOOKUP_FINDING: [(&str, u32); 2] = [("cache", 18), ("header-read", 5)];

/// What a fresh instance adds: the snapshot's one store entry, and each secret the
/// request needs, read once per instance (the snapshot signing key, the preview key, the
/// user hash key: an open and a read each).
const FRESH_EXTRA: [(&str, u32); 2] = [("config", 1), ("secret", 6)];

/// The counts of WITHOUT_LOOKUP plus each of `extra`.
fn counts(extra: &[&[(&str, u32)]]) -> BTreeMap<String, u32> {
    let mut want: BTreeMap<String, u32> = WITHOUT_LOOKUP
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    for (k, n) in extra.iter().flat_map(|e| e.iter()) {
        *want.entry(k.to_string()).or_default() += n;
    }
    want
}

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
    // The page is not storable (`pass`, then `hit-for-pass`), and varies: its first
    // request leaves the marker for this user's variant, and every later one looks it
    // up and finds it, on a reused instance as on a fresh one.
    let (mut fresh_seen, mut reused_seen) = (false, false);
    for i in 0..8 {
        let r = page();
        assert_eq!(r.status, 200);
        let fresh = r.header("edgeflags-instance-request") == Some("1");
        let state = r.header("edgeflags-cache").unwrap_or_default().to_string();
        let lookup: &[(&str, u32)] = if i == 0 {
            assert_eq!(state, "pass (no max-age or s-maxage)");
            &LOOKUP_MARKING
        } else {
            assert_eq!(state, "hit-for-pass (no max-age or s-maxage)");
            &LOOKUP_FINDING
        };
        let fresh_extra: &[(&str, u32)] = if fresh { &FRESH_EXTRA } else { &[] };
        let want = counts(&[lookup, fresh_extra]);
        let (n, kinds) = host_calls(&r);
        assert_eq!(
            kinds, want,
            "request {i} (fresh instance: {fresh}, {state})"
        );
        assert_eq!(n, want.values().sum::<u32>());
        fresh_seen |= fresh;
        reused_seen |= !fresh;
    }
    assert!(
        fresh_seen && reused_seen,
        "fresh {fresh_seen}, reused {reused_seen}"
    );
    // A page that says it is never shared and varies on nothing (`private`): an instance
    // that has seen it passed remembers it and makes no cache call for it (an instance
    // that has not looks it up and finds the marker).
    let private = || app.send(Req::get("/t/private?t=host-calls").user(&user).debug());
    let first = private();
    assert_eq!(first.header("edgeflags-cache"), Some("pass (private)"));
    assert!(host_calls(&first).1.contains_key("cache"));
    let mut remembered = false;
    for _ in 0..6 {
        let r = private();
        assert_eq!(r.header("edgeflags-cache"), Some("hit-for-pass (private)"));
        let (_, kinds) = host_calls(&r);
        match kinds.get("cache") {
            None => remembered = true,
            Some(n) => assert_eq!(*n, 18, "a lookup that finds the marker: {kinds:?}"),
        }
    }
    assert!(remembered, "no instance remembered the private page");
    // A user whose variant fetches a fragment (`store-recs`): the copy of the request
    // the fragment is fetched with reads the list of header names once more (the page
    // is text, so no fragment is fetched). Its content variants differ, so its page has a
    // cache key of its own, looked up for the first time here.
    let fetcher = demo_user("store-recs", "fragment");
    let r = app.send(Req::get("/products").user(&fetcher).debug());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("edgeflags-cache"),
        Some("pass (no max-age or s-maxage)")
    );
    let fresh_extra: &[(&str, u32)] = if r.header("edgeflags-instance-request") == Some("1") {
        &FRESH_EXTRA
    } else {
        &[]
    };
    let want = counts(&[&LOOKUP_MARKING, fresh_extra, &[("header-read", 1)]]);
    let (n, kinds) = host_calls(&r);
    assert_eq!(kinds, want, "a user who fetches a fragment");
    assert_eq!(n, want.values().sum::<u32>());
    // Without a token the count is not shown.
    let plain = app.send(Req::get("/products").user(&user));
    assert_eq!(plain.status, 200);
    let timing = plain.header("server-timing").unwrap_or_default();
    assert!(
        !timing.contains("host;"),
        "no count without a token: {timing}"
    );
}
