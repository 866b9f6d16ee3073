//! Entry points for the fuzz targets in `fuzz/` (and for `tests/fuzz_corpus.rs`, which
//! replays their corpora under `cargo test`). Each takes arbitrary bytes and must neither
//! panic nor hang; they return nothing.

use std::collections::BTreeMap;

use chrono::DateTime;

use crate::identity::{self, Presented};
use crate::{
    Context, Zone, attributes, compile_str, console, cookie, explain, forward, header_value,
    inject, pack, place, preview, target,
};

const DEMO: &str = include_str!("../../../config-store/flags.json");

fn demo() -> Option<&'static crate::Snapshot> {
    static DEMO_SNAPSHOT: std::sync::OnceLock<Option<crate::Snapshot>> = std::sync::OnceLock::new();
    DEMO_SNAPSHOT
        .get_or_init(|| compile_str(DEMO).ok())
        .as_ref()
}

/// Flag-file parse and compile.
pub fn compile(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = compile_str(text);
    }
}

/// Snapshot decode: the bytes as a store (a JSON object of entries, or `key=value`
/// lines), read through the pointer and loaded as the edge does; and the bytes as a
/// compiled snapshot (a format-3 body), which, whatever indexes it holds, must evaluate without
/// a panic.
pub fn snapshot_decode(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let store: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    for key in [None, Some(&b"k"[..])] {
        let outcome = pack::read(|k| store.get(k).cloned(), key);
        if let Ok(l) = outcome.result {
            let _ = crate::payload::load(&l.payload, &l.version);
            let _ = crate::payload::source(&l.payload);
        }
    }
    if let Ok(snapshot) = crate::codec::decode(&text) {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let ctx = Context::with_key("u1")
            .with("country", "JP")
            .with("plan", "pro");
        for e in snapshot.evaluate_all(&ctx, now) {
            let _ = explain::evaluation_json(&e);
        }
        let _ = snapshot.route(&ctx, now);
    }
}

/// Evaluation of every flag of the demo file, its routes and its explanation, for an
/// arbitrary context (the bytes as a JSON object) at an arbitrary instant.
pub fn evaluate(data: &[u8]) {
    let Some(snapshot) = demo() else { return };
    let (head, rest) = data.split_at(data.len().min(8));
    let mut secs = [0u8; 8];
    secs[..head.len()].copy_from_slice(head);
    let now =
        DateTime::from_timestamp(i64::from_le_bytes(secs) % 100_000_000_000, 0).unwrap_or_default();
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(rest) else {
        return;
    };
    let ctx = Context::from_json(&obj);
    for e in snapshot.evaluate_all(&ctx, now) {
        let _ = e.variant;
    }
    let _ = snapshot.route(&ctx, now);
    let _ = explain::explain(snapshot, &ctx, now);
}

/// What the edge derives from request fields: the bytes split on NUL into User-Agent,
/// Accept-Language, a zone name, a country and region, a preview token, a traits cookie,
/// a stored profile, a request path, and the rest of a geolocation record (city,
/// latitude, longitude, UTC offset) with an instant in seconds, which the zone resolver
/// reads.
pub fn request_fields(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut next = || parts.next().unwrap_or("");
    let (ua, lang, zone, country, region, token) = (next(), next(), next(), next(), next(), next());
    let (traits_cookie, profile, path) = (next(), next(), next());
    let (city, lat, lon, offset, secs) = (next(), next(), next(), next(), next());
    let mut place = place::Place {
        country: Some(country.to_string()),
        region: Some(region.to_string()),
        city: Some(city.to_string()),
        latitude: lat.trim().parse().ok(),
        longitude: lon.trim().parse().ok(),
        utc_offset: offset.trim().parse().ok(),
        ..place::Place::default()
    };
    let mut now = DateTime::from_timestamp(secs.trim().parse().unwrap_or(1_795_000_000), 0)
        .unwrap_or_default();
    // As the edge builds a context: the place, a preview token, then the zone.
    let mut ctx = Context::with_key("u1");
    attributes::set_place(&mut ctx, &place);
    let mut zone_given = false;
    if let Ok(claims) = preview::verify(token, Some(b"key"), 0) {
        zone_given = preview::apply(&claims, &mut ctx, &mut place, &mut now);
    }
    if !zone_given && let Some(r) = attributes::settle_zone(&mut ctx, &place, now) {
        let _ = explain::context_json(&ctx);
        let _ = r.zone.local(now);
    }
    let cookie = crate::traits::verify_cookie(traits_cookie, Some(b"key"), ua, 0);
    let profile = crate::traits::parse_profile(profile.as_bytes(), 0).map_err(|e| e.to_string());
    let report = crate::traits::Report::gather(profile.map(Some), Some(cookie));
    report.apply_to(&mut ctx);
    let _ = report.to_json();
    let _ = crate::target::safe_path(path);
    let _ = attributes::device_class_from_user_agent(ua);
    let _ = attributes::language_from_accept_language(lang);
    let _ = Zone::parse(zone);
    let _ = attributes::continent_for(country);
    let _ = preview::verify(token, Some(b"key"), 0);
    let mut ctx = Context::with_key(ua);
    ctx.set("timezone", zone);
    if let Some(z) = ctx.zone() {
        let _ = z.local(DateTime::from_timestamp(0, 0).unwrap_or_default());
    }
}

/// An OFREP request body, read and merged as the edge reads and merges it (for a browser
/// and for a server caller), then answered (single and bulk).
pub fn ofrep_body(data: &[u8]) {
    let Some(snapshot) = demo() else { return };
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    for authenticated in [false, true] {
        let Ok(asked) = crate::ofrep::parse(data, authenticated) else {
            continue;
        };
        let mut ctx = Context::with_key("edge-user")
            .with("country", "JP")
            .with("device", "mobile");
        let _ = crate::ofrep::merge(&mut ctx, &asked.context, authenticated, now);
        crate::ofrep::merge_traits(&mut ctx, &asked.context, authenticated);
        if !authenticated {
            assert_eq!(
                ctx.get("country"),
                Some(&"JP".into()),
                "a browser moved the edge"
            );
        }
        let meta = crate::ofrep::metadata("v", &ctx);
        let _ = crate::ofrep::single(snapshot, "checkout", &ctx, now, &meta);
        let bulk = crate::ofrep::bulk(snapshot, &ctx, now, &meta);
        assert!(crate::ofrep::if_none_match(Some(&bulk.etag), &bulk.etag));
    }
}

/// A whole request, handled as the edge handles it as far as that runs natively. The
/// bytes are `METHOD TARGET` on the first line, header lines `name: value` up to an empty
/// line, then the body. The URL is built as the host builds it (`http://` + the `Host`
/// header + the target) and checked as the edge checks it before the SDK parses it; then
/// the path and query rules, the identity decision (a request without the server token
/// or a signed identity must never be verified), the preview token, the context from the
/// headers, every flag's evaluation and route, the headers for the origin (each must be
/// a valid header value), every request header value through the checked encoder, and
/// an OFREP body.
pub fn request(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    // The method only chooses how the body is forwarded, which needs the host.
    let target_bytes = match first.iter().position(|&b| b == b' ') {
        Some(i) => &first[i + 1..],
        None => &b"/"[..],
    };
    let headers: Vec<(String, &[u8])> = lines
        .filter_map(|l| {
            let i = l.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&l[..i]).trim().to_ascii_lowercase();
            Some((name, l[i + 1..].trim_ascii()))
        })
        .collect();
    // Every value the client sent, through the encoder the edge writes headers with.
    for (_, v) in &headers {
        if let Ok(v) = std::str::from_utf8(v) {
            checked(v);
        }
    }
    // The values of a header that are UTF-8 (the edge treats the others as absent).
    let utf8 = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect()
    };
    let header = |name: &str| utf8(name).first().copied();
    let host = header("host").unwrap_or("edge.test");
    let mut raw = b"http://".to_vec();
    raw.extend_from_slice(host.as_bytes());
    raw.extend_from_slice(target_bytes);
    let Ok(url) = target::check(&raw) else {
        return; // a 400: the SDK never sees this URL
    };
    let path = url.path();
    let query = url.query();
    let server = header("authorization") == Some("Bearer server-token");
    let cookies = utf8("cookie");
    let cookie = |name: &str| cookie::find(cookies.iter().copied(), name);
    let who = identity::decide(
        &Presented {
            named: header(identity::USER_HEADER),
            server,
            signed: cookie(identity::SIGNED_ID_COOKIE),
            cookie: cookie(identity::ID_COOKIE),
        },
        Some(b"key"),
        1_000,
    );
    let signed_ok = cookie(identity::SIGNED_ID_COOKIE)
        .is_some_and(|t| identity::verify(t, Some(b"key"), 1_000).is_ok());
    assert!(
        who.verified()
            == (server && who.source == identity::Source::Server
                || signed_ok && who.source == identity::Source::Signed),
        "a key the client chose was verified: {who:?}"
    );
    if path.starts_with("/ofrep/v1/") {
        ofrep_body(body);
    } else if path == "/.edgeflags/track" || path == "/.edgeflags/explain" {
        let _ = serde_json::from_slice::<serde_json::Value>(body);
    }
    let page = !path.starts_with("/.edgeflags/") && !path.starts_with("/ofrep/");
    if page && !target::safe_path(path) {
        return; // a 400
    }
    let Some(snapshot) = demo() else { return };
    let mut ctx = Context::with_key(who.key.as_deref().unwrap_or("minted"));
    let ua = header("user-agent")
        .filter(|u| u.len() <= 1024)
        .unwrap_or("");
    ctx.set("device", attributes::device_class_from_user_agent(ua));
    if let Some(lang) = header("accept-language")
        .filter(|h| h.len() <= 512)
        .and_then(attributes::language_from_accept_language)
    {
        ctx.set("language", lang);
    }
    let mut now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let token = header("edgeflags-preview")
        .or_else(|| cookie(target::PREVIEW_PARAM))
        .or_else(|| {
            query?.split('&').find_map(|p| {
                p.strip_prefix(target::PREVIEW_PARAM)
                    .and_then(|v| v.strip_prefix('='))
            })
        });
    let mut place = crate::place::Place::default();
    let mut zone_given = false;
    if let Some(claims) = token.and_then(|t| preview::verify(t, Some(b"key"), 0).ok()) {
        zone_given = preview::apply(&claims, &mut ctx, &mut place, &mut now);
    }
    if !zone_given {
        let _ = attributes::settle_zone(&mut ctx, &place, now);
    }
    let evals: Vec<_> = snapshot.evaluate_all(&ctx, now).collect();
    let _ = snapshot.route(&ctx, now);
    for (name, value) in forward::forwarded(snapshot, &ctx, &evals).headers {
        assert!(forward::reserved(&name), "{name}");
        assert!(
            header_value::is_valid(value.as_bytes()),
            "{name}: {value:?}"
        );
    }
    if let Some(rest) = query.and_then(|q| target::without_param(q, target::PREVIEW_PARAM)) {
        assert!(
            !rest
                .split('&')
                .any(|p| p == target::PREVIEW_PARAM || p.starts_with("ef_preview=")),
            "{rest}"
        );
    }
}

/// The preview console's rules: the bytes as the console's form (checked and turned into
/// claims against the demo flags; valid claims must round-trip through the preview
/// cookie and the share link, and what the toolbar shows of them must be escaped), as
/// each of the console's tokens (login, session, share, CSRF, stop, which must refuse
/// what the key did not sign), as an `Origin` header, and as a page streamed through the
/// toolbar injector in chunks (the fragment goes in exactly once, every byte kept).
pub fn console(data: &[u8]) {
    const KEY: &[u8] = b"key";
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let fields = console::form::fields(data);
    let zone = Zone::parse("Asia/Tokyo");
    if let Ok(claims) = console::form::claims(&fields, demo(), zone.as_ref(), now, 1_795_003_600) {
        let cookie = preview::mint(&claims, KEY);
        assert_eq!(preview::verify(&cookie, Some(KEY), 0).as_ref(), Ok(&claims));
        let share = console::mint_share(&claims, KEY);
        assert_eq!(
            console::verify_share(&share, Some(KEY), 0).as_ref(),
            Ok(&claims)
        );
        let shown = console::html::escape(&console::page::describe(&claims));
        assert!(!shown.contains(['<', '>', '"', '\'']), "{shown}");
        let _ = console::page::toolbar(&claims, Some("stop"), true);
    }
    let text = String::from_utf8_lossy(data);
    assert!(
        console::verify_login(&text, Some(KEY), 0).is_err_and(|e| e != preview::TokenError::NoKey)
    );
    assert!(console::verify_session(&text, Some(KEY), 0).is_err());
    assert!(console::verify_share(&text, Some(KEY), 0).is_err());
    let session = console::Session {
        sub: "s".into(),
        sid: text.to_string(),
        exp: 0,
    };
    assert!(!console::check_csrf(&session, KEY, &text));
    assert!(!console::check_stop(&text, KEY, &text));
    let _ = console::same_origin(None, Some(&text), Some("edge.test"));
    let _ = console::form::parse_place(&text);
    let mut out = Vec::new();
    let mut injector = inject::BeforeBodyEnd::new("<X>");
    let cut = data.first().map(|b| usize::from(*b % 7) + 1).unwrap_or(1);
    for chunk in data.chunks(cut) {
        injector.push(chunk, &mut out);
    }
    injector.finish(&mut out);
    assert_eq!(out.len(), data.len() + 3);
    let at = out
        .windows(3)
        .position(|w| w == b"<X>")
        .unwrap_or(usize::MAX);
    let mut back = out.clone();
    back.drain(at.min(back.len())..(at.saturating_add(3)).min(back.len()));
    assert_eq!(back, data, "the page's bytes are kept");
}

/// One value through the checked encoder: the result is a valid header value that
/// decodes back, or nothing when it would be too long.
fn checked(value: &str) {
    if let Some(e) = header_value::encode(value) {
        assert!(header_value::is_valid(e.as_bytes()), "{value:?} -> {e:?}");
        assert_eq!(header_value::decode(&e), value);
    }
}

/// The page rewriter: the bytes as an HTML page (the first byte picks the chunk size
/// and the charset), rewritten with every edge change of the demo file (its edge
/// variants forced, the fragment filled with part of the input) and the bootstrap: it
/// must not panic.
pub fn page(data: &[u8]) {
    let Some(snapshot) = demo() else { return };
    let Some((&first, page)) = data.split_first() else {
        return;
    };
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let mut ctx = Context::with_key("u1").with("country", "JP").with(
        "city",
        String::from_utf8_lossy(page.get(..16).unwrap_or(page)).into_owned(),
    );
    for (flag, variant) in [
        (
            "store-banner",
            if first & 1 == 0 { "local" } else { "sale" },
        ),
        (
            "product-tile",
            if first & 2 == 0 {
                "spotlight"
            } else {
                "classic"
            },
        ),
        ("store-recs", "fragment"),
    ] {
        ctx.force(flag, variant);
    }
    let evals: Vec<_> = snapshot.evaluate_all(&ctx, now).collect();
    let mut plan = crate::page::plan(snapshot, &ctx, &evals, Some(r#"{"flags":[]}"#));
    for (i, _, _) in plan.fragments() {
        plan.fill(
            i,
            String::from_utf8_lossy(page.get(..64).unwrap_or(page)).into_owned(),
        );
    }
    let encoding = if first & 4 == 0 {
        encoding_rs::UTF_8
    } else {
        encoding_rs::WINDOWS_1252
    };
    let chunk = usize::from(first >> 3) + 1;
    let _ = crate::page::rewrite_all(plan, encoding, page, chunk);
}
