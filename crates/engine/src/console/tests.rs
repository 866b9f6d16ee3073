//! The console's rules, natively: tokens and their purposes, CSRF and same-origin checks,
//! the form, and the escaping of every page and the toolbar.

use std::collections::BTreeMap;

use chrono::{DateTime, Offset as _, Utc};

use super::form::{self, FormError, PlaceChoice, parse_place};
use super::page::{self, View};
use super::*;
use crate::traits::Report;
use crate::{Context, Zone};

const KEY: &[u8] = b"test-preview-key";
const NOW: i64 = 1_790_000_000;

fn login(exp: i64) -> Login {
    Login {
        sub: "qa@example.com".into(),
        exp,
    }
}

#[test]
fn a_login_link_opens_a_session_only_with_its_key_and_before_its_expiry() {
    let t = mint_login(&login(NOW + 8 * 3600), KEY);
    assert_eq!(verify_login(&t, Some(KEY), NOW), Ok(login(NOW + 8 * 3600)));
    assert_eq!(
        verify_login(&t, Some(b"another-key"), NOW),
        Err(TokenError::BadSignature)
    );
    assert_eq!(verify_login(&t, None, NOW), Err(TokenError::NoKey));
    assert_eq!(
        verify_login(&t, Some(KEY), NOW + 8 * 3600),
        Err(TokenError::Expired(NOW + 8 * 3600))
    );
    // A link that would outlive the longest session is refused.
    let long = mint_login(&login(NOW + MAX_SESSION + 1), KEY);
    assert_eq!(
        verify_login(&long, Some(KEY), NOW),
        Err(TokenError::Malformed)
    );
    // A tampered body breaks the signature.
    let (_, sig) = t.split_once('.').unwrap_or_default();
    let other = mint_login(&login(NOW + 9 * 3600), b"x");
    let (body, _) = other.split_once('.').unwrap_or_default();
    assert_eq!(
        verify_login(&format!("{body}.{sig}"), Some(KEY), NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn each_token_opens_only_its_own_door() {
    let claims = Claims {
        exp: NOW + 3600,
        country: Some("JP".into()),
        ..Claims::default()
    };
    let login_t = mint_login(&login(NOW + 3600), KEY);
    let session = session_for(&login(NOW + 3600), "sid-1");
    let session_t = mint_session(&session, KEY);
    let share_t = mint_share(&claims, KEY);
    let preview_t = preview::mint(&claims, KEY);
    // A login link is not a session, a share link or a preview token.
    assert!(verify_session(&login_t, Some(KEY), NOW).is_err());
    assert!(verify_share(&login_t, Some(KEY), NOW).is_err());
    assert!(preview::verify(&login_t, Some(KEY), NOW).is_err());
    // A session cookie is not a login link or a preview token.
    assert!(verify_login(&session_t, Some(KEY), NOW).is_err());
    assert!(preview::verify(&session_t, Some(KEY), NOW).is_err());
    // A preview token is not a share link or a session, and the reverse.
    assert!(verify_share(&preview_t, Some(KEY), NOW).is_err());
    assert!(verify_session(&preview_t, Some(KEY), NOW).is_err());
    assert!(preview::verify(&share_t, Some(KEY), NOW).is_err());
    assert_eq!(verify_share(&share_t, Some(KEY), NOW), Ok(claims.clone()));
    assert_eq!(verify_session(&session_t, Some(KEY), NOW), Ok(session));
    assert!(verify_session(&session_t, Some(b"other"), NOW).is_err());
    assert_eq!(
        verify_share(&share_t, Some(KEY), NOW + 3600),
        Err(TokenError::Expired(NOW + 3600))
    );
}

#[test]
fn the_csrf_token_belongs_to_one_session_and_one_key() {
    let a = session_for(&login(NOW + 60), "sid-a");
    let b = session_for(&login(NOW + 60), "sid-b");
    let token = csrf_token(&a, KEY);
    assert_eq!(token.len(), 32);
    assert!(check_csrf(&a, KEY, &token));
    assert!(!check_csrf(&b, KEY, &token), "another session's token");
    assert!(!check_csrf(&a, b"other", &token), "another key's token");
    assert!(!check_csrf(&a, KEY, ""));
    assert!(!check_csrf(&a, KEY, &token[..31]));
    let stop = stop_token("cookie-1", KEY);
    assert!(check_stop("cookie-1", KEY, &stop));
    assert!(!check_stop("cookie-2", KEY, &stop));
    assert!(!check_stop("cookie-1", b"other", &stop));
}

#[test]
fn a_post_must_come_from_the_page_itself() {
    let host = Some("localhost:7676");
    assert!(same_origin(Some("same-origin"), None, host));
    assert!(!same_origin(Some("same-site"), None, host));
    assert!(!same_origin(
        Some("cross-site"),
        Some("http://localhost:7676"),
        host
    ));
    assert!(same_origin(None, Some("http://localhost:7676"), host));
    assert!(same_origin(None, Some("https://LOCALHOST:7676/"), host));
    assert!(!same_origin(None, Some("http://127.0.0.1:9000"), host));
    assert!(!same_origin(None, Some("null"), host));
    assert!(!same_origin(None, Some("http://localhost:7676"), None));
    // Not a browser: the token alone decides.
    assert!(same_origin(None, None, host));
}

#[test]
fn cookies_are_http_only_secure_and_strict() {
    let c = set_cookie(SESSION_COOKIE, "v", 0);
    assert_eq!(
        c,
        "ef_console=v; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Strict"
    );
    assert!(clear_cookie(PREVIEW_COOKIE).starts_with("ef_preview=; Path=/; Max-Age=0;"));
    assert!(CSP.contains("frame-ancestors 'none'") && CSP.contains("default-src 'none'"));
    assert!(!CSP.contains("unsafe"));
}

#[test]
fn places_are_read_as_the_list_writes_them() {
    let p = |t: &str| parse_place(t);
    assert_eq!(
        p("Tokyo, JP (Asia/Tokyo)"),
        Ok(Some(PlaceChoice {
            country: "JP".into(),
            region: None,
            city: Some("Tokyo".into()),
            zone: Some("Asia/Tokyo".into()),
        }))
    );
    let ny = p("New York, NY, us").ok().flatten().unwrap_or_default();
    assert_eq!(
        (
            ny.city.as_deref(),
            ny.region.as_deref(),
            ny.country.as_str()
        ),
        (Some("New York"), Some("NY"), "US")
    );
    let region = p("13, JP").ok().flatten().unwrap_or_default();
    assert_eq!((region.region.as_deref(), region.city), (Some("13"), None));
    assert_eq!(p("  "), Ok(None));
    assert!(p("Tokyo").is_err(), "no country");
    assert!(p("Tokyo, JPN").is_err());
    assert!(p("a, b, c, JP").is_err());
    assert!(p("Tokyo, JP (Mars/Base)").is_err());
    assert!(p("Tokyo, , JP").is_err());
    // Every option of the list reads back as itself.
    let options = page::place_options();
    assert!(options.len() > 800, "{}", options.len());
    for (value, _) in &options {
        let parsed = p(value).ok().flatten();
        assert_eq!(parsed.map(|c| c.label()).as_deref(), Some(value.as_str()));
    }
    assert!(options.iter().any(|(v, _)| v == "Tokyo, JP (Asia/Tokyo)"));
    assert!(options.iter().any(|(v, _)| v == "NSW, AU"));
}

fn demo() -> crate::Snapshot {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config-store/flags.json"
    ))
    .unwrap_or_default();
    crate::compile_str(&text).unwrap_or_else(|e| panic!("demo flags: {e}"))
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

#[test]
fn the_form_becomes_claims_with_the_clock_in_the_places_zone() {
    let snapshot = demo();
    let now = at("2026-11-20T00:00:00Z");
    let c = form::claims(
        &fields(&[
            ("csrf", "x"),
            ("place", "Tokyo, JP (Asia/Tokyo)"),
            ("at", "2026-11-28T10:00"),
            ("device", "mobile"),
            ("traits", "buyer=bargain_hunter\r\n\r\nwatch_genre = anime"),
            ("v.checkout", "v2"),
            ("v.banner", ""),
        ]),
        Some(&snapshot),
        None,
        now,
        NOW,
    );
    let c = c.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.exp, NOW);
    assert_eq!(c.country.as_deref(), Some("JP"));
    assert_eq!(c.city.as_deref(), Some("Tokyo"));
    assert_eq!(c.zone.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(c.at.as_deref(), Some("2026-11-28T10:00:00+09:00"));
    assert_eq!(c.device.as_deref(), Some("mobile"));
    assert_eq!(c.variants, [("checkout".into(), "v2".into())].into());
    assert_eq!(
        c.traits.get("watch_genre").map(String::as_str),
        Some("anime")
    );
    assert_eq!(form::values_of(&c).1, "2026-11-28T10:00");
    assert!(page::describe(&c).contains("Sat 2026-11-28 10:00 +09:00"));

    // Without a zone in brackets, the resolver's zone for the place: Paris in summer.
    let c = form::claims(
        &fields(&[("place", "Paris, FR"), ("at", "2026-07-04T10:00")]),
        Some(&snapshot),
        None,
        now,
        NOW,
    );
    assert_eq!(
        c.ok().and_then(|c| c.at).as_deref(),
        Some("2026-07-04T10:00:00+02:00")
    );
    // Without a place, the visitor's zone; a time the clock skips is an hour later.
    let ny = Zone::parse("America/New_York");
    let c = form::claims(
        &fields(&[("at", "2026-03-08T02:30")]),
        Some(&snapshot),
        ny.as_ref(),
        now,
        NOW,
    );
    assert_eq!(
        c.ok().and_then(|c| c.at).as_deref(),
        Some("2026-03-08T03:30:00-04:00")
    );
    // A time the clock shows twice is the first of them (summer time).
    let c = form::claims(
        &fields(&[("at", "2026-11-01T01:30")]),
        Some(&snapshot),
        ny.as_ref(),
        now,
        NOW,
    );
    assert_eq!(
        c.ok().and_then(|c| c.at).as_deref(),
        Some("2026-11-01T01:30:00-04:00")
    );
}

#[test]
fn a_bad_field_is_an_error_that_names_it() {
    let snapshot = demo();
    let now = at("2026-11-20T00:00:00Z");
    let run = |pairs: &[(&str, &str)]| {
        form::claims(&fields(pairs), Some(&snapshot), None, now, NOW).map(|_| ())
    };
    assert_eq!(
        run(&[("at", "tomorrow")]),
        Err(FormError::Clock("tomorrow".into()))
    );
    assert_eq!(
        run(&[("device", "fridge")]),
        Err(FormError::Device("fridge".into()))
    );
    assert!(matches!(
        run(&[("traits", "Bad Name=1")]),
        Err(FormError::Trait(_))
    ));
    let many: String = (0..17).map(|i| format!("t{i}=x\n")).collect();
    assert!(matches!(
        run(&[("traits", &many)]),
        Err(FormError::Trait(_))
    ));
    assert_eq!(
        run(&[("v.checkout", "v9")]),
        Err(FormError::Variant("checkout".into(), "v9".into()))
    );
    assert_eq!(
        run(&[("v.nope", "on")]),
        Err(FormError::Variant("nope".into(), "on".into()))
    );
    assert!(matches!(run(&[("place", "x")]), Err(FormError::Place(_))));
}

const HOSTILE: &str = "<script>alert(1)</script>\"'&";

#[test]
fn the_console_escapes_everything_it_shows_and_never_shows_the_key() {
    let snapshot = demo();
    let now = at("2026-11-28T01:00:00Z");
    let mut ctx = Context::with_key(HOSTILE)
        .with("country", "JP")
        .with("city", HOSTILE)
        .with("language", HOSTILE);
    ctx.set_zone(Zone::parse("Asia/Tokyo").unwrap_or(Zone::Fixed(Utc.fix())));
    let mut report = Report::default();
    report.add_preview(&[("buyer".to_string(), HOSTILE.to_string())].into());
    let session = Session {
        sub: HOSTILE.into(),
        sid: "s".into(),
        exp: NOW,
    };
    let claims = Claims {
        exp: NOW,
        country: Some("JP".into()),
        city: Some(HOSTILE.into()),
        traits: [("buyer".to_string(), HOSTILE.to_string())].into(),
        ..Claims::default()
    };
    let csrf = csrf_token(&session, KEY);
    let html = page::console(&View {
        snapshot: Some(&snapshot),
        version: HOSTILE,
        ctx: &ctx,
        now,
        traits: &report,
        session: &session,
        csrf: &csrf,
        preview: Some(&claims),
        stop: Some(HOSTILE),
        share: Some(HOSTILE),
        error: Some(HOSTILE),
    });
    assert!(!html.contains("<script>alert"), "unescaped: {html}");
    assert!(!html.contains("\"'&\""));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    // Only the console's own script tag, which names a file of its own.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains(std::str::from_utf8(KEY).unwrap_or("?")));
    // It shows the decisions, the context and the form.
    assert!(html.contains("<tr data-flag=\"checkout\">"));
    assert!(html.contains("Asia/Tokyo"));
    assert!(html.contains(&format!("name=\"csrf\" value=\"{csrf}\"")));
    assert!(html.contains("<option value=\"Tokyo, JP (Asia/Tokyo)\""));
    assert!(html.contains("<select id=\"v-checkout\" name=\"v.checkout\">"));
    assert!(html.contains("<td>buyer</td>") && html.contains(">preview</td>"));
    // And the edge's content changes for these decisions, one line each.
    let evals: Vec<_> = snapshot.evaluate_all(&ctx, now).collect();
    let plan = crate::page::plan(&snapshot, &ctx, &evals, None);
    assert!(!plan.changes.is_empty());
    assert!(html.contains("<ul id=\"edge-changes\">"));
    for c in &plan.changes {
        assert!(
            html.contains(&format!("<li>{}={}: ", c.flag, c.variant)),
            "{}",
            c.flag
        );
    }

    let bar = page::toolbar(&claims, Some(HOSTILE), true);
    assert!(!bar.contains("<script"));
    assert!(bar.contains("&lt;script&gt;"));
    assert!(bar.contains(STOP_PATH) && bar.contains(CONSOLE_PATH));
    // Every style the toolbar writes is one the page's policy is amended to allow
    // (`csp::allow_styles`), and each of those is written.
    let styles: Vec<&str> = bar
        .split(" style=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(styles, page::TOOLBAR_STYLES, "{bar}");
    let bar = page::toolbar(&claims, None, false);
    assert!(!bar.contains(STOP_PATH) && !bar.contains(CONSOLE_PATH));

    let bounce = page::bounce("/x\"><script>", HOSTILE);
    assert!(!bounce.contains("<script"));
    assert!(bounce.contains("url=/x&quot;&gt;&lt;script&gt;"));
}
