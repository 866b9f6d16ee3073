//! Hostile requests: a user key the client chooses never unlocks a profile or signed
//! traits; a broken request body is the client's 400, never an origin outage; HTTP/2
//! reaches HTTP/1 origins; a bad `Host` or an `OPTIONS *` is a 400 without a backtrace;
//! a value that is not a valid header value is percent-encoded, never a panic; dot
//! segments with parameters cannot climb out of a route prefix; the preview token stays
//! at the edge; and the demo origin's `Vary` covers everything its page reads.

use std::io::{Read, Write};
use std::sync::Arc;

use edgeflags_e2e::{App, AppSpec, Behaviour, Reply, Req, app, runtime};
use edgeflags_engine::preview::{Claims, mint, seal};
use serde_json::json;

const OFREP_TOKEN: &str = "ofrep-hostile-token";
const EXPLAIN_TOKEN: &str = "explain-hostile-token";
const PREVIEW_KEY: &[u8] = b"dev-preview-key-not-for-production";
const TRAITS_KEY: &[u8] = b"dev-traits-key-not-for-production";
const RECOMMENDATIONS: &str = "/ofrep/v1/evaluate/flags/recommendations";

fn hostile() -> Arc<App> {
    app(AppSpec::demo()
        .secret("ofrep_token", OFREP_TOKEN)
        .secret("explain_token", EXPLAIN_TOKEN))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The signed identity cookie an origin sets once it knows who the user is:
/// `{"sub": USER, "exp": SECONDS}` sealed with the traits key.
fn signed_id(user: &str, key: &[u8]) -> String {
    let claims = json!({"sub": user, "exp": now() + 3600});
    format!("ef_id={}", seal(claims.to_string().as_bytes(), key))
}

fn preview(claims: Claims) -> String {
    mint(
        &Claims {
            exp: now() + 600,
            ..claims
        },
        PREVIEW_KEY,
    )
}

fn ofrep_variant(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["variant"].as_str().unwrap_or_default().to_string()
}

fn explained_variant(r: &Reply, flag: &str) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["flags"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["key"] == flag))
        .and_then(|f| f["variant"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_key_the_client_chooses_never_unlocks_a_profile() {
    let app = hostile();
    // alice's profile (config-store/profiles.json) says she watches anime.
    let chosen = [
        Req::post(RECOMMENDATIONS, "{}").header("edgeflags-user", "alice"),
        Req::post(RECOMMENDATIONS, "{}").user("alice"),
        Req::post(
            RECOMMENDATIONS,
            json!({"context": {"targetingKey": "alice"}}).to_string(),
        ),
    ];
    for req in chosen {
        assert_eq!(ofrep_variant(&app.send(req)), "trending_row");
    }
    for req in [
        Req::get("/").user("alice"),
        Req::get("/").header("edgeflags-user", "alice"),
    ] {
        let page = app.send(req);
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(
            page.decision("recommendations").as_deref(),
            Some("trending_row")
        );
        let saw = page.origin_saw();
        assert!(
            saw["headers"]["edgeflags-user"].is_null(),
            "edgeflags-user reached the origin: {saw}"
        );
    }
    // Anyone with a preview token may use explain; it shows no profile for a chosen key.
    let qa = preview(Claims::default());
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .user("alice")
            .header("edgeflags-preview", &qa),
    );
    assert_eq!(explained_variant(&r, "recommendations"), "trending_row");
    assert_eq!(r.json()["traits"]["values"], json!({}), "{}", r.body);

    // An identity the client cannot forge unlocks it: the origin's signed id cookie ...
    let id = signed_id("alice", TRAITS_KEY);
    let page = app.send(Req::get("/").header("cookie", &id));
    assert_eq!(
        page.decision("recommendations").as_deref(),
        Some("anime_row")
    );
    let r = app.send(Req::post(RECOMMENDATIONS, "{}").header("cookie", &id));
    assert_eq!(ofrep_variant(&r), "anime_row");
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .header("cookie", &id)
            .header("edgeflags-preview", &qa),
    );
    assert_eq!(explained_variant(&r, "recommendations"), "anime_row");
    // ... but not one signed with another key, nor for a browser naming someone else.
    let forged = signed_id("alice", b"a guessed key");
    let page = app.send(Req::get("/").header("cookie", &forged));
    assert_eq!(
        page.decision("recommendations").as_deref(),
        Some("trending_row")
    );
    let r = app.send(
        Req::post(
            RECOMMENDATIONS,
            json!({"context": {"targetingKey": "alice"}}).to_string(),
        )
        .header("cookie", &signed_id("bob", TRAITS_KEY)),
    );
    assert_eq!(ofrep_variant(&r), "trending_row");

    // A server holding the ofrep_token names its user: on pages (the header and the
    // token stay at the edge) and on OFREP; the explain_token does the same on explain.
    let page = app.send(
        Req::get("/")
            .header("edgeflags-user", "alice")
            .header("authorization", &format!("Bearer {OFREP_TOKEN}")),
    );
    assert_eq!(
        page.decision("recommendations").as_deref(),
        Some("anime_row")
    );
    let saw = page.origin_saw();
    assert!(saw["headers"]["edgeflags-user"].is_null(), "{saw}");
    assert!(saw["headers"]["authorization"].is_null(), "{saw}");
    let r = app.send(
        Req::post(
            RECOMMENDATIONS,
            json!({"context": {"targetingKey": "alice"}}).to_string(),
        )
        .header("x-api-key", OFREP_TOKEN),
    );
    assert_eq!(ofrep_variant(&r), "anime_row");
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .header("edgeflags-user", "alice")
            .header("authorization", &format!("Bearer {EXPLAIN_TOKEN}")),
    );
    assert_eq!(explained_variant(&r, "recommendations"), "anime_row");
}

/// Sends raw bytes to the app served over TCP and returns the status line.
fn raw_exchange(app: &App, request: &[u8]) -> String {
    let addr = app
        .serve_http()
        .unwrap_or_else(|e| panic!("cannot serve the app over TCP: {e}"));
    let mut stream = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(20)));
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("cannot send: {e}"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_broken_request_body_is_the_clients_400_not_an_origin_outage() {
    let app = hostile();
    // A chunked body with a bad chunk-size line, on the wire.
    let status = raw_exchange(
        &app,
        b"POST /products HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert!(status.contains(" 400 "), "bad chunk size: {status}");
    // A body that breaks off (the client's connection fails mid-chunk), on a page, on
    // OFREP and on the tracking endpoint.
    for path in ["/products", RECOMMENDATIONS, "/.edgeflags/track"] {
        let r = app.send(Req::post(path, "{\"context\": {").body_breaks());
        assert_eq!(r.status, 400, "{path}: {}", r.body);
    }
    let ops = app.log_json("edgeflags_ops");
    assert!(
        !ops.iter().any(|l| l["area"] == "origin"),
        "a client's broken body was logged as an origin failure: {ops:?}"
    );
    assert!(
        ops.iter()
            .any(|l| l["area"] == "client"
                && l["message"].as_str().is_some_and(|m| m.contains("body"))),
        "no client-error line: {ops:?}"
    );
}

#[test]
fn a_request_body_reaches_the_origin_whole_and_again_on_the_fallback() {
    let app = hostile();
    let r = app.send(
        Req::post("/products", "name=kettle&qty=2")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "17"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let saw = r.origin_saw();
    assert_eq!(saw["body"], "name=kettle&qty=2", "{saw}");
    assert_eq!(saw["headers"]["content-length"], "17", "{saw}");
    // Sao Paulo's origin refuses; the fallback gets the same body.
    let with_fallback = app_with_fallback();
    let r = with_fallback.send(Req::post("/checkout", "card=4242").from("203.0.113.40"));
    assert_eq!(r.status, 200, "{}", r.body);
    let saw = r.origin_saw();
    assert_eq!(saw["backend"], "origin_us", "{saw}");
    assert_eq!(saw["body"], "card=4242", "{saw}");
}

/// The failing-origins app of `personalization.rs`: Sao Paulo's origin refuses, with a
/// fallback to origin_us (one Viceroy context for both modules).
fn app_with_fallback() -> Arc<App> {
    app(crate::personalization::failing_origins_with_fallback())
}

#[test]
fn http2_requests_reach_http1_origins_as_http1() {
    let app = hostile();
    let addr = app
        .serve_http()
        .unwrap_or_else(|e| panic!("cannot serve the app over TCP: {e}"));
    let client = hyper::Client::builder()
        .http2_only(true)
        .build_http::<hyper::Body>();
    let (status, body) = runtime().block_on(async {
        let resp = client
            .get(
                format!("http://{addr}/products")
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await
            .unwrap_or_else(|e| panic!("HTTP/2 request failed: {e}"));
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let status = resp.status().as_u16();
        let body = hyper::body::to_bytes(resp.into_body())
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!(status, 200, "{body}");
    let saw: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(saw["version"], "HTTP/1.1", "{saw}");
    assert_eq!(saw["path"], "/en/products", "{saw}");
}

#[test]
fn a_bad_host_or_an_asterisk_target_is_a_400_without_a_backtrace() {
    let app = hostile();
    let mut replies = Vec::new();
    for host in ["x:99999", "x:abc", "x:-1", "300.1.1.1", "edge.test*"] {
        replies.push((host, app.send(Req::get("/products").header("host", host))));
    }
    replies.push((
        "OPTIONS *",
        app.send(Req::new_any("OPTIONS", "*").header("host", "127.0.0.1:7676")),
    ));
    for (what, r) in replies {
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(
            r.body.len() < 200 && !r.body.contains("panicked") && !r.body.contains(".rs"),
            "{what}: {}",
            r.body
        );
    }
    // A good host with a port is fine.
    assert_eq!(
        app.send(Req::get("/").header("host", "shop.example:8443"))
            .status,
        200
    );
}

#[test]
fn values_that_are_not_header_values_are_percent_encoded() {
    let app = hostile();
    // Claims of a signed preview token: CR, LF, NUL.
    let token = preview(Claims {
        country: Some("JP".into()),
        region: Some("1\u{0}3".into()),
        city: Some("To\r\nkyo".into()),
        continent: Some("A\rS".into()),
        device: Some("mo\nbile".into()),
        ..Claims::default()
    });
    let r = app.send(Req::get("/").header("edgeflags-preview", &token));
    assert_eq!(r.status, 200, "{}", r.body);
    let saw = r.origin_saw()["headers"].clone();
    assert_eq!(saw["edgeflags-city"], "To%0D%0Akyo", "{saw}");
    assert_eq!(saw["edgeflags-region"], "1%003", "{saw}");
    assert_eq!(saw["edgeflags-continent"], "A%0DS", "{saw}");
    assert_eq!(saw["edgeflags-device"], "mo%0Abile", "{saw}");
    // Geolocation: a city with letters outside ASCII (203.0.113.70 is Zürich).
    let r = app.send(Req::get("/").from("203.0.113.70"));
    assert_eq!(r.status, 200, "{}", r.body);
    let saw = r.origin_saw()["headers"].clone();
    assert_eq!(saw["edgeflags-city"], "Z%C3%BCrich", "{saw}");
    assert_eq!(saw["edgeflags-country"], "CH", "{saw}");
}

#[test]
fn dot_segments_with_parameters_cannot_leave_the_route_prefix() {
    let app = hostile();
    // From Tokyo the demo routes to origin_apac under /ja.
    for path in [
        "/..;/admin",
        "/%2e%2e;/admin",
        "/.;/admin",
        "/a/..;x=1/admin",
        "/%2e%2e%3b/admin",
        "/..%3B/admin",
    ] {
        let r = app.send(Req::get(path).from("203.0.113.10"));
        assert_eq!(r.status, 400, "{path} reached {}", r.origin_saw()["path"]);
    }
    let fine = app.send(Req::get("/a;v=1/b..c").from("203.0.113.10"));
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert_eq!(fine.origin_saw()["path"], "/ja/a;v=1/b..c");
}

#[test]
fn the_preview_token_is_not_forwarded_in_the_query() {
    let app = hostile();
    let token = preview(Claims {
        country: Some("FR".into()),
        ..Claims::default()
    });
    let r = app.send(Req::get(&format!("/search?q=1&ef_preview={token}&x=2")));
    assert_eq!(r.status, 200, "{}", r.body);
    let saw = r.origin_saw();
    assert_eq!(
        saw["headers"]["edgeflags-country"], "FR",
        "the token applied"
    );
    assert_eq!(saw["path"], "/fr/search?q=1&x=2");
    let r = app.send(Req::get(&format!("/search?ef_preview={token}")));
    assert_eq!(r.origin_saw()["path"], "/fr/search");
}

#[test]
fn the_demo_origins_vary_covers_everything_its_page_reads() {
    let app = app(AppSpec::demo()
        .origin("origin_us", Behaviour::Demo("us"))
        .origin("origin_eu", Behaviour::Demo("eu"))
        .origin("origin_apac", Behaviour::Demo("apac"))
        .origin("origin_sa", Behaviour::Demo("sa")));
    let at = "2026-11-27T23:30:00Z";
    let token = |city: &str| {
        preview(Claims {
            country: Some("US".into()),
            region: Some("NY".into()),
            city: Some(city.into()),
            at: Some(at.into()),
            ..Claims::default()
        })
    };
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
                  (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    // One user at one instant: the same decisions, but device, language or city differ.
    let cases = [
        ("New York", None, None),
        ("New York", Some(iphone), None),
        ("New York", None, Some("fr")),
        ("Buffalo", None, None),
        ("New York", None, None),
    ];
    let mut seen = Vec::new();
    for (i, (city, ua, lang)) in cases.iter().enumerate() {
        let mut req = Req::get("/products")
            .user("vary-visitor")
            .header("edgeflags-preview", &token(city))
            .header("x-case", &i.to_string());
        if let Some(ua) = ua {
            req = req.header("user-agent", ua);
        }
        if let Some(lang) = lang {
            req = req.header("accept-language", lang);
        }
        let r = app.send(req);
        assert_eq!(r.status, 200, "{}", r.body);
        let sent = app.origins["origin_us"]
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| {
                s.headers
                    .iter()
                    .any(|(k, v)| k == "x-case" && *v == i.to_string())
            })
            .cloned()
            .unwrap_or_else(|| panic!("case {i} did not reach origin_us"));
        let value = |name: &str| {
            sent.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        // What a shared cache keys the response by: the edge's cache key, then the value
        // of every request header the response's Vary names.
        let mut key = vec![value("edgeflags-cache-key")];
        for name in r.header("vary").unwrap_or_default().split(',') {
            let name = name.trim().to_ascii_lowercase();
            key.push(format!("{name}={}", value(&name)));
        }
        seen.push((key, value("edgeflags-decisions"), r.body));
    }
    assert!(
        seen.iter().all(|(_, d, _)| *d == seen[0].1),
        "the cases should share their decisions"
    );
    assert_ne!(seen[0].2, seen[1].2, "the page shows the device");
    assert_eq!(
        seen[0].0, seen[4].0,
        "the same request has the same cache key"
    );
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            assert!(
                a.0 != b.0 || a.2 == b.2,
                "one cache entry, two pages:\n{:?}\n{}\n{}",
                a.0,
                a.2,
                b.2
            );
        }
    }
}

/// The edge's internals (instance ordinal and memory, store and profile lookups, where the
/// snapshot came from) are for operators: a plain request sees how long the edge took and
/// nothing more; a valid preview token or the explain token opens the rest. A wrong
/// token opens nothing.
#[test]
fn debug_headers_only_for_a_valid_preview_or_explain_token() {
    let app = hostile();
    let internals = |r: &Reply| {
        (
            r.header("edgeflags-instance-request").is_some(),
            r.header("edgeflags-instance-heap-kib").is_some(),
            r.header("server-timing")
                .unwrap_or_default()
                .contains("lookups="),
        )
    };
    let plain = app.send(Req::get("/").user("u-debug"));
    assert_eq!(plain.status, 200);
    assert_eq!(internals(&plain), (false, false, false));
    let timing = plain.header("server-timing").unwrap_or_default();
    assert!(
        timing.starts_with("config;dur=") && timing.contains("edge;dur="),
        "{timing}"
    );
    let previewed = app.send(Req::get("/").user("u-debug").debug());
    assert_eq!(internals(&previewed), (true, true, true));
    let bearer = |token: &str| {
        app.send(
            Req::get("/")
                .user("u-debug")
                .header("authorization", &format!("Bearer {token}")),
        )
    };
    assert_eq!(internals(&bearer(EXPLAIN_TOKEN)), (true, true, true));
    assert_eq!(internals(&bearer("not-the-token")), (false, false, false));
    let forged = app.send(Req::get("/").user("u-debug").header(
        "edgeflags-preview",
        &mint(
            &Claims {
                exp: 4_000_000_000,
                ..Claims::default()
            },
            b"another-key",
        ),
    ));
    assert_eq!(internals(&forged), (false, false, false));
}
