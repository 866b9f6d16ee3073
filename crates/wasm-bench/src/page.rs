//! Rewriting throughput: a 100 KB store page of about 3,000 elements run through the
//! engine's streaming rewriter (lol_html) with ten changes and the bootstrap, in 16 KiB
//! chunks as the edge feeds it; beside a pass-through (the same chunk loop copying
//! bytes, which is what a request whose variants carry no change costs: the rewriter is
//! never built). The same code runs in wasm (`scripts/bench`) and natively
//! (`edgeflags-wasm-bench page`).

use std::hint::black_box;
use std::time::Instant;

use edgeflags_engine::page::{Op, Plan, Resolved, UTF_8, rewrite_all};

/// The store page: a banner, `tiles` product tiles of five elements each, recommendations.
fn store_page(tiles: usize) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Store</title>\
         <link rel=\"stylesheet\" href=\"/s.css\"></head><body><header><nav><a href=\"/\">Store</a></nav></header>\
         <div id=\"banner\"><h2>Welcome to the store</h2></div><main><ul class=\"tiles\">\n",
    );
    for i in 1..=tiles {
        html.push_str(&format!(
            "<li class=\"tile\" id=\"tile-{i}\"><h3>Product {i}</h3>\
             <p class=\"price\">${}.00</p><p class=\"promo\">Free shipping</p>\
             <a href=\"/store/products/{i}\" target=\"_blank\">View product</a></li>\n",
            10 + i % 90
        ));
    }
    html.push_str("</ul><section id=\"recs\"><p>Recommendations load here.</p></section></main></body></html>\n");
    html
}

fn change(selector: &str, op: Op) -> Resolved {
    Resolved {
        flag: "bench".into(),
        variant: "on".into(),
        selector: selector.into(),
        op,
    }
}

/// Ten changes of every kind, one of them on every tile (`.promo`, 600 matches).
fn plan() -> Plan {
    Plan {
        changes: vec![
            change("#banner h2", Op::Text("Hello, shoppers in Tokyo!".into())),
            change(
                "#banner",
                Op::SetAttribute("data-theme".into(), "sale".into()),
            ),
            change("#tile-1 h3", Op::Text("Today's pick for JP".into())),
            change(
                "#tile-1",
                Op::Prepend("<span class=\"badge\">New</span>".into()),
            ),
            change(
                "#tile-1 a",
                Op::SetAttribute("href".into(), "/p/1?from=spotlight".into()),
            ),
            change(".promo", Op::Remove),
            change("#tile-7 a", Op::RemoveAttribute("target".into())),
            change(
                "#tile-9 h3",
                Op::Replace("<h3 class=\"hot\">Hot</h3>".into()),
            ),
            change("main", Op::Append("<footer>Prices in JPY</footer>".into())),
            change(
                "#recs",
                Op::Fragment(
                    "/fragments/recs".into(),
                    Some("<ul><li>Mug</li></ul>".into()),
                ),
            ),
        ],
        bootstrap: Some(edgeflags_engine::page::bootstrap_script(
            r#"{"flags":[{"key":"a","value":"b","variant":"b","reason":"SPLIT"}]}"#,
        )),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The table's header.
pub fn header() {
    println!(
        "| where | page | rewrite (lol_html, streamed in 16 KiB chunks) | pass-through (no edge change: nothing parsed) |"
    );
    println!("| --- | --- | --- | --- |");
}

/// Prints one row: where it ran, page size and elements, then MB/s and ms per page for
/// the rewrite and for the pass-through.
pub fn run(place: &str) {
    let page = store_page(600);
    let elements = page.matches('<').count() - page.matches("</").count() - 1;
    let rounds = 30;
    let mut rewrite = Vec::new();
    let mut pass = Vec::new();
    let mut out_len = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let (out, failure) = rewrite_all(plan(), UTF_8, page.as_bytes(), 16 * 1024);
        rewrite.push(t.elapsed().as_secs_f64());
        assert!(failure.is_none(), "the bench page failed to rewrite");
        out_len = black_box(out).len();
        let t = Instant::now();
        let mut copy = Vec::with_capacity(page.len());
        for chunk in page.as_bytes().chunks(16 * 1024) {
            copy.extend_from_slice(black_box(chunk));
        }
        pass.push(t.elapsed().as_secs_f64());
        black_box(copy);
    }
    let mb = page.len() as f64 / 1e6;
    let (r, p) = (median(rewrite), median(pass));
    println!(
        "| {place} | {} bytes, {elements} elements, 10 changes + bootstrap ({out_len} bytes out) | {:.1} MB/s, {:.3} ms a page | {:.0} MB/s, {:.4} ms a page |",
        page.len(),
        mb / r,
        r * 1000.0,
        mb / p,
        p * 1000.0
    );
}
