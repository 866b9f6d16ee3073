//! The page at the edge: changes by variant from one cached copy, redirect tests, the
//! bootstrap, fragments, what is never stored, what is never rewritten, and hostile
//! pages. One app (the demo flags, every region's origin serving the store and the test
//! pages) for all of them; each test uses its own URLs (a query marker), so the shared
//! cache and the origins' counts of one test are not another's.

use std::collections::BTreeMap;

use chrono::DateTime;
use edgeflags_e2e::{App, AppSpec, Behaviour, Reply, Req, app, demo_flags, pages, store};
use edgeflags_engine::Context;
use edgeflags_engine::preview::{Claims, mint};

const DEV_KEY: &[u8] = b"dev-preview-key-not-for-production";
/// 127.0.0.1 is New York in the local geolocation data; this one is Tokyo.
const NEW_YORK: &str = "127.0.0.1";
const TOKYO: &str = "203.0.113.10";

/// The app every page test uses (the OFREP node test reads its store page too).
pub(crate) fn site() -> std::sync::Arc<App> {
    app(AppSpec::demo()
        .origin("origin_us", Behaviour::Site("us"))
        .origin("origin_apac", Behaviour::Site("apac"))
        .origin("origin_eu", Behaviour::Site("eu"))
        .origin("origin_sa", Behaviour::Site("sa")))
}

/// A preview token forcing these variants.
fn forcing(variants: &[(&str, &str)]) -> String {
    let claims = Claims {
        exp: 4_000_000_000,
        variants: variants
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Claims::default()
    };
    mint(&claims, DEV_KEY)
}

fn origin_fetches(app: &App, backend: &str, marker: &str) -> usize {
    app.origins
        .get(backend)
        .map(|o| o.seen_with(marker).len())
        .unwrap_or(usize::MAX)
}

/// The decisions in the page's bootstrap element (OFREP bulk shape), by flag.
fn bootstrap(r: &Reply) -> BTreeMap<String, String> {
    let open = r#"<script type="application/json" id="edgeflags-bootstrap">"#;
    let json = r
        .body
        .split_once(open)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(j, _)| j)
        .unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    doc["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["key"].as_str().unwrap_or_default().to_string(),
                f["variant"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_kind_of_change_applies_by_variant() {
    let app = site();
    let get = |variants: &[(&str, &str)]| {
        app.send(
            Req::get("/store?t=kinds")
                .from(NEW_YORK)
                .user("u-kinds")
                .header("edgeflags-preview", &forcing(variants)),
        )
    };
    let a = get(&[
        ("store-banner", "local"),
        ("product-tile", "spotlight"),
        ("store-recs", "fragment"),
    ]);
    assert_eq!(a.status, 200, "{}", a.body);
    // Text with the visitor's city, escaped; an attribute; HTML; a fragment.
    assert!(
        a.body.contains("<h2>Hello, shoppers in New York!</h2>"),
        "{}",
        a.body
    );
    assert!(a.body.contains(
        r#"<li class="tile" id="tile-1"><span class="badge">New</span><h3>Today's pick for US</h3>"#
    ));
    assert!(
        a.body
            .contains(r#"href="/store/products/1?from=spotlight""#)
    );
    assert!(
        a.body
            .contains(&format!(r#"<section id="recs">{}</section>"#, store::RECS))
    );
    assert!(a.header("content-length").is_none() && a.header("etag").is_none());
    assert_eq!(a.header("cache-control"), Some("private, no-store"));
    let b = get(&[
        ("store-banner", "sale"),
        ("product-tile", "classic"),
        ("store-recs", "none"),
    ]);
    // Replace with HTML, set an attribute; remove an element and an attribute.
    assert!(b.body.contains(r#"<div id="banner" data-theme="sale"><h2 class="sale">Weekend sale in New York: 20% off everything</h2>"#), "{}", b.body);
    assert!(
        !b.body.contains(
            r#"id="tile-1"><h3>Product 1</h3><p class="price">$11.00</p><p class="promo">"#
        )
    );
    assert!(
        b.body
            .contains(r#"<a href="/store/products/1">View</a></li>"#)
    );
    assert!(b.body.contains("Recommendations load here."));
    // Both came from one cached copy.
    assert_eq!(origin_fetches(&app, "origin_us", "/store?t=kinds"), 1);
    let c = get(&[("store-banner", "standard")]);
    assert!(c.body.contains("<h2>Welcome to the store</h2>"));
}

#[test]
fn a_thousand_users_over_every_variant_cause_one_origin_fetch_per_url_and_route() {
    let app = site();
    let snapshot = edgeflags_engine::compile(&demo_flags()).unwrap_or_else(|e| panic!("{e}"));
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let requests: Vec<(String, &str)> = (0..1000)
        .map(|i| {
            (
                format!("thousand-{i}"),
                if i % 10 == 0 { TOKYO } else { NEW_YORK },
            )
        })
        .collect();
    let replies: Vec<Reply> = edgeflags_e2e::runtime().block_on(async {
        let mut out = Vec::new();
        for batch in requests.chunks(8) {
            let sends = batch.iter().map(|(user, ip)| {
                app.send_async(Req::get("/store?t=thousand").from(ip).user(user))
            });
            out.extend(futures_util::future::join_all(sends).await);
        }
        out
    });
    for ((user, ip), r) in requests.iter().zip(&replies) {
        assert_eq!(r.status, 200, "{user}: {}", r.body);
        let ctx = Context::with_key(user);
        let want = |flag: &str| {
            snapshot
                .evaluate(flag, &ctx, now)
                .variant
                .unwrap_or_default()
                .to_string()
        };
        let (banner, tile, recs) = (
            want("store-banner"),
            want("product-tile"),
            want("store-recs"),
        );
        // The bootstrap says what the engine decides for this user.
        let told = bootstrap(r);
        assert_eq!(told.get("store-banner"), Some(&banner), "{user}");
        assert_eq!(told.get("product-tile"), Some(&tile), "{user}");
        assert_eq!(told.get("store-recs"), Some(&recs), "{user}");
        let city = if *ip == TOKYO { "Tokyo" } else { "New York" };
        let has = |s: &str| r.body.contains(s);
        match banner.as_str() {
            "local" => assert!(
                has(&format!("<h2>Hello, shoppers in {city}!</h2>")),
                "{user}"
            ),
            "sale" => assert!(has(&format!("Weekend sale in {city}")), "{user}"),
            _ => assert!(has("<h2>Welcome to the store</h2>"), "{user}"),
        }
        let country = if *ip == TOKYO { "JP" } else { "US" };
        assert_eq!(
            has(&format!("Today's pick for {country}")),
            tile == "spotlight",
            "{user}"
        );
        let tile_link = match tile.as_str() {
            "spotlight" => r#"href="/store/products/1?from=spotlight" target="_blank">"#,
            _ => r#"<a href="/store/products/1">View</a>"#,
        };
        assert!(has(tile_link), "{user}");
        assert_eq!(has(store::RECS), recs == "fragment", "{user}");
        *seen.entry(("store-banner".into(), banner)).or_default() += 1;
        *seen.entry(("product-tile".into(), tile)).or_default() += 1;
        *seen.entry(("store-recs".into(), recs)).or_default() += 1;
    }
    // Every variant of the three flags was served.
    assert_eq!(seen.len(), 3 + 2 + 2, "{seen:?}");
    // One origin fetch per URL and route, whatever the edge-change variants: New York's
    // route (`default`, /en) and Tokyo's (`japan`, /ja). The demo's `checkout` is a
    // `content` flag (the origin builds each of its two variants), so each route's URL
    // is one cached document per checkout variant, and each was fetched exactly once.
    let checkouts = |ip: &str| {
        requests
            .iter()
            .filter(|(_, i)| *i == ip)
            .map(|(u, _)| {
                snapshot
                    .evaluate("checkout", &Context::with_key(u), now)
                    .variant
                    .unwrap_or_default()
            })
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    for (backend, path, ip) in [
        ("origin_us", "/en/store?t=thousand", NEW_YORK),
        ("origin_apac", "/ja/store?t=thousand", TOKYO),
    ] {
        let fetched = app
            .origins
            .get(backend)
            .map(|o| o.seen_with(path))
            .unwrap_or_default();
        let keys: std::collections::BTreeSet<String> = fetched
            .iter()
            .filter_map(|s| {
                s.headers
                    .iter()
                    .find(|(k, _)| k == "edgeflags-cache-key")
                    .map(|(_, v)| v.clone())
            })
            .collect();
        assert_eq!(
            keys.len(),
            fetched.len(),
            "{path}: a document was fetched twice"
        );
        assert_eq!(fetched.len(), checkouts(ip), "{path}");
    }
}

#[test]
fn a_redirect_test_decides_before_the_fetch_keeps_the_query_and_sticks() {
    let app = site();
    let mut redirected = None;
    let mut stayed = None;
    // New visitors (no cookie) until one of each variant.
    for i in 0..40 {
        let r = app.send(
            Req::get("/store/checkout?x=1&t=redirect")
                .from(NEW_YORK)
                .header("x-visit", &i.to_string()),
        );
        let cookie = r
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .and_then(|c| c.strip_prefix("ef_uid="))
            .map(str::to_string);
        match r.status {
            302 => {
                assert_eq!(
                    r.header("location"),
                    Some("/store/checkout-v2?x=1&t=redirect")
                );
                redirected = redirected.or(cookie);
            }
            200 => stayed = stayed.or(cookie),
            s => panic!("status {s}: {}", r.body),
        }
        if redirected.is_some() && stayed.is_some() {
            break;
        }
    }
    let (Some(v2), Some(v1)) = (redirected, stayed) else {
        panic!("40 new visitors did not cover both variants")
    };
    // The redirected first visit and every later visit agree.
    let follow = app.send(
        Req::get("/store/checkout-v2?x=1&t=redirect")
            .from(NEW_YORK)
            .user(&v2),
    );
    assert_eq!(follow.status, 200);
    assert!(follow.body.contains("Checkout (new, one page)"));
    assert_eq!(
        bootstrap(&follow).get("store-checkout").map(String::as_str),
        Some("v2")
    );
    for _ in 0..3 {
        let again = app.send(
            Req::get("/store/checkout?x=1&t=redirect")
                .from(NEW_YORK)
                .user(&v2),
        );
        assert_eq!(again.status, 302);
        let classic = app.send(
            Req::get("/store/checkout?x=1&t=redirect")
                .from(NEW_YORK)
                .user(&v1),
        );
        assert_eq!(classic.status, 200);
        assert!(classic.body.contains("Checkout (classic)"));
    }
}

#[test]
fn responses_that_set_a_cookie_or_are_private_are_never_stored() {
    let app = site();
    for path in ["/t/cookie?t=never", "/t/private?t=never"] {
        for _ in 0..2 {
            let r = app.send(Req::get(path).from(NEW_YORK).user("u-never"));
            assert_eq!(r.status, 200);
        }
        assert_eq!(origin_fetches(&app, "origin_us", path), 2, "{path}");
    }
    // A shared page is stored: the second request is a hit, with its age.
    let states: Vec<String> = (0..2)
        .map(|_| {
            let r = app.send(Req::get("/store?t=never").from(NEW_YORK).user("u-never"));
            assert_eq!(r.status, 200);
            r.header("edgeflags-cache").unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        states,
        ["miss (stored for 300 s)", "hit"],
        "{:?}",
        app.logs()
    );
    assert_eq!(origin_fetches(&app, "origin_us", "/store?t=never"), 1);
}

#[test]
fn requests_for_a_page_never_stored_go_to_the_origin_side_by_side() {
    let app = site();
    let path = "/t/slow-private?t=side-by-side";
    // One user: the cache key holds the variants that change content.
    let get = || Req::get(path).from(NEW_YORK).user("u-side-by-side");
    // The first request finds nothing, is asked to store the page, cannot (it is
    // private), and leaves the hit-for-pass marker.
    let first = app.send(get());
    assert_eq!(first.status, 200);
    assert_eq!(first.header("edgeflags-cache"), Some("pass (private)"));
    // Four at once: none waits for another's fetch (request collapsing would send them
    // to the origin one after the other, each held there for SLOW_HOLD). At most one of
    // them is served by the first request's instance, which remembers the page; the
    // others look it up and find the marker.
    pages::slow_peak_reset();
    let replies: Vec<Reply> = edgeflags_e2e::runtime().block_on(futures_util::future::join_all(
        (0..4).map(|_| app.send_async(get())),
    ));
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.header("edgeflags-cache"),
            Some("hit-for-pass (private)"),
            "{:?}",
            app.logs()
                .iter()
                .filter(|l| l.contains("\"cache\""))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(origin_fetches(&app, "origin_us", path), 5);
    assert!(
        pages::slow_peak() >= 3,
        "the origin held at most {} of the four at once",
        pages::slow_peak()
    );
}

#[test]
fn other_types_and_compressed_pages_pass_through_byte_for_byte() {
    let app = site();
    let bin = app.send(Req::get("/t/binary?t=bytes").from(NEW_YORK).user("u-bytes"));
    assert_eq!(bin.bytes, pages::binary());
    let json = app.send(Req::get("/t/json?t=bytes").from(NEW_YORK).user("u-bytes"));
    assert!(
        json.body.contains(r#"<div id=\"banner\"><h2>x</h2></div>"#)
            && !json.body.contains("edgeflags-bootstrap")
    );
    let gz = app.send(
        Req::get("/t/gzip?t=bytes")
            .from(NEW_YORK)
            .user("u-bytes")
            .header("accept-encoding", "gzip"),
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.bytes, pages::gzip());
    // The edge asked the origin for the page uncompressed.
    let asked = app
        .origins
        .get("origin_us")
        .map(|o| o.seen_with("/t/gzip?t=bytes"))
        .unwrap_or_default();
    assert!(asked.iter().all(|s| {
        s.headers
            .iter()
            .any(|(k, v)| k == "accept-encoding" && v == "identity")
    }));
    assert!(app.logs().iter().any(|l| l.contains("encoded as `gzip`")));
}

#[test]
fn hostile_pages_are_served_rewritten_or_as_they_came_never_a_5xx() {
    let app = site();
    let token = forcing(&[("store-banner", "local"), ("product-tile", "spotlight")]);
    let get = |path: &str| {
        app.send(
            Req::get(path)
                .from(NEW_YORK)
                .user("u-hostile")
                .header("edgeflags-preview", &token),
        )
    };
    let big = get("/t/big-attribute?t=h");
    assert_eq!(big.status, 200);
    assert!(big.body.contains("<h2>Hello, shoppers in New York!</h2>"));
    assert!(big.body.len() > 1 << 20);
    let many = get("/t/many?t=h");
    assert_eq!(many.status, 200);
    assert_eq!(many.body.matches("Today's pick for US").count(), 10_000);
    let bad = get("/t/invalid-utf8?t=h");
    assert_eq!(bad.status, 200);
    // The page's own bytes come through unchanged; the preview toolbar (the token above
    // is a preview) follows them when the page has no `</body>`.
    let tail: &[u8] = b" \xe9t\xe9 <!-- unclosed";
    assert!(bad.bytes.windows(tail.len()).any(|w| w == tail));
    assert!(bad.body.contains("Hello, shoppers in New York!"));
    let latin = get("/t/latin1?t=h");
    assert_eq!(latin.status, 200);
    assert!(latin.bytes.windows(10).any(|w| w == b"M\xfcnchen</p"));
}

#[test]
fn a_previewed_page_keeps_each_policy_as_sent_but_lets_the_toolbar_styles_apply() {
    use edgeflags_engine::console::{csp::hash_source, page::TOOLBAR_STYLES};
    let app = site();
    let token = forcing(&[("store-banner", "local")]);
    let r = app.send(
        Req::get("/t/csp?t=csp")
            .from(NEW_YORK)
            .user("u-csp")
            .header("edgeflags-preview", &token),
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("edgeflags-toolbar"), "{}", r.body);
    // The policy that blocks inline styles gets exactly the toolbar's; the other, which
    // restricts no style, comes through byte for byte (its `é` unescaped).
    let amended = format!(
        "default-src 'self'; style-src-attr 'self' 'unsafe-hashes' {}",
        TOOLBAR_STYLES.map(hash_source).join(" ")
    );
    assert_eq!(
        r.headers_named("content-security-policy"),
        [amended.as_str(), pages::CSP_PAGE_POLICIES[1]]
    );
    // Without a preview, both as the origin sent them.
    let plain = app.send(Req::get("/t/csp?t=csp-plain").from(NEW_YORK).user("u-csp"));
    assert!(!plain.body.contains("edgeflags-toolbar"));
    assert_eq!(
        plain.headers_named("content-security-policy"),
        pages::CSP_PAGE_POLICIES
    );
}

#[test]
fn a_failing_or_hanging_fragment_origin_leaves_the_page_without_it() {
    let app = site();
    for mark in ["fail", "hang"] {
        let r = app.send(
            Req::get("/store?t=fragments")
                .from(NEW_YORK)
                .user("u-frag")
                .header("x-test-fragment", mark)
                .header("edgeflags-preview", &forcing(&[("store-recs", "fragment")])),
        );
        assert_eq!(r.status, 200, "{mark}");
        assert!(r.body.contains("Recommendations load here."), "{mark}");
        assert!(!r.body.contains(store::RECS), "{mark}");
    }
    let logs = app.logs();
    assert!(
        logs.iter()
            .filter(|l| l.contains("/fragments/recs"))
            .count()
            >= 2,
        "{logs:?}"
    );
}
