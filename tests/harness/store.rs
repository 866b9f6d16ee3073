//! The demo origin's store: an HTML page that is the same for every visitor of a route
//! (so the edge caches one copy and changes it per variant: the banner, the first product
//! tile, the recommendations fragment, the bootstrap), the checkout pages of the redirect
//! test, and the fragment. `scripts/serve` and the end-to-end tests serve it.

use hyper::{Body, Request, Response};

/// How long the edge may keep the store's pages (`Cache-Control: max-age`).
pub const MAX_AGE: u32 = 300;

/// The store page for language `lang`, with `tiles` product tiles (the demo has 12; the
/// benchmark's page has more).
pub fn page(lang: &str, tiles: usize) -> String {
    let title = match lang {
        "ja" => "エッジフラッグ・ストア",
        "fr" => "La boutique edgeflags",
        "pt" => "A loja edgeflags",
        _ => "The edgeflags store",
    };
    let mut html = format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/store/style.css\">\n</head>\n<body>\n\
         <header><nav><a href=\"/store\">{title}</a> <a href=\"/store/checkout\">Checkout</a></nav></header>\n\
         <div id=\"banner\"><h2>Welcome to the store</h2></div>\n<main>\n<ul class=\"tiles\">\n"
    );
    for i in 1..=tiles {
        html.push_str(&format!(
            "<li class=\"tile\" id=\"tile-{i}\"><h3>Product {i}</h3>\
             <p class=\"price\">${}.00</p><p class=\"promo\">Free shipping</p>\
             <a href=\"/store/products/{i}\" target=\"_blank\">View</a></li>\n",
            10 + i % 90
        ));
    }
    html.push_str(
        "</ul>\n<section id=\"recs\"><p>Recommendations load here.</p></section>\n</main>\n\
         <script>const b=document.getElementById('edgeflags-bootstrap');\
         if(b){const d=JSON.parse(b.textContent);console.log(d.flags.length+' decisions');}</script>\n\
         </body>\n</html>\n",
    );
    html
}

/// The recommendations fragment.
pub const RECS: &str = "<h4>Recommended for you</h4><ul><li>Travel mug</li><li>Desk lamp</li></ul>";

fn html(body: String) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", format!("public, max-age={MAX_AGE}"))
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The store's answer for `path` (without the route's language prefix) in `lang`, or
/// `None` for a path outside the store.
pub fn respond(lang: &str, path: &str, _req: &Request<Body>) -> Option<Response<Body>> {
    match path {
        "/store" | "/store/" => Some(html(page(lang, 12))),
        "/store/checkout" => Some(html(
            "<!doctype html><html><head><title>Checkout</title></head><body><h1>Checkout (classic)</h1></body></html>\n".into(),
        )),
        "/store/checkout-v2" => Some(html(
            "<!doctype html><html><head><title>Checkout</title></head><body><h1>Checkout (new, one page)</h1></body></html>\n".into(),
        )),
        "/fragments/recs" => Some(html(RECS.into())),
        _ => None,
    }
}
