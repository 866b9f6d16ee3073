//! The report's SVG chart: per flag, each variant's conversion rate as a bar with its 95%
//! interval as a whisker, on one scale up to the highest interval end.

use std::collections::BTreeMap;

use super::summary::VariantSummary;

/// Text escaped for SVG content and attributes.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG chart of the report: per flag, each variant's conversion rate as a bar with its
/// 95% interval as a whisker.
pub fn chart_svg(flags: &BTreeMap<String, BTreeMap<String, VariantSummary>>) -> String {
    let (left, width, row, head) = (160.0, 420.0, 26.0, 34.0);
    let rows: usize = flags.values().map(BTreeMap::len).sum();
    let height = flags.len() as f64 * head + rows as f64 * row + 40.0;
    let top = flags
        .values()
        .flat_map(BTreeMap::values)
        .map(|v| v.ci95[1])
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let x = |r: f64| left + r / top * width;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        left + width + 120.0
    );
    svg.push_str("<title>edgeflags report: conversion rate per variant, 95% interval</title>\n");
    let mut y = 20.0;
    for (flag, vs) in flags {
        svg.push_str(&format!(
            "<text x=\"4\" y=\"{y}\" font-weight=\"bold\">{}</text>\n",
            esc(flag)
        ));
        y += head - 14.0;
        for (variant, v) in vs {
            let rate = v.rate;
            let [lo, hi] = v.ci95;
            let mid = y + row / 2.0 - 4.0;
            svg.push_str(&format!(
                "<text x=\"12\" y=\"{}\">{}</text>\n<rect x=\"{left}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#4a7fd4\"><title>{} {:.2}%</title></rect>\n<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{mid}\" y2=\"{mid}\" stroke=\"#222\"/>\n<text x=\"{:.1}\" y=\"{}\">{:.2}% [{:.2}, {:.2}] n={}</text>\n",
                mid + 4.0,
                esc(variant),
                y,
                x(rate) - left,
                row - 8.0,
                esc(variant),
                rate * 100.0,
                x(lo),
                x(hi),
                x(hi) + 6.0,
                mid + 4.0,
                rate * 100.0,
                lo * 100.0,
                hi * 100.0,
                v.exposed,
            ));
            y += row;
        }
        y += 14.0;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(exposed: usize, rate: f64, ci95: [f64; 2]) -> VariantSummary {
        VariantSummary {
            ci95,
            converted: (rate * exposed as f64) as usize,
            countries: BTreeMap::new(),
            exposed,
            rate,
            value: 0.0,
            value_mean: 0.0,
            value_var: 0.0,
            vs_control: None,
        }
    }

    #[test]
    fn bars_and_whiskers_share_one_scale_up_to_the_highest_interval_end() {
        let flags = BTreeMap::from([(
            "checkout".to_string(),
            BTreeMap::from([
                ("v1".to_string(), variant(100, 0.1, [0.05, 0.2])),
                ("v2".to_string(), variant(50, 0.2, [0.1, 0.4])),
            ]),
        )]);
        let svg = chart_svg(&flags);
        // One flag heading (34) and two rows (26 each), plus 40: 126 high; 160 + 420 + 120
        // wide.
        assert!(
            svg.starts_with(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"700\" height=\"126\""
            ),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
        // The scale's top is 0.4 over 420 px: v1's bar 0.1 -> 105 px, whisker 0.05..0.2 ->
        // x 212.5..370; v2's bar 210 px, whisker x 265..580, label at 586.
        assert!(svg.contains("<text x=\"4\" y=\"20\" font-weight=\"bold\">checkout</text>"));
        assert!(svg.contains(
            "<rect x=\"160\" y=\"40\" width=\"105.0\" height=\"18\" fill=\"#4a7fd4\"><title>v1 10.00%</title></rect>"
        ));
        assert!(svg.contains("<line x1=\"212.5\" x2=\"370.0\" y1=\"49\" y2=\"49\""));
        assert!(svg.contains("<text x=\"376.0\" y=\"53\">10.00% [5.00, 20.00] n=100</text>"));
        assert!(svg.contains("width=\"210.0\" height=\"18\" fill=\"#4a7fd4\"><title>v2 20.00%"));
        assert!(svg.contains("<line x1=\"265.0\" x2=\"580.0\" y1=\"75\" y2=\"75\""));
        assert!(svg.contains("<text x=\"586.0\" y=\"79\">20.00% [10.00, 40.00] n=50</text>"));
    }

    #[test]
    fn names_are_escaped_and_an_empty_report_is_an_empty_chart() {
        let flags = BTreeMap::from([(
            "a<b>&\"c\"".to_string(),
            BTreeMap::from([("<v>".to_string(), variant(0, 0.0, [0.0, 0.0]))]),
        )]);
        let svg = chart_svg(&flags);
        assert!(
            svg.contains(">a&lt;b&gt;&amp;&quot;c&quot;</text>"),
            "{svg}"
        );
        assert!(svg.contains(">&lt;v&gt;</text>") && !svg.contains("<v>"));
        // No rate anywhere: the scale's top stays positive, every bar is empty.
        assert!(svg.contains("width=\"0.0\"") && !svg.contains("NaN"));
        let empty = chart_svg(&BTreeMap::new());
        assert!(empty.contains("height=\"40\"") && empty.ends_with("</title>\n</svg>\n"));
    }
}
