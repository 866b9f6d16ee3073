//! `profiles push`, `get` and `delete` against a local HTTP server that answers as
//! Fastly's KV-store item API does (`/resources/stores/kv/{id}/keys/{key}`, the
//! `Fastly-Key` header, `time_to_live_sec`, 404 for missing items, rate limiting), plus
//! the `--local` Viceroy file and `traits-cookie`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use edgeflags_engine::traits::{parse_profile, user_hash, verify_cookie};
use hyper::{Body, Method, Request, Response, StatusCode};

const TOKEN: &str = "test-token";
const STORE: &str = "7kProfiles";
const KEY: &str = "test-user-hash-key";

/// Key to (value, the `time_to_live_sec` it was written with).
type Items = BTreeMap<String, (Vec<u8>, Option<String>)>;

#[derive(Default)]
struct Api {
    items: Mutex<Items>,
    requests: AtomicU32,
    rate_limit_next: AtomicU32,
}

fn reply(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(body.into())
        .unwrap_or_default()
}

async fn answer(api: Arc<Api>, req: Request<Body>) -> Response<Body> {
    api.requests.fetch_add(1, Ordering::SeqCst);
    if api.rate_limit_next.load(Ordering::SeqCst) > 0 {
        api.rate_limit_next.fetch_sub(1, Ordering::SeqCst);
        return reply(StatusCode::TOO_MANY_REQUESTS, r#"{"msg":"rate limit"}"#);
    }
    if req
        .headers()
        .get("fastly-key")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return reply(StatusCode::UNAUTHORIZED, r#"{"msg":"bad credentials"}"#);
    }
    let path = req.uri().path().to_string();
    let Some((id, key)) = path
        .strip_prefix("/resources/stores/kv/")
        .and_then(|p| p.split_once("/keys/"))
    else {
        return reply(StatusCode::NOT_FOUND, r#"{"msg":"Not found"}"#);
    };
    if id != STORE {
        return reply(StatusCode::NOT_FOUND, r#"{"msg":"store not found"}"#);
    }
    let key = key.to_string();
    if key.is_empty() || key.len() > 1024 {
        return reply(StatusCode::BAD_REQUEST, r#"{"msg":"bad key"}"#);
    }
    let ttl = req
        .headers()
        .get("time_to_live_sec")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let method = req.method().clone();
    // The body is read before the store is locked, so concurrent uploads never lose one
    // another's writes.
    let body = hyper::body::to_bytes(req.into_body())
        .await
        .unwrap_or_default();
    let mut items = api.items.lock().unwrap_or_else(|p| p.into_inner());
    match method {
        Method::PUT => {
            items.insert(key, (body.to_vec(), ttl));
            reply(StatusCode::OK, "")
        }
        Method::GET => match items.get(&key) {
            Some((v, _)) => reply(StatusCode::OK, v.clone()),
            None => reply(StatusCode::NOT_FOUND, r#"{"msg":"not found"}"#),
        },
        Method::DELETE => match items.remove(&key) {
            Some(_) => reply(StatusCode::NO_CONTENT, ""),
            None => reply(StatusCode::NOT_FOUND, r#"{"msg":"not found"}"#),
        },
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, ""),
    }
}

type Fake = common::Running<Api>;

fn start() -> Fake {
    common::serve(answer)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeflags-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

/// The key file, written once: rewriting it for every command let a command of another
/// test read it truncated (an empty key, so other hashes: a flaky test under load).
fn key_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| write("hash.key", &format!("{KEY}\n")))
        .clone()
}

impl Fake {
    fn items(&self) -> Items {
        self.state
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn run(&self, args: &[&str]) -> Output {
        let kf = key_file();
        Command::new(env!("CARGO_BIN_EXE_edgeflags"))
            .args(args)
            .args(["--store-id", STORE])
            .args(["--api-url", &format!("http://{}", self.addr)])
            .arg("--key-file")
            .arg(&kf)
            .env("FASTLY_API_TOKEN", TOKEN)
            .output()
            .unwrap_or_else(|e| panic!("cannot run edgeflags: {e}"))
    }
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn push_hashes_keys_uploads_with_ttl_and_get_delete_round_trip() {
    let api = start();
    let mut lines = String::new();
    for i in 0..150 {
        lines.push_str(&format!(
            "{{\"user\": \"u{i}\", \"traits\": {{\"watch_genre\": \"{}\", \"buyer\": {}}}}}\n",
            if i % 2 == 0 { "anime" } else { "drama" },
            i % 3 == 0
        ));
    }
    let file = write("many.ndjson", &lines);
    let out = api.run(&[
        "profiles",
        "push",
        file.to_str().unwrap_or(""),
        "--ttl",
        "2d",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("pushed 100/150 profiles"));
    assert!(text(&out.stderr).contains("pushed 150/150 profiles"));
    let items = api.items();
    assert_eq!(items.len(), 150);
    // Keys are the keyed hash, never the raw user key.
    assert!(items.keys().all(|k| k.len() == 32 && !k.contains('u')));
    let (value, ttl) = &items[&user_hash(KEY.as_bytes(), "u42")];
    assert_eq!(ttl.as_deref(), Some("172800"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t = parse_profile(value, now).unwrap_or_default();
    assert_eq!(
        t.values,
        [
            ("buyer".to_string(), true.into()),
            ("watch_genre".to_string(), "anime".into())
        ]
    );
    assert!(t.expires.is_some_and(|e| (e - now - 172_800).abs() < 60));

    let got = api.run(&["profiles", "get", "u42"]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap_or_default();
    assert_eq!(doc["traits"]["watch_genre"], "anime");
    assert_eq!(doc["kv_key"], user_hash(KEY.as_bytes(), "u42"));
    assert_eq!(doc["expired"], false);

    let del = api.run(&["profiles", "delete", "u42"]);
    assert!(del.status.success(), "{}", text(&del.stderr));
    assert!(text(&del.stdout).contains("deleted"));
    assert_eq!(api.items().len(), 149);
    let gone = api.run(&["profiles", "get", "u42"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone.stderr).contains("no profile for user `u42`"));
    let again = api.run(&["profiles", "delete", "u42"]);
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("nothing to delete"));
}

#[test]
fn csv_push_and_rate_limits_are_retried() {
    let api = start();
    api.state.rate_limit_next.store(2, Ordering::SeqCst);
    let file = write(
        "traits.csv",
        "user,watch_genre,plan\nalice,anime,pro\nbob,,\"free, for now\"\n",
    );
    let out = api.run(&[
        "profiles",
        "push",
        file.to_str().unwrap_or(""),
        "--ttl",
        "never",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("rate limited"));
    let items = api.items();
    let (bob, ttl) = &items[&user_hash(KEY.as_bytes(), "bob")];
    assert_eq!(ttl, &None);
    let t = parse_profile(bob, 0).unwrap_or_default();
    assert_eq!(t.values, [("plan".to_string(), "free, for now".into())]);
    assert_eq!(t.expires, None);
}

#[test]
fn a_bad_file_uploads_nothing_and_lists_every_problem() {
    let api = start();
    let file = write(
        "bad.ndjson",
        concat!(
            "{\"user\": \"ok-1\", \"traits\": {\"plan\": \"pro\"}}\n",
            "{\"user\": \"has space\", \"traits\": {}}\n",
            "not json\n",
            "{\"user\": \"ok-2\", \"traits\": {\"Plan\": \"x\", \"deep\": {\"a\": 1}}}\n",
            "{\"user\": \"ok-1\", \"traits\": {}}\n",
            "{\"user\": \"ok-3\"}\n",
        ),
    );
    let out = api.run(&["profiles", "push", file.to_str().unwrap_or("")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for expected in [
        "6 problem(s), nothing uploaded",
        "line 2: user `has space`",
        "line 3: not JSON",
        "line 4: trait `Plan`: invalid name",
        "line 4: trait `deep`",
        "line 5: user `ok-1` again (first on line 1)",
        "line 6: `traits` (an object) is missing",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert_eq!(api.state.requests.load(Ordering::SeqCst), 0);
    // A wrong token is a clear error.
    let good = write(
        "one.ndjson",
        "{\"user\": \"a\", \"traits\": {\"plan\": \"x\"}}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args(["profiles", "push", good.to_str().unwrap_or("")])
        .args([
            "--store-id",
            STORE,
            "--api-url",
            &format!("http://{}", api.addr),
        ])
        .arg("--key-file")
        .arg(key_file())
        .env("FASTLY_API_TOKEN", "wrong")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("answered 401"));
}

#[test]
fn local_file_push_matches_the_committed_demo_profiles() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_file = tmp("profiles.json");
    let _ = std::fs::remove_file(&out_file);
    let out = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .current_dir(&root)
        .args([
            "profiles",
            "push",
            "config-store/profiles.ndjson",
            "--ttl",
            "never",
            "--local",
        ])
        .arg(&out_file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made = std::fs::read_to_string(&out_file).unwrap_or_default();
    let committed =
        std::fs::read_to_string(root.join("config-store/profiles.json")).unwrap_or_default();
    assert_eq!(
        made, committed,
        "config-store/profiles.json is stale: run the push command in its header in fastly.toml"
    );
}

#[test]
fn identity_cookie_is_signed_for_its_user() {
    let kf = write("identity.key", "id-key\n");
    let mint = |user: &str| {
        Command::new(env!("CARGO_BIN_EXE_edgeflags"))
            .args([
                "identity-cookie",
                "--user",
                user,
                "--ttl",
                "2h",
                "--key-file",
            ])
            .arg(&kf)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = mint("u42");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let token = text(&out.stdout);
    let token = token.trim();
    assert_eq!(
        edgeflags_engine::identity::verify(token, Some(b"id-key"), now).as_deref(),
        Ok("u42")
    );
    // Two hours, not more: expired two hours and a second from now.
    assert!(edgeflags_engine::identity::verify(token, Some(b"id-key"), now + 7201).is_err());
    assert!(edgeflags_engine::identity::verify(token, Some(b"other"), now).is_err());
    let bad = mint("not a key");
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("not a user key"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn traits_cookie_is_signed_for_its_user() {
    let kf = write("traits.key", "cookie-key\n");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args([
            "traits-cookie",
            "--user",
            "u42",
            "--trait",
            "buyer=bargain_hunter",
            "--trait",
            "visits=12",
            "--ttl",
            "1h",
            "--key-file",
        ])
        .arg(&kf)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t = verify_cookie(token.trim(), Some(b"cookie-key"), "u42", now).unwrap_or_default();
    assert_eq!(
        t.values,
        [
            ("buyer".to_string(), "bargain_hunter".into()),
            ("visits".to_string(), 12.0.into())
        ]
    );
    assert!(verify_cookie(token.trim(), Some(b"cookie-key"), "u43", now).is_err());
}
