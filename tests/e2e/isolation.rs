//! Isolation between requests served by one reused instance: many users interleaved (each
//! with the origin's signed identity cookie), with and without profiles, traits cookies,
//! preview overrides and custom attributes; every
//! response's decisions (all flags) must equal the engine's own evaluation of that
//! request alone, as a fresh instance would give. Each request pins the clock with a
//! preview token, so the expected answer is exact.

use std::collections::BTreeMap;

use edgeflags_e2e::{AppSpec, Req, Store, app, demo_flags};
use edgeflags_engine::preview::{Claims, mint};
use edgeflags_engine::traits::{CookieClaims, mint_cookie};
use edgeflags_engine::{Context, attributes, place};
use serde_json::json;

const AT: &str = "2026-11-28T21:30:00+09:00";
const PREVIEW_KEY: &[u8] = b"dev-preview-key-not-for-production";
const TRAITS_KEY: &[u8] = b"dev-traits-key-not-for-production";

/// The test addresses' places: (ip, country, region, city).
const PLACES: [(&str, &str, &str, &str); 4] = [
    ("203.0.113.10", "JP", "13", "Tokyo"),
    ("203.0.113.20", "FR", "IDF", "Paris"),
    ("203.0.113.30", "US", "NY", "New York"),
    ("203.0.113.40", "BR", "SP", "Sao Paulo"),
];

fn flags() -> serde_json::Value {
    let mut f = demo_flags();
    f["context"] = json!({"headers": {"x-plan": "plan"}});
    f["flags"]["plan-banner"] = json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "off_variant": "off",
        "rules": [{"id": "pro", "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}], "serve": "on"}],
        "default": "off"
    });
    f
}

/// One request and what the engine must decide for it.
struct Case {
    req: Req,
    ctx: Context,
}

fn case(i: usize) -> Case {
    let (ip, country, region, city) = PLACES[i % PLACES.len()];
    let user = format!("iso-{i}");
    let mut ctx = Context::with_key(&user);
    ctx.set("country", country);
    ctx.set("region", region);
    ctx.set("city", city);
    if let Some(c) = attributes::continent_for(country) {
        ctx.set("continent", c);
    }
    let place = place::Record {
        country: Some(country),
        region: Some(region),
        city: Some(city),
        ..place::Record::default()
    };
    let at = chrono::DateTime::parse_from_rfc3339(AT)
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    if let Some(r) = place::resolve(&place, at) {
        ctx.set_resolved_zone(&r);
    }
    // No User-Agent: device detection does not know it, and the fallback says bot.
    ctx.set("device", "bot");
    let mut claims = Claims {
        exp: 4_000_000_000,
        at: Some(AT.into()),
        ..Claims::default()
    };
    if i % 5 == 1 {
        claims.variants.insert("checkout".into(), "v2".into());
        ctx.force("checkout", "v2");
    }
    // The origin's signed identity: profiles and traits cookies are read only for it.
    let id = edgeflags_engine::identity::mint(
        &edgeflags_engine::identity::IdClaims {
            sub: user.clone(),
            exp: 4_000_000_000,
        },
        TRAITS_KEY,
    );
    let mut cookies = vec![format!("ef_id={id}")];
    let mut req = Req::get("/").from(ip);
    if i.is_multiple_of(3) {
        // A profile (stored for every third user by the app spec).
        ctx.set("traits.watch_genre", "anime");
    }
    if i % 4 == 2 {
        let c = mint_cookie(
            &CookieClaims {
                sub: user.clone(),
                exp: 4_000_000_000,
                traits: BTreeMap::from([("buyer".into(), json!("bargain_hunter"))]),
            },
            TRAITS_KEY,
        );
        cookies.push(format!("ef_traits={c}"));
        ctx.set("traits.buyer", "bargain_hunter");
    }
    if i % 7 == 3 {
        req = req.header("x-plan", "pro");
        ctx.set("plan", "pro");
    }
    req = req
        .header("cookie", &cookies.join("; "))
        .header("edgeflags-preview", &mint(&claims, PREVIEW_KEY));
    Case { req, ctx }
}

#[test]
fn interleaved_users_through_reused_instances_each_get_a_fresh_answer() {
    let n = 120;
    let app = app({
        let mut spec = AppSpec::demo().store(Store::Flags(flags(), None));
        for i in (0..n).step_by(3) {
            spec = spec.profile(
                &format!("iso-{i}"),
                r#"{"traits": {"watch_genre": "anime"}}"#,
            );
        }
        spec
    });
    let snapshot = edgeflags_engine::compile(&flags()).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::DateTime::parse_from_rfc3339(AT)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reused = 0;
    // Twice through, in different orders, so each user follows different neighbours.
    let order: Vec<usize> = (0..n).chain((0..n).rev()).collect();
    for i in order {
        let c = case(i);
        let r = app.send(c.req);
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        let want: Vec<String> = snapshot
            .evaluate_all(&c.ctx, now)
            .filter_map(|e| e.variant.map(|v| format!("{}={v}", e.key)))
            .collect();
        let saw = r.origin_saw();
        assert_eq!(
            saw["headers"]["edgeflags-decisions"]
                .as_str()
                .unwrap_or_default(),
            want.join("; "),
            "request {i} (user iso-{i})"
        );
        assert!(
            r.header("set-cookie").is_none(),
            "request {i}: a known user got a new id"
        );
        if r.header("edgeflags-instance-request")
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
        {
            reused += 1;
        }
    }
    assert!(reused > n, "too few requests on reused instances: {reused}");
}
