//! The page's Fastly I/O: one cached copy per URL and route in the Core Cache
//! (`fastly::cache::core`, a transaction per lookup, so production collapses concurrent
//! misses into one origin fetch), fragments fetched the same way, and the response
//! streamed to the client, through the engine's rewriter when the page is HTML and the
//! request's variants change it. Which changes apply, what may be stored and for how
//! long, the bootstrap and the charset are the engine's rules (`page`, `freshness`).
//!
//! The origin fetch under the cache is `set_pass(true)`, so Fastly's readthrough cache
//! does not keep a second copy. The stored object is the origin's body with its status
//! and headers as user metadata; `Vary` is honoured through the lookup's request
//! headers, and `Age` both ways (the origin's is the initial age, a hit reports its own).

use std::cell::OnceCell;
use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use edgeflags_engine::console::csp;
use edgeflags_engine::console::page::TOOLBAR_STYLES;
use edgeflags_engine::freshness::{self, HitForPass, Storage};
use edgeflags_engine::inject::BeforeBodyEnd;
use edgeflags_engine::page::{Plan, Rewriter};
use fastly::cache::core::{CacheKey, Transaction};
use fastly::http::body::StreamingBody;
use fastly::http::request::SendError;
use fastly::http::{HeaderName, HeaderValue, StatusCode};
use fastly::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::platform::{self, Call, count, log_ops};

/// The cache key sent to the origin (hex), so it can see what the edge caches by.
pub const CACHE_KEY_HEADER: &str = "edgeflags-cache-key";

/// What the edge's cache did for a page (`hit`, `miss (stored for N s)`, `pass (why)`).
pub const CACHE_HEADER: &str = "edgeflags-cache";

/// The largest fragment put into a page; a longer one is left out (and logged).
const MAX_FRAGMENT: usize = 256 * 1024;

/// Headers never stored with a cached page: hop-by-hop, and framing the host redoes.
const UNSTORED: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "set-cookie",
    "proxy-connection",
];

/// A stored response's status and headers (the cached object's user metadata).
#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    headers: Vec<(String, String)>,
}

/// A response on its way to the client: its body may still have to be copied into the
/// cache (`tee`) and rewritten.
pub struct Outgoing {
    /// The response (headers final once the handler is done).
    pub resp: Response,
    tee: Option<StreamingBody>,
    rewrite: Option<(Plan, &'static edgeflags_engine::page::Encoding)>,
    /// The preview toolbar, put before `</body>` as the page streams.
    toolbar: Option<BeforeBodyEnd>,
    /// The response's `Content-Type` and `Content-Encoding`, read once.
    body_type: OnceCell<(Option<String>, Option<String>)>,
}

impl From<Response> for Outgoing {
    fn from(resp: Response) -> Outgoing {
        Outgoing {
            resp,
            tee: None,
            rewrite: None,
            toolbar: None,
            body_type: OnceCell::new(),
        }
    }
}

impl Outgoing {
    /// The response's `Content-Type` and `Content-Encoding` (read from it once, however
    /// many parts of the edge ask).
    pub fn body_type(&self) -> (Option<&str>, Option<&str>) {
        let (t, e) = self.body_type.get_or_init(|| {
            let read = |name| platform::response_header(&self.resp, name).map(str::to_string);
            (read("content-type"), read("content-encoding"))
        });
        (t.as_deref(), e.as_deref())
    }

    /// A fetched response whose body also goes into the cache (`tee`).
    pub fn fetched(resp: Response, tee: Option<StreamingBody>) -> Outgoing {
        Outgoing {
            resp,
            tee,
            rewrite: None,
            toolbar: None,
            body_type: OnceCell::new(),
        }
    }

    /// Rewrites the body with `plan`: the response loses its `Content-Length` (the
    /// length changes) and `ETag` (the bytes are no longer the origin's, and differ by
    /// variant), and is private to this user; its `Vary` stays.
    pub fn rewrite(&mut self, plan: Plan, encoding: &'static edgeflags_engine::page::Encoding) {
        count(Call::HeaderWrite, 4);
        self.resp.remove_header("content-length");
        self.resp.remove_header("etag");
        self.resp.set_header("cache-control", "private, no-store");
        // Fastly compresses the rewritten page to clients that accept it.
        self.resp.set_header("x-compress-hint", "on");
        self.rewrite = Some((plan, encoding));
    }

    /// Puts `fragment` (the preview toolbar) before `</body>` of a successful,
    /// unencoded `text/html` response as it streams; the page is then private to this
    /// user, and its `Content-Security-Policy` lets the toolbar's own inline styles apply
    /// (`edgeflags_engine::console::csp`). Any other response is left as it is.
    pub fn toolbar(&mut self, fragment: String) {
        let (content_type, encoding) = self.body_type();
        let html = content_type.is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
        });
        let encoded = encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        if !html || encoded || !self.resp.get_status().is_success() {
            return;
        }
        // A rewritten page has had these changes already: they are not written twice.
        if self.rewrite.is_none() {
            count(Call::HeaderWrite, 3);
            self.resp.remove_header("content-length");
            self.resp.remove_header("etag");
            self.resp.set_header("cache-control", "private, no-store");
        }
        // A policy that blocks inline styles gets the toolbar's, by hash, so the toolbar
        // shows as built; nothing else in the policy changes.
        for name in [
            "content-security-policy",
            "content-security-policy-report-only",
        ] {
            // Each value the origin sent stays byte for byte unless it is amended (one
            // that is not UTF-8, or whose amendment cannot be a header, stays as sent).
            let mut changed = false;
            let values: Vec<HeaderValue> = platform::response_header_values(&self.resp, name)
                .into_iter()
                .map(|v| {
                    let amended = std::str::from_utf8(v.as_bytes())
                        .ok()
                        .and_then(|p| csp::allow_styles(p, &TOOLBAR_STYLES))
                        .and_then(|a| HeaderValue::from_str(&a).ok());
                    changed |= amended.is_some();
                    amended.unwrap_or(v)
                })
                .collect();
            if changed {
                platform::replace_response_header(&mut self.resp, name, values);
            }
        }
        self.toolbar = Some(BeforeBodyEnd::new(fragment));
    }

    /// Sends the response: whole when nothing is left to do, else streamed chunk by
    /// chunk (into the cache and through the rewriter as needed), so the client's first
    /// byte waits for nothing but the origin's.
    pub fn send(self) {
        let Outgoing {
            mut resp,
            tee,
            rewrite,
            mut toolbar,
            ..
        } = self;
        if tee.is_none() && rewrite.is_none() && toolbar.is_none() {
            count(Call::Body, 1);
            resp.send_to_client();
            return;
        }
        let mut body = resp.take_body();
        count(Call::Body, 1);
        let mut out = resp.stream_to_client();
        let mut tee = tee;
        let mut rewriter = rewrite.map(|(plan, enc)| Rewriter::new(plan, enc));
        let mut buf = vec![0u8; 16 * 1024];
        let mut ready = Vec::with_capacity(32 * 1024);
        let mut with_toolbar = Vec::new();
        let mut client_gone = false;
        loop {
            count(Call::Body, 1);
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    log_ops("origin", &format!("page body read failed: {e}"));
                    // A body cut short is not stored.
                    if let Some(t) = tee.take() {
                        drop(t);
                    }
                    break;
                }
            };
            let chunk = &buf[..n];
            if let Some(t) = tee.as_mut()
                && write_counted(t, chunk).is_err()
            {
                log_ops("cache", "writing the cached copy failed");
                tee = None;
            }
            if client_gone {
                continue;
            }
            let mut bytes = match rewriter.as_mut() {
                Some(r) => {
                    r.write(chunk, &mut ready);
                    &ready[..]
                }
                None => chunk,
            };
            if let Some(t) = toolbar.as_mut() {
                with_toolbar.clear();
                t.push(bytes, &mut with_toolbar);
                bytes = &with_toolbar[..];
            }
            if write_counted(&mut out, bytes).is_err() {
                // The client left; the cached copy is still completed.
                client_gone = true;
            }
            ready.clear();
        }
        if let Some(r) = rewriter {
            let failure = r.end(&mut ready);
            if let Some(t) = toolbar.as_mut() {
                with_toolbar.clear();
                t.push(&ready, &mut with_toolbar);
                std::mem::swap(&mut ready, &mut with_toolbar);
            }
            if !client_gone {
                let _ = write_counted(&mut out, &ready);
            }
            if let Some(why) = failure {
                log_ops(
                    "rewrite",
                    &format!("rewriting stopped, the rest passed through unchanged: {why}"),
                );
            }
        }
        if let Some(t) = toolbar {
            ready.clear();
            t.finish(&mut ready);
            if !client_gone {
                let _ = write_counted(&mut out, &ready);
            }
        }
        if let Some(t) = tee {
            count(Call::Body, 1);
            if t.finish().is_err() {
                log_ops("cache", "finishing the cached copy failed");
            }
        }
        count(Call::Body, 1);
        let _ = out.finish();
    }
}

/// Writes `bytes` to a streaming body, counting the host call (nothing is written, and
/// nothing counted, for no bytes).
fn write_counted(out: &mut StreamingBody, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    count(Call::Body, 1);
    out.write_all(bytes)
}

/// The response to `req` from `backend`: the cached copy under `key` when there is a
/// fresh one, else the origin's (passing Fastly's own cache), with the body to be
/// copied into the cache when the origin allows it (`tee`).
pub fn fetch(
    mut req: Request,
    backend: &str,
    key: &[u8],
) -> Result<(Response, Option<StreamingBody>), SendError> {
    // A page this instance has just seen passed: the lookup would find its marker.
    if let Some(why) = passing::known(key) {
        req.set_pass(true);
        count(Call::Send, 1);
        let mut resp = req.send(backend)?;
        platform::set_response_header(&mut resp, CACHE_HEADER, &format!("hit-for-pass ({why})"));
        return Ok((resp, None));
    }
    let mut lookup = Transaction::lookup(CacheKey::copy_from_slice(key));
    count(Call::HeaderRead, 1);
    let mut copied = 0;
    for name in req.get_header_names() {
        // The cache key header is a function of the key: it cannot tell two objects
        // under one key apart, so the lookup leaves it out.
        if name.as_str() == CACHE_KEY_HEADER {
            continue;
        }
        count(Call::HeaderRead, u32::from(platform::touch(name.as_str())));
        if let Some(v) = req.get_header(name) {
            lookup = lookup.header(name, v);
            copied += 1;
        }
    }
    // The lookup's own request (made with its first header) and each header set on it.
    count(Call::Cache, if copied > 0 { copied + 1 } else { 0 });
    // The lookup, and the state read the `fastly` crate makes to wait for it.
    count(Call::Cache, 2);
    let tx = match lookup.execute() {
        Ok(tx) => tx,
        Err(e) => {
            log_ops(
                "cache",
                &format!("lookup failed, fetching without the cache: {e:?}"),
            );
            req.set_pass(true);
            count(Call::Send, 1);
            return req.send(backend).map(|r| (r, None));
        }
    };
    let mut unreadable = false;
    // Whether what was found is the marker of a page not stored (hit-for-pass): fresh,
    // or stale and this request perhaps asked to renew it.
    let mut marked = false;
    count(Call::Cache, 1);
    if let Some(found) = tx.found() {
        count(Call::Cache, 1);
        if found.is_stale() {
            count(Call::Cache, 1);
            marked = freshness::read_pass_mark(&found.user_metadata()).is_some();
        } else {
            match from_cache(&found) {
                Ok(mut resp) => {
                    count(Call::Cache, 1);
                    if tx.must_insert_or_update() {
                        count(Call::Cache, 1);
                        let _ = tx.cancel_insert_or_update();
                    }
                    count(Call::HeaderWrite, 1);
                    resp.set_header(CACHE_HEADER, "hit");
                    return Ok((resp, None));
                }
                Err(Unusable::Unreadable) => unreadable = true,
                Err(Unusable::Marker) => marked = true,
            }
        }
    }
    if unreadable {
        log_ops(
            "cache",
            "a cached copy could not be read: fetching the origin's",
        );
    }
    req.set_pass(true);
    count(Call::Send, 1);
    let mut resp = match req.send(backend) {
        Ok(r) => r,
        Err(e) => {
            count(Call::Cache, 1);
            let _ = tx.cancel_insert_or_update();
            return Err(e);
        }
    };
    let status = resp.get_status().as_u16();
    count(Call::HeaderRead, 1);
    let set_cookie = resp.contains_header("set-cookie");
    let vary_header = platform::response_header(&resp, "vary").map(str::to_string);
    let storage = freshness::storage(
        status,
        platform::response_header(&resp, "cache-control"),
        platform::response_header(&resp, "age"),
        set_cookie,
        vary_header.as_deref(),
    );
    // The request headers the page depends on: a stored copy, or a marker, applies only
    // to requests that agree with this one on them.
    let vary: Vec<HeaderName> = freshness::vary_names(vary_header.as_deref())
        .into_iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    let stored = match storage {
        Storage::Store { ttl, age } => stored(&resp)
            .map(|meta| (ttl, age, meta))
            .ok_or("a header is not text"),
        Storage::Pass(why) => Err(why),
    };
    let (ttl, age, meta) = match stored {
        Ok(s) => s,
        Err(why) => {
            let left = freshness::hit_for_pass(status, set_cookie, vary_header.is_some());
            count(Call::Cache, 1);
            if tx.must_insert_or_update() {
                // The marker is written, or renewed when this request was asked to
                // revalidate it, unless the response leaves none.
                if left == HitForPass::None {
                    count(Call::Cache, 1);
                    let _ = tx.cancel_insert_or_update();
                } else {
                    mark_pass(tx, why, &vary);
                }
            }
            if left == HitForPass::Remembered {
                passing::remember(key, why);
            }
            let state = if marked { "hit-for-pass" } else { "pass" };
            platform::set_response_header(&mut resp, CACHE_HEADER, &format!("{state} ({why})"));
            return Ok((resp, None));
        }
    };
    count(Call::Cache, 1);
    if !tx.must_insert_or_update() {
        // Another request holds the page's lookup (it may store the page, or find it
        // not storable again).
        let state = if marked {
            "hit-for-pass (storable now)"
        } else {
            "miss (another request stores it)"
        };
        count(Call::HeaderWrite, 1);
        resp.set_header(CACHE_HEADER, state);
        return Ok((resp, None));
    }
    let mut insert = tx
        .insert(Duration::from_secs(ttl + age))
        .initial_age(Duration::from_secs(age))
        .user_metadata(meta);
    // Only a non-empty rule: Viceroy 0.22 refuses an empty one (it parses "" as a header
    // name), and no rule means no variation.
    if !vary.is_empty() {
        insert = insert.vary_by(vary.iter());
    }
    count(Call::Cache, 1);
    match insert.execute() {
        Ok(tee) => {
            count(Call::HeaderWrite, 1);
            resp.set_header(CACHE_HEADER, format!("miss (stored for {ttl} s)"));
            Ok((resp, Some(tee)))
        }
        Err(e) => {
            log_ops("cache", &format!("insert failed: {e:?}"));
            Ok((resp, None))
        }
    }
}

/// The pages this instance has seen passed for a reason of their own
/// (`HitForPass::Remembered`), by cache key, each until its hit-for-pass ends: their
/// lookups would only find the marker, so they are not made (the page is fetched at once,
/// as a lookup that found the marker would fetch it). An instance that skips a page's
/// lookup does not store it either: a page that has become storable is stored by another
/// instance's lookup, or by this one's once its entry ends.
mod passing {
    use std::cell::RefCell;
    use std::time::{Duration, Instant};

    use edgeflags_engine::freshness::HIT_FOR_PASS_TTL;

    /// The most pages remembered; beyond it the oldest goes.
    const MAX: usize = 64;

    /// A page passed: its cache key, why, and until when.
    struct Passed {
        key: Box<[u8]>,
        why: Box<str>,
        until: Instant,
    }

    thread_local! {
        static PASSED: RefCell<Vec<Passed>> = const { RefCell::new(Vec::new()) };
    }

    /// Why the page under `key` was passed, while it is remembered.
    pub fn known(key: &[u8]) -> Option<Box<str>> {
        PASSED.with_borrow(|passed| {
            passed
                .iter()
                .find(|p| &*p.key == key)
                .filter(|p| p.until > Instant::now())
                .map(|p| p.why.clone())
        })
    }

    /// Remembers that the page under `key` was passed, for `why`.
    pub fn remember(key: &[u8], why: &str) {
        let now = Instant::now();
        PASSED.with_borrow_mut(|passed| {
            passed.retain(|p| p.until > now && &*p.key != key);
            if passed.len() >= MAX {
                passed.remove(0);
            }
            passed.push(Passed {
                key: key.into(),
                why: why.into(),
                until: now + Duration::from_secs(HIT_FOR_PASS_TTL),
            });
        });
    }
}

/// Leaves the marker of a page not stored, for `why`, in place of the one `tx` was to
/// store, for the requests that agree with this one on the page's `vary` headers (as a
/// stored copy would be): fresh for `freshness::HIT_FOR_PASS_TTL`, so a lookup finds it
/// at once instead of waiting for another request's fetch, then usable as long again
/// while one lookup at a time is asked to fetch the page again (and store it if it has
/// become storable, else renew the marker), so no request waits when it ends.
fn mark_pass(tx: Transaction, why: &str, vary: &[HeaderName]) {
    let ttl = Duration::from_secs(freshness::HIT_FOR_PASS_TTL);
    let mut insert = tx
        .insert(ttl)
        .stale_while_revalidate(ttl)
        .user_metadata(Bytes::from(freshness::pass_mark(why)));
    // Only a non-empty rule (Viceroy 0.22 refuses an empty one).
    if !vary.is_empty() {
        insert = insert.vary_by(vary.iter());
    }
    count(Call::Cache, 1);
    let marked = match insert.execute() {
        Ok(body) => {
            count(Call::Cache, 1);
            body.finish().map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{e:?}")),
    };
    if let Err(e) = marked {
        log_ops("cache", &format!("marking a page not stored failed: {e}"));
    }
}

/// The status and end-to-end headers of `resp`, for the cache (`None` when a header
/// is not text: such a response is not stored).
fn stored(resp: &Response) -> Option<Bytes> {
    let mut headers = Vec::new();
    count(Call::HeaderRead, 1);
    for (name, value) in resp.get_headers() {
        if UNSTORED.contains(&name.as_str()) {
            continue;
        }
        headers.push((name.as_str().to_string(), value.to_str().ok()?.to_string()));
    }
    let meta = Stored {
        status: resp.get_status().as_u16(),
        headers,
    };
    serde_json::to_vec(&meta).ok().map(Bytes::from)
}

/// A response from a cached copy, with its `Age`.
fn from_cache(found: &fastly::cache::core::Found) -> Result<Response, Unusable> {
    count(Call::Cache, 1);
    let meta = found.user_metadata();
    if freshness::read_pass_mark(&meta).is_some() {
        return Err(Unusable::Marker);
    }
    from_stored(found, &meta).ok_or(Unusable::Unreadable)
}

/// Why a fresh object found is not served.
enum Unusable {
    /// A hit-for-pass marker.
    Marker,
    /// A stored page that cannot be read back.
    Unreadable,
}

/// The response a stored page's metadata `meta` and body make.
fn from_stored(found: &fastly::cache::core::Found, meta: &[u8]) -> Option<Response> {
    count(Call::Cache, 1);
    let meta: Stored = serde_json::from_slice(meta).ok()?;
    let body = found.to_stream().ok()?;
    let mut resp = Response::from_status(StatusCode::from_u16(meta.status).ok()?);
    for (name, value) in &meta.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.append_header(n, v);
        }
    }
    // The age, then the stored headers and `Age` on the new response (written to the
    // host when it is sent).
    count(Call::Cache, 1);
    count(Call::HeaderWrite, meta.headers.len() as u32 + 1);
    resp.set_header("age", found.age().as_secs().to_string());
    resp.set_body(body);
    Some(resp)
}

/// The HTML of the fragment at `path` on `backend` (cached under `key`), or `None`
/// (logged) when it cannot be had: refused, timed out, not 200, not HTML, too long.
pub fn fragment(mut req: Request, backend: &str, key: &[u8]) -> Option<String> {
    // One write: setting a header replaces every value it had.
    count(Call::HeaderWrite, 1);
    req.set_header("accept-encoding", "identity");
    let path = req.get_path().to_string();
    let (mut resp, tee) = match fetch(req, backend, key) {
        Ok(r) => r,
        Err(e) => {
            log_ops(
                "fragment",
                &format!(
                    "fragment {path} from {backend} failed: {:?}",
                    e.root_cause()
                ),
            );
            return None;
        }
    };
    if let Err(why) = edgeflags_engine::page::rewritable(
        resp.get_status().as_u16(),
        platform::response_header(&resp, "content-type"),
        platform::response_header(&resp, "content-encoding"),
    ) {
        log_ops(
            "fragment",
            &format!("fragment {path} from {backend} left out: {why:?}"),
        );
        return None;
    }
    let mut body = resp.take_body();
    let mut tee = tee;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        count(Call::Body, 1);
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(t) = tee.as_mut()
                    && write_counted(t, &buf[..n]).is_err()
                {
                    tee = None;
                }
                if text.len() + n > MAX_FRAGMENT {
                    log_ops(
                        "fragment",
                        &format!("fragment {path} is over {MAX_FRAGMENT} bytes: left out"),
                    );
                    return None;
                }
                text.extend_from_slice(&buf[..n]);
            }
            Err(e) => {
                log_ops("fragment", &format!("fragment {path} body failed: {e}"));
                return None;
            }
        }
    }
    if let Some(t) = tee {
        count(Call::Body, 1);
        let _ = t.finish();
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}
