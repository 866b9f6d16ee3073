use chrono::DateTime;

use super::*;
use crate::compile_str;

/// Two flags with edge changes, one redirecting, and the bootstrap.
const FILE: &str = r##"{
  "edge": {"bootstrap": true, "redirect_hosts": ["shop.example.com"]},
  "flags": {
    "banner": {"type": "string", "variants": {"sale": "s", "plain": "p"}, "off_variant": "plain",
      "rules": [{"clauses": [{"attribute": "country", "op": "in", "values": ["JP"]}], "serve": "sale"}],
      "default": "plain",
      "edge": {
        "sale": {"changes": [
          {"selector": "#banner h2", "action": "text", "value": "Sale in {city}!"},
          {"selector": "#banner", "action": "set_attribute", "attribute": "data-city", "value": "{city}"},
          {"selector": "#banner .old", "action": "remove"},
          {"selector": "a.cta", "action": "remove_attribute", "attribute": "target"}
        ]},
        "plain": {"changes": [{"selector": "#banner", "action": "append", "html": "<p class=\"hi\">Hello {city}</p>"}]}
      }},
    "tile": {"type": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": "on",
      "edge": {"on": {"changes": [
        {"selector": ".tile", "action": "replace", "html": "<div class=\"tile new\">New</div>"},
        {"selector": "#recs", "action": "fragment", "path": "/fragments/recs"},
        {"selector": "main", "action": "prepend", "html": "<nav>n</nav>"}
      ]}}},
    "checkout": {"type": "string", "variants": {"a": "a", "b": "b"}, "off_variant": "a", "default": "b",
      "edge": {"b": {"redirect": {"from": "/checkout", "to": "/checkout-v2", "status": 307}}}}
  }
}"##;

const PAGE: &str = r#"<!doctype html><html><head><title>t</title></head><body><main><div id="banner"><h2>Welcome</h2><span class="old">x</span></div><a class="cta" target="_blank" href="/x">go</a><div class="tile">Old</div><div class="tile">Old</div><section id="recs">loading</section></main></body></html>"#;

fn now() -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

fn plan_for(ctx: &Context) -> (Snapshot, Plan) {
    let snapshot = compile_str(FILE).unwrap_or_else(|e| panic!("{e}"));
    let evals: Vec<_> = snapshot.evaluate_all(ctx, now()).collect();
    let plan = plan(&snapshot, ctx, &evals, Some(r#"{"flags":[]}"#));
    drop(evals);
    (snapshot, plan)
}

fn rewrite(plan: Plan, page: &str, chunk: usize) -> String {
    let (out, failure) = rewrite_all(plan, encoding_rs::UTF_8, page.as_bytes(), chunk);
    assert_eq!(failure, None);
    String::from_utf8(out).unwrap_or_default()
}

#[test]
fn every_action_applies_with_escaped_context_whatever_the_chunking() {
    let ctx = Context::with_key("u1")
        .with("country", "JP")
        .with("city", "<Tōkyō & \"co\">");
    let (_, mut plan) = plan_for(&ctx);
    let fragments = plan.fragments();
    assert_eq!(fragments.len(), 1);
    assert_eq!(fragments[0].1, "/fragments/recs");
    assert_eq!(fragments[0].2, "tile=on");
    plan.fill(fragments[0].0, "<ul><li>recommended</li></ul>".into());
    let whole = rewrite(plan.clone(), PAGE, PAGE.len());
    for chunk in [1, 3, 64] {
        assert_eq!(rewrite(plan.clone(), PAGE, chunk), whole, "chunk {chunk}");
    }
    assert!(
        whole.contains("<h2>Sale in &lt;Tōkyō &amp; \"co\"&gt;!</h2>"),
        "{whole}"
    );
    assert!(
        whole.contains(r#"data-city="&lt;Tōkyō &amp; &quot;co&quot;&gt;""#),
        "{whole}"
    );
    assert!(!whole.contains("class=\"old\""));
    assert!(whole.contains(r#"<a class="cta" href="/x">"#), "{whole}");
    assert_eq!(
        whole.matches(r#"<div class="tile new">New</div>"#).count(),
        2
    );
    assert!(whole.contains(r#"<section id="recs"><ul><li>recommended</li></ul></section>"#));
    assert!(whole.contains("<main><nav>n</nav>"));
    assert!(whole.contains(&format!(
        r#"<script type="application/json" id="{BOOTSTRAP_ID}">{{"flags":[]}}</script></head>"#
    )));
}

#[test]
fn html_changes_escape_context_values_but_keep_their_own_markup() {
    let ctx = Context::with_key("u1")
        .with("country", "US")
        .with("city", "</p><script>x</script>");
    let (_, plan) = plan_for(&ctx);
    let out = rewrite(plan, PAGE, 16);
    assert!(
        out.contains(r#"<p class="hi">Hello &lt;/p&gt;&lt;script&gt;x&lt;/script&gt;</p>"#),
        "{out}"
    );
    assert!(!out.contains("<script>x"));
}

#[test]
fn a_fragment_is_fetched_exactly_when_the_plan_has_one() {
    let snapshot = compile_str(FILE).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    for (tile, country) in [
        (None, "US"),
        (Some("off"), "US"),
        (Some("on"), "JP"),
        (Some("off"), "JP"),
    ] {
        let mut ctx = Context::with_key("u1").with("country", country);
        if let Some(variant) = tile {
            ctx.force("tile", variant);
        }
        let evals: Vec<_> = snapshot.evaluate_all(&ctx, now()).collect();
        let fetches = fetches_fragments(&snapshot, &evals);
        let planned = !plan(&snapshot, &ctx, &evals, None).fragments().is_empty();
        assert_eq!(fetches, planned, "{tile:?} {country}");
        seen.push(fetches);
    }
    assert_eq!(seen, [true, false, true, false]);
}

#[test]
fn an_unfetched_fragment_leaves_the_element_as_it_was() {
    let (_, plan) = plan_for(&Context::with_key("u1"));
    let out = rewrite(plan, PAGE, 32);
    assert!(out.contains(r#"<section id="recs">loading</section>"#));
}

#[test]
fn the_bootstrap_cannot_be_closed_by_a_value() {
    let body = r#"{"flags":[{"key":"x","value":"</script><script>alert(1)</script>\u2028&"}]}"#;
    let script = bootstrap_script(body);
    let inner = script
        .strip_prefix(r#"<script type="application/json" id="edgeflags-bootstrap">"#)
        .and_then(|s| s.strip_suffix("</script>"))
        .unwrap_or_default();
    assert!(!inner.contains('<') && !inner.contains('>') && !inner.contains('&'));
    let back: Value = serde_json::from_str(inner).unwrap_or_default();
    let original: Value = serde_json::from_str(body).unwrap_or_default();
    assert_eq!(back, original);
}

#[test]
fn redirects_keep_the_query_and_apply_only_on_their_path() {
    let snapshot = compile_str(FILE).unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::with_key("u1");
    let evals: Vec<_> = snapshot.evaluate_all(&ctx, now()).collect();
    let r = redirect(&snapshot, &evals, "/checkout", Some("a=1&b=2"));
    assert_eq!(
        r.map(|r| (r.status, r.location, r.flag, r.variant)),
        Some((
            307,
            "/checkout-v2?a=1&b=2".into(),
            "checkout".into(),
            "b".into()
        ))
    );
    assert_eq!(
        redirect(&snapshot, &evals, "/checkout", None).map(|r| r.location),
        Some("/checkout-v2".into())
    );
    assert!(redirect(&snapshot, &evals, "/other", None).is_none());
    let mut forced = ctx.clone();
    forced.force("checkout", "a");
    let evals: Vec<_> = snapshot.evaluate_all(&forced, now()).collect();
    assert!(redirect(&snapshot, &evals, "/checkout", None).is_none());
}

#[test]
fn only_html_in_a_readable_charset_is_rewritten() {
    assert_eq!(
        html_charset(Some("text/html")),
        Body::Html(encoding_rs::UTF_8)
    );
    assert_eq!(
        html_charset(Some("Text/HTML; charset=\"ISO-8859-1\"")),
        Body::Html(encoding_rs::WINDOWS_1252)
    );
    assert_eq!(
        html_charset(Some("text/html; charset=utf-16le")),
        Body::Other
    );
    assert_eq!(
        html_charset(Some("text/html; charset=klingon")),
        Body::Other
    );
    assert_eq!(html_charset(Some("application/json")), Body::Other);
    assert_eq!(html_charset(Some("text/htmlx")), Body::Other);
    assert_eq!(html_charset(None), Body::Other);
}

#[test]
fn only_a_plain_html_200_is_rewritable() {
    let html = Some("text/html; charset=utf-8");
    assert_eq!(rewritable(200, html, None), Ok(encoding_rs::UTF_8));
    assert_eq!(
        rewritable(200, html, Some(" Identity ")),
        Ok(encoding_rs::UTF_8)
    );
    assert_eq!(rewritable(404, html, None), Err(PassThrough::Status(404)));
    assert_eq!(
        rewritable(200, Some("image/png"), None),
        Err(PassThrough::NotHtml)
    );
    assert_eq!(
        rewritable(200, html, Some("gzip")),
        Err(PassThrough::Encoded("gzip".into()))
    );
}

#[test]
fn a_latin1_page_gets_its_changes_in_latin1() {
    let ctx = Context::with_key("u1")
        .with("country", "JP")
        .with("city", "Zürich");
    let (_, plan) = plan_for(&ctx);
    let page: Vec<u8> = b"<html><head></head><body><div id=\"banner\"><h2>Caf\xe9</h2></div><p>\xe9t\xe9</p></body></html>".to_vec();
    let (out, failure) = rewrite_all(plan, encoding_rs::WINDOWS_1252, &page, 5);
    assert_eq!(failure, None);
    // ü is one byte (0xFC) in ISO-8859-1; the untouched text keeps its bytes.
    let needle: &[u8] = b"<h2>Sale in Z\xfcrich!</h2>";
    assert!(
        out.windows(needle.len()).any(|w| w == needle),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let kept: &[u8] = b"<p>\xe9t\xe9</p>";
    assert!(out.windows(kept.len()).any(|w| w == kept));
}

#[test]
fn hostile_pages_are_rewritten_or_passed_through_never_cut() {
    let ctx = Context::with_key("u1")
        .with("country", "JP")
        .with("city", "Tokyo");
    let (_, plan) = plan_for(&ctx);
    // A 1 MB attribute fits the rewriter's memory.
    let big = format!(
        r#"<div id="banner" title="{}"><h2>x</h2></div>"#,
        "a".repeat(1 << 20)
    );
    let out = rewrite(plan.clone(), &big, 16 * 1024);
    assert!(out.contains("<h2>Sale in Tokyo!</h2>"));
    // A 3 MB one does not: the rest passes through unchanged, whole.
    let huge = format!(
        r#"<p>before</p><div id="banner" title="{}"><h2>x</h2></div><p>after</p>"#,
        "b".repeat(3 << 20)
    );
    let (out, failure) = rewrite_all(plan.clone(), encoding_rs::UTF_8, huge.as_bytes(), 16 * 1024);
    assert!(failure.is_some_and(|f| f.contains("memory")));
    assert_eq!(out.len(), huge.len());
    assert_eq!(out, huge.as_bytes());
    // Invalid UTF-8 and malformed markup go through; the change still applies.
    let mut bad = b"<div id=\"banner\"><h2>\xff\xfe</h2><p <<>> \x00".to_vec();
    bad.extend_from_slice(b"</b></i><div");
    let (out, failure) = rewrite_all(plan.clone(), encoding_rs::UTF_8, &bad, 3);
    assert_eq!(failure, None);
    assert!(String::from_utf8_lossy(&out).contains("Sale in Tokyo!"));
    assert!(out.ends_with(b"</b></i><div"));
    // 10,000 matching elements are all changed.
    let many = "<div class=\"tile\">Old</div>".repeat(10_000);
    let out = rewrite(plan, &many, 8 * 1024);
    assert_eq!(out.matches("tile new").count(), 10_000);
}

#[test]
fn a_page_without_changes_plans_nothing() {
    let snapshot = compile_str(r#"{"flags":{"f":{"type":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":"on"}}}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::with_key("u1");
    let evals: Vec<_> = snapshot.evaluate_all(&ctx, now()).collect();
    assert!(plan(&snapshot, &ctx, &evals, Some("{}")).is_empty());
}

#[test]
fn edits_survive_the_packed_codec() {
    let snapshot = compile_str(FILE).unwrap_or_else(|e| panic!("{e}"));
    let body = crate::codec::encode(&snapshot);
    let again = crate::codec::decode(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.edits().variants, snapshot.edits().variants);
    assert!(again.edits().bootstrap);
    assert_eq!(crate::codec::encode(&again), body);
}

#[test]
fn a_store_packed_before_edge_changes_existed_still_loads_without_any() {
    // The demo store as `edgeflags pack` wrote it on 2026-11-25 (format 3, no edits).
    let text = include_str!("../../../../fuzz/corpus/snapshot_decode/demo-store-format-3.json");
    let store: std::collections::BTreeMap<String, String> =
        serde_json::from_str(text).unwrap_or_default();
    let read = crate::pack::read(|k| store.get(k).cloned(), None)
        .result
        .unwrap_or_else(|e| panic!("{e:?}"));
    let snapshot =
        crate::payload::load(&read.payload, &read.version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snapshot.len(), 5);
    assert!(snapshot.edits().variants.is_empty() && !snapshot.edits().bootstrap);
    // And a snapshot without edits is written as before: nothing after the request
    // context, so older edges read it too.
    let body = crate::codec::encode(&snapshot);
    let again = crate::codec::decode(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(crate::codec::encode(&again), body);
    assert!(crate::codec::decode(&format!("{body}A")).is_err());
}

#[test]
fn a_long_page_streams_the_rewriter_holding_back_only_unfinished_markup() {
    let ctx = Context::with_key("u1")
        .with("country", "JP")
        .with("city", "Tokyo");
    let (_, plan) = plan_for(&ctx);
    // The banner is changed at the start; the 4 MB after it is markup that no change
    // matches, so the output keeps pace with the input byte for byte.
    let copy = "<p class=\"copy\">Lorem ipsum dolor sit amet, consectetur.</p>\n";
    let page = format!(
        "<html><head></head><body><div id=\"banner\"><h2>x</h2></div>{}</body></html>",
        copy.repeat(70_000)
    );
    let mut r = Rewriter::new(plan, encoding_rs::UTF_8);
    let (mut fed, mut out, mut most_held) = (0usize, Vec::new(), 0usize);
    for chunk in page.as_bytes().chunks(16 * 1024) {
        r.write(chunk, &mut out);
        fed += chunk.len();
        most_held = most_held.max(fed.saturating_sub(out.len()));
        assert!(r.failure().is_none());
    }
    assert_eq!(r.end(&mut out), None);
    assert!(page.len() > 4_000_000, "{}", page.len());
    assert!(String::from_utf8_lossy(&out).contains("<h2>Sale in Tokyo!</h2>"));
    assert!(out.ends_with(b"</p>\n</body></html>"));
    // Each chunk's output leaves at once: no more than a chunk's unfinished tail is held.
    assert!(most_held < 16 * 1024, "{most_held} bytes held back");
}
