//! Forwarding to the origin: the routes table picks the backend and path prefix; the
//! decisions and trusted geo/device attributes go along as headers (every value through
//! the engine's checked encoder), after removing every `edgeflags-*` header the client
//! sent and the edge's own credential. The request goes out as HTTP/1.1 whatever the
//! client spoke, without the edge's `ef_preview` query parameter.
//!
//! A request body is streamed to the origin by the edge itself, so a body the client
//! breaks (a bad chunk, a connection cut mid-body) is told apart from a backend that
//! fails: the first is the client's 400, the second a 502/504 with an origin line in the
//! log. A failing origin (refused, timed out, 5xx) gets one try of the fallback route,
//! then a plain error page with the right status; the routed origin's failure is also an
//! `error` event with the request's variants (`crate::events::origin_error`).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use edgeflags_engine::events::OriginFailure;
use edgeflags_engine::forward::{self, Forwarded};
use edgeflags_engine::{Route, target};
use fastly::http::body::StreamingBody;
use fastly::http::request::{SendError, SendErrorCause};
use fastly::http::{FramingHeadersMode, Method, StatusCode, Version};
use fastly::{Body, Request, Response};

use crate::config::Loaded;
use crate::context::RequestContext;
use crate::page::{CACHE_KEY_HEADER, Outgoing};
use crate::platform::{self, Call, count, log_ops, status_page};
use edgeflags_engine::page;

/// SHA-256 of the backend, method, URL (with the routed path) and content decisions.
fn cache_key(backend: &str, req: &Request, content: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"edgeflags-cache-v1\n");
    h.update(backend.as_bytes());
    h.update(b"\n");
    h.update(req.get_method_str().as_bytes());
    h.update(b"\n");
    h.update(req.get_url_str().as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    h.finalize().into()
}

/// An origin's response, and the cache's copy of its body still to be written.
type Fetched = (Response, Option<StreamingBody>);

/// A failed send that took at least this long is reported as a timeout (504).
const SLOW_FAILURE: Duration = Duration::from_secs(1);

/// The most of a request body kept in memory for a fallback try; a longer body is
/// streamed once, and its request gets no second try.
const KEPT_BODY: usize = 1024 * 1024;

/// Decides every flag, picks the route and forwards the request. `server`: the caller
/// proved the `ofrep_token` (its credential header is removed before the origin).
pub fn forward(mut req: Request, loaded: &Loaded, rc: RequestContext, server: bool) -> Outgoing {
    let Some(snapshot) = loaded.snapshot.as_ref() else {
        return status_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No flag configuration is available.",
        )
        .into();
    };
    // A dot segment could climb out of a route's path prefix at the origin.
    if !target::safe_path(req.get_path()) {
        return status_page(StatusCode::BAD_REQUEST, "The request path is not valid.").into();
    }
    // A redirect test keeps the query the client sent, preview token and all, so the
    // redirected request is decided as this one was.
    let client_query = req.get_query_str().map(str::to_string);
    // A client cannot forge decisions, trusted attributes or the user a server names;
    // the edge's own credential stays at the edge.
    count(Call::HeaderRead, 1);
    let (mut removed, mut kept): (Vec<String>, Vec<String>) = req
        .get_header_names_str()
        .into_iter()
        .map(str::to_string)
        .partition(|n| forward::reserved(n));
    if server && let Some(credential) = crate::auth::credential_header(&req) {
        removed.push(credential.to_string());
    }
    kept.retain(|n| !removed.contains(n));
    for name in removed {
        platform::count_header_removed(&name);
        req.remove_header(name);
    }
    // The preview token is the edge's: it does not travel on to the origin.
    if let Some(rest) = req
        .get_query_str()
        .and_then(|q| target::without_param(q, target::PREVIEW_PARAM))
    {
        count(Call::Meta, 1);
        if rest.is_empty() {
            req.remove_query();
        } else {
            req.set_query_str(rest);
        }
    }
    let evals: Vec<_> = snapshot.evaluate_all(&rc.ctx, rc.now).collect();
    crate::events::exposures(snapshot, &loaded.version, &rc, &evals);
    // The method's first read.
    count(Call::Meta, 1);
    let get = req.get_method() == Method::GET;
    if (get || req.get_method() == Method::HEAD)
        && let Some(to) = page::redirect(snapshot, &evals, req.get_path(), client_query.as_deref())
    {
        return redirect(&to, &rc).into();
    }
    // A page the edge may change is asked for uncompressed (Fastly compresses the
    // rewritten page to the client): the rewriter reads text, not gzip.
    let may_rewrite = get && !snapshot.edits().is_empty();
    if may_rewrite {
        platform::count_header_write("accept-encoding");
        req.set_header("accept-encoding", "identity");
    }
    let Forwarded { headers, content } = forward::forwarded(snapshot, &rc.ctx, &evals);
    for (name, value) in headers {
        platform::set_encoded(&mut req, &name, &value);
    }
    platform::set_header(&mut req, "edgeflags-snapshot", &loaded.version);
    // Origins get HTTP/1.1 whatever the client spoke (an HTTP/2 request forwarded as
    // such is refused by an HTTP/1 origin).
    count(Call::Meta, 1);
    req.set_version(Version::HTTP_11);
    let original_path = req.get_path().to_string();
    let route = snapshot.route(&rc.ctx, rc.now);
    let fallback = snapshot
        .fallback_route()
        .filter(|f| f.backend != route.backend);
    let upload = Upload::of(&mut req);
    // A copy reads every header the `fastly` crate has not read yet (one call here).
    let retry = fallback.map(|_| {
        platform::count_all_headers(&kept);
        req.clone_without_body()
    });
    // The fragments' requests are copies of this one: a copy is kept only when the
    // user's variants ask for a fragment.
    let fragment_base = (may_rewrite && page::fetches_fragments(snapshot, &evals)).then(|| {
        platform::count_all_headers(&kept);
        req.clone_without_body()
    });
    let (first, kept) = send(req, route, &original_path, &content, upload);
    let (served_by, fetched) = match first {
        Ok(r) => (route, r),
        Err(Failure::ClientBody(why)) => {
            log_ops("client", &format!("request body could not be read: {why}"));
            return Failure::ClientBody(why).page().into();
        }
        Err(first) => {
            if let Some(failure) = first.origin() {
                crate::events::origin_error(snapshot, &loaded.version, &rc, &evals, failure);
            }
            match (fallback, retry, kept) {
                (Some(fb), Some(again), Some(upload)) => {
                    match send(again, fb, &original_path, &content, upload).0 {
                        Ok(r) => (fb, r),
                        Err(_) => return finish(first.page().into(), &rc),
                    }
                }
                _ => return finish(first.page().into(), &rc),
            }
        }
    };
    let (resp, tee) = fetched;
    let mut out = Outgoing::fetched(resp, tee);
    if may_rewrite {
        personalize(
            &mut out,
            snapshot,
            loaded,
            &rc,
            &evals,
            fragment_base,
            served_by,
        );
    }
    finish(out, &rc)
}

/// Sets the id cookie of a new visitor on the way out.
fn finish(mut out: Outgoing, rc: &RequestContext) -> Outgoing {
    if let Some(id) = &rc.new_id {
        platform::set_id_cookie(&mut out.resp, id);
        // A response that sets a new id must never be stored in a shared cache.
        count(Call::HeaderWrite, 1);
        out.resp.set_header("cache-control", "private, no-store");
    }
    out
}

/// A redirect test's answer, before any fetch: a new visitor gets the id cookie here,
/// so the redirected request is decided for the same user.
fn redirect(to: &page::RedirectTo, rc: &RequestContext) -> Response {
    let status = StatusCode::from_u16(to.status).unwrap_or(StatusCode::FOUND);
    let mut resp = Response::from_status(status);
    platform::set_response_header(&mut resp, "location", &to.location);
    count(Call::HeaderWrite, 1);
    resp.set_header("cache-control", "private, no-store");
    if let Some(id) = &rc.new_id {
        platform::set_id_cookie(&mut resp, id);
    }
    resp
}

/// Makes the page the user's: when the response is HTML in a charset the rewriter reads,
/// not encoded, and the user's variants carry changes (or the bootstrap), their
/// fragments are fetched (each cached per variant) and the body will stream through
/// the rewriter. Anything else passes through byte for byte.
fn personalize(
    out: &mut Outgoing,
    snapshot: &edgeflags_engine::Snapshot,
    loaded: &Loaded,
    rc: &RequestContext,
    evals: &[edgeflags_engine::Evaluation],
    base: Option<Request>,
    route: &Route,
) {
    let (content_type, content_encoding) = out.body_type();
    let encoding = match page::rewritable(
        out.resp.get_status().as_u16(),
        content_type,
        content_encoding,
    ) {
        Ok(encoding) => encoding,
        Err(page::PassThrough::Encoded(enc)) => {
            log_ops(
                "rewrite",
                &format!(
                    "the origin sent an HTML page encoded as `{enc}` although asked for identity: passed through unchanged"
                ),
            );
            return;
        }
        Err(_) => return,
    };
    let bulk = snapshot.edits().bootstrap.then(|| {
        let meta = edgeflags_engine::ofrep::metadata(&loaded.version, &rc.ctx);
        edgeflags_engine::ofrep::bulk(snapshot, &rc.ctx, rc.now, &meta).body
    });
    let mut plan = page::plan(snapshot, &rc.ctx, evals, bulk.as_deref());
    if plan.is_empty() {
        return;
    }
    for (i, path, variant) in plan.fragments() {
        // (Kept whenever the plan has a fragment: `fetches_fragments`.)
        let Some(base) = base.as_ref() else {
            break;
        };
        let mut req = base.clone_without_body();
        count(Call::Meta, 2);
        req.set_path(&path);
        req.remove_query();
        if let Some(host) = &route.host {
            platform::set_header(&mut req, "host", host);
        }
        let key = fragment_key(&route.backend, &path, &variant);
        if let Some(html) = crate::page::fragment(req, &route.backend, &key) {
            plan.fill(i, html);
        }
    }
    out.rewrite(plan, encoding);
}

/// The cache key of a fragment: its backend, path and the variant that asks for it.
fn fragment_key(backend: &str, path: &str, variant: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in ["edgeflags-fragment-v1", backend, path, variant] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// The client's request body on its way to the origin.
enum Upload {
    /// No body: the request is sent whole (and may be cached).
    None,
    /// Not read yet: it is streamed to the first backend, and kept when small enough.
    Client(Body),
    /// Read whole: sent as it is (a second try).
    Kept(Vec<u8>),
}

impl Upload {
    /// Takes the client's body out of `req` when the request has one: a method other
    /// than GET and HEAD, or framing headers that announce one.
    fn of(req: &mut Request) -> Upload {
        count(
            Call::HeaderRead,
            u32::from(platform::touch("transfer-encoding")),
        );
        let announced = req.contains_header("transfer-encoding")
            || platform::header(req, "content-length").is_some_and(|l| l.trim() != "0");
        if announced || !matches!(req.get_method(), &Method::GET | &Method::HEAD) {
            Upload::Client(req.take_body())
        } else {
            Upload::None
        }
    }
}

/// How a forwarded request failed.
enum Failure {
    /// The client's body could not be read (the client's fault, not the origin's).
    ClientBody(String),
    Unreachable,
    Timeout,
    Status(StatusCode),
}

impl Failure {
    /// The origin's failure as the events record names it; `None` for the client's.
    fn origin(&self) -> Option<OriginFailure> {
        match self {
            Failure::ClientBody(_) => None,
            Failure::Unreachable => Some(OriginFailure::Unreachable),
            Failure::Timeout => Some(OriginFailure::Timeout),
            Failure::Status(s) => Some(OriginFailure::Status(s.as_u16())),
        }
    }

    fn page(&self) -> Response {
        match self {
            Failure::ClientBody(_) => status_page(
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            ),
            Failure::Unreachable => {
                status_page(StatusCode::BAD_GATEWAY, "The origin could not be reached.")
            }
            Failure::Timeout => status_page(
                StatusCode::GATEWAY_TIMEOUT,
                "The origin did not answer in time.",
            ),
            Failure::Status(s)
                if *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::GATEWAY_TIMEOUT =>
            {
                status_page(*s, "The origin is unavailable.")
            }
            Failure::Status(_) => status_page(
                StatusCode::BAD_GATEWAY,
                "The origin could not answer this request.",
            ),
        }
    }
}

/// Sends the request along `route`; returns the outcome and, when the request can be
/// tried again, the body for that try.
fn send(
    mut req: Request,
    route: &Route,
    original_path: &str,
    content: &str,
    upload: Upload,
) -> (Result<Fetched, Failure>, Option<Upload>) {
    platform::set_header(&mut req, "edgeflags-route", &route.id);
    let path = match &route.path_prefix {
        Some(prefix) => format!("{prefix}{original_path}"),
        None => original_path.to_string(),
    };
    count(Call::Meta, 1);
    req.set_path(&path);
    if let Some(host) = &route.host {
        platform::set_header(&mut req, "host", host);
    }
    let backend = route.backend.as_str();
    // The cache key: the backend, the request as sent, and the decisions that change
    // content, never the user. One cached object serves every user of the same variants
    // (the origin's `Vary` separates what else its body depends on).
    let key = cache_key(backend, &req, content);
    platform::count_header_write(CACHE_KEY_HEADER);
    req.set_header(CACHE_KEY_HEADER, edgeflags_engine::digest::hex(&key));
    req.set_cache_key(key.to_vec());
    let started = Instant::now();
    let plain = |sent: Result<Response, SendError>| sent.map(|r| (r, None));
    let (sent, again) = match upload {
        // A GET goes through the edge's own cache: one copy per URL and route.
        Upload::None if req.get_method() == Method::GET => {
            (crate::page::fetch(req, backend, &key), Some(Upload::None))
        }
        Upload::None => {
            count(Call::Send, 1);
            (plain(req.send(backend)), Some(Upload::None))
        }
        Upload::Kept(bytes) => {
            req.set_body(bytes.clone());
            count(Call::Send, 1);
            (plain(req.send(backend)), Some(Upload::Kept(bytes)))
        }
        Upload::Client(body) => match stream(req, backend, body) {
            Ok((sent, kept)) => (plain(sent), kept.map(Upload::Kept)),
            Err(why) => return (Err(Failure::ClientBody(why)), None),
        },
    };
    (judge(sent, backend, started), again)
}

/// What a backend's answer means: a response, or a failure by cause (logged).
fn judge(
    sent: Result<Fetched, SendError>,
    backend: &str,
    started: Instant,
) -> Result<Fetched, Failure> {
    // The status's first read.
    count(Call::Meta, u32::from(sent.is_ok()));
    match sent {
        Ok((r, _)) if r.get_status().is_server_error() => {
            log_ops(
                "origin",
                &format!("backend {backend} answered {}", r.get_status().as_u16()),
            );
            Err(Failure::Status(r.get_status()))
        }
        Ok(r) => Ok(r),
        Err(e) => {
            let cause = e.root_cause();
            log_ops("origin", &format!("backend {backend} failed: {cause:?}"));
            // Viceroy reports a first-byte timeout as an internal error, so a failure that
            // took a second or more (a refusal takes milliseconds) also counts as one.
            let slow = started.elapsed() >= SLOW_FAILURE;
            match cause {
                SendErrorCause::HttpResponseTimeout
                | SendErrorCause::ConnectionTimeout
                | SendErrorCause::DnsTimeout => Err(Failure::Timeout),
                SendErrorCause::ConnectionRefused => Err(Failure::Unreachable),
                _ if slow => Err(Failure::Timeout),
                _ => Err(Failure::Unreachable),
            }
        }
    }
}

/// A streamed request's answer, and its body when it was kept whole.
type Streamed = (Result<Response, SendError>, Option<Vec<u8>>);

/// Streams the client's body to `backend` and waits for the answer. A read from the
/// client that fails is the client's failure (the backend request is abandoned); a write
/// towards the backend that fails is left to the answer, which then reports the
/// backend's failure. `Err` says why the client's body could not be read.
fn stream(mut req: Request, backend: &str, mut body: Body) -> Result<Streamed, String> {
    // The client's own framing headers go along when valid (so an origin that wants a
    // `Content-Length` gets the client's); otherwise the host frames the body itself.
    count(Call::Meta, 1);
    req.set_framing_headers_mode(FramingHeadersMode::ManuallyFromHeaders);
    count(Call::Send, 1);
    let (mut out, pending) = match req.send_async_streaming(backend) {
        Ok(p) => p,
        Err(e) => return Ok((Err(e), None)),
    };
    let mut kept = Some(Vec::new());
    let mut buf = vec![0u8; 16 * 1024];
    let mut writable = true;
    loop {
        count(Call::Body, 1);
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                count(Call::Body, 1);
                let _ = out.abandon();
                drop(pending);
                return Err(e.to_string());
            }
        };
        let chunk = &buf[..n];
        if writable && platform::Counted(&mut out).write_all(chunk).is_err() {
            // The backend stopped taking the body; its answer (or error) says why. The
            // client's body is still read to the end, so a broken one is still the
            // client's 400.
            writable = false;
        }
        kept = kept.filter(|k| k.len() + n <= KEPT_BODY).map(|mut k| {
            k.extend_from_slice(chunk);
            k
        });
    }
    count(Call::Body, 1);
    if writable {
        let _ = out.finish();
    } else {
        let _ = out.abandon();
    }
    count(Call::Send, 1);
    Ok((pending.wait(), kept))
}
