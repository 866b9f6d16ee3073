//! The edge's I/O with Fastly, in one place: the names of the stores, secrets and log
//! endpoints it uses, reading secrets (once per instance), writing log lines, reading
//! request headers, cookies and bodies, writing header values through the engine's
//! checked encoder, the id cookie, plain status pages, the clock and randomness, and the
//! count of calls into the `fastly` crate that reach the host ([`Call`], shown to
//! token-holding requests in `Server-Timing`). Every other module of the edge imports
//! this one and none of them; it imports nothing of the edge.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use edgeflags_engine::header_value;
use edgeflags_engine::identity::ID_COOKIE;
use fastly::http::{HeaderName, HeaderValue, StatusCode};
use fastly::{Request, Response, SecretStore};

/// The config store that holds the packed flag snapshot.
pub const CONFIG_STORE: &str = "edgeflags";
/// The secret store of the edge's keys.
pub const SECRET_STORE: &str = "edgeflags_secrets";
/// The KV store of user profiles.
pub const PROFILE_STORE: &str = "edgeflags_profiles";
/// The log endpoint for operator messages (config problems, ignored tokens, failing
/// origins, client errors).
pub const OPS_LOG: &str = "edgeflags_ops";
/// The log endpoint for exposures and conversions.
pub const EVENTS_LOG: &str = "edgeflags_events";

/// The secrets the edge reads from [`SECRET_STORE`].
pub mod secrets {
    /// Signs preview tokens.
    pub const PREVIEW_KEY: &str = "preview_key";
    /// Keys the user hash in events and profile keys.
    pub const USER_HASH_KEY: &str = "user_hash_key";
    /// Signs the origin's `ef_id` and `ef_traits` cookies.
    pub const TRAITS_KEY: &str = "traits_key";
    /// Server-side OFREP callers present it (and may then name their user).
    pub const OFREP_TOKEN: &str = "ofrep_token";
    /// Opens the explain endpoint (and the debug headers).
    pub const EXPLAIN_TOKEN: &str = "explain_token";
    /// When set, the edge accepts only snapshots signed with it.
    pub const SNAPSHOT_KEY: &str = "snapshot_key";
}

/// The kinds of call into the `fastly` crate that reach the host, counted per request
/// (see [`count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A config store opened or read.
    Config,
    /// The secret store opened, or a secret read from it.
    Secret,
    /// The profile KV store opened or read.
    Kv,
    /// A geolocation lookup.
    Geo,
    /// A device-detection lookup.
    Device,
    /// A message's URL, method, version or status read from the host (the raw URL
    /// check, the `fastly` crate's first read of each), or written to it; the client
    /// address.
    Meta,
    /// A request or response header read (values, or the list of names).
    HeaderRead,
    /// A request or response header set, appended or removed on a host-side message.
    HeaderWrite,
    /// A log endpoint opened, or a line written to it.
    Log,
    /// A request sent to a backend, or a pending one waited for. (Inside a send the
    /// `fastly` crate also writes the request's cache override, decompression and framing
    /// settings: counted as the one send.)
    Send,
    /// A Core Cache call (lookup, insert, cancel).
    Cache,
    /// A body read or written (a chunk), or a response sent or streamed to the client.
    Body,
}

impl Call {
    /// Every kind, in the order `Server-Timing` lists them.
    pub const ALL: [Call; 12] = [
        Call::Config,
        Call::Secret,
        Call::Kv,
        Call::Geo,
        Call::Device,
        Call::Meta,
        Call::HeaderRead,
        Call::HeaderWrite,
        Call::Log,
        Call::Send,
        Call::Cache,
        Call::Body,
    ];

    /// Its name in `Server-Timing`.
    pub fn name(self) -> &'static str {
        match self {
            Call::Config => "config",
            Call::Secret => "secret",
            Call::Kv => "kv",
            Call::Geo => "geo",
            Call::Device => "device",
            Call::Meta => "meta",
            Call::HeaderRead => "header-read",
            Call::HeaderWrite => "header-write",
            Call::Log => "log",
            Call::Send => "send",
            Call::Cache => "cache",
            Call::Body => "body",
        }
    }
}

thread_local! {
    /// The names of the client request's headers the edge has read or written in this
    /// request: the `fastly` crate keeps a copy of each (`http/lazy_handle.rs` in fastly
    /// 0.13.2), so reading one again is not a host call and is not counted.
    static TOUCHED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// The host calls of the current request, by kind (reset by [`reset_calls`]).
    static CALLS: Cell<[u32; Call::ALL.len()]> = const { Cell::new([0; Call::ALL.len()]) };
    /// The secrets read by this instance (name and value, `None` when absent): a secret
    /// is read once per instance, not per request.
    static SECRETS: RefCell<Vec<(String, Option<Vec<u8>>)>> = const { RefCell::new(Vec::new()) };
}

/// Counts writing the client request's header `name` (set or removed).
pub fn count_header_write(name: &str) {
    count(Call::HeaderWrite, 1);
    touch(name);
}

/// Counts `n` calls of a kind into the `fastly` crate. Every call the edge makes that
/// reaches the host goes through a function of this module that counts it, or counts it
/// here right beside the call.
pub fn count(kind: Call, n: u32) {
    CALLS.with(|c| {
        let mut all = c.get();
        if let Some(i) = Call::ALL.iter().position(|k| *k == kind) {
            all[i] = all[i].saturating_add(n);
        }
        c.set(all);
    });
}

/// Starts counting a new request's host calls.
pub fn reset_calls() {
    CALLS.with(|c| c.set([0; Call::ALL.len()]));
    TOUCHED.with(|t| t.borrow_mut().clear());
}

/// Records that the edge read or wrote the client request's header `name`; `true` the
/// first time in this request (when a read of it is a host call).
pub fn touch(name: &str) -> bool {
    TOUCHED.with(|t| {
        let mut t = t.borrow_mut();
        if t.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            false
        } else {
            t.push(name.to_ascii_lowercase());
            true
        }
    })
}

/// Counts reading every header of the client request, whose names are `names` (the
/// list of names, then each value the `fastly` crate does not hold yet), as copying the
/// request does.
pub fn count_all_headers(names: &[String]) {
    let fresh = names.iter().filter(|n| touch(n)).count();
    count(Call::HeaderRead, 1 + fresh as u32);
}

/// Counts removing the client request's header `name`: the `fastly` crate reads its
/// value first (unless it holds it), then removes it; a later read is a host call again.
pub fn count_header_removed(name: &str) {
    count(Call::HeaderRead, u32::from(touch(name)));
    count(Call::HeaderWrite, 1);
    TOUCHED.with(|t| t.borrow_mut().retain(|n| !n.eq_ignore_ascii_case(name)));
}

/// The host calls counted since [`reset_calls`]: the total and each kind made.
pub fn calls() -> (u32, Vec<(&'static str, u32)>) {
    let all = CALLS.with(Cell::get);
    let kinds: Vec<_> = Call::ALL
        .iter()
        .zip(all)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.name(), n))
        .collect();
    (all.iter().sum(), kinds)
}

/// A secret from the secret store, if the store and the secret exist. Read from the store
/// once per instance and kept: an instance lives at most `Serve`'s lifetime (main.rs,
/// 300 s), so a rotated secret is in use everywhere within that time.
pub fn secret(name: &str) -> Option<Vec<u8>> {
    if let Some(kept) = SECRETS.with(|s| {
        s.borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }) {
        return kept;
    }
    let value = read_secret(name);
    SECRETS.with(|s| s.borrow_mut().push((name.to_string(), value.clone())));
    value
}

/// Reads a secret from the store (two host calls: the open and the read).
fn read_secret(name: &str) -> Option<Vec<u8>> {
    count(Call::Secret, 1);
    let store = SecretStore::open(SECRET_STORE).ok()?;
    count(Call::Secret, 1);
    let secret = store.try_get(name).ok().flatten()?;
    Some(secret.plaintext().to_vec())
}

/// Writes one line to a log endpoint (one `write` per line, as Fastly needs).
fn log_line(endpoint: &str, line: &str) {
    count(Call::Log, 1);
    if let Ok(mut ep) = fastly::log::Endpoint::try_from_name(endpoint) {
        count(Call::Log, 1);
        let _ = ep.write_all(line.as_bytes());
    }
}

/// Writes one JSON line to the operator log endpoint.
pub fn log_ops(area: &str, message: &str) {
    let line = serde_json::json!({ "kind": "ops", "area": area, "message": message });
    log_line(OPS_LOG, &line.to_string());
}

/// Writes one event line (JSON) to the events log endpoint.
pub fn log_event(line: &str) {
    log_line(EVENTS_LOG, line);
}

/// A header's value, when it is UTF-8. (The fastly crate's `get_header_str` panics on a
/// value that is not, and a client chooses the bytes.)
pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    count(Call::HeaderRead, u32::from(touch(name)));
    req.get_header(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// A response header's value, when it is UTF-8 (an origin chooses the bytes).
pub fn response_header<'r>(resp: &'r Response, name: &str) -> Option<&'r str> {
    count(Call::HeaderRead, 1);
    resp.get_header(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Every value of a response header, as the origin sent it (one host call for them all).
pub fn response_header_values(resp: &Response, name: &str) -> Vec<HeaderValue> {
    count(Call::HeaderRead, 1);
    resp.get_header_all(name).cloned().collect()
}

/// Every value of a header that is UTF-8.
pub fn headers<'r>(req: &'r Request, name: &str) -> impl Iterator<Item = &'r str> {
    count(Call::HeaderRead, u32::from(touch(name)));
    req.get_header_all(name)
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// A cookie's value (a bounded search: see `edgeflags_engine::cookie`).
pub fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    edgeflags_engine::cookie::find(headers(req, "cookie"), name)
}

/// The checked name and value, or `None` when either cannot be a header.
fn checked(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(&header_value::encode(value)?).ok()?;
    Some((name, value))
}

/// Sets a request header to a value the engine has already encoded (such as
/// `edgeflags_engine::forward`'s), checked again but not encoded twice. Every value that
/// is not a fixed string of the edge's own goes through here or [`set_header`], never
/// through the `fastly` crate's panicking conversion.
pub fn set_encoded(req: &mut Request, name: &str, encoded: &str) {
    let name = HeaderName::from_bytes(name.as_bytes()).ok();
    let value = header_value::is_valid(encoded.as_bytes())
        .then(|| HeaderValue::from_str(encoded).ok())
        .flatten();
    if let (Some(n), Some(v)) = (name, value) {
        count(Call::HeaderWrite, 1);
        touch(n.as_str());
        req.set_header(n, v);
    }
}

/// Sets a request header to `value`, encoded; leaves it unset when it cannot be written.
pub fn set_header(req: &mut Request, name: &str, value: &str) {
    if let Some((n, v)) = checked(name, value) {
        count(Call::HeaderWrite, 1);
        touch(n.as_str());
        req.set_header(n, v);
    }
}

/// Sets a response header to `value`, encoded; leaves it unset when it cannot be written.
pub fn set_response_header(resp: &mut Response, name: &str, value: &str) {
    if let Some((n, v)) = checked(name, value) {
        count(Call::HeaderWrite, 1);
        resp.set_header(n, v);
    }
}

/// Replaces every value of a response header with `values`, written as they are.
pub fn replace_response_header(resp: &mut Response, name: &str, values: Vec<HeaderValue>) {
    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
        return;
    };
    count(Call::HeaderWrite, 1);
    resp.remove_header(&name);
    for value in values {
        count(Call::HeaderWrite, 1);
        resp.append_header(&name, value);
    }
}

/// Sets the id cookie for a freshly minted id, so the assignment sticks: `HttpOnly;
/// Secure; SameSite=Lax`, a year.
pub fn set_id_cookie(resp: &mut Response, id: &str) {
    count(Call::HeaderWrite, 1);
    resp.append_header(
        "set-cookie",
        format!("{ID_COOKIE}={id}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax"),
    );
}

/// A plain error page: the status and a sentence for people, never internals.
pub fn status_page(status: StatusCode, message: &str) -> Response {
    count(Call::HeaderWrite, 2);
    Response::from_status(status)
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_header("cache-control", "no-store")
        .with_body(format!(
            "{} {}\n{message}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ))
}

/// A JSON answer of the edge's own, never stored by a cache.
pub fn json_response(status: StatusCode, body: String) -> Response {
    count(Call::HeaderWrite, 2);
    Response::from_status(status)
        .with_header("content-type", "application/json")
        .with_header("cache-control", "no-store")
        .with_body(body)
}

/// A body (or a streaming body) whose reads and writes are counted as host calls
/// ([`Call::Body`]): one per `read` or `write`. (The `fastly` crate buffers bodies, but
/// the edge reads and writes in chunks of 16 KiB, larger than its buffers, so each of
/// them is one call to the host.)
pub struct Counted<B>(pub B);

impl<B: Read> Read for Counted<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        count(Call::Body, 1);
        self.0.read(buf)
    }
}

impl<B: Write> Write for Counted<B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        count(Call::Body, 1);
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the endpoint takes.
    TooLarge,
    /// The client broke it off or mangled it (a bad chunk, a connection cut mid-body).
    Broken(String),
}

impl BodyError {
    /// The client's 4xx page for it; a broken body is also logged as a client error.
    pub fn page(&self) -> Response {
        match self {
            BodyError::TooLarge => status_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ),
            BodyError::Broken(_) => {
                self.log();
                status_page(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                )
            }
        }
    }

    /// Logs a broken body as the client's error (never an origin's).
    pub fn log(&self) {
        if let BodyError::Broken(why) = self {
            log_ops("client", &format!("request body could not be read: {why}"));
        }
    }
}

/// Reads a request body of at most `limit` bytes. Never reads more than `limit + 1`
/// bytes, whatever the client sends.
pub fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let body = Counted(req.take_body());
    body.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Broken(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// The current instant, to the millisecond.
pub fn now() -> DateTime<Utc> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// 128 random bits as 32 hex digits (from WASI's random source).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness, fall back to the clock: unique enough, and never a panic.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    edgeflags_engine::digest::hex(&bytes)
}
