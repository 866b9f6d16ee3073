//! The deploy rehearsal: the real Fastly CLI (the pinned npm package that scripts/test
//! installs) builds this project from a plain shell, deploys it with
//! `compute deploy --non-interactive --status-check-off` to a local stand-in for Fastly's
//! API (`platform`), then `edgeflags push` writes the flags into the config store that the
//! deploy created, and a second deploy of the same service uploads a new package and
//! creates nothing. The CLI runs with a sandboxed `HOME` and no project variables; its HTTPS
//! traffic anywhere else goes to the stand-in as a proxy, which refuses it.

#![cfg(unix)]

mod common;
mod config_store;
mod platform;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use platform::{Call, Platform, State, Store, TOKEN, Version};

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target directory this test was built in (`<target>/debug/deps/deploy-*`): the
/// shared cache under scripts/test, where the end-to-end tests' wasm is.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("unexpected test path {}", exe.display()))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

/// The stand-in API, a sandbox home, and the Fastly CLI.
struct Rehearsal {
    api: common::Running<Platform>,
    fastly: PathBuf,
    home: PathBuf,
    _sandbox: tempfile::TempDir,
}

impl Rehearsal {
    fn start() -> Rehearsal {
        let fastly = std::env::var_os("EDGEFLAGS_FASTLY_CLI")
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "the Fastly CLI is not installed: run scripts/test (it installs the pinned \
                     npm package and sets EDGEFLAGS_FASTLY_CLI)"
                )
            });
        let sandbox = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let home = sandbox.path().join("home");
        // A plain shell's build cache is ~/.cache/edgeflags/target (scripts/env.sh): here,
        // the one this test was built in, so the build reuses it.
        let cache = home.join(".cache/edgeflags");
        std::fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(target_dir(), cache.join("target"))
            .unwrap_or_else(|e| panic!("{e}"));
        Rehearsal {
            api: common::serve(platform::answer),
            fastly,
            home,
            _sandbox: sandbox,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.api.addr)
    }

    /// Runs the Fastly CLI in `dir` as from a plain shell: no project variables, its own
    /// `HOME` (its config goes to `$HOME/.config/fastly`) but the real Rust toolchain.
    fn fastly(&self, dir: &Path, args: &[&str]) -> Output {
        let real_home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let from_env = |name: &str, default: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .unwrap_or_else(|| real_home.join(default))
        };
        Command::new(&self.fastly)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CARGO_HOME", from_env("CARGO_HOME", ".cargo"))
            .env("RUSTUP_HOME", from_env("RUSTUP_HOME", ".rustup"))
            .env("FASTLY_API_TOKEN", TOKEN)
            .env("FASTLY_API_ENDPOINT", self.url())
            .env("FASTLY_ACCOUNT_ENDPOINT", self.url())
            .env("HTTPS_PROXY", self.url())
            // Skips the once-only notice about build metadata (a 5 s pause); the metadata
            // needs wasm-tools, which the CLI cannot download here anyway.
            .env("FASTLY_WASM_METADATA_DISABLE", "true")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.fastly.display()))
    }

    /// Runs the Fastly CLI and fails with its output unless it succeeds.
    fn fastly_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.fastly(dir, args);
        let shown = text(&out);
        assert!(
            out.status.success(),
            "fastly {}:\n{shown}\nthe requests so far:\n{}",
            args.join(" "),
            show(&self.calls())
        );
        shown
    }

    fn state(&self) -> std::sync::MutexGuard<'_, platform::State> {
        self.api.state.state()
    }

    fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }
}

fn show(calls: &[Call]) -> String {
    calls
        .iter()
        .map(|c| match &c.query {
            Some(q) => format!("  {} {}?{q}\n", c.method, c.path),
            None => format!("  {} {}\n", c.method, c.path),
        })
        .collect()
}

fn names(stores: &[Store]) -> BTreeSet<String> {
    stores.iter().map(|s| s.name.clone()).collect()
}

/// The names under `[setup.<table>]` of fastly.toml.
fn setup_names(manifest: &toml::Table, table: &str) -> BTreeSet<String> {
    manifest
        .get("setup")
        .and_then(|s| s.get(table))
        .and_then(|t| t.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// The deploy the README describes, as CI would run it (the availability check polls the
/// new domain, which cannot answer here).
const DEPLOY: &[&str] = &[
    "compute",
    "deploy",
    "--non-interactive",
    "--status-check-off",
];

/// `fastly compute build` in the checkout, from a plain shell: the CLI copies the wasm from
/// where `cargo metadata` says (./target without CARGO_TARGET_DIR). Returns the wasm the
/// end-to-end tests run, which bin/main.wasm must be. The local store is packed first, as
/// scripts/serve does, with the CLI this run built (the build script then leaves it).
fn build(r: &Rehearsal, root: &Path) -> Vec<u8> {
    let pack = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args(["pack", "config-store/flags.json"])
        .args(["--store", "config-store/edgeflags.json"])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pack.status.success(), "{}", text(&pack));
    std::fs::File::options()
        .write(true)
        .open(root.join("config-store/edgeflags.json"))
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .unwrap_or_else(|e| panic!("cannot touch the local store: {e}"));
    r.fastly_ok(root, &["compute", "build", "--non-interactive"]);
    eprintln!("the build, the requests:\n{}", show(&r.calls()));
    let built = read(&target_dir().join("wasm32-wasip1/release/edgeflags-edge.wasm"));
    assert!(
        read(&root.join("bin/main.wasm")) == built,
        "bin/main.wasm is not the wasm the tests run"
    );
    built
}

/// Version `v` has every backend of `[setup]` (at its address and port, TLS checked against
/// that name) and so every backend the flag file routes to, a domain, and a link to every
/// store, which are the stores of `[setup]` and the ones the edge opens.
fn assert_setup_deployed(
    manifest: &toml::Table,
    flags: &serde_json::Value,
    state: &State,
    v: &Version,
) {
    let backends = manifest
        .get("setup")
        .and_then(|s| s.get("backends"))
        .and_then(|b| b.as_table())
        .cloned()
        .unwrap_or_default();
    assert_eq!(v.backends.len(), backends.len(), "{:?}", v.backends);
    for (name, spec) in &backends {
        let b = v
            .backends
            .iter()
            .find(|b| b.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("backend {name} missing: {:?}", v.backends));
        let address = spec.get("address").and_then(|a| a.as_str());
        assert_eq!(b.address.as_deref(), address, "{name}");
        assert_eq!(
            b.port.map(i64::from),
            spec.get("port").and_then(|p| p.as_integer()),
            "{name}"
        );
        assert_eq!(b.ssl_cert_hostname.as_deref(), address, "{name}");
        assert_eq!(b.ssl_sni_hostname.as_deref(), address, "{name}");
    }
    let routes = &flags["routes"];
    let routed = std::iter::once(&routes["default"])
        .chain(routes["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["backend"].as_str())
        .chain(routes["fallback"].as_str());
    for backend in routed {
        assert!(
            backends.contains_key(backend),
            "no backend {backend} is deployed"
        );
    }

    // The stores the edge opens (src/main.rs, src/traits.rs), as [setup] names them.
    let expect = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    for (kind, created, edge) in [
        ("config_stores", &state.config_stores, ["edgeflags"]),
        ("kv_stores", &state.kv_stores, ["edgeflags_profiles"]),
        ("secret_stores", &state.secret_stores, ["edgeflags_secrets"]),
    ] {
        assert_eq!(names(created), setup_names(manifest, kind), "{kind}");
        assert_eq!(names(created), expect(&edge), "{kind}");
    }
    let stores: Vec<&Store> = state
        .config_stores
        .iter()
        .chain(&state.kv_stores)
        .chain(&state.secret_stores)
        .collect();
    assert_eq!(v.links.len(), stores.len(), "{:?}", v.links);
    for store in stores {
        assert!(
            v.links
                .iter()
                .any(|l| l.name.as_deref() == Some(&store.name)
                    && l.resource_id.as_deref() == Some(&store.id)),
            "store {} is not linked: {:?}",
            store.name,
            v.links
        );
    }

    assert_eq!(v.domains.len(), 1);
    assert!(
        v.domains[0]
            .name
            .as_deref()
            .is_some_and(|d| d.ends_with(".edgecompute.app")),
        "{:?}",
        v.domains
    );
}

#[test]
fn fastly_compute_deploy_creates_the_service_of_setup_and_push_fills_its_config_store() {
    let r = Rehearsal::start();
    let root = root();
    let manifest_text = std::fs::read_to_string(root.join("fastly.toml"))
        .unwrap_or_else(|e| panic!("fastly.toml: {e}"));
    let manifest: toml::Table = manifest_text.parse().unwrap_or_else(|e| panic!("{e}"));
    let flags_text =
        std::fs::read_to_string(root.join("config-store/flags.json")).unwrap_or_default();
    let flags: serde_json::Value = serde_json::from_str(&flags_text).unwrap_or_default();

    // 1. Build in the checkout, from a plain shell.
    let built = build(&r, &root);

    // 2. The first deploy, on a copy of the project (deploy writes service_id into it).
    let project = r.home.join("project");
    for file in ["fastly.toml", "pkg/edgeflags.tar.gz", "bin/main.wasm"] {
        copy(&root.join(file), &project.join(file));
    }
    let before = r.calls().len();
    let first = r.fastly_ok(&project, DEPLOY);
    let calls = r.calls().split_off(before);
    eprintln!("the first deploy, the requests:\n{}", show(&calls));
    let state = r.state();
    assert_eq!(state.services.len(), 1, "one service: {first}");
    let service = state.services[0].clone();
    assert_eq!(
        (
            service.name.as_str(),
            service.kind.as_str(),
            service.deleted
        ),
        ("edgeflags", "wasm", false)
    );
    let deployed = format!("Deployed package (service {}, version 1)", service.id);
    assert!(first.contains(&deployed), "{first}");
    let v1 = &service.versions[0];
    assert!(v1.active && v1.locked, "version 1 was activated");
    assert_setup_deployed(&manifest, &flags, &state, v1);
    // Log endpoints are only named: the CLI prints them and creates none.
    for endpoint in setup_names(&manifest, "log_endpoints") {
        assert!(
            first.contains(&endpoint),
            "log endpoint {endpoint}: {first}"
        );
    }
    assert!(!calls.iter().any(|c| c.path.contains("/logging/")));
    // The package holds the built wasm and the manifest; it was uploaded before the
    // activation, the last write.
    let files = platform::package_files(v1.package.as_deref().unwrap_or_default());
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["edgeflags/bin/main.wasm", "edgeflags/fastly.toml"]
    );
    assert!(
        files["edgeflags/bin/main.wasm"] == built,
        "the package holds another wasm"
    );
    assert_eq!(files["edgeflags/fastly.toml"], manifest_text.as_bytes());
    let at = |method: &str, suffix: &str| {
        calls
            .iter()
            .position(|c| c.method == method && c.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {method} …{suffix}:\n{}", show(&calls)))
    };
    let activated = at("PUT", "/version/1/activate");
    assert!(at("PUT", "/version/1/package") < activated);
    assert!(
        calls[activated + 1..]
            .iter()
            .all(|c| c.method == "GET" || c.method == "CONNECT"),
        "writes after the activation:\n{}",
        show(&calls)
    );
    // The new service id went into the copy, not the checkout.
    let copied = std::fs::read_to_string(project.join("fastly.toml")).unwrap_or_default();
    assert!(
        copied.contains(&format!("service_id = \"{}\"", service.id)),
        "{copied}"
    );
    let checkout = std::fs::read_to_string(root.join("fastly.toml")).unwrap_or_default();
    assert_eq!(checkout, manifest_text);
    let config_store = state.config_stores[0].id.clone();
    drop(state);

    // 3. `edgeflags push` writes the flags into the config store the deploy created.
    let before = r.calls().len();
    let push = Command::new(env!("CARGO_BIN_EXE_edgeflags"))
        .args([
            "push",
            "config-store/flags.json",
            "--store-id",
            &config_store,
        ])
        .args(["--api-url", &r.url()])
        .env("FASTLY_API_TOKEN", TOKEN)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(push.status.success(), "{}", text(&push));
    eprintln!(
        "edgeflags push, the requests:\n{}",
        show(&r.calls()[before..])
    );
    let items = r.state().config_stores[0].items.clone();
    let live = edgeflags_engine::pack::read(|k| items.get(k).cloned(), None)
        .result
        .map(|l| l.version)
        .unwrap_or_else(|e| panic!("the store holds no readable snapshot: {e:?}"));
    let compiled = edgeflags_engine::compile_str(&flags_text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(live, compiled.fingerprint().to_string());

    // 4. A second deploy: the manifest now names the service, so the package (packed again
    // with that manifest) differs; the active version is cloned, the new package uploaded
    // to the clone and the clone activated, and nothing is created.
    r.fastly_ok(
        &project,
        &["compute", "pack", "--wasm-binary", "bin/main.wasm"],
    );
    let before = r.calls().len();
    let second = r.fastly_ok(&project, DEPLOY);
    let calls = r.calls().split_off(before);
    eprintln!("the second deploy, the requests:\n{}", show(&calls));
    let deployed = format!("Deployed package (service {}, version 2)", service.id);
    assert!(second.contains(&deployed), "{second}");
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "POST" || c.method == "DELETE"),
        "the second deploy created or deleted something:\n{}",
        show(&calls)
    );
    let state = r.state();
    assert_eq!(state.services.len(), 1);
    let service = &state.services[0];
    let (v1, v2) = (&service.versions[0], &service.versions[1]);
    assert!(
        !v1.active && v2.active && v2.locked,
        "version 2 replaced version 1"
    );
    assert_setup_deployed(&manifest, &flags, &state, v2);
    let files = platform::package_files(v2.package.as_deref().unwrap_or_default());
    assert!(files.get("edgeflags/bin/main.wasm") == Some(&built));
    let packed = String::from_utf8_lossy(&files["edgeflags/fastly.toml"]).into_owned();
    assert!(packed.contains(&service.id), "{packed}");

    let elsewhere: BTreeSet<String> = state
        .calls
        .iter()
        .filter(|c| c.method == "CONNECT")
        .map(|c| c.path.clone())
        .collect();
    eprintln!("HTTPS elsewhere, refused: {elsewhere:?}");
}
