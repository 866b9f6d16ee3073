//! The preview console's wiring in the real wasm: login link to session cookie, the 404
//! without one, CSRF and origin checks on its forms, the preview cookie it sets, the
//! share and stop links, its security headers, and the toolbar on previewed HTML pages
//! only. (The rules themselves are tested natively in `edgeflags_engine::console`; the
//! browser test in `browser.rs` clicks through the same pages in Chromium.)

use std::sync::Arc;

use edgeflags_e2e::{App, AppSpec, Behaviour, Reply, Req, app};
use edgeflags_engine::console::{self, Login};
use edgeflags_engine::preview::{self, Claims};

const DEV_KEY: &[u8] = b"dev-preview-key-not-for-production";
const HOST: &str = "edge.test";

/// The demo app with the demo origins (the spec the browser test and `hostile.rs` use,
/// so the context is shared).
pub fn demo_app() -> Arc<App> {
    app(AppSpec::demo()
        .origin("origin_us", Behaviour::Demo("us"))
        .origin("origin_eu", Behaviour::Demo("eu"))
        .origin("origin_apac", Behaviour::Demo("apac"))
        .origin("origin_sa", Behaviour::Demo("sa")))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The value a `Set-Cookie` of the reply gives `name`, with the whole header.
fn set_cookie<'r>(r: &'r Reply, name: &str) -> Option<(&'r str, &'r str)> {
    r.headers_named("set-cookie").into_iter().find_map(|h| {
        let value = h.strip_prefix(&format!("{name}="))?;
        Some((value.split(';').next().unwrap_or_default(), h))
    })
}

/// Logs in with a fresh link and returns the session cookie's value.
fn log_in(app: &App) -> String {
    let login = Login {
        sub: "qa".into(),
        exp: now() + 3600,
    };
    let r = app.send(Req::get(&console::login_path(&login, DEV_KEY)).header("host", HOST));
    assert_eq!(r.status, 200, "{}", r.body);
    let (value, header) = set_cookie(&r, console::SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no session cookie: {:?}", r.headers));
    assert!(
        header.ends_with("; HttpOnly; Secure; SameSite=Strict") && header.contains("Path=/;"),
        "{header}"
    );
    // The page opens the console from the edge's own origin.
    assert!(
        r.body
            .contains("http-equiv=\"refresh\" content=\"0; url=/.edgeflags/console\""),
        "{}",
        r.body
    );
    value.to_string()
}

fn console_get(app: &App, cookies: &str) -> Reply {
    app.send(
        Req::get(console::CONSOLE_PATH)
            .header("host", HOST)
            .header("cookie", cookies),
    )
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

fn post_form(app: &App, path: &str, cookies: &str, form: &str, origin: Option<&str>) -> Reply {
    let mut req = Req::post(path, form.as_bytes().to_vec())
        .header("host", HOST)
        .header("cookie", cookies)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    app.send(req)
}

#[test]
fn without_a_valid_login_the_console_is_a_404_and_bad_links_are_refused() {
    let app = demo_app();
    for path in [
        console::CONSOLE_PATH,
        console::CSS_PATH,
        console::JS_PATH,
        "/.edgeflags/console/anything",
    ] {
        let r = app.send(Req::get(path));
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    // No preview cookie without a login: the form's POST is a 404 too.
    let r = post_form(&app, console::PREVIEW_PATH, "", "place=Paris%2C+FR", None);
    assert_eq!(r.status, 404);
    assert!(r.headers_named("set-cookie").is_empty());
    // A session cookie sealed with another key, or a preview token as a session.
    let other = console::mint_session(
        &console::session_for(
            &Login {
                sub: "x".into(),
                exp: now() + 60,
            },
            "sid",
        ),
        b"another-key",
    );
    let as_preview = preview::mint(
        &Claims {
            exp: now() + 60,
            ..Claims::default()
        },
        DEV_KEY,
    );
    for cookie in [other, as_preview] {
        let r = console_get(&app, &format!("ef_console={cookie}"));
        assert_eq!(r.status, 404);
    }
    // Forged and expired login and share links: 403, and no cookie.
    let expired = console::login_path(
        &Login {
            sub: "qa".into(),
            exp: now() - 1,
        },
        DEV_KEY,
    );
    let forged = console::login_path(
        &Login {
            sub: "qa".into(),
            exp: now() + 60,
        },
        b"guess",
    );
    let share = console::share_path(
        &Claims {
            exp: now() + 60,
            ..Claims::default()
        },
        b"guess",
    );
    for link in [
        expired,
        forged,
        share,
        "/.edgeflags/console/login?t=x.y".into(),
    ] {
        let r = app.send(Req::get(&link));
        assert_eq!(r.status, 403, "{link}");
        assert!(r.headers_named("set-cookie").is_empty(), "{link}");
    }
    assert!(
        app.log_json("edgeflags_ops").iter().any(
            |l| l["area"] == "console" && l["message"] == "console link refused: bad signature"
        )
    );
}

#[test]
fn the_console_sets_a_preview_only_from_its_own_form() {
    let app = demo_app();
    let session = log_in(&app);
    let cookies = format!("ef_uid=console-visitor; ef_console={session}");
    let page = console_get(&app, &cookies);
    assert_eq!(page.status, 200);
    for (name, value) in console::SECURITY_HEADERS {
        assert_eq!(page.header(name), Some(value), "{name}");
    }
    let csrf = csrf_of(&page.body);
    assert_eq!(csrf.len(), 32, "{}", page.body);
    // No secret of the edge is ever on the page.
    let secrets: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(edgeflags_e2e::root().join("config-store/secrets.json"))
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    for (name, value) in secrets.as_object().into_iter().flatten() {
        let value = value.as_str().unwrap_or("?");
        assert!(!page.body.contains(value), "secret {name} on the page");
    }

    let form = format!(
        "csrf={csrf}&place=Tokyo%2C+JP+%28Asia%2FTokyo%29&at=2026-11-28T10%3A00&device=&traits=&v.checkout=v2"
    );
    // Without the token, with another session's token, or from another origin: refused.
    let no_token = form.replacen(&csrf, "", 1);
    let r = post_form(&app, console::PREVIEW_PATH, &cookies, &no_token, None);
    assert_eq!(r.status, 403);
    let other_session = log_in(&app);
    let r = post_form(
        &app,
        console::PREVIEW_PATH,
        &format!("ef_console={other_session}"),
        &form,
        None,
    );
    assert_eq!(r.status, 403, "a token belongs to its session");
    let r = post_form(
        &app,
        console::PREVIEW_PATH,
        &cookies,
        &form,
        Some("http://127.0.0.1:9"),
    );
    assert_eq!(r.status, 403, "a POST from another origin");
    assert!(set_cookie(&r, console::PREVIEW_COOKIE).is_none());

    // From the console: a preview cookie, HttpOnly, Secure, SameSite=Strict.
    let r = post_form(
        &app,
        console::PREVIEW_PATH,
        &cookies,
        &form,
        Some("http://edge.test"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some(console::CONSOLE_PATH));
    let (token, header) = set_cookie(&r, console::PREVIEW_COOKIE)
        .unwrap_or_else(|| panic!("no preview cookie: {:?}", r.headers));
    assert!(header.contains("Max-Age=3600; HttpOnly; Secure; SameSite=Strict"));
    let claims = preview::verify(token, Some(DEV_KEY), now()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims.at.as_deref(), Some("2026-11-28T10:00:00+09:00"));
    assert!(claims.exp <= now() + 3600);

    // The console now shows the preview's decisions, a share link and a stop button.
    let cookies = format!("{cookies}; ef_preview={token}");
    let page = console_get(&app, &cookies);
    assert!(
        page.body
            .contains("Previewing: <strong>Tokyo, JP (Asia/Tokyo)")
    );
    assert!(
        page.body.contains("<td>checkout</td><td>v2</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<td>banner</td><td>weekend_sale</td>"));
    let share = page
        .body
        .split("id=\"share\" readonly size=\"60\" value=\"http://edge.test")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no share link: {}", page.body))
        .to_string();
    let r = app.send(Req::get(&share));
    assert_eq!(r.status, 200);
    let (shared, _) = set_cookie(&r, console::PREVIEW_COOKIE).unwrap_or_default();
    assert_eq!(
        preview::verify(shared, Some(DEV_KEY), now()).map(|c| c.variants),
        Ok(claims.variants.clone())
    );

    // An HTML page gets the toolbar; plain text does not; a visitor without a preview
    // gets none.
    let html = app.send(
        Req::get("/")
            .header("cookie", &cookies)
            .header("accept", "text/html"),
    );
    assert_eq!(html.status, 200);
    // The banner as the origin wrote it (the edge's content changes may add attributes).
    assert!(
        html.body.contains("<p id=\"banner\"")
            && html.body.contains(">週末セール：全品20%オフ</p>"),
        "{}",
        html.body
    );
    let bar = html
        .body
        .find("<div id=\"edgeflags-toolbar\"")
        .unwrap_or(usize::MAX);
    assert!(
        bar < html.body.find("</body>").unwrap_or(0),
        "toolbar before </body>: {}",
        html.body
    );
    assert!(html.body.contains("checkout=v2"));
    assert_eq!(html.header("cache-control"), Some("private, no-store"));
    // The demo page's strict policy, amended by exactly the toolbar's styles (the browser
    // test sees them apply in Chromium).
    let hashes: Vec<String> = console::page::TOOLBAR_STYLES
        .iter()
        .map(|s| console::csp::hash_source(s))
        .collect();
    assert_eq!(
        html.header("content-security-policy"),
        Some(&*format!(
            "{}; style-src-attr 'self' 'unsafe-hashes' {}",
            edgeflags_e2e::demo::DEMO_CSP,
            hashes.join(" ")
        ))
    );
    // Without a preview the page's policy is the origin's.
    let visitor = app.send(
        Req::get("/")
            .user("no-preview")
            .header("accept", "text/html"),
    );
    assert_eq!(
        visitor.header("content-security-policy"),
        Some(edgeflags_e2e::demo::DEMO_CSP)
    );
    let text = app.send(Req::get("/").header("cookie", &cookies));
    assert!(!text.body.contains("edgeflags-toolbar"));
    let plain = app.send(
        Req::get("/")
            .user("no-preview")
            .header("accept", "text/html"),
    );
    assert!(plain.body.contains("<h1 id=\"greeting\">"));
    assert!(!plain.body.contains("edgeflags-toolbar"));

    // Stop: only with the stop token of this preview cookie, from this origin.
    let stop = csrf_like(&html.body, "name=\"stop\" value=\"");
    let r = post_form(&app, console::STOP_PATH, &cookies, "stop=0000", None);
    assert_eq!(r.status, 403);
    let r = post_form(
        &app,
        console::STOP_PATH,
        &cookies,
        &format!("stop={stop}"),
        Some("http://elsewhere.test"),
    );
    assert_eq!(r.status, 403);
    let r = post_form(
        &app,
        console::STOP_PATH,
        &cookies,
        &format!("stop={stop}"),
        None,
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    assert!(
        set_cookie(&r, console::PREVIEW_COOKIE)
            .is_some_and(|(v, h)| v.is_empty() && h.contains("Max-Age=0")),
        "{:?}",
        r.headers
    );
}

fn csrf_like(page: &str, marker: &str) -> String {
    page.split(marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_console_reflects_nothing_unescaped() {
    let app = demo_app();
    let session = log_in(&app);
    let cookies = format!("ef_console={session}");
    let csrf = csrf_of(&console_get(&app, &cookies).body);
    let hostile = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let form = format!("csrf={csrf}&place={hostile}%2C+JP&at=&traits=a%3D{hostile}&v.{hostile}=x");
    let r = post_form(&app, console::PREVIEW_PATH, &cookies, &form, None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("role=\"alert\""), "{}", r.body);
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
    // A bad trait line is named, escaped.
    let form = format!("csrf={csrf}&traits={hostile}");
    let r = post_form(&app, console::PREVIEW_PATH, &cookies, &form, None);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<script>alert"));
}
