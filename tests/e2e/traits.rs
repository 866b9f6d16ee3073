//! Behaviour traits: profiles from the KV store (keyed by the hashed user key) and the
//! origin's signed traits cookie, targeted by the demo `recommendations` flag. Both are
//! read only for a verified identity (here the origin's signed `ef_id` cookie); a key the
//! client chooses (`ef_uid`) gets none.

use std::collections::BTreeMap;

use edgeflags_e2e::{AppSpec, Reply, Req, Store, app, demo_flags};
use edgeflags_engine::identity::{IdClaims, mint};
use edgeflags_engine::traits::{CookieClaims, mint_cookie};
use serde_json::json;

const TRAITS_KEY: &[u8] = b"dev-traits-key-not-for-production";

fn traits_app() -> std::sync::Arc<edgeflags_e2e::App> {
    app(AppSpec::demo()
        .secret("explain_token", "explain-me")
        .secret("ofrep_token", "ofrep-me")
        .profile(
            "u-anime",
            r#"{"traits": {"watch_genre": "anime", "plan": "pro"}}"#,
        )
        .profile("u-deals", r#"{"traits": {"buyer": "bargain_hunter"}}"#)
        .profile(
            "u-expired",
            r#"{"traits": {"watch_genre": "anime"}, "expires": 1000}"#,
        )
        .profile("u-broken", "{not json")
        // The form Fastly's generated API client writes: the profile as a JSON string.
        .profile(
            "u-quoted",
            &serde_json::to_string(r#"{"traits":{"buyer":"bargain_hunter"}}"#).unwrap_or_default(),
        ))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn cookie(user: &str, traits: serde_json::Value, key: &[u8], exp_in: i64) -> String {
    let claims = CookieClaims {
        sub: user.into(),
        exp: now() + exp_in,
        traits: serde_json::from_value::<BTreeMap<_, _>>(traits).unwrap_or_default(),
    };
    mint_cookie(&claims, key)
}

/// The origin's signed identity cookie for `user`.
fn signed(user: &str) -> String {
    let claims = IdClaims {
        sub: user.into(),
        exp: now() + 3600,
    };
    format!("ef_id={}", mint(&claims, TRAITS_KEY))
}

/// A request as the verified `user`.
fn as_user(user: &str) -> Req {
    Req::get("/").header("cookie", &signed(user))
}

fn as_user_with_cookie(user: &str, traits_cookie: &str) -> Req {
    Req::get("/").header(
        "cookie",
        &format!("{}; ef_traits={traits_cookie}", signed(user)),
    )
}

fn trait_lookups(r: &Reply) -> Option<u32> {
    let timing = r.header("server-timing")?;
    let (_, after) = timing.split_once("traits;desc=\"lookups=")?;
    after.split('"').next()?.parse().ok()
}

fn ops_lines(app: &edgeflags_e2e::App) -> Vec<String> {
    app.logs()
        .into_iter()
        .filter(|l| l.starts_with("edgeflags_ops"))
        .collect()
}

#[test]
fn a_rule_on_a_kv_trait_serves_each_profile_its_variant() {
    let app = traits_app();
    let served = |user: &str| {
        let r = app.send(as_user(user).debug());
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(trait_lookups(&r), Some(1), "one profile lookup per request");
        r.decision("recommendations")
    };
    assert_eq!(served("u-anime").as_deref(), Some("anime_row"));
    assert_eq!(served("u-deals").as_deref(), Some("deals_row"));
    assert_eq!(served("u-quoted").as_deref(), Some("deals_row"));
    // From the local data beside config-store/ (config-store/profiles.json).
    assert_eq!(served("alice").as_deref(), Some("anime_row"));
    assert_eq!(served("bob").as_deref(), Some("deals_row"));
    // No profile, an expired one, a broken one: the default, and never an error.
    assert_eq!(served("u-nobody").as_deref(), Some("trending_row"));
    assert_eq!(served("u-expired").as_deref(), Some("trending_row"));
    assert_eq!(served("u-broken").as_deref(), Some("trending_row"));
    let ops = ops_lines(&app);
    assert!(
        ops.iter()
            .any(|l| l.contains("profile not used: expired at 1000")),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|l| l.contains("profile not used: malformed")),
        "{ops:?}"
    );
    // A key the client chooses reads no profile at all.
    let chosen = app.send(Req::get("/").user("u-anime").debug());
    assert_eq!(trait_lookups(&chosen), Some(0));
    assert_eq!(
        chosen.decision("recommendations").as_deref(),
        Some("trending_row")
    );
    // A first visit (no id yet) has no profile to look up.
    let first = app.send(Req::get("/").debug());
    assert_eq!(trait_lookups(&first), Some(0));
    assert_eq!(
        first.decision("recommendations").as_deref(),
        Some("trending_row")
    );
    // Nothing logged names a raw user key.
    assert!(
        !app.logs().iter().any(|l| l.contains("u-anime")),
        "a raw user key was logged"
    );
}

#[test]
fn the_signed_traits_cookie_is_used_and_a_tampered_one_ignored() {
    let app = traits_app();
    let good = cookie(
        "u-cookie",
        json!({"buyer": "bargain_hunter"}),
        TRAITS_KEY,
        3600,
    );
    let r = app.send(as_user_with_cookie("u-cookie", &good));
    assert_eq!(r.decision("recommendations").as_deref(), Some("deals_row"));
    // The same cookie with only a chosen key beside it is not read.
    let r = app.send(Req::get("/").header("cookie", &format!("ef_uid=u-cookie; ef_traits={good}")));
    assert_eq!(
        r.decision("recommendations").as_deref(),
        Some("trending_row")
    );

    // Tampered: the payload swapped for another under the original signature.
    let other = cookie("u-cookie", json!({"watch_genre": "anime"}), b"x", 3600);
    let (body, _) = other.split_once('.').unwrap_or_default();
    let (_, sig) = good.split_once('.').unwrap_or_default();
    let tampered = format!("{body}.{sig}");
    let r = app.send(as_user_with_cookie("u-cookie", &tampered));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.decision("recommendations").as_deref(),
        Some("trending_row")
    );
    // Signed with another key, issued for another user, expired, or not a token at all.
    for (user, c) in [
        (
            "u-cookie",
            cookie(
                "u-cookie",
                json!({"buyer": "bargain_hunter"}),
                b"guess",
                3600,
            ),
        ),
        ("u-someone-else", good.clone()),
        (
            "u-cookie",
            cookie(
                "u-cookie",
                json!({"buyer": "bargain_hunter"}),
                TRAITS_KEY,
                -10,
            ),
        ),
        ("u-cookie", "%%%".to_string()),
    ] {
        let r = app.send(as_user_with_cookie(user, &c));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.decision("recommendations").as_deref(),
            Some("trending_row"),
            "cookie for {user} should be ignored"
        );
    }
    let ops = ops_lines(&app);
    for why in [
        "bad signature",
        "issued for another user",
        "expired at",
        "malformed",
    ] {
        assert!(
            ops.iter()
                .any(|l| l.contains("traits cookie ignored") && l.contains(why)),
            "no ops line for {why}: {ops:?}"
        );
    }
    // The cookie is newer than the profile: it wins trait by trait.
    let over = cookie("u-anime", json!({"watch_genre": "drama"}), TRAITS_KEY, 3600);
    let r = app.send(as_user_with_cookie("u-anime", &over));
    assert_eq!(
        r.decision("recommendations").as_deref(),
        Some("trending_row")
    );
}

#[test]
fn explain_shows_where_each_trait_came_from() {
    let app = traits_app();
    let c = cookie(
        "u-anime",
        json!({"buyer": "bargain_hunter"}),
        TRAITS_KEY,
        3600,
    );
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .header("cookie", &format!("{}; ef_traits={c}", signed("u-anime")))
            .header("authorization", "Bearer explain-me"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    let t = &doc["traits"];
    assert_eq!(t["looked_up"], true);
    assert_eq!(t["profile"], "found");
    assert_eq!(t["cookie"], "valid");
    assert_eq!(
        t["values"]["watch_genre"],
        json!({"value": "anime", "source": "profile"})
    );
    assert_eq!(t["values"]["plan"]["source"], "profile");
    assert_eq!(
        t["values"]["buyer"],
        json!({"value": "bargain_hunter", "source": "cookie"})
    );
    assert_eq!(doc["context"]["traits.watch_genre"], "anime");
    let rec = doc["flags"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["key"] == "recommendations"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (rec["variant"].as_str(), rec["rule_id"].as_str()),
        (Some("anime_row"), Some("anime-fans"))
    );
    // Without a profile, explain says so; for a key the client chose, it says why none
    // was read.
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .header("cookie", &signed("u-nobody"))
            .header("authorization", "Bearer explain-me"),
    );
    assert_eq!(r.json()["traits"]["profile"], "none");
    let r = app.send(
        Req::get("/.edgeflags/explain")
            .user("u-anime")
            .header("authorization", "Bearer explain-me"),
    );
    let why = r.json()["traits"]["profile"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("not a verified identity"), "{why}");
}

#[test]
fn no_profile_store_and_no_trait_rules_degrade_quietly() {
    let bare = app(AppSpec::demo().without_profile_store());
    let r = bare.send(as_user("alice"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.decision("recommendations").as_deref(),
        Some("trending_row")
    );
    assert!(
        ops_lines(&bare)
            .iter()
            .any(|l| l.contains("profile not used: KV store edgeflags_profiles")),
        "{:?}",
        ops_lines(&bare)
    );

    // No rule tests a trait: no lookup at all.
    let mut flags = demo_flags();
    if let Some(f) = flags["flags"].as_object_mut() {
        f.remove("recommendations");
    }
    let unused = app(AppSpec::demo().store(Store::Flags(flags, None)));
    let r = unused.send(as_user("alice").debug());
    assert_eq!(r.status, 200);
    assert_eq!(trait_lookups(&r), Some(0));
}

#[test]
fn ofrep_reads_traits_only_for_the_user_the_answer_is_for() {
    let app = traits_app();
    let eval = |req: Req| {
        app.send(req).json()["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let path = "/ofrep/v1/evaluate/flags/recommendations";
    // A trusted server call names its user: that user's profile applies.
    let server = Req::post(
        path,
        json!({"context": {"targetingKey": "u-anime"}}).to_string(),
    )
    .header("authorization", "Bearer ofrep-me");
    assert_eq!(eval(server), "Because you watch anime");
    // A browser with its signed identity gets its own traits; with only an id cookie,
    // which anyone can set, none.
    let own =
        Req::post(path, json!({"context": {}}).to_string()).header("cookie", &signed("u-deals"));
    assert_eq!(eval(own), "Deals picked for you");
    let chosen = Req::post(path, json!({"context": {}}).to_string()).user("u-deals");
    assert_eq!(eval(chosen), "Trending now");
    // A browser naming someone else gets none of theirs, and cannot claim traits.
    let other = Req::post(
        path,
        json!({"context": {"targetingKey": "u-anime", "traits.buyer": "bargain_hunter"}})
            .to_string(),
    )
    .header("cookie", &signed("u-deals"));
    assert_eq!(eval(other), "Trending now");
}
