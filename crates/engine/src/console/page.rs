//! The console's pages and the toolbar, as HTML text: the console itself (every decision
//! and why, the context and how it was derived, the preview form, share and stop), the
//! small page a login or share link answers with, and the toolbar snippet the edge puts
//! into previewed pages. Every value that is not the console's own markup is escaped
//! ([`super::html`]); no secret is ever an input of these functions (only tokens derived
//! for the page: the CSRF and stop tokens, the share link).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

use super::form::{self, DEVICES, VARIANT_FIELD};
use super::html::Page;
use super::{CONSOLE_PATH, CSS_PATH, JS_PATH, PREVIEW_PATH, STOP_PATH, Session};
use crate::explain::evaluation_json;
use crate::place;
use crate::preview::Claims;
use crate::traits::Report;
use crate::{Context, Snapshot};

/// The console's stylesheet (served at [`CSS_PATH`]).
pub const CSS: &str = include_str!("assets/console.css");
/// The console's script (served at [`JS_PATH`]).
pub const JS: &str = include_str!("assets/console.js");

/// What the console shows for one request.
#[derive(Debug)]
pub struct View<'a> {
    /// The snapshot the request was decided with, if any.
    pub snapshot: Option<&'a Snapshot>,
    /// Its version (as the `edgeflags-snapshot` header says it).
    pub version: &'a str,
    /// The visitor's context, preview applied.
    pub ctx: &'a Context,
    /// The request's instant (a preview's clock included).
    pub now: DateTime<Utc>,
    /// Where the traits came from.
    pub traits: &'a Report,
    /// Who is logged in.
    pub session: &'a Session,
    /// The session's CSRF token, for the forms.
    pub csrf: &'a str,
    /// The active preview, if the request carries one.
    pub preview: Option<&'a Claims>,
    /// The stop token of the active preview cookie.
    pub stop: Option<&'a str>,
    /// The share link of the active preview (absolute URL).
    pub share: Option<&'a str>,
    /// A problem with the last form, to show.
    pub error: Option<&'a str>,
}

/// One line saying what a preview sets: place and zone, clock, device, traits, forced
/// variants (the toolbar and the console show it).
pub fn describe(c: &Claims) -> String {
    let (place, at, device, _) = form::values_of(c);
    let mut parts = Vec::new();
    if !place.is_empty() {
        parts.push(place);
    }
    if !at.is_empty() {
        let offset =
            c.at.as_deref()
                .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
                .map(|t| format!("{} {} {}", t.weekday(), form::local_minute(&t), t.offset()))
                .unwrap_or(at);
        parts.push(offset);
    }
    if !device.is_empty() {
        parts.push(format!("device {device}"));
    }
    for (n, v) in &c.traits {
        parts.push(format!("traits.{n}={v}"));
    }
    for (f, v) in &c.variants {
        parts.push(format!("{f}={v}"));
    }
    if parts.is_empty() {
        "nothing changed".to_string()
    } else {
        parts.join(" · ")
    }
}

/// The searchable place list: every zone's city with its country and zone, every
/// country, every region the tables know; as (value, label), values unique and sorted.
pub fn place_options() -> Vec<(String, String)> {
    let mut out = BTreeSet::new();
    for (tz, _, _, countries) in place::zone1970() {
        let name = tz.name();
        let city = name.rsplit('/').next().unwrap_or(name).replace('_', " ");
        for (i, country) in countries.split(',').enumerate() {
            if i == 0 {
                out.insert((format!("{city}, {country} ({name})"), name.to_string()));
            }
            out.insert((country.to_string(), format!("country {country}")));
        }
    }
    for (country, region) in place::regions() {
        out.insert((
            format!("{region}, {country}"),
            format!("region {country}-{region}"),
        ));
    }
    out.into_iter().collect()
}

fn head(p: &mut Page, title: &str) {
    p.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<title>")
        .text(title)
        .raw("</title><link rel=\"stylesheet\" href=\"")
        .raw(CSS_PATH)
        .raw("\"><script src=\"")
        .raw(JS_PATH)
        .raw("\" defer></script></head>\n<body>\n");
}

fn hidden(p: &mut Page, name: &str, value: &str) {
    p.raw("<input type=\"hidden\" name=\"")
        .raw(name)
        .raw("\" value=\"")
        .text(value)
        .raw("\">");
}

fn text_of(v: &serde_json::Value, name: &str) -> String {
    match v.get(name) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

/// The console page.
pub fn console(v: &View) -> String {
    let mut p = Page::new();
    head(&mut p, "edgeflags console");
    p.raw("<header><h1>edgeflags console</h1><p>Signed in as <strong>")
        .text(&v.session.sub)
        .raw("</strong> until ")
        .text(&stamp(v.session.exp))
        .raw(" · snapshot <code id=\"snapshot\">")
        .text(v.version)
        .raw("</code></p></header>\n<main>\n");
    if let Some(e) = v.error {
        p.raw("<p class=\"error\" role=\"alert\" id=\"error\">")
            .text(e)
            .raw("</p>\n");
    }
    preview_section(&mut p, v);
    decisions_section(&mut p, v);
    context_section(&mut p, v);
    form_section(&mut p, v);
    p.raw("</main>\n</body></html>\n");
    p.finish()
}

fn stamp(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn preview_section(p: &mut Page, v: &View) {
    p.raw("<section aria-labelledby=\"h-preview\"><h2 id=\"h-preview\">Preview</h2>\n");
    match v.preview {
        Some(c) => {
            p.raw("<p id=\"previewing\">Previewing: <strong>")
                .text(&describe(c))
                .raw("</strong> (until ")
                .text(&stamp(c.exp))
                .raw(")</p>\n");
            if let Some(link) = v.share {
                p.raw("<p><label for=\"share\">Share link</label> ")
                    .raw("<input id=\"share\" readonly size=\"60\" value=\"")
                    .text(link)
                    .raw(
                        "\"> <button type=\"button\" id=\"copy\" data-copy=\"share\">Copy</button>",
                    )
                    .raw(" <span id=\"copied\" aria-live=\"polite\"></span></p>\n");
            }
            if let Some(stop) = v.stop {
                p.raw("<form method=\"post\" action=\"")
                    .raw(STOP_PATH)
                    .raw("\">");
                hidden(p, "stop", stop);
                hidden(p, "back", "console");
                p.raw("<button type=\"submit\" id=\"stop\">Stop preview</button></form>\n");
            }
        }
        None => {
            p.raw("<p id=\"previewing\">No preview: these are the real decisions for this browser.</p>\n");
        }
    }
    p.raw("</section>\n");
}

fn decisions_section(p: &mut Page, v: &View) {
    p.raw("<section aria-labelledby=\"h-flags\"><h2 id=\"h-flags\">Decisions</h2>\n");
    let Some(snapshot) = v.snapshot else {
        p.raw("<p>No flag configuration is available.</p></section>\n");
        return;
    };
    p.raw("<table id=\"flags\"><thead><tr><th>flag</th><th>variant</th><th>value</th><th>reason</th><th>rule</th></tr></thead><tbody>\n");
    for e in snapshot.evaluate_all(v.ctx, v.now) {
        let j = evaluation_json(&e);
        let value = j.get("value").map(|x| x.to_string()).unwrap_or_default();
        let rule = ["rule_id", "prerequisite", "error"]
            .iter()
            .map(|k| text_of(&j, k))
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| {
                j.get("bucket")
                    .map(|b| format!("bucket {b}"))
                    .unwrap_or_default()
            });
        p.raw("<tr data-flag=\"")
            .text(e.key)
            .raw("\">")
            .element("td", e.key)
            .element("td", &text_of(&j, "variant"))
            .element("td", &short(&value, 80))
            .element("td", &text_of(&j, "reason"))
            .element("td", &rule)
            .raw("</tr>\n");
    }
    p.raw("</tbody></table>\n");
    let route = snapshot.route(v.ctx, v.now);
    p.raw("<p id=\"route\">Route <strong>")
        .text(&route.id)
        .raw("</strong>: backend ")
        .text(&route.backend)
        .raw(", path prefix ")
        .text(route.path_prefix.as_deref().unwrap_or("none"))
        .raw("</p>\n");
    edge_changes(p, snapshot, v);
    p.raw("</section>\n");
}

/// The content changes and redirect tests these decisions make at the edge (what explain
/// lists as `page`), one line each.
fn edge_changes(p: &mut Page, snapshot: &crate::model::Snapshot, v: &View) {
    let evals: Vec<_> = snapshot.evaluate_all(v.ctx, v.now).collect();
    let plan = crate::page::plan(snapshot, v.ctx, &evals, None);
    let changes = crate::page::changes_json(&plan);
    let redirects = crate::page::redirects_json(snapshot, &evals);
    let lines: Vec<String> = changes
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}: {} {} {}",
                text_of(c, "flag"),
                text_of(c, "variant"),
                text_of(c, "action"),
                text_of(c, "selector"),
                short(
                    &c.get("value").map(|x| x.to_string()).unwrap_or_default(),
                    80
                )
            )
        })
        .chain(redirects.as_array().into_iter().flatten().map(|r| {
            format!(
                "{}={}: redirect {} -> {} ({})",
                text_of(r, "flag"),
                text_of(r, "variant"),
                text_of(r, "from"),
                text_of(r, "to"),
                r.get("status").map(|x| x.to_string()).unwrap_or_default()
            )
        }))
        .collect();
    if lines.is_empty() {
        p.raw("<p id=\"edge-changes\">Edge changes to pages: none for these decisions.</p>\n");
        return;
    }
    p.raw("<p>Edge changes to pages (HTML responses get them as they stream; a redirect applies to its path):</p>\n<ul id=\"edge-changes\">\n");
    for line in &lines {
        p.element("li", line);
    }
    p.raw("</ul>\n");
}

fn context_section(p: &mut Page, v: &View) {
    let attr = |name: &str| {
        v.ctx
            .get(name)
            .map(|a| match a.to_json() {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".into())
    };
    p.raw("<section aria-labelledby=\"h-context\"><h2 id=\"h-context\">Context</h2>\n<table id=\"context\"><tbody>\n");
    let place = format!(
        "{}, {}, {} ({})",
        attr("city"),
        attr("region"),
        attr("country"),
        attr("continent")
    );
    let zone = v.ctx.zone().map(|z| z.name()).unwrap_or_else(|| "-".into());
    let chosen = v
        .ctx
        .zone_source()
        .map(|s| s.as_str())
        .unwrap_or("not resolved");
    let clock = match v.ctx.zone() {
        Some(z) => form::in_zone(v.now, z),
        None => v.now.to_rfc3339(),
    };
    p.row(&["place", &place])
        .row(&["time zone", &format!("{zone} (chosen by: {chosen})")])
        .row(&["clock", &clock])
        .row(&["device", &attr("device")])
        .row(&["language", &attr("language")])
        .row(&["user key", v.ctx.key().unwrap_or("-")]);
    p.raw("</tbody></table>\n<h3>Traits</h3>\n");
    if v.traits.sources.is_empty() {
        p.raw("<p>No traits. Profile: ")
            .text(&v.traits.profile)
            .raw("; cookie: ")
            .text(&v.traits.cookie)
            .raw(".</p>\n");
    } else {
        p.raw("<table id=\"traits\"><thead><tr><th>trait</th><th>value</th><th>source</th></tr></thead><tbody>\n");
        for (name, value, source) in &v.traits.sources {
            p.row(&[name, &value.to_json().to_string(), source]);
        }
        p.raw("</tbody></table>\n");
    }
    p.raw("</section>\n");
}

fn form_section(p: &mut Page, v: &View) {
    let (place, at, device, traits) = v.preview.map(form::values_of).unwrap_or_default();
    p.raw("<section aria-labelledby=\"h-set\"><h2 id=\"h-set\">Set a preview</h2>\n<form method=\"post\" action=\"")
        .raw(PREVIEW_PATH)
        .raw("\" id=\"preview-form\">");
    hidden(p, "csrf", v.csrf);
    p.raw("\n<p><label for=\"place\">Place</label> <input id=\"place\" name=\"place\" list=\"places\" size=\"40\" placeholder=\"Tokyo, JP (Asia/Tokyo)\" autocomplete=\"off\" value=\"")
        .text(&place)
        .raw("\"></p>\n<datalist id=\"places\">");
    for (value, label) in place_options() {
        p.raw("<option value=\"")
            .text(&value)
            .raw("\" label=\"")
            .text(&label)
            .raw("\"></option>");
    }
    p.raw("</datalist>\n<p><label for=\"at\">Date and time in that place</label> <input id=\"at\" name=\"at\" type=\"datetime-local\" value=\"")
        .text(&at)
        .raw("\"></p>\n<p><label for=\"device\">Device</label> <select id=\"device\" name=\"device\"><option value=\"\">as detected</option>");
    for d in DEVICES {
        p.raw("<option")
            .raw(if d == device { " selected" } else { "" })
            .raw(">")
            .raw(d)
            .raw("</option>");
    }
    p.raw("</select></p>\n<p><label for=\"traits-in\">Traits (name=value, one a line)</label><br><textarea id=\"traits-in\" name=\"traits\" rows=\"3\" cols=\"40\">")
        .text(&traits)
        .raw("</textarea></p>\n<fieldset><legend>Forced variants</legend>\n");
    if let Some(snapshot) = v.snapshot {
        for key in snapshot.flag_keys() {
            let forced = v.preview.and_then(|c| c.variants.get(key));
            p.raw("<p><label for=\"v-")
                .text(key)
                .raw("\">")
                .text(key)
                .raw("</label> <select id=\"v-")
                .text(key)
                .raw("\" name=\"")
                .raw(VARIANT_FIELD)
                .text(key)
                .raw("\"><option value=\"\">as decided</option>");
            for name in snapshot.variant_names(key) {
                p.raw("<option")
                    .raw(if forced.is_some_and(|f| f == name) {
                        " selected"
                    } else {
                        ""
                    })
                    .raw(">")
                    .text(name)
                    .raw("</option>");
            }
            p.raw("</select></p>\n");
        }
    }
    p.raw("</fieldset>\n<p><button type=\"submit\" id=\"apply\">Preview</button></p></form>\n</section>\n");
}

/// The page a login or share link answers with: it opens `next` (a path of the edge's
/// own) from the edge's own origin, so the `SameSite=Strict` cookie the same response
/// sets is sent (a navigation started on another site would not send it).
pub fn bounce(next: &str, what: &str) -> String {
    let mut p = Page::new();
    p.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0; url=")
        .text(next)
        .raw("\"><title>edgeflags</title></head>\n<body><p>")
        .text(what)
        .raw(" <a href=\"")
        .text(next)
        .raw("\">Continue</a></p></body></html>\n");
    p.finish()
}

/// The toolbar's style attributes, each an exact `style` value it writes: a page whose
/// policy blocks inline styles gets these allowed by hash ([`super::csp::allow_styles`]).
const BAR: &str = "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;margin:0;padding:6px 12px;background:#222;color:#fff;font:14px/1.4 system-ui,sans-serif;display:flex;gap:12px;align-items:center;flex-wrap:wrap";
const LINK: &str = "color:#fff;text-decoration:underline";
const FORM: &str = "margin:0";
const BUTTON: &str = "font:inherit;color:#222;background:#ffd54f;border:0;border-radius:3px;padding:2px 10px;cursor:pointer";

/// Every `style` value the toolbar writes.
pub const TOOLBAR_STYLES: [&str; 4] = [BAR, LINK, FORM, BUTTON];

/// The toolbar put into previewed pages: what is previewed, a link to the console (when
/// `console` is set: the browser holds a console session) and a stop button (carrying
/// `stop`, the stop token of the preview cookie, when the preview came from one). Its
/// styles are inline attributes ([`TOOLBAR_STYLES`]) so it needs nothing from the page.
pub fn toolbar(claims: &Claims, stop: Option<&str>, console: bool) -> String {
    let mut p = Page::new();
    p.raw(
        "<div id=\"edgeflags-toolbar\" role=\"region\" aria-label=\"edgeflags preview\" style=\"",
    )
    .raw(BAR)
    .raw("\"><strong>edgeflags preview</strong><span id=\"edgeflags-toolbar-what\">")
    .text(&describe(claims))
    .raw("</span>");
    if console {
        p.raw("<a style=\"")
            .raw(LINK)
            .raw("\" href=\"")
            .raw(CONSOLE_PATH)
            .raw("\">console</a>");
    }
    if let Some(stop) = stop {
        p.raw("<form method=\"post\" action=\"")
            .raw(STOP_PATH)
            .raw("\" style=\"")
            .raw(FORM)
            .raw("\">");
        hidden(&mut p, "stop", stop);
        p.raw("<button type=\"submit\" style=\"")
            .raw(BUTTON)
            .raw("\">stop</button></form>");
    }
    p.raw("</div>");
    p.finish()
}
