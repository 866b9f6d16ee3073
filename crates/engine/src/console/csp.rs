//! A page's `Content-Security-Policy`, amended so that the preview toolbar's inline
//! styles apply. The toolbar is styled by `style` attributes (it brings no stylesheet, so
//! it needs nothing from the page); a policy whose sources for style attributes lack
//! `'unsafe-inline'` blocks them, and the toolbar would sit unstyled at the foot of the
//! page. The edge adds exactly the toolbar's attributes, by hash, to such a policy, and
//! nothing else (CSP Level 3: `style-src-attr` with `'unsafe-hashes'` and a hash per
//! attribute value; Chromium 75+, Firefox 108+, Safari 15.4+).
//!
//! What a policy allows is decided by the first directive among `style-src-attr`,
//! `style-src` and `default-src` that it has (the spec's fallback order for style
//! attributes); directive names are case-insensitive, and of two directives with one name
//! the first counts. A header may hold several policies separated by commas, and each is
//! enforced on its own: each is amended on its own.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `policy` (a header's value) with `styles` (the exact values of the toolbar's `style`
/// attributes) allowed, or `None` when every policy in it lets them apply already.
pub fn allow_styles(policy: &str, styles: &[&str]) -> Option<String> {
    let hashes: Vec<String> = styles.iter().map(|s| hash_source(s)).collect();
    let mut changed = false;
    let amended: Vec<String> = policy
        .split(',')
        .map(|p| match amend(p, &hashes) {
            Some(a) => {
                changed = true;
                a
            }
            None => p.trim().to_string(),
        })
        .collect();
    changed.then(|| amended.join(", "))
}

/// The source expression that allows an inline style whose text is `style`.
pub fn hash_source(style: &str) -> String {
    let digest = Sha256::digest(style.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// One policy amended, or `None` when it already allows the attributes.
fn amend(policy: &str, hashes: &[String]) -> Option<String> {
    let directives: Vec<&str> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    // Directive names compare case-insensitively, without a lowercased copy of each.
    let first = |wanted: &str| {
        directives.iter().position(|d| {
            d.split_ascii_whitespace()
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
    };
    let attr = first("style-src-attr");
    let governing = attr
        .or_else(|| first("style-src"))
        .or_else(|| first("default-src"))?;
    let sources: Vec<&str> = directives
        .get(governing)?
        .split_ascii_whitespace()
        .skip(1)
        .collect();
    let has = |s: &str| sources.iter().any(|x| x.eq_ignore_ascii_case(s));
    // `'unsafe-inline'` counts only in a list without hashes and nonces.
    let hashed = sources.iter().any(|x| {
        let x = x.to_ascii_lowercase();
        ["'sha256-", "'sha384-", "'sha512-", "'nonce-"]
            .iter()
            .any(|p| x.starts_with(p))
    });
    if has("'unsafe-inline'") && !hashed {
        return None;
    }
    if has("'unsafe-hashes'") && hashes.iter().all(|h| sources.contains(&h.as_str())) {
        return None;
    }
    // The attributes' own directive, holding what governed them before (less `'none'`,
    // which cannot stand beside other sources) and the toolbar's hashes.
    let mut kept: Vec<&str> = sources
        .iter()
        .copied()
        .filter(|s| !s.eq_ignore_ascii_case("'none'"))
        .collect();
    if !has("'unsafe-hashes'") {
        kept.push("'unsafe-hashes'");
    }
    for h in hashes {
        if !kept.contains(&h.as_str()) {
            kept.push(h);
        }
    }
    let directive = format!("style-src-attr {}", kept.join(" "));
    let mut out: Vec<String> = directives.iter().map(|d| d.to_string()).collect();
    match attr.and_then(|i| out.get_mut(i)) {
        Some(d) => *d = directive,
        None => out.push(directive),
    }
    Some(out.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STYLES: [&str; 2] = ["margin:0", "color:#fff;text-decoration:underline"];

    fn hashes() -> String {
        STYLES.map(hash_source).join(" ")
    }

    #[test]
    fn the_hash_is_sha256_in_base64() {
        // Computed apart: python3 -c "import hashlib,base64;
        // print(base64.b64encode(hashlib.sha256(b'margin:0').digest()).decode())"
        assert_eq!(
            hash_source("margin:0"),
            "'sha256-q3nqK4VzeI/SowYCYQ/tCfo056B/JMutuSpzbJbHczk='"
        );
    }

    #[test]
    fn a_policy_that_lets_inline_styles_apply_is_left_alone() {
        for p in [
            "img-src 'self'; script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "STYLE-SRC 'UNSAFE-INLINE'",
            "default-src 'unsafe-inline'",
            "style-src-attr 'unsafe-inline'; style-src 'none'",
            "",
        ] {
            assert_eq!(allow_styles(p, &STYLES), None, "{p}");
        }
    }

    #[test]
    fn a_strict_policy_gets_the_toolbar_styles_by_hash() {
        let h = hashes();
        let cases = [
            (
                "default-src 'self'",
                format!("default-src 'self'; style-src-attr 'self' 'unsafe-hashes' {h}"),
            ),
            (
                "default-src 'none'; style-src 'self' https://cdn.example",
                format!(
                    "default-src 'none'; style-src 'self' https://cdn.example; \
                     style-src-attr 'self' https://cdn.example 'unsafe-hashes' {h}"
                ),
            ),
            // A nonce makes `'unsafe-inline'` ignored, so attributes were blocked.
            (
                "style-src 'unsafe-inline' 'nonce-abc'",
                format!(
                    "style-src 'unsafe-inline' 'nonce-abc'; \
                     style-src-attr 'unsafe-inline' 'nonce-abc' 'unsafe-hashes' {h}"
                ),
            ),
            // The attributes' own directive is amended in place; `'none'` goes.
            (
                "style-src-attr 'none'; style-src 'unsafe-inline'",
                format!("style-src-attr 'unsafe-hashes' {h}; style-src 'unsafe-inline'"),
            ),
            // Of two directives with one name the first counts.
            (
                "style-src 'none'; style-src 'unsafe-inline'",
                format!(
                    "style-src 'none'; style-src 'unsafe-inline'; style-src-attr 'unsafe-hashes' {h}"
                ),
            ),
            // Two policies in one header: each amended on its own.
            (
                "default-src 'self', img-src *",
                format!("default-src 'self'; style-src-attr 'self' 'unsafe-hashes' {h}, img-src *"),
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(
                allow_styles(policy, &STYLES).as_deref(),
                Some(&*want),
                "{policy}"
            );
        }
    }

    #[test]
    fn any_header_is_amended_without_a_panic_and_once() {
        // Every sequence of up to four pieces a policy is made of (and some that are not).
        let pieces = [
            "default-src",
            "style-src",
            "STYLE-SRC-ATTR",
            "'none'",
            "'self'",
            "'unsafe-inline'",
            "'unsafe-hashes'",
            "'nonce-q'",
            "'sha256-x'",
            ";",
            ",",
            " ",
            "\t",
            "é",
            "",
        ];
        let n = pieces.len();
        for i in 0..n * n * n * n {
            let policy: String = [i % n, i / n % n, i / (n * n) % n, i / (n * n * n)]
                .iter()
                .filter_map(|&k| pieces.get(k))
                .map(|p| format!("{p} "))
                .collect();
            if let Some(once) = allow_styles(&policy, &STYLES) {
                assert!(once.contains("style-src-attr"), "{policy:?} -> {once:?}");
                assert_eq!(allow_styles(&once, &STYLES), None, "{policy:?} -> {once:?}");
            }
        }
    }

    #[test]
    fn an_amended_policy_is_not_amended_again() {
        for p in [
            "default-src 'self'",
            "style-src-attr 'none'",
            "style-src 'nonce-x'",
        ] {
            let once = allow_styles(p, &STYLES).unwrap_or_default();
            assert!(once.contains("'unsafe-hashes'"), "{once}");
            assert_eq!(allow_styles(&once, &STYLES), None, "{once}");
        }
        // A hash already there is not repeated.
        let one = hash_source(STYLES[0]);
        let got = allow_styles(&format!("style-src {one}"), &STYLES).unwrap_or_default();
        assert_eq!(got.matches(&one).count(), 2, "{got}");
    }
}
