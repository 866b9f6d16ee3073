//! The end-to-end harness: runs the real edge wasm in Viceroy, in-process.
//!
//! A test describes an app (flags, store contents, secrets, origin behaviours), gets a
//! shared [`App`] for it with [`app`] (one Viceroy context per distinct configuration,
//! keyed on the configuration itself and built once per test run), then sends requests
//! from chosen client addresses, so geolocation is real, and asserts on the response, on
//! what the origin received, and on the log lines.
//!
//! The wasm is built once per run (`cargo build -p edgeflags-edge --release --target
//! wasm32-wasip1`), unless `EDGEFLAGS_WASM` names one already built. With
//! `EDGEFLAGS_GUEST_PROFILE=DIR` every request's guest is sampled every 5 µs and Viceroy
//! writes one Firefox-profiler file per request into DIR (names resolve when the wasm was
//! built with symbols; docs/benchmarks.md, the throughput notes). With
//! `EDGEFLAGS_PERF_MAP=1` wasmtime writes `/tmp/perf-PID.map`, so `perf record` names the
//! JIT-compiled guest's functions.

pub mod demo;
pub mod origin;
pub mod pages;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use hyper::{Body, Request};
use sha2::{Digest, Sha256};
use viceroy_lib::config::{
    Backend, BackendHealth, Dictionary, FastlyConfig, SecretStore, SecretStores,
    UnknownImportBehavior,
};
use viceroy_lib::{ExecuteCtx, ProfilingConfig, WasmFeatures};

pub use origin::{Behaviour, Origin, Seen};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The user as the edge's events name them under the local `user_hash_key` of
/// `config-store/secrets.json`: HMAC-SHA256 of the key, the first 16 bytes in hex. Written
/// here apart from the engine's, so the tests check the edge's hash against another.
pub fn dev_user_hash(user: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(b"dev-user-hash-key-not-for-production")
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(user.as_bytes());
    mac.finalize().into_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `edgeflags` CLI built by the same `cargo test` (beside the test executable's
/// `deps/` directory).
pub fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = dir.join(format!("edgeflags{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "edgeflags-cli"])
            .current_dir(root())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot build the edgeflags CLI"
        );
    }
    bin
}

/// The demo flag file, parsed.
pub fn demo_flags() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("config-store/flags.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// The tokio runtime every app and origin lives on (shared across tests).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the test runtime: {e}"))
    })
}

/// The edge wasm, built once per test run.
pub fn wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| match build_wasm() {
        Ok(p) => p,
        Err(e) => panic!("cannot build the edge wasm: {e:#}"),
    })
}

fn build_wasm() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("EDGEFLAGS_WASM") {
        return Ok(PathBuf::from(p));
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "-p",
            "edgeflags-edge",
            "--release",
            "--target",
            "wasm32-wasip1",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of the edge app failed ({status})");
    }
    Ok(target_dir.join("wasm32-wasip1/release/edgeflags-edge.wasm"))
}

/// What the config store holds.
#[derive(Debug, Clone)]
pub enum Store {
    /// This flag file, packed as `edgeflags pack` packs it (optionally signed).
    Flags(serde_json::Value, Option<Vec<u8>>),
    /// Exactly these entries.
    Entries(BTreeMap<String, String>),
    /// A JSON file, re-read by Viceroy on every open (for live edits).
    File(PathBuf),
    /// No config store at all.
    Missing,
}

/// Packs a flag file into store entries, as the CLI does.
pub fn packed(flags: &serde_json::Value, key: Option<&[u8]>) -> BTreeMap<String, String> {
    let snapshot = edgeflags_engine::compile(flags)
        .unwrap_or_else(|e| panic!("test flags do not compile: {e}"));
    let mut store = BTreeMap::new();
    let json = flags.to_string();
    let payload = edgeflags_engine::payload::envelope(&snapshot, &json);
    match edgeflags_engine::pack::pack(&payload, snapshot.fingerprint(), &store, key) {
        Ok(p) => p.apply(&mut store),
        Err(e) => panic!("cannot pack test flags: {e}"),
    }
    store
}

/// The description of an app under test.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// What the config store holds.
    pub store: Store,
    /// Origin behaviour per backend name (backends not named echo).
    pub origins: BTreeMap<String, Behaviour>,
    /// Secret-store entries (`edgeflags_secrets`).
    pub secrets: BTreeMap<String, String>,
    /// First-byte timeout for every backend.
    pub first_byte_timeout: Duration,
    /// Another wasm to run instead of the edge app (the throughput baseline).
    pub wasm: Option<PathBuf>,
    /// The profile store (`edgeflags_profiles`): `None` leaves it out; otherwise its
    /// entries, on top of `config-store/profiles.json`.
    pub profiles: Option<BTreeMap<String, String>>,
    /// Keeps Viceroy's epoch ticks every 50 µs, as shipped (the load and soak runs, which
    /// measure Viceroy itself). Otherwise they are coarsened to about 10 ms, which changes
    /// nothing a test can see but the CPU Viceroy burns while contexts sit idle.
    pub stock_epoch: bool,
}

impl Default for AppSpec {
    fn default() -> Self {
        let secrets = std::fs::read_to_string(root().join("config-store/secrets.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        AppSpec {
            store: Store::Flags(demo_flags(), None),
            origins: BTreeMap::new(),
            secrets,
            first_byte_timeout: Duration::from_secs(2),
            wasm: None,
            profiles: Some(BTreeMap::new()),
            stock_epoch: false,
        }
    }
}

impl AppSpec {
    /// The demo app: the demo flag file packed into the store, echoing origins.
    pub fn demo() -> AppSpec {
        AppSpec::default()
    }
    /// Sets the store.
    pub fn store(mut self, store: Store) -> AppSpec {
        self.store = store;
        self
    }
    /// Sets one backend's behaviour.
    pub fn origin(mut self, backend: &str, b: Behaviour) -> AppSpec {
        self.origins.insert(backend.into(), b);
        self
    }
    /// Sets a secret.
    pub fn secret(mut self, name: &str, value: &str) -> AppSpec {
        self.secrets.insert(name.into(), value.into());
        self
    }
    /// Stores a profile for `user` (keyed as the CLI keys it, with `user_hash_key`).
    pub fn profile(mut self, user: &str, value: &str) -> AppSpec {
        let key = self
            .secrets
            .get("user_hash_key")
            .cloned()
            .unwrap_or_default();
        let hashed = edgeflags_engine::traits::user_hash(key.as_bytes(), user);
        self.profiles
            .get_or_insert_with(BTreeMap::new)
            .insert(hashed, value.into());
        self
    }
    /// Leaves the profile store out.
    pub fn without_profile_store(mut self) -> AppSpec {
        self.profiles = None;
        self
    }

    /// What identifies this configuration: SHA-256 of a canonical JSON rendering of every
    /// field (object keys sorted), so equal specs get one app and different specs never
    /// share one, whatever order a test built them in.
    pub fn key(&self) -> String {
        use serde_json::{Value, json};
        let store = match &self.store {
            Store::Flags(flags, key) => json!({"flags": flags, "signing_key": key}),
            Store::Entries(entries) => json!({ "entries": entries }),
            Store::File(path) => json!({ "file": path }),
            Store::Missing => json!("missing"),
        };
        let origins: BTreeMap<&String, String> = self
            .origins
            .iter()
            .map(|(k, b)| (k, format!("{b:?}")))
            .collect();
        let doc = json!({
            "store": store,
            "origins": origins,
            "secrets": self.secrets,
            "first_byte_timeout_ns": self.first_byte_timeout.as_nanos().to_string(),
            "wasm": self.wasm,
            "profiles": self.profiles,
            "stock_epoch": self.stock_epoch,
        });
        fn canonical(v: &Value, out: &mut String) {
            match v {
                Value::Object(map) => {
                    let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                    out.push('{');
                    for (i, (k, v)) in sorted.into_iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&Value::from(k.as_str()).to_string());
                        out.push(':');
                        canonical(v, out);
                    }
                    out.push('}');
                }
                Value::Array(items) => {
                    out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        canonical(v, out);
                    }
                    out.push(']');
                }
                other => out.push_str(&other.to_string()),
            }
        }
        let mut text = String::new();
        canonical(&doc, &mut text);
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A running app: a Viceroy context, its origins and its captured logs.
pub struct App {
    ctx: Arc<ExecuteCtx>,
    logs: Arc<Mutex<Vec<u8>>>,
    /// The origins, by backend name.
    pub origins: HashMap<String, Origin>,
}

/// Returns the app for `spec`, building it the first time this configuration is asked
/// for: tests with equal specs share one app (and its logs), different specs never do.
/// Different configurations are built concurrently; a test asking for one being built
/// waits for that build only.
pub fn app(spec: AppSpec) -> Arc<App> {
    type Cell = Arc<OnceLock<Arc<App>>>;
    static APPS: OnceLock<Mutex<HashMap<String, Cell>>> = OnceLock::new();
    let key = spec.key();
    let cell = {
        let mut apps = APPS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        apps.entry(key.clone()).or_default().clone()
    };
    cell.get_or_init(|| match App::start(spec) {
        Ok(a) => Arc::new(a),
        Err(e) => panic!("cannot start the app of spec {key}: {e:#}"),
    })
    .clone()
}

fn base_config(spec: &AppSpec) -> Result<FastlyConfig> {
    // Relative data paths in fastly.toml are relative to the project root. The config
    // store is left out: the harness supplies it.
    let text =
        std::fs::read_to_string(root().join("fastly.toml")).context("reading fastly.toml")?;
    let mut doc: toml::Table = toml::from_str(&text).context("parsing fastly.toml")?;
    if let Some(toml::Value::Table(ls)) = doc.get_mut("local_server") {
        ls.remove("config_stores");
        for (key, entries) in [
            ("geolocation", "addresses"),
            ("device_detection", "user_agents"),
        ] {
            if let Some(toml::Value::Table(t)) = ls.get_mut(key) {
                inline_entries(t, entries).with_context(|| format!("local_server.{key}"))?;
            }
        }
        // The profile store: the local file's entries plus the test's, inline; or none.
        match &spec.profiles {
            None => {
                ls.remove("kv_stores");
            }
            Some(extra) => {
                let file = root().join("config-store/profiles.json");
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let local: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)?;
                let mut items: BTreeMap<String, String> = local
                    .into_iter()
                    .map(|(k, v)| (k, v["data"].as_str().unwrap_or_default().to_string()))
                    .collect();
                items.extend(extra.clone());
                let list: Vec<toml::Value> = items
                    .into_iter()
                    .map(|(key, data)| {
                        let mut t = toml::Table::new();
                        t.insert("key".into(), key.into());
                        t.insert("data".into(), data.into());
                        toml::Value::Table(t)
                    })
                    .collect();
                let mut stores = toml::Table::new();
                stores.insert("edgeflags_profiles".into(), toml::Value::Array(list));
                ls.insert("kv_stores".into(), toml::Value::Table(stores));
            }
        }
        if let Some(toml::Value::Table(stores)) = ls.get_mut("secret_stores") {
            for (_, s) in stores.iter_mut() {
                if let toml::Value::Table(t) = s {
                    absolutize(t);
                }
            }
        }
    }
    let text = toml::to_string(&doc).context("re-writing fastly.toml")?;
    text.parse::<FastlyConfig>()
        .context("loading fastly.toml into Viceroy")
}

/// Lets the kernel delay this thread's timer wake-ups by up to 10 ms (threads it spawns
/// inherit that), instead of the default 50 µs.
#[cfg(target_os = "linux")]
fn coarse_timer_slack() {
    const SLACK_NS: libc::c_ulong = 10_000_000;
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only the calling
    // thread's timer slack; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, SLACK_NS, 0, 0, 0) };
    debug_assert_eq!(rc, 0, "PR_SET_TIMERSLACK failed");
}

#[cfg(not(target_os = "linux"))]
fn coarse_timer_slack() {}

/// A geolocation or device-detection table given as a JSON file, turned into the same
/// entries inline (`format = "inline-toml"`, under `entries`). Viceroy (0.22) re-reads and
/// parses such a file at every lookup (`GeolocationMapping::get`,
/// `DeviceDetectionMapping::get`), which the pass-through of the load run never pays and
/// Fastly never does; inline entries are parsed once, when the app starts. The answers
/// are the same: every value of these files is a string, a number, a boolean or a table
/// of them, which TOML holds as they are (a JSON null, which it cannot, is left out, as
/// an absent field reads the same to the edge).
fn inline_entries(t: &mut toml::Table, entries: &str) -> Result<()> {
    if t.get("format").and_then(toml::Value::as_str) != Some("json") {
        absolutize(t);
        return Ok(());
    }
    let Some(toml::Value::String(file)) = t.remove("file") else {
        return Ok(());
    };
    let path = root().join(&file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {file}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {file}"))?;
    let Some(table @ toml::Value::Table(_)) = json_to_toml(&json) else {
        anyhow::bail!("{file}: not a JSON object");
    };
    t.insert("format".into(), "inline-toml".into());
    t.insert(entries.into(), table);
    Ok(())
}

/// A JSON value as TOML; `None` for null (TOML has none).
fn json_to_toml(v: &serde_json::Value) -> Option<toml::Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(a) => toml::Value::Array(a.iter().filter_map(json_to_toml).collect()),
        J::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), json_to_toml(v)?)))
                .collect(),
        ),
    })
}

fn absolutize(t: &mut toml::Table) {
    if let Some(toml::Value::String(f)) = t.get_mut("file") {
        *f = root().join(&*f).to_string_lossy().into_owned();
    }
}

impl App {
    fn start(spec: AppSpec) -> Result<App> {
        let cfg = base_config(&spec)?;
        let rt = runtime();
        let mut backends = cfg.backends().clone();
        let mut origins = HashMap::new();
        let names: Vec<String> = backends.keys().cloned().collect();
        for name in names {
            let behaviour = spec.origins.get(&name).cloned().unwrap_or(Behaviour::Echo);
            let origin = rt.block_on(Origin::start(&name, behaviour))?;
            backends.insert(
                name.clone(),
                Arc::new(Backend {
                    uri: format!("http://{}/", origin.addr).parse()?,
                    override_host: None,
                    cert_host: None,
                    use_sni: false,
                    grpc: false,
                    first_byte_timeout: Some(spec.first_byte_timeout),
                    between_bytes_timeout: Some(spec.first_byte_timeout),
                    client_cert: None,
                    ca_certs: vec![],
                    health: BackendHealth::Unknown,
                }),
            );
            origins.insert(name, origin);
        }
        let mut dictionaries = HashMap::new();
        let contents = match &spec.store {
            Store::Flags(flags, key) => Some(packed(flags, key.as_deref())),
            Store::Entries(e) => Some(e.clone()),
            Store::File(path) => {
                dictionaries.insert(
                    "edgeflags".to_string(),
                    Dictionary::Json { file: path.clone() },
                );
                None
            }
            Store::Missing => None,
        };
        if let Some(c) = contents {
            let map: HashMap<String, String> = c.into_iter().collect();
            dictionaries.insert(
                "edgeflags".to_string(),
                Dictionary::InlineToml {
                    contents: Arc::new(map),
                },
            );
        }
        let mut secret_store = SecretStore::new();
        for (k, v) in &spec.secrets {
            secret_store.add_secret(k.clone(), bytes::Bytes::from(v.clone().into_bytes()));
        }
        let mut secret_stores = SecretStores::new();
        secret_stores.add_store("edgeflags_secrets".into(), secret_store);
        let logs = Arc::new(Mutex::new(Vec::new()));
        let module = spec.wasm.clone().unwrap_or_else(|| wasm().to_path_buf());
        let builder = ExecuteCtx::build(
            &module,
            match std::env::var_os("EDGEFLAGS_GUEST_PROFILE") {
                Some(path) => ProfilingConfig::Guest {
                    path: path.into(),
                    sample_period: std::time::Duration::from_micros(5),
                },
                // With `EDGEFLAGS_PERF_MAP` set, the JIT-compiled guest's functions are
                // named for `perf` (`/tmp/perf-PID.map`).
                None if std::env::var_os("EDGEFLAGS_PERF_MAP").is_some() => {
                    ProfilingConfig::Native(viceroy_lib::ProfilingStrategy::PerfMap)
                }
                None => ProfilingConfig::None,
            },
            HashSet::new(),
            UnknownImportBehavior::LinkError,
            false,
            WasmFeatures::default(),
        )?
        .with_backends(backends)
        .with_dictionaries(dictionaries)
        .with_geolocation(cfg.geolocation().clone())
        .with_device_detection(cfg.device_detection().clone())
        .with_secret_stores(secret_stores)
        .with_object_stores(cfg.object_stores().clone())
        .with_capture_logs(logs.clone());
        // Viceroy gives every context a thread that sleeps 50 µs and advances the wasm
        // epoch, for as long as the context lives (guests yield to the host at each tick).
        // A test run keeps some 30 contexts alive, and their tens of thousands of wake-ups
        // a second took a quarter of the suite's CPU, most of it system time. The thread
        // inherits the timer slack of the thread that builds the context, so contexts are
        // built on a thread whose slack lets the kernel coalesce those wake-ups: the
        // epoch then ticks about every 10 ms. Guests behave the same; a busy one yields
        // less often.
        let ctx = if spec.stock_epoch {
            builder.finish()?
        } else {
            std::thread::scope(|s| {
                s.spawn(|| {
                    coarse_timer_slack();
                    builder.finish()
                })
                .join()
            })
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?
        };
        Ok(App { ctx, logs, origins })
    }

    /// The Viceroy context, for serving it over TCP.
    pub fn context(&self) -> Arc<ExecuteCtx> {
        self.ctx.clone()
    }

    /// Starts the app also as an HTTP server on an ephemeral loopback port, on the test
    /// runtime, and returns its address.
    pub fn serve_http(&self) -> Result<SocketAddr> {
        let service = viceroy_lib::ViceroyService::new(self.ctx.clone());
        let _guard = runtime().enter();
        let server = hyper::Server::try_bind(&([127, 0, 0, 1], 0).into())?.serve(service);
        let addr = server.local_addr();
        runtime().spawn(server);
        Ok(addr)
    }

    /// Sends a request and waits for the answer.
    pub fn send(&self, req: Req) -> Reply {
        runtime().block_on(self.send_async(req))
    }

    /// Sends a request.
    pub async fn send_async(&self, req: Req) -> Reply {
        // An origin-form target gets the test authority; any other form (`*`) is sent as is.
        let uri = if req.path.starts_with('/') {
            format!("http://edge.test{}", req.path)
        } else {
            req.path.clone()
        };
        let mut builder = Request::builder().method(req.method.as_str()).uri(uri);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_slice());
        }
        let body = if req.body_breaks {
            // The body's bytes, then a read error: what the edge sees when a client's
            // connection breaks mid-body.
            let chunks: Vec<std::io::Result<Vec<u8>>> = vec![
                Ok(req.body.clone()),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "the client went away mid-body",
                )),
            ];
            Body::wrap_stream(futures_util::stream::iter(chunks))
        } else {
            Body::from(req.body.clone())
        };
        let request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => panic!("bad test request: {e}"),
        };
        let local: SocketAddr = ([127, 0, 0, 1], 7676).into();
        let remote = SocketAddr::new(req.client, 40000);
        let (resp, err) = match self
            .ctx
            .clone()
            .handle_request(request, local, remote)
            .await
        {
            Ok(x) => x,
            Err(e) => panic!("Viceroy could not run the request: {e}"),
        };
        if let Some(e) = err {
            panic!("the guest trapped: {e:?}");
        }
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = match resp.into_body().read_into_vec().await {
            Ok(b) => b,
            Err(e) => panic!("cannot read the response body: {e}"),
        };
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            bytes: body,
        }
    }

    /// Every log line captured so far (`endpoint :: message`).
    pub fn logs(&self) -> Vec<String> {
        let guard = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&guard)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The log lines of one endpoint, parsed as JSON.
    pub fn log_json(&self, endpoint: &str) -> Vec<serde_json::Value> {
        let prefix = format!("{endpoint} :: ");
        self.logs()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// A test request.
#[derive(Debug, Clone)]
pub struct Req {
    method: String,
    path: String,
    client: IpAddr,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    body_breaks: bool,
}

impl Req {
    /// A GET of `path`, from 127.0.0.1.
    pub fn get(path: &str) -> Req {
        Req::new("GET", path)
    }
    /// A POST of `path` with a body.
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Req {
        let mut r = Req::new("POST", path);
        r.body = body.into();
        r
    }
    /// An OPTIONS request (a CORS preflight).
    pub fn new_options(path: &str) -> Req {
        Req::new("OPTIONS", path)
    }
    fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.into(),
            path: path.into(),
            client: IpAddr::from([127, 0, 0, 1]),
            headers: Vec::new(),
            body: Vec::new(),
            body_breaks: false,
        }
    }
    /// A request with any method and target, such as `OPTIONS *` (`Req::new_any("OPTIONS",
    /// "*")`); a target that does not start with `/` is sent as written.
    pub fn new_any(method: &str, target: &str) -> Req {
        Req::new(method, target)
    }
    /// With a body that breaks off after its bytes (the client's connection fails).
    pub fn body_breaks(mut self) -> Req {
        self.body_breaks = true;
        self
    }
    /// From this client address.
    pub fn from(mut self, ip: &str) -> Req {
        self.client = ip
            .parse()
            .unwrap_or_else(|e| panic!("bad test address {ip}: {e}"));
        self
    }
    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.as_bytes().to_vec()));
        self
    }
    /// With a header of raw bytes (which need not be UTF-8).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Req {
        self.headers.push((name.into(), value.to_vec()));
        self
    }
    /// As user `key` (the id cookie).
    pub fn user(self, key: &str) -> Req {
        self.header("cookie", &format!("ef_uid={key}"))
    }
    /// Allowed to see the edge's debug headers (instance ordinal and memory, store and
    /// profile lookups in `Server-Timing`): with a preview token that changes nothing,
    /// unless the request carries a preview token already.
    pub fn debug(self) -> Req {
        if self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("edgeflags-preview"))
        {
            return self;
        }
        self.header("edgeflags-preview", &debug_token())
    }
}

/// A preview token that changes nothing (no place, clock or variant), signed with the
/// local dev key for an hour: it lets a request see the edge's debug headers.
pub fn debug_token() -> String {
    let secrets: BTreeMap<String, String> =
        std::fs::read_to_string(root().join("config-store/secrets.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
    let key = secrets.get("preview_key").cloned().unwrap_or_default();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + 3600;
    let claims = edgeflags_engine::preview::Claims {
        exp,
        ..Default::default()
    };
    edgeflags_engine::preview::mint(&claims, key.as_bytes())
}

/// A response from the edge.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
    /// Body bytes, as received.
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The first header of a name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Every header of a name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
    /// What the echo origin received (from its JSON body).
    pub fn origin_saw(&self) -> serde_json::Value {
        self.json()
    }
    /// The variant the origin was told for `flag` (from `edgeflags-decisions`).
    pub fn decision(&self, flag: &str) -> Option<String> {
        let saw = self.origin_saw();
        let header = saw["headers"]["edgeflags-decisions"].as_str()?.to_string();
        header.split("; ").find_map(|d| {
            let (k, v) = d.split_once('=')?;
            (k == flag).then(|| v.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_specs_share_a_key_whatever_order_they_were_built_in() {
        assert_eq!(AppSpec::demo().key(), AppSpec::demo().key());
        let a = AppSpec::demo()
            .secret("one", "1")
            .secret("two", "2")
            .origin("origin_us", Behaviour::Status(500))
            .origin("origin_eu", Behaviour::Refuse);
        let b = AppSpec::demo()
            .origin("origin_eu", Behaviour::Refuse)
            .secret("two", "2")
            .origin("origin_us", Behaviour::Status(500))
            .secret("one", "1");
        assert_eq!(a.key(), b.key());
        let flags = |order: &[(&str, serde_json::Value)]| {
            let mut f = serde_json::Map::new();
            for (k, v) in order {
                f.insert((*k).to_string(), v.clone());
            }
            AppSpec::demo().store(Store::Flags(serde_json::Value::Object(f), None))
        };
        let (x, y) = (
            ("x", serde_json::json!(1)),
            ("y", serde_json::json!({"b": 2, "a": 1})),
        );
        assert_eq!(flags(&[x.clone(), y.clone()]).key(), flags(&[y, x]).key());
    }

    #[test]
    fn any_difference_in_a_spec_is_another_key() {
        let demo = AppSpec::demo();
        let mut flags = demo_flags();
        flags["flags"]["banner"]["on"] = serde_json::json!(false);
        let mut timeout = AppSpec::demo();
        timeout.first_byte_timeout = Duration::from_millis(1200);
        let entries = |v: &str| {
            AppSpec::demo().store(Store::Entries(BTreeMap::from([(
                "edgeflags.pointer".to_string(),
                v.to_string(),
            )])))
        };
        let variants = [
            AppSpec::demo().store(Store::Flags(flags.clone(), None)),
            AppSpec::demo().store(Store::Flags(demo_flags(), Some(b"key".to_vec()))),
            AppSpec::demo().store(Store::Missing),
            AppSpec::demo().store(Store::File(PathBuf::from("/tmp/store.json"))),
            entries("a"),
            entries("b"),
            AppSpec::demo().origin("origin_us", Behaviour::Status(500)),
            AppSpec::demo().origin("origin_us", Behaviour::Status(503)),
            AppSpec::demo().origin("origin_us", Behaviour::Hang(Duration::from_secs(4))),
            AppSpec::demo().secret("ofrep_token", "t1"),
            AppSpec::demo().secret("ofrep_token", "t2"),
            AppSpec::demo().profile("u1", "{}"),
            AppSpec::demo().without_profile_store(),
            timeout,
            AppSpec {
                wasm: Some(PathBuf::from("other.wasm")),
                ..AppSpec::demo()
            },
            AppSpec {
                stock_epoch: true,
                ..AppSpec::demo()
            },
        ];
        let mut keys = vec![demo.key()];
        keys.extend(variants.iter().map(AppSpec::key));
        let distinct: HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:#?}");
    }
}
