//! The preview console in headless Chromium (Debian's `chromium`, driven by
//! `tests/browser/console.mjs` through puppeteer-core): the edge in Viceroy served over
//! TCP as `http://localhost:PORT`, and a second local server as the "other site" at
//! `http://127.0.0.1:PORT2` (another site for `SameSite`: the host differs, the port never
//! counts), whose links a person clicks as from chat or e-mail. `scripts/test` installs
//! chromium and the node packages when they are missing. Screenshots go to
//! `tests/browser/screenshots/` (git-ignored).

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Command;

use edgeflags_e2e::{cli_binary, root, runtime};
use edgeflags_engine::console::{self, Login};
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};

use crate::console::demo_app;

const DEV_KEY: &[u8] = b"dev-preview-key-not-for-production";

/// The browser: `EDGEFLAGS_CHROMIUM`, else Debian's.
fn chromium() -> PathBuf {
    std::env::var_os("EDGEFLAGS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The other site: `/?to=URL` is a page with one link to URL (`#go`); `/?post=URL` a
/// page with a form that posts a preview to URL (`#send`, as a forged cross-site form
/// would).
fn start_other_site() -> std::net::SocketAddr {
    let _guard = runtime().enter();
    let make = make_service_fn(|_| async {
        Ok::<_, Infallible>(service_fn(|req: Request<Body>| async move {
            let query = req.uri().query().unwrap_or_default();
            let param = |name: &str| url_param(query, name).map(|v| console::html::escape(&v));
            let body = if let Some(to) = param("post") {
                format!(
                    "<form method=\"post\" action=\"{to}\"><input type=\"hidden\" name=\"csrf\" value=\"guess\">\
                     <input type=\"hidden\" name=\"place\" value=\"Paris, FR\"><button id=\"send\">win a prize</button></form>"
                )
            } else {
                let to = param("to").unwrap_or_default();
                format!("<p>A teammate wrote: <a id=\"go\" href=\"{to}\">open this</a></p>")
            };
            let page = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>another site</title></head>\
                 <body>{body}</body></html>"
            );
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Body::from(page))
                    .unwrap_or_default(),
            )
        }))
    });
    let server = Server::bind(&([127, 0, 0, 1], 0).into()).serve(make);
    let addr = server.local_addr();
    runtime().spawn(server);
    addr
}

/// A query parameter, percent-decoded.
fn url_param(query: &str, name: &str) -> Option<String> {
    let fields = console::form::fields(query.as_bytes());
    fields.get(name).cloned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn a_qa_person_previews_tokyo_shares_it_and_stops_in_chromium() {
    let dir = root().join("tests/browser");
    assert!(
        dir.join("node_modules/puppeteer-core").exists(),
        "puppeteer-core is not installed: run scripts/test (it runs npm ci in tests/browser)"
    );
    assert!(
        chromium().exists(),
        "no chromium at {}: run scripts/test (it installs Debian's chromium), or set EDGEFLAGS_CHROMIUM",
        chromium().display()
    );
    let app = demo_app();
    let edge = app
        .serve_http()
        .unwrap_or_else(|e| panic!("cannot serve the edge: {e}"));
    let base = format!("http://localhost:{}", edge.port());
    let other = start_other_site();
    // The login link as a person gets it: from the CLI.
    let out = Command::new(cli_binary())
        .current_dir(root())
        .args([
            "console-link",
            "--ttl",
            "1h",
            "--user",
            "qa",
            "--base",
            &base,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the CLI: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let forged = format!(
        "{base}{}",
        console::login_path(
            &Login {
                sub: "qa".into(),
                exp: now() + 3600
            },
            b"not-the-key"
        )
    );
    let expired = format!(
        "{base}{}",
        console::login_path(
            &Login {
                sub: "qa".into(),
                exp: now() - 60
            },
            DEV_KEY
        )
    );
    let tokyo = edgeflags_engine::preview::Claims {
        exp: now() + 3600,
        country: Some("JP".into()),
        city: Some("Tokyo".into()),
        ..Default::default()
    };
    let forged_share = format!("{base}{}", console::share_path(&tokyo, b"not-the-key"));
    let expired_share = format!(
        "{base}{}",
        console::share_path(
            &edgeflags_engine::preview::Claims {
                exp: now() - 60,
                ..tokyo.clone()
            },
            DEV_KEY
        )
    );
    let shots = dir.join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{e}"));
    let run = Command::new("node")
        .current_dir(&dir)
        .arg("console.mjs")
        .env("EDGE", &base)
        .env("OTHER", format!("http://{other}"))
        .env("LOGIN", &login)
        .env("FORGED", &forged)
        .env("EXPIRED", &expired)
        .env("FORGED_SHARE", &forged_share)
        .env("EXPIRED_SHARE", &expired_share)
        .env("SHOTS", &shots)
        .env("CHROMIUM", chromium())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    // Both pipes are read together (`output`), so a chatty stderr cannot stall it.
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    let status = run.status;
    assert!(status.success(), "the browser test failed:\n{out}\n{err}");
    assert!(out.contains("browser: done"), "{out}");
    assert!(shots.join("console.png").exists());
}
