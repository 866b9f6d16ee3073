//! The live-store commands (`push`, `diff`, `rollback`, `history`, `promote`, and the CI
//! script `scripts/flags-ci`) against a local HTTP server that answers as Fastly's
//! config-store API does (documented paths, auth header, bulk operations, single items,
//! errors, rate limiting), parses each request with the `fastly-api` crate's own models,
//! and keeps the state of a few stores.

mod common;
mod config_store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use config_store::{Items, json};
use edgeflags_engine::history::{self, Action, without_history};
use edgeflags_engine::pack;
use fastly_api::models::ConfigStoreItemResponse;
use hyper::{Body, Method, Request, Response, StatusCode};

const TOKEN: &str = "test-token";
const STORE: &str = "5kStoreId";
const STAGING: &str = "6kStaging";
const PRODUCTION: &str = "7kProduction";

struct Api {
    /// The stores that exist, by id.
    stores: Mutex<BTreeMap<String, Items>>,
    patches: AtomicU32,
    rate_limit_next: AtomicU32,
    /// A change that lands in a store (id, its entries after) when its pointer is read
    /// on its own: someone else's push between a command's read and its write.
    race: Mutex<Option<(String, Items)>>,
}

impl Default for Api {
    fn default() -> Self {
        let stores = [STORE, STAGING, PRODUCTION]
            .into_iter()
            .map(|id| (id.to_string(), Items::new()))
            .collect();
        Api {
            stores: Mutex::new(stores),
            patches: AtomicU32::new(0),
            rate_limit_next: AtomicU32::new(0),
            race: Mutex::new(None),
        }
    }
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
    let Some(rest) = path.strip_prefix("/resources/stores/config/") else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"msg": "Not found"}),
        );
    };
    let (id, item) = match (rest.strip_suffix("/items"), rest.split_once("/item/")) {
        (Some(id), _) => (id.to_string(), None),
        (None, Some((id, key))) => (id.to_string(), Some(key.to_string())),
        _ => {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"msg": "Not found"}),
            );
        }
    };
    if !api.stores().contains_key(&id) {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"msg": "Record not found"}),
        );
    }
    if let Some(key) = item {
        if *req.method() != Method::GET {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"msg": "method not allowed"}),
            );
        }
        let mut stores = api.stores.lock().unwrap_or_else(|p| p.into_inner());
        if key == edgeflags_engine::pack::POINTER_KEY {
            let mut race = api.race.lock().unwrap_or_else(|p| p.into_inner());
            if race.as_ref().is_some_and(|(store, _)| *store == id)
                && let Some((store, after)) = race.take()
            {
                stores.insert(store, after);
            }
        }
        return match stores.get(&id).and_then(|items| items.get(&key)) {
            Some(v) => json(
                StatusCode::OK,
                serde_json::to_value(ConfigStoreItemResponse {
                    item_key: Some(key),
                    item_value: Some(v.clone()),
                    store_id: Some(Box::new(id)),
                    ..ConfigStoreItemResponse::new()
                })
                .unwrap_or_default(),
            ),
            None => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"msg": "Record not found"}),
            ),
        };
    }
    let method = req.method().clone();
    if method == Method::PATCH {
        api.patches.fetch_add(1, Ordering::SeqCst);
    }
    let body = hyper::body::to_bytes(req.into_body())
        .await
        .unwrap_or_default();
    let mut stores = api.stores.lock().unwrap_or_else(|p| p.into_inner());
    let items = stores.entry(id.clone()).or_default();
    config_store::answer(&id, items, &method, &body)
}

type Fake = common::Running<Api>;

fn start() -> Fake {
    common::serve(answer)
}

impl Api {
    fn stores(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Items>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Fake {
    fn store(&self) -> Items {
        self.store_of(STORE)
    }
    fn store_of(&self, id: &str) -> Items {
        self.state.stores().get(id).cloned().unwrap_or_default()
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
    /// Runs edgeflags with the test environments file and `vars` set.
    fn run_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        Command::new(env!("CARGO_BIN_EXE_edgeflags"))
            .args(args)
            .env("FASTLY_API_TOKEN", TOKEN)
            .env("EDGEFLAGS_API_URL", format!("http://{}", self.addr))
            .env("EDGEFLAGS_ENVIRONMENTS", environments())
            .env_remove("EDGEFLAGS_STORE_ID")
            .envs(vars.iter().copied())
            .current_dir(root)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }
    /// The version and payload store `id` serves from its active slot.
    fn live(&self, id: &str) -> (String, String) {
        let s = self.store_of(id);
        match pack::read(|k| s.get(k).cloned(), None).result {
            Ok(l) if l.fell_back.is_none() => (l.version, l.payload),
            other => panic!("store {id} serves no active slot: {other:?}"),
        }
    }
    /// The payload in the slot of store `id` that is not active.
    fn idle_payload(&self, id: &str) -> Option<String> {
        let s = self.store_of(id);
        let pointer: pack::Pointer = serde_json::from_str(s.get(pack::POINTER_KEY)?).ok()?;
        let (read, _) = pack::read_slot(
            |k| s.get(k).cloned(),
            &pointer,
            pointer.active.other(),
            None,
        );
        read.ok()
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
    demo_with("v2", |f| {
        f["flags"]["banner"]["on"] = serde_json::json!(false);
        f["flags"]["dark-mode"] = serde_json::json!({"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "off"});
    })
}

/// The demo flag file changed by `edit`, written to a scratch file named after `name`.
fn demo_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut f: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("config-store/flags.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    edit(&mut f);
    let path = scratch(&format!("{name}.json"));
    write_whole(&path, &f.to_string());
    path.to_string_lossy().into_owned()
}

/// Writes a file so that a concurrent reader sees the old text or the new, never a part:
/// tests running at once write the same scratch files.
fn write_whole(path: &std::path::Path, text: &str) {
    static N: AtomicU32 = AtomicU32::new(0);
    let tmp = path.with_extension(format!("tmp{}", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{e}"));
}

/// A scratch file of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeflags-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

/// The environments file the tests use: staging and production on the fake's stores.
/// Written once per test run (tests run concurrently and must never see it half
/// written).
fn environments() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = scratch("edgeflags.toml");
        let text = format!(
            "[environments.staging]\nservice_id = \"svc-staging\"\nconfig_store_id = \"{STAGING}\"\n\n\
             [environments.production]\nservice_id = \"svc-production\"\nconfig_store_id = \"{PRODUCTION}\"\nkeep = 10\n"
        );
        write_whole(&path, &text);
        path.to_string_lossy().into_owned()
    })
    .clone()
}

/// The demo file and three later versions of it.
fn releases() -> [String; 4] {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        root.join("config-store/flags.json")
            .to_string_lossy()
            .into_owned(),
        v2_file(),
        demo_with("v3", |f| {
            f["flags"]["checkout"]["default"] = serde_json::json!("v2");
        }),
        demo_with("v4", |f| {
            f["flags"]["locale"]["description"] = serde_json::json!("Language by country, v4");
        }),
    ]
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
        without_history(&fake.store()),
        without_history(&after_first),
        "rollback restores the snapshot's entries exactly"
    );
    let actions: Vec<Action> = history::read(&fake.store())
        .records
        .iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, [Action::Push, Action::Push, Action::Rollback]);
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

#[test]
fn history_lists_every_push_and_rollback_to_restores_any_of_them_byte_for_byte() {
    let fake = start();
    let mut pushed = Vec::new();
    for (i, file) in releases().iter().enumerate() {
        let (author, commit, message) = (
            format!("Author {i} <a{i}@example.com>"),
            format!("c0ffee{i}"),
            format!("release {i}"),
        );
        let out = fake.run_env(
            &["push", file, "--env", "staging", "-m", &message],
            &[("EDGEFLAGS_AUTHOR", &author), ("EDGEFLAGS_COMMIT", &commit)],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("recorded as #{}", i + 1)),
            "{}",
            text(&out)
        );
        pushed.push(fake.live(STAGING));
    }
    assert_eq!(
        fake.patches(),
        4,
        "one bulk request per push, history included"
    );

    let out = fake.run_env(&["history", "--env", "staging", "--json"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(listed.len(), 4);
    for (j, r) in listed.iter().enumerate() {
        let i = 3 - j;
        assert_eq!(r["number"], i + 1);
        assert_eq!(r["version"], pushed[i].0.as_str());
        assert_eq!(
            r["author"],
            format!("Author {i} <a{i}@example.com>").as_str()
        );
        assert_eq!(r["commit"], format!("c0ffee{i}").as_str());
        assert_eq!(r["message"], format!("release {i}").as_str());
        assert_eq!(r["action"], "push");
        assert_eq!(r["sha256"], history::sha256(&pushed[i].1).as_str());
        assert_eq!(
            (r["live"].as_bool(), r["kept"].as_bool()),
            (Some(j == 0), Some(true))
        );
        assert!(r["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    }
    let changes = |r: &serde_json::Value| r["changes"].to_string();
    assert!(
        changes(&listed[2]).contains("~ flag banner: on")
            && changes(&listed[2]).contains("+ flag dark-mode")
    );
    assert!(
        changes(&listed[3]).contains("+ flag checkout"),
        "the first push adds every flag"
    );

    let table = text(&fake.run_env(&["history", "--env", "staging"], &[]));
    assert!(
        table.contains("staging (config store 6kStaging, service svc-staging): 4 records"),
        "{table}"
    );
    let live_line = table
        .lines()
        .find(|l| l.starts_with('*'))
        .unwrap_or_default();
    assert!(
        live_line.contains("#4") && live_line.contains("Author 3") && live_line.contains("c0ffee3"),
        "{table}"
    );
    assert!(
        table.contains("release 1") && table.contains("~ flag banner: on"),
        "{table}"
    );

    // Back to any of them, in any order: the live slot is that push's payload, byte for
    // byte, and the version live before stays in the other slot.
    for i in [0, 2, 1, 3] {
        let before = fake.live(STAGING);
        let out = fake.run_env(
            &["rollback", "--env", "staging", "--to", &pushed[i].0[..8]],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            fake.live(STAGING),
            pushed[i],
            "rollback --to {}",
            pushed[i].0
        );
        assert_eq!(fake.idle_payload(STAGING), Some(before.1));
    }
    let again = fake.run_env(&["rollback", "--env", "staging", "--to", &pushed[3].0], &[]);
    assert!(text(&again).contains("is already live"), "{}", text(&again));
    let records = history::read(&fake.store_of(STAGING)).records;
    assert_eq!(records.len(), 8);
    assert_eq!(records[4].action, Action::Rollback);
    assert_eq!(
        records[4].commit.as_deref(),
        Some("c0ffee0"),
        "the restored push's commit"
    );
    let missing = fake.run_env(&["rollback", "--env", "staging", "--to", "#99"], &[]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no version `#99` in the history")
            && text(&missing).contains(&format!("it has: {}", pushed[3].0)),
        "{}",
        text(&missing)
    );
}

#[test]
fn promote_makes_production_serve_exactly_the_payload_staging_serves() {
    let fake = start();
    let [demo, v2, ..] = releases();
    let alice = [("EDGEFLAGS_AUTHOR", "Alice"), ("EDGEFLAGS_COMMIT", "a11ce")];
    let push = fake.run_env(&["push", &demo, "--env", "staging"], &alice);
    assert!(push.status.success(), "{}", text(&push));
    let push = fake.run_env(&["push", &v2, "--env", "production"], &alice);
    assert!(push.status.success(), "{}", text(&push));
    let staging = fake.live(STAGING);
    let patches = fake.patches();

    let wrong = fake.run_env(
        &[
            "promote",
            "staging",
            "production",
            "--version",
            "0123456789abcdef",
        ],
        &[],
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains(&format!(
            "staging serves version {}, not 0123456789abcdef",
            staging.0
        )),
        "{}",
        text(&wrong)
    );
    let dry = fake.run_env(&["promote", "staging", "production", "--dry-run"], &[]);
    assert!(dry.status.success(), "{}", text(&dry));
    for shown in ["~ flag banner: on", "- flag dark-mode", "nothing written"] {
        assert!(text(&dry).contains(shown), "{shown}: {}", text(&dry));
    }
    assert_eq!(
        fake.patches(),
        patches,
        "refusals and dry runs write nothing"
    );

    let bob = [("EDGEFLAGS_AUTHOR", "Bob")];
    let out = fake.run_env(
        &["promote", "staging", "production", "--version", &staging.0],
        &bob,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("byte for byte"), "{}", text(&out));
    assert_eq!(fake.live(PRODUCTION), staging);
    let record = history::read(&fake.store_of(PRODUCTION)).records.pop();
    assert_eq!(
        record.map(|r| (r.action, r.author, r.commit, r.message)),
        Some((
            Action::Promote,
            "Bob".into(),
            Some("a11ce".into()),
            "promote from staging".into()
        ))
    );
    let again = fake.run_env(&["promote", "staging", "production"], &bob);
    assert!(
        text(&again).contains("already serves this payload"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_change_landing_between_the_diff_and_the_flip_is_refused() {
    let fake = start();
    let [demo, v2, v3, _] = releases();
    for (file, env) in [(&demo, "staging"), (&v2, "production")] {
        let out = fake.run_env(&["push", file, "--env", env], &[]);
        assert!(out.status.success(), "{}", text(&out));
    }
    // Someone pushes v3 to production while promote runs: after it read production,
    // before it flips the pointer.
    let before = fake.store_of(PRODUCTION);
    let v3_json = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(&v3).unwrap_or_default(),
    )
    .unwrap_or_default()
    .to_string();
    let (v3_payload, v3_version) =
        edgeflags_engine::payload::of_file(&v3_json).unwrap_or_else(|e| panic!("{e}"));
    let mut raced = before.clone();
    match pack::pack(&v3_payload, &v3_version, &without_history(&before), None) {
        Ok(p) => p.apply(&mut raced),
        Err(e) => panic!("{e}"),
    }
    *fake.state.race.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((PRODUCTION.into(), raced.clone()));
    let patches = fake.patches();
    let out = fake.run_env(&["promote", "staging", "production"], &[]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("not promoted: production moved since the diff above")
            && said.contains(&format!("now serves version {v3_version} (slot b)"))
            && said.contains("Nothing was written"),
        "{said}"
    );
    assert_eq!(fake.store_of(PRODUCTION), raced, "the other change stands");
    assert_eq!(fake.patches(), patches);

    // A push takes the same path.
    let mut staged = fake.store_of(STAGING);
    staged.insert(pack::POINTER_KEY.into(), raced[pack::POINTER_KEY].clone());
    *fake.state.race.lock().unwrap_or_else(|p| p.into_inner()) = Some((STAGING.into(), staged));
    let out = fake.run_env(&["push", &v2, "--env", "staging"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("changed while this command ran"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.patches(), patches);
}

#[test]
fn the_ci_script_checks_diffs_pushes_and_promotes_as_the_workflow_runs_it() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workflow = std::fs::read_to_string(root.join(".github/workflows/flags.yml"))
        .unwrap_or_else(|e| panic!("the workflow: {e}"));
    for step in [
        "run: scripts/flags-ci validate",
        "run: scripts/flags-ci lint",
        "run: scripts/flags-ci diff production",
        "run: scripts/flags-ci push staging",
        "run: scripts/flags-ci promote staging production",
        "environment: production",
    ] {
        assert!(workflow.contains(step), "the workflow lacks `{step}`");
    }
    let fake = start();
    let (output, summary) = (scratch("github-output"), scratch("step-summary"));
    let script = |args: &[&str], token: &str| {
        Command::new("bash")
            .arg(root.join("scripts/flags-ci"))
            .args(args)
            .env("EDGEFLAGS", env!("CARGO_BIN_EXE_edgeflags"))
            .env("EDGEFLAGS_ENVIRONMENTS", environments())
            .env("EDGEFLAGS_API_URL", format!("http://{}", fake.addr))
            .env("EDGEFLAGS_LINT_AT", "2026-12-01T00:00:00Z")
            .env("EDGEFLAGS_AUTHOR", "ci")
            .env("FASTLY_API_TOKEN", token)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for step in [&["validate"][..], &["lint"]] {
        let out = script(step, TOKEN);
        assert!(out.status.success(), "{step:?}: {}", text(&out));
    }
    let fork = script(&["diff", "production"], "");
    assert!(
        fork.status.success() && text(&fork).contains("no live diff"),
        "{}",
        text(&fork)
    );
    let diff = script(&["diff", "production"], TOKEN);
    assert!(
        diff.status.success() && text(&diff).contains("no snapshot yet"),
        "{}",
        text(&diff)
    );
    let shown = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(
        shown.contains("what merging changes in `production`") && shown.contains("no snapshot yet"),
        "{shown}"
    );
    let push = script(&["push", "staging"], TOKEN);
    assert!(push.status.success(), "{}", text(&push));
    let version = version_of("config-store/flags.json");
    let outputs = std::fs::read_to_string(&output).unwrap_or_default();
    assert!(
        outputs.contains(&format!("version={version}\n")),
        "{outputs}"
    );
    let promote = script(&["promote", "staging", "production"], TOKEN);
    assert!(promote.status.success(), "{}", text(&promote));
    assert_eq!(fake.live(PRODUCTION), fake.live(STAGING));
    assert_eq!(fake.live(PRODUCTION).0, version);
    let after = script(&["diff", "production"], TOKEN);
    assert!(text(&after).contains("is already live"), "{}", text(&after));
}
