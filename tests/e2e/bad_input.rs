//! Bad input and hostile clients: oversized headers and cookies, invalid UTF-8, huge user
//! ids, CR/LF injection, path traversal, hostile OFREP bodies. Each gets a clear 4xx or is
//! bounded and ignored; none gets a 5xx, and nothing secret or raw reaches a log or page.

use edgeflags_e2e::{AppSpec, Reply, Req, app};
use serde_json::json;

fn demo() -> std::sync::Arc<edgeflags_e2e::App> {
    app(AppSpec::demo())
}

fn not_5xx(r: &Reply, what: &str) {
    assert!(r.status < 500, "{what}: {} {}", r.status, r.body);
}

/// A request that carries no usable id gets a fresh one (and a cookie for it).
fn minted_id(r: &Reply) -> bool {
    r.headers_named("set-cookie")
        .iter()
        .any(|c| c.starts_with("ef_uid="))
}

#[test]
fn oversized_headers_and_cookies_are_bounded() {
    let app = demo();
    let big = "a".repeat(64 * 1024);
    let r = app.send(Req::get("/").header("user-agent", &big));
    not_5xx(&r, "64 KiB user-agent");
    assert_eq!(r.status, 200);
    let r = app.send(Req::get("/").header("accept-language", &big));
    assert_eq!(r.status, 200);
    assert!(r.origin_saw()["headers"]["edgeflags-language"].is_null());
    // A 64 KiB cookie header whose id cookie is beyond what the edge reads.
    let r = app.send(Req::get("/").header("cookie", &format!("junk={big}; ef_uid=u-late")));
    assert_eq!(r.status, 200);
    // Thousands of cookies: the edge reads the first 64 of a header, then stops.
    let many: Vec<String> = (0..5000).map(|i| format!("c{i}=v{i}")).collect();
    let r = app.send(Req::get("/").header(
        "cookie",
        &format!("{}; ef_uid=u-cookie-5001", many.join("; ")),
    ));
    assert_eq!(r.status, 200);
    assert!(minted_id(&r), "a cookie past the bound was read");
    let early =
        app.send(Req::get("/").header("cookie", &format!("ef_uid=u-early; {}", many.join("; "))));
    assert_eq!(early.status, 200);
    assert!(
        !minted_id(&early),
        "the id cookie before the bound was missed"
    );
    // Many cookie headers: the edge reads the first 16.
    let mut req = Req::get("/");
    for i in 0..40 {
        req = req.header("cookie", &format!("k{i}=v"));
    }
    assert_eq!(app.send(req.header("cookie", "ef_uid=u-41st")).status, 200);
    // Past the platform's own header limits the request is refused with a 4xx before
    // the edge code runs (431), never a 5xx.
    let mut req = Req::get("/");
    for i in 0..200 {
        req = req.header("cookie", &format!("k{i}=v"));
    }
    let r = app.send(req);
    assert!(r.status == 200 || r.status == 431, "{}", r.status);
}

#[test]
fn invalid_utf8_in_cookies_headers_and_query_is_ignored() {
    let app = demo();
    let r = app.send(Req::get("/").header_bytes("cookie", b"ef_uid=u-\xff\xfe; other=\xc3\x28"));
    not_5xx(&r, "invalid UTF-8 cookie");
    assert_eq!(r.status, 200);
    assert!(minted_id(&r));
    let r = app.send(Req::get("/").header_bytes("user-agent", b"Mozilla/5.0 \xff\xff"));
    assert_eq!(r.status, 200);
    let r = app.send(Req::get("/").header_bytes("edgeflags-user", b"\xffu-bad"));
    assert_eq!(r.status, 200);
    for q in [
        "/?ef_preview=%ff%fe",
        "/?utm_source=%c3%28&x=%ff",
        "/?%ff=%fe&&&=&",
        "/search?q=%00%0d%0a",
    ] {
        let r = app.send(Req::get(q));
        not_5xx(&r, q);
        assert_eq!(r.status, 200, "{q}");
    }
    let r = app.send(
        Req::post(
            "/ofrep/v1/evaluate/flags/checkout",
            b"{\"context\": \"\xff\"}".to_vec(),
        )
        .header("content-type", "application/json"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["errorCode"], "PARSE_ERROR");
}

#[test]
fn ten_thousand_character_user_ids_are_refused() {
    let app = demo();
    let long = "u".repeat(10_000);
    for req in [
        Req::get("/").user(&long),
        Req::get("/").header("edgeflags-user", &long),
    ] {
        let r = app.send(req);
        assert_eq!(r.status, 200);
        assert!(minted_id(&r), "a 10,000-character id was accepted");
    }
    let r = app.send(Req::post(
        "/ofrep/v1/evaluate/flags/checkout",
        json!({"context": {"targetingKey": long}}).to_string(),
    ));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "INVALID_CONTEXT");
    assert!(!app.logs().iter().any(|l| l.contains(&long[..200])));
}

#[test]
fn cr_lf_never_reaches_a_header() {
    // A header, a cookie and a query parameter allowed as custom attributes.
    let app = app(crate::personalization::custom_attributes());
    let injected = [
        Req::get("/?utm_source=x%0d%0aSet-Cookie:%20evil=1"),
        Req::get("/?ef_preview=x%0d%0aX-Evil:%201"),
        Req::get("/").header("cookie", "plan_cookie=a%0d%0aX-Evil:%201"),
        Req::get("/").header("x-plan", "a%0D%0AX-Evil: 1"),
        Req::get("/path%0d%0aX-Evil:%201"),
    ];
    for req in injected {
        let r = app.send(req);
        not_5xx(&r, "CR/LF");
        for (name, value) in &r.headers {
            assert!(
                !name.eq_ignore_ascii_case("x-evil")
                    && !value.contains('\r')
                    && !value.contains('\n')
                    && !value.contains("evil=1"),
                "injected into the response: {name}: {value}"
            );
        }
        if r.status == 200 {
            let saw = r.origin_saw();
            let headers = saw["headers"].as_object().cloned().unwrap_or_default();
            assert!(!headers.contains_key("x-evil"), "{saw}");
            for (k, v) in headers {
                let v = v.as_str().unwrap_or_default();
                assert!(
                    !v.contains('\r') && !v.contains('\n'),
                    "header {k} to the origin carries CR/LF: {v:?}"
                );
            }
        }
    }
}

#[test]
fn path_traversal_cannot_leave_the_route_prefix() {
    let app = demo();
    // From Tokyo the demo routes to origin_apac under /ja.
    for path in [
        "/..%2f..%2fadmin",
        "/a/..%2fadmin",
        "/%2e%2e%2fadmin",
        "/a/..%5c..%5cadmin",
        "/a\\..\\admin",
        "/%2e%2e/admin",
        "/../admin",
        "/./a/../../admin",
    ] {
        let r = app.send(Req::get(path).from("203.0.113.10"));
        not_5xx(&r, path);
        match r.status {
            400 => assert!(r.body.contains("not valid"), "{}", r.body),
            200 => {
                // The URL parser resolved the dot segments before the edge saw them.
                let seen = r.origin_saw()["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                assert!(seen.starts_with("/ja/"), "{path} reached {seen}");
                assert!(
                    edgeflags_engine::target::safe_path(&seen),
                    "{path} reached {seen}"
                );
            }
            s => panic!("{path}: unexpected {s}"),
        }
    }
    let fine = app.send(Req::get("/products/a..b").from("203.0.113.10"));
    assert_eq!(fine.status, 200);
    assert_eq!(fine.origin_saw()["path"], "/ja/products/a..b");
}

#[test]
fn hostile_ofrep_bodies_get_a_4xx() {
    let app = demo();
    let url = "/ofrep/v1/evaluate/flags";
    let huge = format!(
        "{{\"context\": {{\"targetingKey\": \"u\", \"pad\": \"{}\"}}}}",
        "x".repeat(200_000)
    );
    let deep = format!(
        "{{\"context\": {{\"a\": {}1{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(&str, String)> = vec![
        ("huge", huge),
        ("deeply nested", deep),
        ("context is a list", r#"{"context": [1, 2]}"#.into()),
        ("context is a string", r#"{"context": "u1"}"#.into()),
        (
            "targetingKey is a number",
            r#"{"context": {"targetingKey": 7}}"#.into(),
        ),
        ("body is a list", "[]".into()),
        ("not JSON", "{{{".into()),
        ("trailing garbage", r#"{"context": {}} x"#.into()),
    ];
    for (what, body) in cases {
        for path in [url.to_string(), format!("{url}/checkout")] {
            let r = app.send(Req::post(&path, body.clone()));
            assert!(
                (400..500).contains(&r.status),
                "{what} at {path}: {} {}",
                r.status,
                r.body.chars().take(200).collect::<String>()
            );
            let code = r.json()["errorCode"].as_str().map(str::to_string);
            assert!(
                r.status == 400 && code.is_some(),
                "{what}: a 400 with an OFREP error code, got {} {:?}",
                r.status,
                code
            );
        }
    }
    // Wrong types inside the context are ignored attribute by attribute.
    let r = app.send(Req::post(
        &format!("{url}/checkout"),
        json!({"context": {"targetingKey": "u1", "country": {"x": 1}, "n": null}}).to_string(),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
}
