//! Layers, holdouts and ramps over many users, as the edge runs them (the packed form):
//! a user is in at most one experiment of a layer, a holdout keeps its share, a ramp only
//! widens. The shares expected are the contract's (`docs/bucketing.md`): a range of `n`
//! slots of 100 holds `n`% of users, a holdout of weight `w` holds `w`%, a ramp step of
//! weight `w` lets `w`% in. The users are fixed (`user-0` to `user-99999`), so each
//! figure is too; 0.5 points is more than three standard deviations at 100,000 users.

use chrono::{DateTime, Duration, Utc};
use edgeflags_engine::codec::{decode, encode};
use edgeflags_engine::{Context, Reason, Snapshot, compile};
use proptest::prelude::*;
use serde_json::{Value, json};

const USERS: usize = 100_000;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The snapshot the edge would run: compiled, encoded and decoded.
fn packed(file: &Value) -> Snapshot {
    let compiled = compile(file).unwrap_or_else(|e| panic!("{e}"));
    decode(&encode(&compiled)).unwrap_or_else(|e| panic!("{e}"))
}

fn users() -> impl Iterator<Item = Context> {
    (0..USERS).map(|i| Context::with_key(&format!("user-{i}")))
}

fn percent(n: usize) -> f64 {
    n as f64 * 100.0 / USERS as f64
}

fn near(what: &str, got: f64, want: f64, points: f64) {
    println!("{what}: {got:.3}% (contract {want}%)");
    assert!(
        (got - want).abs() < points,
        "{what}: {got:.3}% where the contract says {want}% (within {points} points)"
    );
}

/// Whether an evaluation placed the user by a draw of the flag itself: a split (of a
/// rule or the default) or the ramp. That is being in the flag's experiment.
fn drawn(reason: Reason, bucket: Option<u32>) -> bool {
    match reason {
        Reason::Split | Reason::Ramp { .. } => true,
        Reason::RuleMatch { .. } => bucket.is_some(),
        _ => false,
    }
}

fn boolean(extra: Value) -> Value {
    let mut f = json!({"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "off"});
    if let (Some(o), Some(e)) = (f.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    f
}

fn half() -> Value {
    json!({"split": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]})
}

#[test]
fn a_user_is_in_at_most_one_experiment_of_a_layer() {
    let now = at("2026-12-05T00:00:00Z");
    let file = json!({
        "layers": {"checkout": {}},
        "flags": {
            "a": boolean(json!({"layer": {"name": "checkout", "slots": [0, 30]}, "default": half()})),
            "b": boolean(json!({"layer": {"name": "checkout", "slots": [30, 60]},
                "rules": [{"id": "all", "clauses": [], "serve": half()}]})),
            "c": boolean(json!({"layer": {"name": "checkout", "slots": [60, 90]},
                "ramp": {"variant": "on", "steps": [{"at": "2026-12-01T00:00:00Z", "weight": 100}]}})),
        }
    });
    let snap = packed(&file);
    let mut in_flag = [0usize; 3];
    let mut in_none = 0;
    let mut a_on = 0;
    for ctx in users() {
        let mut placed = 0;
        for (i, flag) in ["a", "b", "c"].into_iter().enumerate() {
            let e = snap.evaluate(flag, &ctx, now);
            if drawn(e.reason, e.bucket) {
                placed += 1;
                in_flag[i] += 1;
                a_on += usize::from(flag == "a" && e.variant == Some("on"));
            }
        }
        assert!(placed <= 1, "{:?} is in {placed} experiments", ctx.key());
        in_none += usize::from(placed == 0);
    }
    for (i, flag) in ["a", "b", "c"].into_iter().enumerate() {
        near(
            &format!("users in {flag}'s 30 slots"),
            percent(in_flag[i]),
            30.0,
            0.5,
        );
    }
    near(
        "users in no experiment (10 free slots)",
        percent(in_none),
        10.0,
        0.5,
    );
    // The layer's salt is not the split's: within a's slots its 50/50 split holds.
    let share_on = a_on as f64 * 100.0 / in_flag[0].max(1) as f64;
    near("a's `on` among the users in its slots", share_on, 50.0, 1.0);
}

#[test]
fn a_holdout_keeps_its_share_within_half_a_point() {
    let now = at("2026-12-05T00:00:00Z");
    let file = json!({
        "holdouts": {"q4": {"weight": 5}, "wide": {"weight": 12.5}},
        "flags": {
            "x": boolean(json!({"holdout": "q4", "default": half()})),
            "y": boolean(json!({"holdout": "q4", "default": "on"})),
            "z": boolean(json!({"holdout": "wide", "default": "on"})),
        }
    });
    let snap = packed(&file);
    let (mut held, mut held_wide, mut x_on, mut x_rest) = (0, 0, 0, 0);
    for ctx in users() {
        let x = snap.evaluate("x", &ctx, now);
        let y = snap.evaluate("y", &ctx, now);
        let z = snap.evaluate("z", &ctx, now);
        let held_x = matches!(x.reason, Reason::Holdout { id: "q4" });
        // One holdout holds the same users out of every flag it covers.
        assert_eq!(
            held_x,
            matches!(y.reason, Reason::Holdout { id: "q4" }),
            "{:?}",
            ctx.key()
        );
        if held_x {
            held += 1;
            assert_eq!((x.variant, y.variant), (Some("off"), Some("off")));
        } else {
            x_rest += 1;
            x_on += usize::from(x.variant == Some("on"));
        }
        held_wide += usize::from(matches!(z.reason, Reason::Holdout { id: "wide" }));
    }
    near("users held out by q4 (5%)", percent(held), 5.0, 0.5);
    near(
        "users held out by wide (12.5%)",
        percent(held_wide),
        12.5,
        0.5,
    );
    // The holdout's salt is not the split's: the split holds among the rest.
    let share_on = x_on as f64 * 100.0 / x_rest.max(1) as f64;
    near("x's `on` among users not held out", share_on, 50.0, 0.5);
}

#[test]
fn a_ramp_only_widens_and_lets_its_weight_in() {
    let start = at("2026-12-01T09:00:00Z");
    let weights = [1.0, 5.0, 25.0, 50.0, 100.0];
    let file = json!({"flags": {"r": boolean(json!({
        "ramp": {"variant": "on", "start": "2026-12-01T09:00:00Z", "every_hours": 24, "weights": weights}
    }))}});
    let snap = packed(&file);
    let mut was_in = vec![false; USERS];
    // Before the first step, then a second before and at each step.
    let before = start - Duration::seconds(1);
    for ctx in users().take(1000) {
        assert_eq!(snap.evaluate("r", &ctx, before).variant, Some("off"));
    }
    for (step, weight) in weights.into_iter().enumerate() {
        let live = start + Duration::hours(24 * step as i64);
        let mut inside = 0;
        for (i, ctx) in users().enumerate() {
            let just_before = snap.evaluate("r", &ctx, live - Duration::seconds(1));
            let e = snap.evaluate("r", &ctx, live);
            let is_in = e.variant == Some("on");
            assert_eq!(just_before.variant == Some("on"), was_in[i], "user-{i}");
            assert!(!was_in[i] || is_in, "user-{i} left the ramp at step {step}");
            if is_in {
                assert_eq!(e.reason, Reason::Ramp { step });
            }
            inside += usize::from(is_in);
            was_in[i] = is_in;
        }
        near(
            &format!("users in at step {step}"),
            percent(inside),
            weight,
            0.5,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_user_in_a_ramp_stays_in_as_time_goes_on(
        key in "[a-z0-9-]{1,24}",
        mut weights in proptest::collection::vec(0u32..=100, 1..6),
        t1 in 0i64..(8 * 24 * 3600),
        dt in 0i64..(8 * 24 * 3600),
    ) {
        weights.sort_unstable();
        let file = json!({"flags": {"r": boolean(json!({
            "ramp": {"variant": "on", "start": "2026-12-01T00:00:00Z", "every_hours": 24, "weights": weights}
        }))}});
        let snap = packed(&file);
        let start = at("2026-12-01T00:00:00Z");
        let ctx = Context::with_key(&key);
        let early = snap.evaluate("r", &ctx, start + Duration::seconds(t1)).variant == Some("on");
        let late = snap.evaluate("r", &ctx, start + Duration::seconds(t1 + dt)).variant == Some("on");
        prop_assert!(!early || late, "{key} left the ramp {weights:?} between {t1}s and {}s", t1 + dt);
    }

    #[test]
    fn no_user_is_in_two_experiments_of_a_layer(
        key in "[a-z0-9-]{1,24}",
        slots in prop::sample::select(vec![10u32, 100, 1000]),
        mut cuts in proptest::collection::vec(0u32..=1000, 1..5),
    ) {
        // Flags own consecutive ranges between the cuts.
        cuts.iter_mut().for_each(|c| *c = *c * slots / 1000);
        cuts.push(0);
        cuts.push(slots);
        cuts.sort_unstable();
        cuts.dedup();
        let mut flags = serde_json::Map::new();
        for (i, w) in cuts.windows(2).enumerate() {
            flags.insert(format!("f{i}"), boolean(json!({"layer": {"name": "l", "slots": [w[0], w[1]]}, "default": half()})));
        }
        let snap = packed(&json!({"layers": {"l": {"slots": slots}}, "flags": flags}));
        let ctx = Context::with_key(&key);
        let now = at("2026-12-05T00:00:00Z");
        let placed = snap.evaluate_all(&ctx, now).filter(|e| drawn(e.reason, e.bucket)).count();
        // The ranges cover every slot, so the user is in exactly one.
        prop_assert_eq!(placed, 1);
    }
}
