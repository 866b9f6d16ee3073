//! The compiled snapshot as text: what the packed snapshot's BODY holds (see
//! [`crate::payload`] for the envelope around it), written by [`encode`] and read by
//! [`decode`], the edge's load on a fresh instance.
//!
//! BODY is a string table (a count, then each distinct string as its length in bytes and
//! its text, raw), the sizes of the snapshot's arrays (a `Span` of the model points into
//! them), then the compiled snapshot, in which every string is a table index and every
//! number a little-endian varint written in base64url digits (a digit carries 5 bits,
//! plus a sixth that says another digit follows). A flag's variants, a list of strings
//! and a split's slots are written once and then referred to by number, so flags that
//! share them (`on`/`off`, `control`/`treatment`, a country list) decode to one copy.
//! Decoding makes one shared string per table entry and one allocation per array: for
//! 100 flags about 130 allocations. A flag's rules written exactly as the previous
//! flag's (the same ids, clauses and served variants, none of it a list written for the
//! first time) are that flag's rules: the reader shares them instead of reading them
//! again, and the array sizes at the head of BODY count them once. (The sizes only say
//! what to reserve, so a BODY read by an edge built before this still decodes, each
//! flag with its own copy.) Text rather than base64'd bytes, because a config
//! store value is a string already checked as UTF-8: each table string is cut from it
//! in place. Operators and comparisons are written by the tags of `OpKind` and
//! `Cmp`, the tables beside the model's types. Index fields are re-checked by
//! evaluation (every lookup is a `get`), so even a damaged snapshot cannot panic; the
//! invariants evaluation needs to terminate (no prerequisite cycle, no segment inside a
//! segment) are checked after decoding with the same function compile uses, and so are
//! the promises of layers, holdouts and ramps (disjoint slot ranges, ramps that only
//! widen).
//!
//! Layers, holdouts and ramps were added to format 3 compatibly: a flag that has any sets
//! bit 9 of its head and its allocation follows its other fields, and the snapshot's
//! layers and holdouts trail the rest of BODY. A snapshot without them is written exactly
//! as before (a test pins such a BODY), and every BODY written before decodes. An edge
//! built before them refuses a BODY that uses them as damaged (unknown flag bits, data
//! after the snapshot) and serves the other slot, as it does any slot it cannot read.

mod read;
mod write;

use crate::allocation::Membership;
use crate::bucket::BUCKETS;
#[cfg(test)]
use crate::model::{Cmp, OpKind};
use crate::model::{Op, Snapshot, Span, prerequisite_cycles};

/// A BODY that cannot be read: cut, altered, or breaking an invariant of the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the packed snapshot is damaged: {0}")]
pub struct Damaged(pub String);

/// The base64url alphabet: a digit's value is its position.
const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Digit values by byte; 255 for a byte that is not a digit.
static VALUES: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 64 {
        t[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The kinds of list written once and then referred to: a flag's variants, a list of
/// strings (a small set or an operator's values), a split's slots. Flags that share
/// variants (`on`/`off`, `control`/`treatment`) or a country list decode to one copy.
const VARIANTS: usize = 0;
const STRINGS: usize = 1;
const SLOTS: usize = 2;

/// The most items reserved ahead from a count in the body. Counts are bounded by the
/// characters left, so a damaged count cannot ask for more than the body could hold; this
/// bounds the reservation further (a list or array that really is longer grows as its
/// items are read, each of which uses up characters).
const MAX_RESERVE: usize = 1 << 14;

fn span(start: usize, len: usize) -> Span {
    Span {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        len: u32::try_from(len).unwrap_or(0),
    }
}

/// The compiled snapshot as a BODY (see the module documentation).
pub fn encode(s: &Snapshot) -> String {
    write::body(s)
}

/// A compiled snapshot from [`encode`]'s BODY.
pub fn decode(body: &str) -> Result<Snapshot, Damaged> {
    let snapshot = read::body(body).map_err(|why| Damaged(why.to_string()))?;
    check(&snapshot)?;
    Ok(snapshot)
}

/// What compile guarantees and evaluation relies on to terminate: segments do not
/// refer to segments, and prerequisites form no cycle. (Indexes need no check: evaluation
/// looks everything up with `get`.)
fn check(snapshot: &Snapshot) -> Result<(), Damaged> {
    // Keys are distinct (compile's flags are a JSON object's members): flags in strictly
    // increasing order have no index, and an index orders the others.
    let key = |i: &usize| snapshot.flags.get(*i).map(|f| &*f.key);
    if snapshot.index.windows(2).any(|w| key(&w[0]) == key(&w[1])) {
        return Err(Damaged("two flags have the same key".into()));
    }
    let nested = snapshot.segments.iter().any(|s| {
        s.rules.iter().any(|clauses| {
            clauses
                .of(&snapshot.arena.clauses)
                .iter()
                .any(|c| matches!(c.op, Op::Segment(_)))
        })
    });
    if nested {
        return Err(Damaged("a segment refers to a segment".into()));
    }
    // Most snapshots have no prerequisite, and then no graph to build.
    if snapshot.flags.iter().any(|f| !f.prerequisites().is_empty()) {
        let edges: Vec<Vec<usize>> = snapshot
            .flags
            .iter()
            .map(|f| f.prerequisites().iter().map(|p| p.flag).collect())
            .collect();
        if !prerequisite_cycles(&edges).is_empty() {
            return Err(Damaged("prerequisites form a cycle".into()));
        }
    }
    check_allocation(snapshot)
}

/// What compile guarantees of layers, holdouts and ramps and evaluation's promises rest
/// on: every layer's slots are equal runs of buckets, the flags of a layer own disjoint
/// ranges within it (a user is in at most one of its experiments), holdouts and layers
/// named exist, and every ramp only widens (a user who is in stays in).
fn check_allocation(snapshot: &Snapshot) -> Result<(), Damaged> {
    let bad = |why: &str| Err(Damaged(why.into()));
    if snapshot
        .layers
        .iter()
        .any(|l| l.slots == 0 || !BUCKETS.is_multiple_of(l.slots))
    {
        return bad("a layer's slots do not divide the buckets");
    }
    if snapshot.holdouts.iter().any(|h| h.units > BUCKETS) {
        return bad("a holdout holds more than every bucket");
    }
    let mut places: Vec<Membership> = Vec::new();
    for a in snapshot.flags.iter().filter_map(|f| f.allocation()) {
        if let Some(m) = a.layer {
            let slots = snapshot.layers.get(m.layer).map(|l| l.slots);
            if slots.is_none_or(|n| m.from >= m.to || m.to > n) {
                return bad("a flag's layer place is out of range");
            }
            places.push(m);
        }
        if a.holdouts.iter().any(|&h| h >= snapshot.holdouts.len()) {
            return bad("a flag names a holdout that is not there");
        }
        if a.ramp.as_ref().is_some_and(|r| !r.is_monotone()) {
            return bad("a ramp narrows");
        }
    }
    for (i, m) in places.iter().enumerate() {
        if places[..i].iter().any(|other| other.overlaps(m)) {
            return bad("two flags of a layer own the same slots");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::compile::compile_packed;

    const FILE: &str = r#"{"flags":{"f":{"type":"json","description":"d","variants":{"a":"x","b":{"k":[1,2]}},"off_variant":"a","rules":[{"id":"r","clauses":[{"attribute":"v","op":"semver_gte","values":["1.2.0"]},{"attribute":"e","op":"matches","values":["^a.*z$"]}],"serve":"b"}],"schedule":{"from":"2026-01-01T00:00:00Z","windows":[{"days":["sat"],"zone":"Asia/Tokyo"}]},"default":{"split":[{"variant":"a","weight":30},{"variant":"b","weight":70}]}}}}"#;

    /// The BODY of [`FILE`] as `edgeflags pack` wrote it before layers, holdouts and
    /// ramps existed (format 3, version 02a674c92de25fc3).
    const BODY_BEFORE_ALLOCATION: &str = r#"PQ02a674c92de25fc3BfBaBxBbL{"k":[1,2]}BrBvF1.2.0BeG^a.*z$DkeyKAsia/TokyoHdefaultGoriginCBCABCAABBnEACCADEDFABGCHMDBIJIBKABABLBACwpdAg1hDBBBgg0q727mDABgBAABMAANOAAAAAAAA"#;

    /// A flag file with a layer, two holdouts and a ramp of each form.
    const ALLOCATED: &str = r#"{"layers":{"pricing":{},"fine":{"slots":1000,"salt":"fl","by":"account"}},"holdouts":{"q4":{"weight":5},"g":{"weight":12.5,"by":"account"}},"flags":{"a":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","layer":{"name":"pricing","slots":[0,50]},"holdout":["q4","g"],"default":{"split":[{"variant":"on","weight":50},{"variant":"off","weight":50}]}},"b":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","layer":{"name":"pricing","slots":[50,100]},"default":"off","ramp":{"variant":"on","steps":[{"at":"2026-12-01T09:00:00Z","weight":5},{"at":"2026-12-02T09:00:00Z","weight":25}]}},"c":{"type":"string","variants":{"x":"x","y":"y"},"off_variant":"x","layer":{"name":"fine","slots":[0,1]},"holdout":"q4","default":"x","ramp":{"variant":"y","salt":"c-ramp","by":"account","start":"2026-12-01T00:00:00Z","every_hours":6,"weights":[1,10,100]}}}}"#;

    #[test]
    fn bodies_written_before_allocation_decode_and_encode_the_same() {
        let old = decode(BODY_BEFORE_ALLOCATION).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&old), BODY_BEFORE_ALLOCATION);
        let now = compile_packed(FILE, "02a674c92de25fc3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&now), BODY_BEFORE_ALLOCATION);
    }

    #[test]
    fn layers_holdouts_and_ramps_round_trip() {
        let snap = compile_packed(ALLOCATED, "v1").unwrap_or_else(|e| panic!("{e}"));
        let body = encode(&snap);
        let again = decode(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&again), body);
        assert_eq!(again.layers.len(), 2);
        assert_eq!(
            (again.layers[0].slots, &*again.layers[0].salt),
            (1000, "fl")
        );
        assert_eq!(
            (again.holdouts[0].units, &*again.holdouts[0].by),
            (12500, "account")
        );
        let c = again.flag("c").and_then(|f| f.allocation());
        let ramp = c.and_then(|a| a.ramp.as_ref());
        assert_eq!(c.map(|a| a.holdouts.clone()), Some(vec![1]));
        assert_eq!(ramp.map(|r| r.steps.len()), Some(3));
        assert_eq!(
            ramp.map(|r| (&*r.salt, &*r.by)),
            Some(("c-ramp", "account"))
        );
        // Every cut is refused: flags name layers and holdouts the cut body lacks.
        for end in 0..body.len() {
            if let Some(cut) = body.get(..end) {
                assert!(decode(cut).is_err(), "a body cut at {end} was accepted");
            }
        }
    }

    #[test]
    fn edge_changes_follow_layers_and_holdouts_and_round_trip_with_or_without_them() {
        let edge =
            r##""edge":{"y":{"changes":[{"selector":"#b","action":"text","value":"hi {city}"}]}}"##;
        // With layers and holdouts (the trailing sections in order), and without any (the
        // layer and holdout lists are then written empty before the changes).
        let with = ALLOCATED.replacen(
            r#""default":"x","ramp""#,
            &format!(r#""default":"x",{edge},"ramp""#),
            1,
        );
        let without = format!(
            r#"{{"flags":{{"c":{{"type":"string","variants":{{"x":"x","y":"y"}},"off_variant":"x","default":"y",{edge}}}}}}}"#
        );
        for (file, layers) in [(with.as_str(), 2), (without.as_str(), 0)] {
            let snap = compile_packed(file, "v1").unwrap_or_else(|e| panic!("{e}: {file}"));
            assert_eq!(snap.edits.variants.len(), 1, "{file}");
            let body = encode(&snap);
            let again = decode(&body).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(encode(&again), body);
            assert_eq!(again.layers.len(), layers);
            assert_eq!(again.edits.variants.len(), 1);
            assert_eq!(again.edits.variants[0].changes[0].selector, "#b");
        }
    }

    #[test]
    fn allocation_that_compile_refuses_is_refused_when_decoded() {
        let damaged = |change: &dyn Fn(&mut Snapshot)| {
            let mut snap = compile_packed(ALLOCATED, "v").unwrap_or_else(|e| panic!("{e}"));
            change(&mut snap);
            decode(&encode(&snap)).err().map(|Damaged(m)| m)
        };
        assert_eq!(damaged(&|_| {}), None);
        let overlap = damaged(&|s| {
            if let Some(m) = s.flags[1]
                .extra_mut()
                .allocation
                .as_mut()
                .and_then(|a| a.layer.as_mut())
            {
                m.from = 40;
            }
        });
        assert!(overlap.is_some_and(|m| m.contains("same slots")));
        let past = damaged(&|s| {
            if let Some(m) = s.flags[1]
                .extra_mut()
                .allocation
                .as_mut()
                .and_then(|a| a.layer.as_mut())
            {
                m.to = 101;
            }
        });
        assert!(past.is_some_and(|m| m.contains("out of range")));
        let narrows = damaged(&|s| {
            if let Some(r) = s.flags[1]
                .extra_mut()
                .allocation
                .as_mut()
                .and_then(|a| a.ramp.as_mut())
            {
                r.steps[1].units = 1000;
            }
        });
        assert!(narrows.is_some_and(|m| m.contains("narrows")));
        let holdout = damaged(&|s| {
            if let Some(a) = s.flags[0].extra_mut().allocation.as_mut() {
                a.holdouts.push(7);
            }
        });
        assert!(holdout.is_some_and(|m| m.contains("holdout")));
        let slots = damaged(&|s| s.layers[1].slots = 3);
        assert!(slots.is_some_and(|m| m.contains("divide")));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        assert!(decode(&"\u{ff}".repeat(64)).is_err());
        assert!(decode("!!!").is_err());
        // Every cut of a good body is refused, never a panic.
        let good = encode(&compile_packed(FILE, "v9").unwrap_or_else(|e| panic!("{e}")));
        for end in 0..good.len() {
            if let Some(cut) = good.get(..end) {
                assert!(decode(cut).is_err(), "a body cut at {end} was accepted");
            }
        }
        assert!(decode(&format!("{good}A")).is_err());
    }

    #[test]
    fn every_operator_and_comparison_tag_round_trips() {
        for (name, kind, cmp) in crate::model::OPERATORS {
            assert_eq!(OpKind::from_tag(kind.tag()), Some(*kind), "{name}");
            if let Some(c) = cmp {
                assert_eq!(Cmp::from_tag(c.tag()), Some(*c), "{name}");
            }
        }
        assert_eq!(OpKind::from_tag(12), None);
        assert_eq!(Cmp::from_tag(5), None);
    }

    #[test]
    fn encoding_is_deterministic_and_shares_repeated_strings() {
        let file = r#"{"flags":{"a":{"type":"string","variants":{"control":"control","treatment":"treatment"},"off_variant":"control","rules":[{"clauses":[{"attribute":"country","op":"in","values":["DE","FR","JP"]}],"serve":"treatment"}],"default":{"split":[{"variant":"control","weight":50},{"variant":"treatment","weight":50}]}},"b":{"type":"string","variants":{"control":"control","treatment":"treatment"},"off_variant":"control","targets":{"treatment":["u2","u1"]},"rules":[{"clauses":[{"attribute":"country","op":"in","values":["JP","DE","FR"]}],"serve":"treatment"}],"default":"control"}}}"#;
        let snap = compile_packed(file, "v1").unwrap_or_else(|e| panic!("{e}"));
        let body = encode(&snap);
        let again = decode(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&again), body);
        // Each distinct string is in the table once.
        assert_eq!(body.matches("treatment").count(), 1);
        assert_eq!(body.matches("country").count(), 1);
        let (a, b) = (&again.flags[0], &again.flags[1]);
        let (va, vb) = (
            a.variants.of(&again.arena.variants),
            b.variants.of(&again.arena.variants),
        );
        assert!(va[1].name.is(&vb[1].name));
        // Every string of the snapshot is a range of one text: the table's.
        assert!(a.key.shares_text(&va[0].name) && a.key.shares_text(&b.key));
        assert!(Arc::ptr_eq(&va[1].value, &vb[1].value));
        assert_eq!(b.target("u1"), Some(1));
        assert_eq!(b.target("u3"), None);
        // One allocation per array, however many flags.
        // Lists written once: both flags' variants, and the country list (a set, so
        // sorted), are one copy each.
        assert_eq!(again.arena.variants.len(), 2);
        assert_eq!(again.arena.strings.len(), 3);
        assert_eq!(again.arena.clauses.len(), 2);
    }

    #[test]
    fn flags_written_with_the_same_rules_share_them_and_evaluate_as_compiled() {
        let flag = |serve: &str| {
            format!(
                r#"{{"type":"string","variants":{{"control":"control","treatment":"treatment","eu":"eu"}},"off_variant":"control","rules":[{{"id":"eu","clauses":[{{"attribute":"country","op":"in","values":["DE","FR"]}}],"serve":"{serve}"}}],"default":{{"split":[{{"variant":"control","weight":50}},{{"variant":"treatment","weight":50}}]}}}}"#
            )
        };
        let (eu, treatment) = (flag("eu"), flag("treatment"));
        let file =
            format!(r#"{{"flags":{{"a":{eu},"b":{eu},"c":{eu},"d":{treatment},"e":{eu}}}}}"#);
        let compiled = compile_packed(&file, "v").unwrap_or_else(|e| panic!("{e}"));
        let body = encode(&compiled);
        let again = decode(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&again), body);
        // a's rules are read (they learn the country list, which b's refer to); b's are
        // read; c's are written as b's, so they are b's; d serves another variant; e's
        // are written as a's, not as d's (only the previous flag's are compared).
        let rules: Vec<Span> = again.flags.iter().map(|f| f.rules).collect();
        assert_eq!(rules[2], rules[1]);
        assert_ne!(rules[1], rules[0]);
        assert_ne!(rules[3], rules[1]);
        assert_ne!(rules[4], rules[3]);
        assert_eq!(again.arena.rules.len(), 4);
        assert_eq!(again.arena.clauses.len(), 4);
        // The sizes in the BODY count what the reader holds, shared rules once: it
        // reserves each array exactly (`with_capacity` gives the capacity asked for).
        assert_eq!(again.arena.rules.capacity(), 4);
        assert_eq!(again.arena.clauses.capacity(), 4);
        // Every flag decides as compiled, in the rule and out of it.
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        for country in ["DE", "FR", "US"] {
            for user in ["u1", "u2", "u3", "u4"] {
                let ctx = crate::Context::with_key(user).with("country", country);
                for key in ["a", "b", "c", "d", "e"] {
                    let (got, want) = (
                        again.evaluate(key, &ctx, now),
                        compiled.evaluate(key, &ctx, now),
                    );
                    assert_eq!(got, want, "{key} {user} {country}");
                }
            }
        }
        for end in 0..body.len() {
            if let Some(cut) = body.get(..end) {
                assert!(decode(cut).is_err(), "a body cut at {end} was accepted");
            }
        }
        // Any one character changed: an error, or a snapshot that evaluates (never a
        // panic), however the change falls on shared or compared rules.
        let ctx = crate::Context::with_key("u1").with("country", "DE");
        for (i, _) in body.char_indices() {
            for digit in ['A', 'B', 'C', 'g', 'z', '_'] {
                let mut changed = body.clone();
                changed.replace_range(i..i + 1, digit.encode_utf8(&mut [0; 4]));
                if let Ok(s) = decode(&changed) {
                    assert_eq!(s.evaluate_all(&ctx, now).count(), s.len());
                }
            }
        }
    }

    #[test]
    fn cycles_that_compile_refuses_are_refused_when_decoded() {
        let file = r#"{"segments":{"s":{"included":["u1"]}},"flags":{"a":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","prerequisites":[{"flag":"b","variants":["on"]}],"rules":[{"clauses":[{"op":"segment","values":["s"]}],"serve":"on"}],"default":"on"},"b":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"}}}"#;
        let good = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        assert!(decode(&encode(&good)).is_ok());
        // b requires a, which requires b.
        let mut cyclic = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        let a_prereq = cyclic.flags[0].extra_mut().prerequisites.remove(0);
        cyclic.flags[1]
            .extra_mut()
            .prerequisites
            .push(crate::model::Prerequisite {
                flag: 0,
                variants: a_prereq.variants.clone(),
            });
        cyclic.flags[0].extra_mut().prerequisites.push(a_prereq);
        assert!(matches!(decode(&encode(&cyclic)), Err(Damaged(m)) if m.contains("cycle")));
        // A segment whose rule tests a segment.
        let mut nested = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        let rule = nested.flags[0].rules.of(&nested.arena.rules)[0].clauses;
        nested.segments[0].rules.push(rule);
        assert!(matches!(decode(&encode(&nested)), Err(Damaged(m)) if m.contains("segment")));
    }

    #[test]
    fn a_table_string_that_ends_inside_a_character_is_refused() {
        let file = r#"{"flags":{"t":{"type":"string","variants":{"東京":"東京","x":"x"},"off_variant":"x","rules":[{"clauses":[{"attribute":"city","op":"in","values":["大阪"]}],"serve":"東京"}],"default":"x"}}}"#;
        let body = encode(&compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}")));
        assert!(decode(&body).is_ok());
        // Each six-byte name is written after its length, `G` (6); one byte shorter or
        // longer ends it inside a character.
        for (from, to) in [("G東京", "F東京"), ("G大阪", "E大阪"), ("G東京", "H東京")] {
            assert!(body.contains(from), "{from}");
            let damaged = body.replacen(from, to, 1);
            assert!(decode(&damaged).is_err(), "{to}");
        }
    }

    #[test]
    fn flags_out_of_key_order_decode_with_an_index() {
        let file = r#"{"flags":{"a":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"},"b":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"off"},"c":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"}}}"#;
        let mut snap = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        assert!(snap.index.is_empty(), "compile writes flags in key order");
        snap.flags.reverse();
        let again = decode(&encode(&snap)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.index, [2, 1, 0]);
        let ctx = crate::Context::with_key("u");
        let now = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        for (key, variant) in [("a", "on"), ("b", "off"), ("c", "on")] {
            assert_eq!(
                again.evaluate(key, &ctx, now).variant,
                Some(variant),
                "{key}"
            );
        }
        assert_eq!(again.evaluate("d", &ctx, now).variant, None);
    }

    #[test]
    fn two_flags_with_one_key_are_refused() {
        let file = r#"{"flags":{"a":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"},"b":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"off"},"c":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"}}}"#;
        let mut snap = compile_packed(file, "v").unwrap_or_else(|e| panic!("{e}"));
        snap.flags[1].key = snap.flags[0].key.clone();
        let refused = decode(&encode(&snap));
        assert!(
            matches!(&refused, Err(Damaged(m)) if m.contains("same key")),
            "{refused:?}"
        );
        // In any order.
        snap.flags.reverse();
        assert!(decode(&encode(&snap)).is_err());
    }
}
