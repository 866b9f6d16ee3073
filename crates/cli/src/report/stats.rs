//! The report's statistics: a conversion rate with its Wilson score interval, the
//! difference of two rates with Newcombe's interval, both at 95%; the mean and variance
//! of a value per user from its sums; and Pearson's chi-square test of observed counts
//! against expected ones (the sample-ratio check), its p-value from `statrs`; and the
//! always-valid p-value and interval of a difference (the engine's mixture SPRT, one look).

use edgeflags_engine::sequential::{Arm, Monitor};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The level of the report's always-valid intervals: 95%, as its fixed-horizon ones.
pub const SEQUENTIAL_ALPHA: f64 = 0.05;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval (95%) of `c` successes in `n` trials.
pub fn wilson(c: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 0.0);
    }
    let z = Z95;
    let p = c / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// `c` out of `n` as a fraction; 0 when there are no trials.
pub fn ratio(c: usize, n: usize) -> f64 {
    if n > 0 { c as f64 / n as f64 } else { 0.0 }
}

/// The difference of two conversion rates (variant minus control) with Newcombe's 95%
/// interval built from the two Wilson intervals (Newcombe 1998, method 10). Each side is
/// `(converted, exposed)`.
pub fn difference(variant: (usize, usize), control: (usize, usize)) -> (f64, f64, f64) {
    let (p1, p2) = (ratio(variant.0, variant.1), ratio(control.0, control.1));
    let (l1, u1) = wilson(variant.0 as f64, variant.1 as f64);
    let (l2, u2) = wilson(control.0 as f64, control.1 as f64);
    let d = p1 - p2;
    let lo = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    (d, lo, hi)
}

/// The always-valid comparison of a variant with the control (each `(converted,
/// exposed)`) at one look: the mixture SPRT's p-value against no difference and its
/// interval for the difference at level `alpha`, on Agresti and Caffo's adjusted counts
/// (see `edgeflags_engine::sequential`), the interval cut to [-1, 1] where a difference of
/// rates lies. `None` when either side has no users or `alpha`/`tau` are out of range.
pub fn always_valid(
    variant: (usize, usize),
    control: (usize, usize),
    alpha: f64,
    tau: f64,
) -> Option<(f64, f64, f64)> {
    let arm = |(c, n): (usize, usize)| Arm {
        users: n as u64,
        conversions: c as u64,
    };
    let mut m = Monitor::new(alpha, tau).ok()?;
    m.look_adjusted(arm(control), arm(variant))?;
    let (lo, hi) = m.interval();
    Some((m.p_value(), lo.max(-1.0), hi.min(1.0)))
}

/// The mean and the sample variance (n - 1) of `n` values from their sum and the sum of
/// their squares; 0 where undefined (no values, or one for the variance).
pub fn mean_variance(n: usize, sum: f64, sum_sq: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let nf = n as f64;
    let mean = sum / nf;
    if n < 2 {
        return (mean, 0.0);
    }
    // Rounding can take a variance of equal values a hair below zero.
    (mean, ((sum_sq - nf * mean * mean) / (nf - 1.0)).max(0.0))
}

/// Pearson's chi-square statistic of `(observed, expected)` counts. An observed count
/// where none is expected makes it infinite.
pub fn chi_square(cells: &[(f64, f64)]) -> f64 {
    cells
        .iter()
        .map(|&(o, e)| {
            if e > 0.0 {
                (o - e).powi(2) / e
            } else if o > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .sum()
}

/// The probability of a chi-square statistic of `df` degrees of freedom at least `stat`
/// (0 for an infinite statistic; else 1 when `df` is 0: nothing to test).
pub fn chi_square_p(stat: f64, df: usize) -> f64 {
    if stat.is_infinite() {
        return 0.0;
    }
    if df == 0 || stat.is_nan() || stat <= 0.0 {
        return 1.0;
    }
    ChiSquared::new(df as f64).map_or(1.0, |d| d.sf(stat))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: (f64, f64), want: (f64, f64)) -> bool {
        (got.0 - want.0).abs() < 5e-5 && (got.1 - want.1).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_hand_computed_intervals() {
        // By hand: centre (p + z²/2n) / (1 + z²/n), half-width
        // z √(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.95996.
        for (c, n, want) in [
            (10.0, 100.0, (0.05523, 0.17437)),
            (20.0, 100.0, (0.13337, 0.28883)),
            // Newcombe's (1998) worked example for one proportion: 81/263.
            (81.0, 263.0, (0.25529, 0.36621)),
            (1.0, 2.0, (0.09453, 0.90547)),
        ] {
            let got = wilson(c, n);
            assert!(close(got, want), "{c}/{n}: {got:?}, want {want:?}");
        }
    }

    #[test]
    fn wilson_stays_inside_zero_and_one_at_the_edges() {
        // 0/n: the lower end is 0, the upper z²/(n+z²); n/n mirrors it.
        let (lo, hi) = wilson(0.0, 10.0);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.27753).abs() < 5e-5, "{hi}");
        let (lo, hi) = wilson(10.0, 10.0);
        assert!(
            (lo - 0.72247).abs() < 5e-5 && hi <= 1.0 && hi > 0.99999,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0.0, 0.0), (0.0, 0.0));
    }

    #[test]
    fn ratio_is_zero_without_trials() {
        assert_eq!(ratio(1, 4), 0.25);
        assert_eq!(ratio(0, 0), 0.0);
    }

    #[test]
    fn newcombe_matches_the_published_method_10_intervals() {
        // Newcombe (1998), "Interval estimation for the difference between independent
        // proportions", table II, method 10 (score, no continuity correction).
        for (variant, control, want) in [
            ((56, 70), (48, 80), (0.0524, 0.3339)),
            ((9, 10), (3, 10), (0.1705, 0.8090)),
            ((6, 7), (2, 7), (0.0582, 0.8062)),
            ((5, 56), (0, 29), (-0.0381, 0.1926)),
            ((0, 10), (0, 20), (-0.1611, 0.2775)),
            ((0, 10), (0, 10), (-0.2775, 0.2775)),
            ((10, 10), (0, 20), (0.6791, 1.0000)),
        ] {
            let (d, lo, hi) = difference(variant, control);
            let p = |(c, n): (usize, usize)| c as f64 / n as f64;
            assert!((d - (p(variant) - p(control))).abs() < 1e-12);
            assert!(
                (lo - want.0).abs() < 5e-5 && (hi - want.1).abs() < 5e-5,
                "{variant:?} - {control:?}: [{lo}, {hi}], want {want:?}"
            );
        }
    }

    #[test]
    fn mean_and_variance_come_from_the_sums() {
        // Values 0, 0, 2, 4: mean 1.5, sample variance (2.25 + 2.25 + 0.25 + 6.25) / 3.
        let (m, v) = mean_variance(4, 6.0, 20.0);
        assert_eq!(m, 1.5);
        assert!((v - 11.0 / 3.0).abs() < 1e-12, "{v}");
        assert_eq!(mean_variance(0, 0.0, 0.0), (0.0, 0.0));
        assert_eq!(mean_variance(1, 3.0, 9.0), (3.0, 0.0));
        assert_eq!(mean_variance(3, 6.0, 12.0), (2.0, 0.0));
    }

    #[test]
    fn chi_square_p_values_match_the_tables() {
        // Critical values from the chi-square table: P(X >= 3.841) = 0.05 at 1 df,
        // P(X >= 10.828) = 0.001 at 1 df, P(X >= 13.816) = 0.001 at 2 df.
        for (stat, df, p) in [
            (3.841, 1, 0.05),
            (10.828, 1, 0.001),
            (13.816, 2, 0.001),
            (0.0, 1, 1.0),
        ] {
            let got = chi_square_p(stat, df);
            assert!((got - p).abs() < p * 1e-3 + 1e-12, "{stat} {df}: {got}");
        }
        // 550 against 450 expected 500 each: (50² + 50²) / 500 = 10.
        assert_eq!(chi_square(&[(550.0, 500.0), (450.0, 500.0)]), 10.0);
        assert_eq!(chi_square(&[(1.0, 0.0), (9.0, 10.0)]), f64::INFINITY);
        assert_eq!(chi_square_p(f64::INFINITY, 1), 0.0);
        assert_eq!(chi_square_p(5.0, 0), 1.0);
    }

    #[test]
    fn the_always_valid_figures_match_a_hand_computation() {
        // 150 of 1,000 against 100 of 1,000, tau 0.01, alpha 0.05. Adjusted: 151/1002
        // against 101/1002, d = 50/1002 = 0.0499002; s² = (151·851 + 101·901)/1002³ =
        // 0.000218190; ln Λ = ½ ln(s²/(s²+τ²)) + τ²d²/(2s²(s²+τ²)) = -0.188641 + 1.793298
        // = 1.604657, p = 1/Λ = 0.200959; half-width √(s²(s²+τ²)/τ² · (2 ln 20 +
        // ln((s²+τ²)/s²))) = 0.066495. The fixed-horizon test calls it (z = 3.4); the
        // always-valid one does not yet.
        let (p, lo, hi) =
            always_valid((150, 1000), (100, 1000), 0.05, 0.01).unwrap_or_else(|| panic!("figures"));
        assert!((p - 0.200_959).abs() < 1e-6, "{p}");
        assert!(
            (lo + 0.016_595).abs() < 1e-6 && (hi - 0.116_395).abs() < 1e-6,
            "[{lo}, {hi}]"
        );
        // Tiny arms: the interval is cut to the differences rates can have, p is 1.
        assert_eq!(
            always_valid((2, 2), (1, 2), 0.05, 0.01),
            Some((1.0, -1.0, 1.0))
        );
        assert_eq!(always_valid((2, 2), (0, 0), 0.05, 0.01), None);
        assert_eq!(always_valid((2, 2), (1, 2), 0.05, 0.0), None);
    }

    #[test]
    fn the_difference_of_a_variant_with_itself_is_symmetric_around_zero() {
        let (d, lo, hi) = difference((30, 200), (30, 200));
        assert_eq!(d, 0.0);
        assert!(lo < 0.0 && (lo + hi).abs() < 1e-12, "{lo} {hi}");
    }
}
