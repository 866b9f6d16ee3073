//! The demo origin's pages: localized text (ja, fr, en, pt) that also shows what the edge
//! told the origin (path, decisions, geo, device), as plain text, or as an HTML page for a
//! browser (a request whose `Accept` names `text/html`). `scripts/serve` runs them behind the
//! edge (`bin/edgeflags-demo-origin.rs`), and the end-to-end tests can put them behind a
//! backend ([`crate::Behaviour::Demo`]).

use hyper::{Body, Request, Response};

fn greeting(lang: &str) -> &'static str {
    match lang {
        "ja" => "ようこそ、エッジフラッグのデモストアへ",
        "fr" => "Bienvenue dans la boutique de démonstration",
        "pt" => "Bem-vindo à loja de demonstração",
        _ => "Welcome to the demo store",
    }
}

fn banner(lang: &str, variant: &str) -> &'static str {
    match (lang, variant) {
        ("ja", "weekend_sale") => "週末セール：全品20%オフ",
        ("ja", "night") => "夜のお得なセール（午前6時まで）",
        ("ja", _) => "いらっしゃいませ",
        ("fr", "weekend_sale") => "Soldes du week-end : -20 % sur tout",
        ("fr", "night") => "Offres nocturnes jusqu'à 6 h",
        ("fr", _) => "Bonjour",
        ("pt", "weekend_sale") => "Promoção de fim de semana: 20% de desconto",
        ("pt", "night") => "Ofertas da madrugada até as 6h",
        ("pt", _) => "Olá",
        (_, "weekend_sale") => "Weekend sale: 20% off everything",
        (_, "night") => "Night owl deals until 06:00",
        _ => "Hello",
    }
}

/// Every request header the page reads: the response's `Vary` names them all, so a shared
/// cache (Fastly's, keyed by the edge's cache key) keeps one page per combination and never
/// serves one visitor's device, language or city to another. An origin that reads fewer
/// of them varies on fewer.
pub const VARY: [&str; 11] = [
    "accept",
    "edgeflags-decisions",
    "edgeflags-city",
    "edgeflags-region",
    "edgeflags-country",
    "edgeflags-continent",
    "edgeflags-timezone",
    "edgeflags-device",
    "edgeflags-language",
    "edgeflags-route",
    "edgeflags-snapshot",
];

/// The page for a request to the origin of `region`.
pub fn page(region: &str, req: &Request<Body>) -> String {
    // Values outside visible ASCII arrive percent-encoded (`Z%C3%BCrich`).
    let h = |name: &str| {
        debug_assert!(VARY.contains(&name), "{name} is read but not in VARY");
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| edgeflags_engine::header_value::decode(v).into_owned())
            .unwrap_or_else(|| "-".to_string())
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let lang = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|l| ["ja", "fr", "en", "pt"].contains(l))
        .unwrap_or("en");
    let decisions = h("edgeflags-decisions");
    let variant = |flag: &str| {
        decisions
            .split("; ")
            .find_map(|d| d.strip_prefix(flag).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "{greeting}\n\
         banner:    {banner}\n\
         checkout:  {checkout}\n\
         ---- what the edge sent to origin `{region}` ----\n\
         path:      {path}\n\
         decisions: {decisions}\n\
         visitor:   {city}, {region_code}, {country} ({continent}), zone {zone}\n\
         device:    {device}, language {language}\n\
         route:     {route}, snapshot {snapshot}\n",
        greeting = greeting(lang),
        banner = banner(lang, &variant("banner")),
        checkout = variant("checkout"),
        city = h("edgeflags-city"),
        region_code = h("edgeflags-region"),
        country = h("edgeflags-country"),
        continent = h("edgeflags-continent"),
        zone = h("edgeflags-timezone"),
        device = h("edgeflags-device"),
        language = h("edgeflags-language"),
        route = h("edgeflags-route"),
        snapshot = h("edgeflags-snapshot"),
    )
}

/// The page as HTML: the greeting as the heading, the banner and the checkout variant
/// in elements of their own, and the whole text page below (escaped).
pub fn html_page(region: &str, req: &Request<Body>) -> String {
    let text = page(region, req);
    let escape = edgeflags_engine::console::html::escape;
    let mut lines = text.lines();
    let greeting = lines.next().unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>edgeflags demo store</title></head>\n\
         <body>\n<h1 id=\"greeting\">{}</h1>\n<p id=\"banner\">{}</p>\n<p>checkout: <b id=\"checkout\">{}</b></p>\n\
         <pre id=\"seen\">{}</pre>\n</body></html>\n",
        escape(greeting),
        escape(&field("banner:")),
        escape(&field("checkout:")),
        escape(&text),
    )
}

/// The demo origin's response: the page (HTML when the request's `Accept` names
/// `text/html`), with the `Vary` a shared cache needs.
pub fn respond(region: &str, req: &Request<Body>) -> Response<Body> {
    // The store's pages are the same for every visitor of a route: HTML the edge caches
    // once and changes per variant.
    let path = req.uri().path();
    let (lang, rest) = match path.get(1..3) {
        Some(l @ ("ja" | "fr" | "en" | "pt")) if path.get(3..4).is_none_or(|s| s == "/") => {
            (l, path.get(3..).unwrap_or_default())
        }
        _ => ("en", path),
    };
    if let Some(resp) = crate::store::respond(lang, rest, req) {
        return resp;
    }
    let html = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let (content_type, body) = if html {
        ("text/html; charset=utf-8", html_page(region, req))
    } else {
        ("text/plain; charset=utf-8", page(region, req))
    };
    let mut resp = Response::builder()
        .header("content-type", content_type)
        .header("vary", VARY.join(", "));
    if html {
        // A strict policy, as many sites send: no inline script or style. The preview
        // toolbar's inline styles must still apply (the edge allows them by hash).
        resp = resp.header("content-security-policy", DEMO_CSP);
    }
    resp.body(Body::from(body)).unwrap_or_default()
}

/// The demo HTML page's `Content-Security-Policy`.
pub const DEMO_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; form-action 'self'; base-uri 'none'";
