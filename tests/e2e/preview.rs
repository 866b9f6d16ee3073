//! Signed preview tokens: honoured when valid; ignored (and logged) when tampered,
//! expired, or signed with another key.

use edgeflags_e2e::{AppSpec, Req, app};
use edgeflags_engine::preview::{Claims, mint};

const DEV_KEY: &[u8] = b"dev-preview-key-not-for-production";

fn in_an_hour() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + 3600
}

fn tokyo_saturday_night() -> Claims {
    let mut c = Claims {
        exp: in_an_hour(),
        country: Some("JP".into()),
        region: Some("13".into()),
        city: Some("Tokyo".into()),
        continent: Some("AS".into()),
        at: Some("2026-11-28T21:00:00+09:00".into()),
        ..Claims::default()
    };
    c.variants.insert("checkout".into(), "v2".into());
    c
}

#[test]
fn a_valid_token_sets_geo_clock_and_variants() {
    let app = app(AppSpec::demo());
    let token = mint(&tokyo_saturday_night(), DEV_KEY);
    // A visitor in New York (127.0.0.1) previews Tokyo on Saturday night.
    let r = app.send(
        Req::get("/")
            .user("u-preview-1")
            .header("edgeflags-preview", &token),
    );
    assert_eq!(r.status, 200);
    let saw = r.origin_saw();
    assert_eq!(saw["backend"], "origin_apac");
    assert_eq!(saw["path"], "/ja/");
    assert_eq!(saw["headers"]["edgeflags-city"], "Tokyo");
    assert_eq!(saw["headers"]["edgeflags-timezone"], "Asia/Tokyo");
    assert_eq!(r.decision("banner").as_deref(), Some("weekend_sale"));
    assert_eq!(r.decision("checkout").as_deref(), Some("v2"));
    // The token is not passed on to the origin.
    assert!(saw["headers"].get("edgeflags-preview").is_none());
    // The same token as a cookie or query parameter works too.
    let c = app.send(
        Req::get("/")
            .user("u-preview-1")
            .header("cookie", &format!("ef_uid=u-preview-1; ef_preview={token}")),
    );
    assert_eq!(c.origin_saw()["backend"], "origin_apac");
    let q = app.send(Req::get(&format!("/?ef_preview={token}")).user("u-preview-1"));
    assert_eq!(q.origin_saw()["backend"], "origin_apac");
}

fn assert_ignored(token: &str, reason: &str) {
    let app = app(AppSpec::demo());
    let marker = format!("u-ignored-{}", reason.replace(' ', "-"));
    let r = app.send(
        Req::get("/")
            .user(&marker)
            .header("edgeflags-preview", token),
    );
    assert_eq!(r.status, 200, "an ignored token is never an error page");
    let saw = r.origin_saw();
    assert_eq!(
        saw["headers"]["edgeflags-country"], "US",
        "the token must be ignored ({reason})"
    );
    assert_eq!(saw["backend"], "origin_us");
    let logged = app.log_json("edgeflags_ops").iter().any(|l| {
        l["area"] == "preview" && l["message"].as_str().unwrap_or_default().contains(reason)
    });
    assert!(logged, "no log line saying `{reason}`: {:?}", app.logs());
}

#[test]
fn a_tampered_token_is_ignored() {
    let token = mint(&tokyo_saturday_night(), DEV_KEY);
    let (_, sig) = token.split_once('.').unwrap_or_default();
    let mut other = tokyo_saturday_night();
    other.country = Some("FR".into());
    let body = mint(&other, b"whatever");
    let (body, _) = body.split_once('.').unwrap_or_default();
    assert_ignored(&format!("{body}.{sig}"), "bad signature");
}

#[test]
fn an_expired_token_is_ignored() {
    let mut c = tokyo_saturday_night();
    c.exp = 1_000_000_000;
    assert_ignored(&mint(&c, DEV_KEY), "expired");
}

#[test]
fn a_token_signed_with_another_key_is_ignored() {
    assert_ignored(
        &mint(&tokyo_saturday_night(), b"someone-elses-key"),
        "bad signature",
    );
}

#[test]
fn garbage_is_ignored() {
    assert_ignored("not-a-token", "malformed");
}
