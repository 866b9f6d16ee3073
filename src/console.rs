//! The preview console at the edge (`/.edgeflags/console`, `/.edgeflags/preview/…`):
//! reads the links, cookies and forms, sets and clears the cookies, and serves the pages
//! that `edgeflags_engine::console` decides and renders. Without a valid console session
//! every console path is a 404; a forged or expired link is a 403; a form that fails the
//! cross-site checks is a 403; a bad field is the console again with the problem (400).

use edgeflags_engine::console::{
    self, CONSOLE_PATH, CSS_PATH, JS_PATH, LINK_PARAM, LOGIN_PATH, PREVIEW_COOKIE, PREVIEW_PATH,
    PREVIEW_TTL, SESSION_COOKIE, SHARE_PATH, STOP_PATH, Session, form, page,
};
use edgeflags_engine::preview;
use fastly::http::{Method, StatusCode};
use fastly::{Request, Response};

use crate::config::Loaded;
use crate::context::{self, RequestContext};
use crate::platform::{self, cookie, header, log_ops, read_body, secrets, status_page};

/// The largest console form accepted, in bytes.
const MAX_FORM: usize = 16 * 1024;

/// Whether `path` is one of the console's.
pub fn owns(path: &str) -> bool {
    path == CONSOLE_PATH
        || path.starts_with("/.edgeflags/console/")
        || path.starts_with("/.edgeflags/preview/")
}

/// Answers a request for one of the console's paths.
pub fn handle(req: Request, loaded: &Loaded) -> Response {
    let key = platform::secret(secrets::PREVIEW_KEY);
    let now = platform::now();
    let path = req.get_path().to_string();
    let method = req.get_method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        LOGIN_PATH if get => login(&req, key.as_deref(), now.timestamp()),
        SHARE_PATH if get => share(&req, key.as_deref(), now.timestamp()),
        STOP_PATH if method == Method::POST => stop(req, key.as_deref()),
        LOGIN_PATH | SHARE_PATH | STOP_PATH => not_allowed(),
        _ => {
            let session = cookie(&req, SESSION_COOKIE)
                .map(|c| console::verify_session(c, key.as_deref(), now.timestamp()));
            if let Some(Err(e)) = &session {
                log_ops("console", &format!("console session refused: {e}"));
            }
            let (Some(Ok(session)), Some(key)) = (session, key) else {
                return status_page(StatusCode::NOT_FOUND, "Not found.");
            };
            match path.as_str() {
                CONSOLE_PATH if get => page(&req, loaded, &session, &key, None),
                PREVIEW_PATH if method == Method::POST => set_preview(req, loaded, &session, &key),
                CSS_PATH if get => asset(page::CSS, "text/css; charset=utf-8"),
                JS_PATH if get => asset(page::JS, "text/javascript; charset=utf-8"),
                CONSOLE_PATH | PREVIEW_PATH | CSS_PATH | JS_PATH => not_allowed(),
                _ => status_page(StatusCode::NOT_FOUND, "Not found."),
            }
        }
    }
}

/// A response of the console's own, with its security headers.
fn secured(status: StatusCode, content_type: &str, body: String) -> Response {
    let mut resp = Response::from_status(status)
        .with_header("content-type", content_type)
        .with_body(body);
    for (name, value) in console::SECURITY_HEADERS {
        resp.set_header(name, value);
    }
    resp
}

fn asset(text: &str, content_type: &str) -> Response {
    secured(StatusCode::OK, content_type, text.to_string())
}

fn not_allowed() -> Response {
    status_page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// A `303 See Other` to one of the edge's own paths.
fn see_other(path: &'static str) -> Response {
    let mut resp = secured(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    resp.set_header("location", path);
    resp
}

fn link_token(req: &Request) -> Option<String> {
    req.get_query_str()
        .filter(|q| q.len() <= 8192)
        .and_then(|_| req.get_query_parameter(LINK_PARAM))
        .map(str::to_string)
}

fn refused(what: &str, why: &dyn std::fmt::Display) -> Response {
    log_ops("console", &format!("{what} refused: {why}"));
    secured(
        StatusCode::FORBIDDEN,
        "text/plain; charset=utf-8",
        format!("403 Forbidden\nThis {what} is not valid or has expired: ask for a new one.\n"),
    )
}

/// The login link: a valid one sets the session cookie and opens the console from the
/// edge's own origin.
fn login(req: &Request, key: Option<&[u8]>, now: i64) -> Response {
    let token = link_token(req).unwrap_or_default();
    let (login, key) = match console::verify_login(&token, key, now) {
        Ok(l) => (l, key.unwrap_or_default()),
        Err(e) => return refused("console link", &e),
    };
    let session = console::session_for(&login, &platform::random_id());
    let mut resp = secured(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page::bounce(CONSOLE_PATH, "Signed in to the edgeflags console."),
    );
    resp.append_header(
        "set-cookie",
        console::set_cookie(
            SESSION_COOKIE,
            &console::mint_session(&session, key),
            login.exp - now,
        ),
    );
    resp
}

/// A share link: a valid one sets the same preview cookie and opens the site's home page
/// from the edge's own origin.
fn share(req: &Request, key: Option<&[u8]>, now: i64) -> Response {
    let token = link_token(req).unwrap_or_default();
    let (claims, key) = match console::verify_share(&token, key, now) {
        Ok(c) => (c, key.unwrap_or_default()),
        Err(e) => return refused("share link", &e),
    };
    let mut resp = secured(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page::bounce("/", "Preview set."),
    );
    resp.append_header(
        "set-cookie",
        console::set_cookie(
            PREVIEW_COOKIE,
            &preview::mint(&claims, key),
            claims.exp - now,
        ),
    );
    resp
}

/// Whether a POST came from the edge's own pages.
fn same_origin(req: &Request) -> bool {
    console::same_origin(
        header(req, "sec-fetch-site"),
        header(req, "origin"),
        header(req, "host"),
    )
}

/// "Stop": clears the preview cookie, when the form carries that cookie's stop token.
fn stop(mut req: Request, key: Option<&[u8]>) -> Response {
    let fields = match read_body(&mut req, MAX_FORM) {
        Ok(b) => form::fields(&b),
        Err(e) => return e.page(),
    };
    let given = fields.get("stop").map(String::as_str).unwrap_or_default();
    let preview_cookie = cookie(&req, PREVIEW_COOKIE).unwrap_or_default();
    let valid = key.is_some_and(|k| console::check_stop(preview_cookie, k, given));
    if !same_origin(&req) || !valid {
        log_ops("console", "stop refused: not from a page of this preview");
        return status_page(StatusCode::FORBIDDEN, "This stop request was refused.");
    }
    let back = if fields.get("back").is_some_and(|b| b == "console") {
        CONSOLE_PATH
    } else {
        "/"
    };
    let mut resp = see_other(back);
    resp.append_header("set-cookie", console::clear_cookie(PREVIEW_COOKIE));
    resp
}

/// The console's form: checked for the session's CSRF token and the origin, then turned
/// into a preview cookie.
fn set_preview(mut req: Request, loaded: &Loaded, session: &Session, key: &[u8]) -> Response {
    let fields = match read_body(&mut req, MAX_FORM) {
        Ok(b) => form::fields(&b),
        Err(e) => return e.page(),
    };
    let csrf = fields.get("csrf").map(String::as_str).unwrap_or_default();
    if !same_origin(&req) || !console::check_csrf(session, key, csrf) {
        log_ops("console", "preview form refused: CSRF check failed");
        return status_page(
            StatusCode::FORBIDDEN,
            "The form was not sent from this console (cross-site request refused).",
        );
    }
    let rc = crate::traits::request_context(&req, loaded, false);
    let now = platform::now();
    let claims = form::claims(
        &fields,
        loaded.snapshot.as_deref(),
        rc.ctx.zone(),
        now,
        now.timestamp() + PREVIEW_TTL,
    );
    match claims {
        Ok(claims) => {
            let mut resp = see_other(CONSOLE_PATH);
            resp.append_header(
                "set-cookie",
                console::set_cookie(PREVIEW_COOKIE, &preview::mint(&claims, key), PREVIEW_TTL),
            );
            resp
        }
        Err(e) => page(&req, loaded, session, key, Some(&e.to_string())),
    }
}

/// The console page for this request (its preview applied), with `error` shown.
fn page(
    req: &Request,
    loaded: &Loaded,
    session: &Session,
    key: &[u8],
    error: Option<&str>,
) -> Response {
    let rc: RequestContext = crate::traits::request_context(req, loaded, false);
    let csrf = console::csrf_token(session, key);
    // The stop token and share link exist for a preview that came from the cookie.
    let from_cookie = rc.preview
        && context::preview(req).map(|p| p.token).as_deref() == cookie(req, PREVIEW_COOKIE);
    let preview_cookie = cookie(req, PREVIEW_COOKIE).filter(|_| from_cookie);
    let stop = preview_cookie.map(|c| console::stop_token(c, key));
    let share = rc.claims.as_ref().filter(|_| from_cookie).map(|c| {
        let scheme = if req.get_url_str().starts_with("https:") {
            "https"
        } else {
            "http"
        };
        let host = header(req, "host").unwrap_or("localhost");
        format!("{scheme}://{host}{}", console::share_path(c, key))
    });
    let html = page::console(&page::View {
        snapshot: loaded.snapshot.as_deref(),
        version: &loaded.version,
        ctx: &rc.ctx,
        now: rc.now,
        traits: &rc.traits,
        session,
        csrf: &csrf,
        preview: rc.claims.as_ref(),
        stop: stop.as_deref(),
        share: share.as_deref(),
        error,
    });
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = secured(status, "text/html; charset=utf-8", html);
    if let Some(id) = &rc.new_id {
        platform::set_id_cookie(&mut resp, id);
    }
    resp
}

/// The toolbar for a previewed page, when the request carries a valid preview: the stop
/// button when the preview came from the cookie, the console link when the browser has a
/// console session cookie.
pub fn toolbar(req: &Request, rc: &RequestContext) -> Option<String> {
    let claims = rc.claims.as_ref()?;
    let preview_cookie = cookie(req, PREVIEW_COOKIE)
        .filter(|c| context::preview(req).map(|p| p.token).as_deref() == Some(*c));
    let stop = preview_cookie
        .and_then(|c| platform::secret(secrets::PREVIEW_KEY).map(|k| console::stop_token(c, &k)));
    Some(page::toolbar(
        claims,
        stop.as_deref(),
        cookie(req, SESSION_COOKIE).is_some(),
    ))
}
