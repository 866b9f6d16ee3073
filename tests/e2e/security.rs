//! What an attacker can and cannot learn: secrets never appear in a log line, a page or a
//! header, whatever fails; raw user ids never reach a log; the id cookie is `HttpOnly`,
//! `Secure` and `SameSite`.

use edgeflags_e2e::{AppSpec, Behaviour, Req, Store, app, demo_flags, packed};

const SECRETS: [(&str, &str); 6] = [
    ("preview_key", "S3CRET-preview-key-8d1f"),
    ("user_hash_key", "S3CRET-user-hash-key-77aa"),
    ("traits_key", "S3CRET-traits-key-41c9"),
    ("ofrep_token", "S3CRET-ofrep-token-0b3e"),
    ("explain_token", "S3CRET-explain-token-c2d4"),
    ("snapshot_key", "S3CRET-snapshot-key-9e15"),
];

#[test]
fn secrets_and_raw_user_ids_never_leak_whatever_fails() {
    let a = app({
        let mut spec = AppSpec::demo()
            // Signed with another key: the edge refuses the store and says so.
            .store(Store::Entries(packed(&demo_flags(), Some(b"wrong-key"))))
            .origin("origin_us", Behaviour::Status(500))
            .origin("origin_eu", Behaviour::Refuse)
            .profile("u-sec-1", r#"{"traits": {"watch_genre": "anime"}}"#);
        for (k, v) in SECRETS {
            spec = spec.secret(k, v);
        }
        spec
    });
    let users = ["u-sec-1", "u-sec-2", "alice@example.com"];
    let mut replies = Vec::new();
    for user in users {
        // The origin's signed identity, so the forged traits cookie is checked (and
        // refused) for the user; and, for one user, a forged identity.
        let id = edgeflags_engine::identity::mint(
            &edgeflags_engine::identity::IdClaims {
                sub: user.into(),
                exp: 4_000_000_000,
            },
            if user == "u-sec-2" {
                &b"guessed-traits-key"[..]
            } else {
                &b"S3CRET-traits-key-41c9"[..]
            },
        );
        let cookie =
            format!("ef_uid={user}; ef_id={id}; ef_traits=forged.sig; ef_preview=bad.token");
        for req in [
            Req::get("/").from("203.0.113.30").header("cookie", &cookie),
            Req::get("/").from("203.0.113.20").header("cookie", &cookie),
            Req::get("/.edgeflags/explain")
                .header("cookie", &cookie)
                .header("authorization", "Bearer S3CRET-explain-token-c2d4x"),
            Req::get("/.edgeflags/explain")
                .header("cookie", &cookie)
                .header("authorization", "Bearer S3CRET-explain-token-c2d4"),
            Req::post(
                "/ofrep/v1/evaluate/flags",
                format!(r#"{{"context": {{"targetingKey": "{user}"}}}}"#),
            )
            .header("x-api-key", "guess"),
            Req::post(
                "/ofrep/v1/evaluate/flags",
                format!(r#"{{"context": {{"targetingKey": "{user}"}}}}"#),
            )
            .header("authorization", "Bearer S3CRET-ofrep-token-0b3e"),
            Req::post("/.edgeflags/track", r#"{"event": "purchase"}"#).header("cookie", &cookie),
            Req::get("/.edgeflags/health"),
            Req::get("/..%2fadmin").header("cookie", &cookie),
        ] {
            replies.push(a.send(req));
        }
    }
    // The failures happened (so the scan below means something).
    assert!(replies.iter().any(|r| r.status == 502));
    assert!(replies.iter().any(|r| r.status == 403));
    assert!(replies.iter().any(|r| r.status == 400));
    let logs = a.logs();
    for needle in [
        "bad signature",
        "answered 500",
        "preview token ignored",
        "traits cookie ignored",
        "identity cookie ignored",
    ] {
        assert!(
            logs.iter().any(|l| l.contains(needle)),
            "expected a log line with `{needle}`: {logs:?}"
        );
    }
    for (name, value) in SECRETS {
        let core = &value[..value.len() - 1];
        for l in &logs {
            assert!(!l.contains(core), "secret {name} in a log line: {l}");
        }
        for r in &replies {
            assert!(
                !r.body.contains(core) || is_echo(r),
                "secret {name} in a page: {}",
                r.body
            );
            for (h, v) in &r.headers {
                assert!(!v.contains(core), "secret {name} in header {h}");
            }
        }
    }
    for user in users {
        for l in &logs {
            assert!(!l.contains(user), "raw user id {user} in a log line: {l}");
        }
    }
}

/// The demo origin echoes the request it got, cookies and all: that is the origin's
/// business, not a leak by the edge. Every other page is the edge's own.
fn is_echo(r: &edgeflags_e2e::Reply) -> bool {
    r.status == 200 && r.json()["backend"].is_string()
}

#[test]
fn the_id_cookie_is_httponly_secure_and_samesite() {
    let a = app(AppSpec::demo());
    for req in [Req::get("/"), Req::post("/ofrep/v1/evaluate/flags", "{}")] {
        let r = a.send(req);
        let cookie = r
            .headers_named("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("ef_uid="))
            .unwrap_or_else(|| panic!("no id cookie: {:?}", r.headers))
            .to_string();
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age="] {
            assert!(cookie.contains(attr), "{attr} missing: {cookie}");
        }
        let id = cookie
            .trim_start_matches("ef_uid=")
            .split(';')
            .next()
            .unwrap_or_default();
        assert_eq!(id.len(), 32, "128 random bits: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
