//! The page at the edge: which edge changes a request's decisions ask for ([`plan`]),
//! whether they redirect it first ([`redirect`]), the bootstrap element with its OFREP
//! bulk decisions ([`bootstrap_script`]), which responses may be rewritten
//! ([`html_charset`]), and the streaming rewriter itself ([`Rewriter`], Cloudflare's
//! `lol_html`), which the edge feeds the origin's body chunk by chunk. Pure: the edge
//! does the fetching and the writing.
//!
//! The rewriter's memory is bounded ([`MAX_REWRITER_MEMORY`]); when a page exceeds it
//! or a change fails, the bytes the rewriter held are flushed unchanged and the rest of
//! the body passes through as it came: a page is never cut.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use lol_html::html_content::{ContentType, Element};
use lol_html::{
    AsciiCompatibleEncoding, ElementContentHandlers, HtmlRewriter, MemorySettings, Selector,
    Settings,
};
use serde_json::{Value, json};

/// A page encoding (`encoding_rs`'s), as the edge passes it back to [`Rewriter::new`].
pub use encoding_rs::{Encoding, UTF_8};

use crate::context::{AttrValue, Context};
use crate::edit::{Action, Change, Redirect, Template, escape_html};
use crate::eval::Evaluation;
use crate::model::Snapshot;

/// The id of the bootstrap element.
pub const BOOTSTRAP_ID: &str = "edgeflags-bootstrap";

/// The most memory the rewriter may use for one page's unfinished markup (a tag or an
/// attribute split across chunks): beyond it the rest passes through unchanged.
pub const MAX_REWRITER_MEMORY: usize = 2 * 1024 * 1024;

/// One change resolved for a request: its templates rendered with the request's
/// attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The flag whose variant asked for it.
    pub flag: String,
    /// The variant.
    pub variant: String,
    /// The CSS selector.
    pub selector: String,
    /// What to do.
    pub op: Op,
}

/// A resolved action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set the element's content to this text (escaped by the rewriter).
    Text(String),
    /// Set this attribute to this value (already escaped).
    SetAttribute(String, String),
    /// Remove this attribute.
    RemoveAttribute(String),
    /// Replace the element with this HTML.
    Replace(String),
    /// Put this HTML first inside the element.
    Prepend(String),
    /// Put this HTML last inside the element.
    Append(String),
    /// Remove the element.
    Remove,
    /// Fill the element with the fragment at this origin path: `None` until fetched,
    /// and a fragment that could not be fetched leaves the element as it is.
    Fragment(String, Option<String>),
}

/// What the edge does to one response's page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, flags in key order, each flag's in the file's order.
    pub changes: Vec<Resolved>,
    /// The bootstrap element (a `<script>`), appended to `<head>`.
    pub bootstrap: Option<String>,
}

impl Plan {
    /// Whether the page needs no rewriting at all (it then streams through unparsed).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.bootstrap.is_none()
    }

    /// The fragments to fetch: (change index, origin path, the `flag=variant` that asks
    /// for it, for the fragment's cache key).
    pub fn fragments(&self) -> Vec<(usize, String, String)> {
        self.changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.op {
                Op::Fragment(path, None) => {
                    Some((i, path.clone(), format!("{}={}", c.flag, c.variant)))
                }
                _ => None,
            })
            .collect()
    }

    /// Gives change `i` its fetched fragment.
    pub fn fill(&mut self, i: usize, html: String) {
        if let Some(Resolved {
            op: Op::Fragment(_, slot),
            ..
        }) = self.changes.get_mut(i)
        {
            *slot = Some(html);
        }
    }
}

/// The text of an attribute for a template: strings as they are, numbers and booleans
/// written out, lists joined with `, `.
fn attribute_text(ctx: &Context, name: &str) -> Option<String> {
    Some(match ctx.get(name)? {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Num(n) => n.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::List(l) => l.join(", "),
    })
}

fn resolve(action: &Action, ctx: &Context) -> Op {
    let html = |t: &Template| t.render(|n| attribute_text(ctx, n), true);
    let text = |t: &Template| t.render(|n| attribute_text(ctx, n), false);
    match action {
        Action::Text(t) => Op::Text(text(t)),
        // The rewriter escapes only `"` in an attribute value: the value is escaped
        // here as a whole, so `&` stays text and nothing of it is read as markup.
        Action::SetAttribute(name, t) => {
            Op::SetAttribute(name.clone(), escape_html(&text(t)).into_owned())
        }
        Action::RemoveAttribute(name) => Op::RemoveAttribute(name.clone()),
        Action::Replace(t) => Op::Replace(html(t)),
        Action::Prepend(t) => Op::Prepend(html(t)),
        Action::Append(t) => Op::Append(html(t)),
        Action::Remove => Op::Remove,
        Action::Fragment(path) => Op::Fragment(path.clone(), None),
    }
}

/// The (flag index, variant index) of each evaluation that served a variant.
fn served<'e>(
    snapshot: &'e Snapshot,
    evals: &'e [Evaluation<'e>],
) -> impl Iterator<Item = (usize, usize, &'e Evaluation<'e>)> + 'e {
    evals.iter().filter_map(move |e| {
        let variant = e.variant?;
        let fi = snapshot.position(e.key)?;
        let flag = snapshot.flags.get(fi)?;
        let vi = flag
            .variants
            .of(&snapshot.arena.variants)
            .iter()
            .position(|v| &*v.name == variant)?;
        Some((fi, vi, e))
    })
}

/// The changes a request's decisions ask for, rendered for its context, and the
/// bootstrap element when the flag file asks for it (`bulk`: the OFREP bulk body).
pub fn plan(snapshot: &Snapshot, ctx: &Context, evals: &[Evaluation], bulk: Option<&str>) -> Plan {
    let mut changes = Vec::new();
    for (fi, vi, e) in served(snapshot, evals) {
        let Some(edits) = snapshot.edits.of(fi, vi) else {
            continue;
        };
        for Change { selector, action } in &edits.changes {
            changes.push(Resolved {
                flag: e.key.to_string(),
                variant: e.variant.unwrap_or_default().to_string(),
                selector: selector.clone(),
                op: resolve(action, ctx),
            });
        }
    }
    let bootstrap = match (snapshot.edits.bootstrap, bulk) {
        (true, Some(body)) => Some(bootstrap_script(body)),
        _ => None,
    };
    Plan { changes, bootstrap }
}

/// Whether the request's decisions ask for a fragment (a change whose content the edge
/// fetches from the origin): only then does the edge keep a copy of the request to
/// fetch it with.
pub fn fetches_fragments(snapshot: &Snapshot, evals: &[Evaluation]) -> bool {
    served(snapshot, evals).any(|(fi, vi, _)| {
        snapshot.edits.of(fi, vi).is_some_and(|e| {
            e.changes
                .iter()
                .any(|c| matches!(c.action, Action::Fragment(_)))
        })
    })
}

/// Where a redirect test sends the request, before any fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTo {
    /// 302 or 307.
    pub status: u16,
    /// The `Location`, with the request's query kept.
    pub location: String,
    /// The flag and variant that redirect.
    pub flag: String,
    /// The variant.
    pub variant: String,
}

/// The first redirect (flags in key order) that the request's decisions ask for on
/// `path`; `query` (without `?`) is kept.
pub fn redirect(
    snapshot: &Snapshot,
    evals: &[Evaluation],
    path: &str,
    query: Option<&str>,
) -> Option<RedirectTo> {
    served(snapshot, evals).find_map(|(fi, vi, e)| {
        let Redirect { from, to, status } = snapshot.edits.of(fi, vi)?.redirect.as_ref()?;
        if from != path {
            return None;
        }
        let location = match query.filter(|q| !q.is_empty()) {
            None => to.clone(),
            Some(q) if to.contains('?') => format!("{to}&{q}"),
            Some(q) => format!("{to}?{q}"),
        };
        Some(RedirectTo {
            status: *status,
            location,
            flag: e.key.to_string(),
            variant: e.variant.unwrap_or_default().to_string(),
        })
    })
}

/// The bootstrap element for an OFREP bulk body: a JSON script no value can close or
/// break out of (`<`, `>`, `&` and the JavaScript line separators written as `\u`
/// escapes, which JSON reads back as the same characters).
pub fn bootstrap_script(bulk: &str) -> String {
    let mut safe = String::with_capacity(bulk.len() + 64);
    for c in bulk.chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            '\u{2028}' => safe.push_str("\\u2028"),
            '\u{2029}' => safe.push_str("\\u2029"),
            c => safe.push(c),
        }
    }
    format!("<script type=\"application/json\" id=\"{BOOTSTRAP_ID}\">{safe}</script>")
}

/// The changes as JSON, for explain.
pub fn changes_json(plan: &Plan) -> Value {
    Value::Array(
        plan.changes
            .iter()
            .map(|c| {
                let (action, value) = match &c.op {
                    Op::Text(v) => ("text", json!(v)),
                    Op::SetAttribute(n, v) => ("set_attribute", json!({"attribute": n, "value": v})),
                    Op::RemoveAttribute(n) => ("remove_attribute", json!(n)),
                    Op::Replace(h) => ("replace", json!(h)),
                    Op::Prepend(h) => ("prepend", json!(h)),
                    Op::Append(h) => ("append", json!(h)),
                    Op::Remove => ("remove", Value::Null),
                    Op::Fragment(p, _) => ("fragment", json!(p)),
                };
                json!({"flag": c.flag, "variant": c.variant, "selector": c.selector, "action": action, "value": value})
            })
            .collect(),
    )
}

/// The redirects the decisions carry (each with the path it applies to), for explain.
pub fn redirects_json(snapshot: &Snapshot, evals: &[Evaluation]) -> Value {
    Value::Array(
        served(snapshot, evals)
            .filter_map(|(fi, vi, e)| {
                let r = snapshot.edits.of(fi, vi)?.redirect.as_ref()?;
                Some(json!({"flag": e.key, "variant": e.variant, "from": r.from, "to": r.to, "status": r.status}))
            })
            .collect(),
    )
}

/// How a response's body is treated, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// HTML in an encoding the rewriter reads (UTF-8, ISO-8859-1 and other
    /// ASCII-compatible ones).
    Html(&'static encoding_rs::Encoding),
    /// Anything else: passed through byte for byte.
    Other,
}

/// Whether a response with this `Content-Type` is rewritten, and in which encoding
/// (`charset`, UTF-8 when absent; ISO-8859-1 is read as windows-1252, as browsers do).
pub fn html_charset(content_type: Option<&str>) -> Body {
    let Some(ct) = content_type else {
        return Body::Other;
    };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("text/html") {
        return Body::Other;
    }
    let mut encoding = encoding_rs::UTF_8;
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("charset")
        {
            match encoding_rs::Encoding::for_label(v.trim().trim_matches('"').as_bytes()) {
                Some(e) => encoding = e,
                None => return Body::Other,
            }
        }
    }
    match AsciiCompatibleEncoding::new(encoding) {
        Some(_) => Body::Html(encoding),
        None => Body::Other,
    }
}

/// Why a response is passed through as it came rather than rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassThrough {
    /// Not a 200.
    Status(u16),
    /// Not HTML, or HTML in a charset the rewriter does not read.
    NotHtml,
    /// Compressed (`Content-Encoding` other than `identity`), although identity was
    /// asked for: worth a log line.
    Encoded(String),
}

/// Whether a response with this status, `Content-Type` and `Content-Encoding` can be
/// rewritten (a page or a fragment), and in which encoding.
pub fn rewritable(
    status: u16,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<&'static Encoding, PassThrough> {
    if status != 200 {
        return Err(PassThrough::Status(status));
    }
    let Body::Html(encoding) = html_charset(content_type) else {
        return Err(PassThrough::NotHtml);
    };
    match content_encoding.map(str::trim) {
        Some(e) if !e.is_empty() && !e.eq_ignore_ascii_case("identity") => {
            Err(PassThrough::Encoded(e.to_string()))
        }
        _ => Ok(encoding),
    }
}

/// Whether `selector` is one the rewriter can run (compile checks every change's).
pub fn selector_error(selector: &str) -> Option<String> {
    selector.parse::<Selector>().err().map(|e| e.to_string())
}

type Sink = Box<dyn FnMut(&[u8])>;

/// The streaming rewriter for one page: feed it the body chunk by chunk with
/// [`Rewriter::write`] and finish with [`Rewriter::end`]; each call appends what is
/// ready to `out`. After a failure it passes input through unchanged.
pub struct Rewriter {
    inner: Option<HtmlRewriter<'static, Sink>>,
    ready: Rc<RefCell<Vec<u8>>>,
    failure: Option<String>,
}

impl Rewriter {
    /// A rewriter applying `plan` to a page in `encoding`.
    pub fn new(plan: Plan, encoding: &'static encoding_rs::Encoding) -> Rewriter {
        let ready: Rc<RefCell<Vec<u8>>> = Rc::default();
        let Some(encoding) = AsciiCompatibleEncoding::new(encoding) else {
            return Rewriter {
                inner: None,
                ready,
                failure: Some("the page's encoding cannot be rewritten".into()),
            };
        };
        let mut handlers: Vec<(Cow<'static, Selector>, ElementContentHandlers<'static>)> =
            Vec::new();
        for c in plan.changes {
            // Compile checked the selector; one that fails here is skipped.
            let Ok(selector) = c.selector.parse::<Selector>() else {
                continue;
            };
            let op = c.op;
            let handler = move |el: &mut Element| {
                apply(&op, el)?;
                Ok(())
            };
            handlers.push((
                Cow::Owned(selector),
                ElementContentHandlers::default().element(handler),
            ));
        }
        if let (Some(script), Ok(head)) = (plan.bootstrap, "head".parse::<Selector>()) {
            let mut done = false;
            let handler = move |el: &mut Element| {
                if !done {
                    el.append(&script, ContentType::Html);
                    done = true;
                }
                Ok(())
            };
            handlers.push((
                Cow::Owned(head),
                ElementContentHandlers::default().element(handler),
            ));
        }
        let mut settings = Settings::new()
            .with_encoding(encoding)
            .with_strict(false)
            .with_memory_settings(
                MemorySettings::new()
                    .with_max_allowed_memory_usage(MAX_REWRITER_MEMORY)
                    .with_graceful_bail_out_on_memory_limit_exceeded(true),
            )
            .with_graceful_bail_out_on_content_handler_error(true);
        for h in handlers {
            settings = settings.append_element_content_handler(h);
        }
        let sink_buf = ready.clone();
        let sink: Sink = Box::new(move |c: &[u8]| sink_buf.borrow_mut().extend_from_slice(c));
        Rewriter {
            inner: Some(HtmlRewriter::new(settings, sink)),
            ready,
            failure: None,
        }
    }

    /// Rewrites one chunk of the body, appending the output that is ready to `out`.
    pub fn write(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match self.inner.as_mut() {
            Some(r) => {
                if let Err(e) = r.write(chunk) {
                    // The rewriter flushed what it held; the rest goes through as is.
                    self.failure = Some(e.to_string());
                    self.inner = None;
                }
            }
            None => out.extend_from_slice(chunk),
        }
        out.append(&mut self.ready.borrow_mut());
    }

    /// Ends the body, appending the last output to `out`.
    pub fn end(mut self, out: &mut Vec<u8>) -> Option<String> {
        if let Some(r) = self.inner.take()
            && let Err(e) = r.end()
        {
            self.failure = Some(e.to_string());
        }
        out.append(&mut self.ready.borrow_mut());
        self.failure
    }

    /// Why rewriting stopped, if it did (the rest of the body then passed through).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

fn apply(op: &Op, el: &mut Element) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match op {
        Op::Text(t) => el.set_inner_content(t, ContentType::Text),
        Op::SetAttribute(n, v) => el.set_attribute(n, v)?,
        Op::RemoveAttribute(n) => el.remove_attribute(n),
        Op::Replace(h) => el.replace(h, ContentType::Html),
        Op::Prepend(h) => el.prepend(h, ContentType::Html),
        Op::Append(h) => el.append(h, ContentType::Html),
        Op::Remove => el.remove(),
        Op::Fragment(_, Some(h)) => el.set_inner_content(h, ContentType::Html),
        Op::Fragment(_, None) => {}
    }
    Ok(())
}

/// Rewrites a whole page at once (tests, the benchmark and the fuzz target use it; the
/// edge streams), fed in chunks of `chunk` bytes. Returns the page and the failure, if
/// any.
pub fn rewrite_all(
    plan: Plan,
    encoding: &'static encoding_rs::Encoding,
    page: &[u8],
    chunk: usize,
) -> (Vec<u8>, Option<String>) {
    let mut r = Rewriter::new(plan, encoding);
    let mut out = Vec::with_capacity(page.len() + page.len() / 8);
    for piece in page.chunks(chunk.max(1)) {
        r.write(piece, &mut out);
    }
    let failure = r.end(&mut out);
    (out, failure)
}

#[cfg(test)]
mod tests;
