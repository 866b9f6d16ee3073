//! OFREP at the edge: the protocol's bodies, statuses, ETag and CORS, context precedence,
//! explain, and real OpenFeature providers talking to the edge served by Viceroy.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeflags_e2e::{AppSpec, Req, Store, app, demo_flags, packed, root};
use serde_json::{Value, json};

const TOKEN: &str = "server-token-123";

fn flags() -> Value {
    let mut f = demo_flags();
    f["ofrep"] = json!({"cors_origins": ["https://shop.example"]});
    f
}

fn ofrep_app() -> std::sync::Arc<edgeflags_e2e::App> {
    app(AppSpec::demo()
        .store(Store::Flags(flags(), None))
        .secret("ofrep_token", TOKEN)
        .secret("explain_token", "explain-me"))
}

fn post(path: &str, body: Value) -> Req {
    Req::post(path, body.to_string()).header("content-type", "application/json")
}

#[test]
fn single_flag_evaluation_follows_the_protocol() {
    let app = ofrep_app();
    let r = app.send(
        post(
            "/ofrep/v1/evaluate/flags/locale",
            json!({"context": {"targetingKey": "u1"}}),
        )
        .from("203.0.113.10"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let b = r.json();
    assert_eq!(
        (
            b["key"].as_str(),
            b["value"].as_str(),
            b["variant"].as_str()
        ),
        (Some("locale"), Some("ja"), Some("ja"))
    );
    assert_eq!(b["reason"], "TARGETING_MATCH");
    assert_eq!(b["metadata"]["ruleId"], "japan");
    assert!(b["metadata"]["snapshot"].is_string());
    let split = app
        .send(post(
            "/ofrep/v1/evaluate/flags/checkout",
            json!({"context": {"targetingKey": "user-1"}}),
        ))
        .json();
    assert_eq!(split["reason"], "SPLIT");
    let missing = app.send(post(
        "/ofrep/v1/evaluate/flags/nope",
        json!({"context": {"targetingKey": "u1"}}),
    ));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(missing.json()["key"], "nope");
}

#[test]
fn bad_requests_get_400_with_the_protocol_error_codes() {
    let app = ofrep_app();
    let garbage = app.send(Req::post("/ofrep/v1/evaluate/flags/locale", "{not json"));
    assert_eq!(
        (garbage.status, garbage.json()["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );
    let wrong = app.send(post(
        "/ofrep/v1/evaluate/flags/locale",
        json!({"context": [1, 2]}),
    ));
    assert_eq!(
        (wrong.status, wrong.json()["errorCode"].as_str()),
        (400, Some("INVALID_CONTEXT"))
    );
    let key = app.send(post(
        "/ofrep/v1/evaluate/flags/locale",
        json!({"context": {"targetingKey": 42}}),
    ));
    assert_eq!(
        (key.status, key.json()["errorCode"].as_str()),
        (400, Some("INVALID_CONTEXT"))
    );
    let huge = app.send(post(
        "/ofrep/v1/evaluate/flags",
        json!({"context": {"targetingKey": "u", "blob": "x".repeat(70_000)}}),
    ));
    assert_eq!(
        (huge.status, huge.json()["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );
    let deep = format!(
        "{{\"context\": {{\"a\": {}1{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let deep = app.send(Req::post("/ofrep/v1/evaluate/flags", deep));
    assert_eq!(
        (deep.status, deep.json()["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );
    let get = app.send(Req::get("/ofrep/v1/evaluate/flags"));
    assert_eq!(get.status, 405);
}

#[test]
fn bulk_evaluation_has_an_etag_that_follows_snapshot_and_context() {
    let app = ofrep_app();
    let first = app.send(post(
        "/ofrep/v1/evaluate/flags",
        json!({"context": {"targetingKey": "u-bulk"}}),
    ));
    assert_eq!(first.status, 200);
    let etag = first.header("etag").unwrap_or_default().to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let flags = first.json()["flags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let defined = edgeflags_e2e::demo_flags()["flags"]
        .as_object()
        .map(|f| f.len())
        .unwrap_or_default();
    assert_eq!(flags.len(), defined);
    assert!(
        flags
            .iter()
            .all(|f| f["reason"].is_string() && f.get("value").is_some())
    );
    let again = app.send(
        post(
            "/ofrep/v1/evaluate/flags",
            json!({"context": {"targetingKey": "u-bulk"}}),
        )
        .header("if-none-match", &etag),
    );
    assert_eq!((again.status, again.body.as_str()), (304, ""));
    let weak = app.send(
        post(
            "/ofrep/v1/evaluate/flags",
            json!({"context": {"targetingKey": "u-bulk"}}),
        )
        .header("if-none-match", &format!("W/{etag}")),
    );
    assert_eq!(weak.status, 304);
    // Another user (another context) in another place: a different ETag, never a 304.
    let other = app.send(
        post(
            "/ofrep/v1/evaluate/flags",
            json!({"context": {"targetingKey": "u-other"}}),
        )
        .from("203.0.113.10")
        .header("if-none-match", &etag),
    );
    assert_eq!(other.status, 200);
    assert_ne!(other.header("etag"), Some(etag.as_str()));
    // Another snapshot: a different ETag for the same context. The demo app's flag file
    // is this one without its CORS list, so it is another version that decides every
    // flag alike: the ETag follows the snapshot, not only the decisions.
    let app2 = edgeflags_e2e::app(AppSpec::demo());
    let r2 = app2.send(
        post(
            "/ofrep/v1/evaluate/flags",
            json!({"context": {"targetingKey": "u-bulk"}}),
        )
        .header("if-none-match", &etag),
    );
    assert_eq!(r2.status, 200);
    let version = |r: &edgeflags_e2e::Reply| r.json()["metadata"]["snapshot"].clone();
    assert!(version(&first).is_string());
    assert_ne!(version(&r2), version(&first));
}

#[test]
fn a_browser_cannot_override_the_edges_geo_but_a_server_can() {
    let app = ofrep_app();
    let body = json!({"context": {"targetingKey": "u1", "country": "JP", "device": "mobile"}});
    // From New York, unauthenticated: the edge's US wins over the body's JP.
    let browser =
        app.send(post("/ofrep/v1/evaluate/flags/locale", body.clone()).from("203.0.113.30"));
    assert_eq!(browser.json()["value"], "en");
    // With the server token, the body speaks for its user.
    let server = app.send(
        post("/ofrep/v1/evaluate/flags/locale", body.clone())
            .from("203.0.113.30")
            .header("authorization", &format!("Bearer {TOKEN}")),
    );
    assert_eq!(server.json()["value"], "ja");
    let wrong = app.send(
        post("/ofrep/v1/evaluate/flags/locale", body.clone())
            .header("authorization", "Bearer guess"),
    );
    assert_eq!(wrong.status, 403);
    let no_key = app.send(
        post(
            "/ofrep/v1/evaluate/flags/locale",
            json!({"context": {"country": "JP"}}),
        )
        .header("x-api-key", TOKEN),
    );
    assert_eq!(
        (no_key.status, no_key.json()["errorCode"].as_str()),
        (400, Some("TARGETING_KEY_MISSING"))
    );
    // A browser without a targeting key is the edge's cookie user, and gets one if new.
    let anon = app.send(post(
        "/ofrep/v1/evaluate/flags/checkout",
        json!({"context": {}}),
    ));
    assert_eq!(anon.status, 200);
    assert!(
        anon.header("set-cookie")
            .unwrap_or_default()
            .starts_with("ef_uid=")
    );
}

#[test]
fn required_auth_refuses_anonymous_calls() {
    let mut f = flags();
    f["ofrep"]["auth"] = json!("required");
    let app = app(AppSpec::demo()
        .store(Store::Flags(f, None))
        .secret("ofrep_token", TOKEN));
    let r = app.send(post(
        "/ofrep/v1/evaluate/flags/locale",
        json!({"context": {"targetingKey": "u1"}}),
    ));
    assert_eq!(r.status, 401);
    let ok = app.send(
        post(
            "/ofrep/v1/evaluate/flags/locale",
            json!({"context": {"targetingKey": "u1"}}),
        )
        .header("authorization", &format!("Bearer {TOKEN}")),
    );
    assert_eq!(ok.status, 200);
}

#[test]
fn cors_allows_only_the_configured_origins() {
    let app = ofrep_app();
    let pre = app.send(
        Req::new_options("/ofrep/v1/evaluate/flags").header("origin", "https://shop.example"),
    );
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(
        pre.header("access-control-expose-headers")
            .unwrap_or_default()
            .contains("etag")
    );
    let other = app.send(
        post("/ofrep/v1/evaluate/flags", json!({"context": {}}))
            .header("origin", "https://evil.example"),
    );
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn explain_needs_a_token_and_shows_every_decision() {
    let app = ofrep_app();
    let refused = app.send(Req::get("/.edgeflags/explain").user("u-beta-1"));
    assert_eq!(refused.status, 403);
    let wrong = app.send(
        Req::get("/.edgeflags/explain")
            .user("u-beta-1")
            .header("authorization", "Bearer nope"),
    );
    assert_eq!(wrong.status, 403);
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .from("203.0.113.10")
            .user("u-beta-1")
            .header("authorization", "Bearer explain-me"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["context"]["country"], "JP");
    let checkout = doc["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == "checkout"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            checkout["variant"].as_str(),
            checkout["reason"].as_str(),
            checkout["rule_id"].as_str()
        ),
        (Some("v2"), Some("RULE_MATCH"), Some("beta"))
    );
    assert_eq!(checkout["openfeature_reason"], "TARGETING_MATCH");
    assert_eq!(doc["route"]["backend"], "origin_apac");
    // The CLI explains the same file to the same document, decision for decision.
    let snap = edgeflags_engine::compile(&flags()).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::DateTime::parse_from_rfc3339(doc["now"].as_str().unwrap_or_default())
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let ctx = edgeflags_engine::Context::from_json(
        doc["context"].as_object().unwrap_or(&Default::default()),
    );
    let local = edgeflags_engine::explain::explain(&snap, &ctx, now);
    assert_eq!(local["flags"], doc["flags"]);
}

/// Starts the local Viceroy binary on a free port with a config for OFREP.
struct Edge {
    child: std::process::Child,
    url: String,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_edge() -> Edge {
    let dir = std::env::temp_dir().join(format!("edgeflags-ofrep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("store.json"),
        serde_json::to_string(&packed(&flags(), None)).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("secrets.json"),
        json!({"ofrep_token": TOKEN}).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let geo = root().join("config-store/geolocation.json");
    let toml = format!(
        "manifest_version = 3\nname = \"ofrep-test\"\n[local_server.config_stores.edgeflags]\nformat = \"json\"\nfile = {:?}\n\
         [local_server.secret_stores.edgeflags_secrets]\nformat = \"json\"\nfile = {:?}\n\
         [local_server.geolocation]\nformat = \"json\"\nfile = {:?}\nuse_default_loopback = false\n",
        dir.join("store.json"),
        dir.join("secrets.json"),
        geo
    );
    std::fs::write(dir.join("fastly.toml"), toml).unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    let child = Command::new(env!("CARGO_BIN_EXE_edgeflags-viceroy"))
        .args([
            "-C",
            &dir.join("fastly.toml").to_string_lossy(),
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .arg(edgeflags_e2e::wasm())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start edgeflags-viceroy: {e}"));
    let edge = Edge {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the edge did not start listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    edge
}

#[test]
fn real_openfeature_providers_read_the_edges_decisions() {
    let client = root().join("tests/ofrep-client");
    assert!(
        client
            .join("node_modules/@openfeature/ofrep-provider")
            .exists(),
        "the OpenFeature client is not installed: run scripts/test (it runs npm ci in tests/ofrep-client)"
    );
    let edge = start_edge();
    // A store page as the edge serves it to user-42 in New York, bootstrap and all.
    let page = crate::page::site().send(
        edgeflags_e2e::Req::get("/store?t=bootstrap")
            .from("127.0.0.1")
            .user("user-42"),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let page_file =
        std::env::temp_dir().join(format!("edgeflags-bootstrap-{}.html", std::process::id()));
    std::fs::write(&page_file, &page.bytes).unwrap_or_else(|e| panic!("{e}"));
    let run = Command::new("node")
        .current_dir(&client)
        .args(["run.mjs", &edge.url, TOKEN])
        .arg(&page_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    // Both pipes are read together (`output`), so a chatty stderr cannot stall it.
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    let status = run.status;
    assert!(
        status.success(),
        "the OpenFeature client failed:\n{err}\n{out}"
    );
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    // What `edgeflags explain` says for the same flags and context (the CLI prints
    // exactly this document with --json).
    let snap = edgeflags_engine::compile(&flags()).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let explained = |ctx: Value, flag: &str| {
        let ctx =
            edgeflags_engine::Context::from_json(ctx.as_object().unwrap_or(&Default::default()));
        let doc = edgeflags_engine::explain::explain(&snap, &ctx, now);
        doc["flags"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["key"] == flag))
            .cloned()
            .unwrap_or_default()
    };
    let same = |got: &Value, want: &Value, what: &str| {
        assert_eq!(got["value"], want["value"], "{what}: value");
        assert_eq!(got["variant"], want["variant"], "{what}: variant");
        assert_eq!(got["reason"], want["openfeature_reason"], "{what}: reason");
        assert_eq!(got["errorCode"], Value::Null, "{what}: error");
    };
    let jp = json!({"targetingKey": "user-42", "country": "JP", "device": "mobile"});
    same(
        &v["serverLocale"],
        &explained(jp.clone(), "locale"),
        "server locale",
    );
    same(
        &v["serverSearch"],
        &explained(jp, "new-search"),
        "server new-search",
    );
    same(
        &v["serverCheckout"],
        &explained(json!({"targetingKey": "u-beta-1"}), "checkout"),
        "server checkout",
    );
    assert_eq!(v["serverLocale"]["value"], "ja");
    assert_eq!(v["serverCheckout"]["variant"], "v2");
    assert_eq!(
        (
            v["serverMissing"]["value"].as_str(),
            v["serverMissing"]["errorCode"].as_str()
        ),
        (Some("fallback"), Some("FLAG_NOT_FOUND"))
    );
    assert_eq!(
        (
            v["serverWrongType"]["value"].as_i64(),
            v["serverWrongType"]["errorCode"].as_str()
        ),
        (Some(7), Some("TYPE_MISMATCH"))
    );
    // The browser provider is anonymous: the edge's own geo (127.0.0.1 is New York) wins
    // over the JP in its context.
    let web_ctx =
        json!({"targetingKey": "user-42", "country": "US", "region": "NY", "continent": "NA"});
    same(
        &v["webLocale"],
        &explained(web_ctx.clone(), "locale"),
        "web locale",
    );
    same(
        &v["webCheckout"],
        &explained(web_ctx, "checkout"),
        "web checkout",
    );
    assert_eq!(v["webLocale"]["value"], "en");
    // user-42 is in bucket 96203 of `checkout` (docs/bucketing.md): the second half.
    assert_eq!(
        (
            v["webCheckout"]["value"].as_str(),
            v["webCheckout"]["reason"].as_str()
        ),
        (Some("one-page"), Some("SPLIT"))
    );
    assert_eq!(
        (
            v["webMissing"]["value"].as_str(),
            v["webMissing"]["errorCode"].as_str()
        ),
        (Some("fallback"), Some("FLAG_NOT_FOUND"))
    );
    // The web provider started from the page's bootstrap: its one bulk request was
    // answered from the element, nothing reached the network, and it reads the decisions
    // the edge made for user-42 in New York.
    let _ = std::fs::remove_file(&page_file);
    assert_eq!(v["bootCalls"], json!({"answered": 1, "reached": 0}));
    for (flag, got) in [
        ("store-banner", &v["bootStoreBanner"]),
        ("product-tile", &v["bootProductTile"]),
        ("locale", &v["bootLocale"]),
    ] {
        same(got, &explained(web_ctx_ny(), flag), flag);
    }
    assert_eq!(v["bootLocale"]["value"], "en");
    drop(edge);
}

/// The context the edge builds for user-42 from 127.0.0.1 (New York), as far as the
/// demo's flags read it.
fn web_ctx_ny() -> Value {
    json!({"targetingKey": "user-42", "country": "US", "region": "NY", "continent": "NA"})
}
