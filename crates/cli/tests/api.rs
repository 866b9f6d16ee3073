//! `push`, `diff` and `rollback` against a local HTTP server that answers as Fastly's
//! config-store API does (documented paths, auth header, bulk operations, errors, rate
//! limiting), parses each request with the `fastly-api` crate's own models, and keeps the
//! store's state.

mod common;
mod config_store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use config_store::json;
use hyper::{Body, Method, Request, Response, StatusCode};

const TOKEN: &str = "test-token";
const STORE: &str = "5kStoreId";

#[derive(Default)]
struct Api {
    items: Mutex<config_store::Items>,
    patches: AtomicU32,
    rate_limit_next: AtomicU32,
}

async fn answer(api: Arc<Api>, req: Request<Body>) -> Response<Body> {
    if api.rate_limit_next.load(Ordering::SeqCst) > 0 {
        api.rate_limit_next.fetch_sub(1, Ordering::SeqCst);
        let mut r = json(
            StatusCode::TOO_MANY_REQUESTS,
            serde_json::json!({"msg": "rate limit exceeded"}),
        );
        r.headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
        return r;
    }
    if req
        .headers()
        .get("fastly-key")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"msg": "Provided credentials are missing or invalid"}),
        );
    }
    let path = req.uri().path().to_string();
    let Some(id) = path
        .strip_prefix("/resources/stores/config/")
        .and_then(|p| p.strip_suffix("/items"))
    else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"msg": "Not found"}),
        );
    };
    if id != STORE {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"msg": "Record not found"}),
        );
    }
    let method = req.method().clone();
    if method == Method::PATCH {
        api.patches.fetch_add(1, Ordering::SeqCst);
    }
    let body = hyper::body::to_bytes(req.into_body())
        .await
        .unwrap_or_default();
    let mut items = api.items.lock().unwrap_or_else(|p| p.into_inner());
    config_store::answer(STORE, &mut items, &method, &body)
}

type Fake = common::Running<Api>;

fn start() -> Fake {
    common::serve(answer)
}

impl Fake {
    fn store(&self) -> BTreeMap<String, String> {
        self.state
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn patches(&self) -> u32 {
        self.state.patches.load(Ordering::SeqCst)
    }
    fn run(&self, args: &[&str], token: &str) -> Output {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        Command::new(env!("CARGO_BIN_EXE_edgeflags"))
            .args(args)
            .args(["--api-url", &format!("http://{}", self.addr)])
            .env("FASTLY_API_TOKEN", token)
            .current_dir(root)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }
    fn active_version(&self) -> Option<String> {
        let s = self.store();
        edgeflags_engine::pack::read(|k| s.get(k).cloned(), None)
            .result
            .ok()
            .map(|l| l.version)
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn version_of(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let t = std::fs::read_to_string(root.join(path)).unwrap_or_default();
    edgeflags_engine::compile_str(&t)
        .map(|s| s.fingerprint().to_string())
        .unwrap_or_default()
}

fn v2_file() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut f: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("config-store/flags.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    f["flags"]["banner"]["on"] = serde_json::json!(false);
    f["flags"]["dark-mode"] = serde_json::json!({"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "off"});
    let path = std::env::temp_dir().join(format!("edgeflags-api-v2-{}.json", std::process::id()));
    std::fs::write(&path, f.to_string()).unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

#[test]
fn push_diff_push_then_rollback_leaves_the_store_as_it_was() {
    let fake = start();
    let out = fake.run(
        &["push", "config-store/flags.json", "--store-id", STORE],
        TOKEN,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fake.patches(), 1, "one bulk request per change");
    assert_eq!(
        fake.active_version(),
        Some(version_of("config-store/flags.json"))
    );
    let after_first = fake.store();

    let v2 = v2_file();
    let diff = fake.run(&["diff", &v2, "--store-id", STORE], TOKEN);
    assert!(diff.status.success(), "{}", text(&diff));
    let shown = text(&diff);
    assert!(shown.contains("~ flag banner: on"), "{shown}");
    assert!(shown.contains("+ flag dark-mode"), "{shown}");
    assert_eq!(fake.patches(), 1, "diff writes nothing");

    let dry = fake.run(&["push", &v2, "--store-id", STORE, "--dry-run"], TOKEN);
    assert!(text(&dry).contains("nothing written"));
    assert_eq!(fake.patches(), 1);

    let push = fake.run(&["push", &v2, "--store-id", STORE], TOKEN);
    assert!(push.status.success(), "{}", text(&push));
    assert_eq!(fake.patches(), 2);
    assert_eq!(fake.active_version(), Some(version_of(&v2)));

    let again = fake.run(&["push", &v2, "--store-id", STORE], TOKEN);
    assert!(text(&again).contains("already live"));
    assert_eq!(fake.patches(), 2, "pushing the live version writes nothing");

    let rb = fake.run(&["rollback", "--store-id", STORE], TOKEN);
    assert!(rb.status.success(), "{}", text(&rb));
    assert_eq!(fake.patches(), 3);
    assert_eq!(
        fake.store(),
        after_first,
        "rollback restores the store exactly"
    );
    let none = fake.run(&["rollback", "--store-id", STORE], TOKEN);
    assert!(!none.status.success());
    assert!(
        text(&none).contains("previous slot is not usable"),
        "{}",
        text(&none)
    );
}

#[test]
fn api_errors_say_what_to_do_next() {
    let fake = start();
    let bad_token = fake.run(
        &["push", "config-store/flags.json", "--store-id", STORE],
        "wrong",
    );
    assert!(!bad_token.status.success());
    assert!(
        text(&bad_token).contains("answered 401") && text(&bad_token).contains("FASTLY_API_TOKEN"),
        "{}",
        text(&bad_token)
    );
    let bad_store = fake.run(
        &["diff", "config-store/flags.json", "--store-id", "nope"],
        TOKEN,
    );
    assert!(
        text(&bad_store).contains("answered 404") && text(&bad_store).contains("config store id"),
        "{}",
        text(&bad_store)
    );
    let no_token = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args(["diff", "config-store/flags.json", "--store-id", STORE])
        .env_remove("FASTLY_API_TOKEN")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(text(&no_token).contains("set FASTLY_API_TOKEN"));
    assert_eq!(fake.store().len(), 0, "nothing was written");
}

#[test]
fn rate_limiting_is_retried() {
    let fake = start();
    fake.state.rate_limit_next.store(2, Ordering::SeqCst);
    let out = fake.run(
        &["push", "config-store/flags.json", "--store-id", STORE],
        TOKEN,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("rate limited"), "{}", text(&out));
    assert_eq!(
        fake.active_version(),
        Some(version_of("config-store/flags.json"))
    );
}
