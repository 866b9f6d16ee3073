//! Sequential statistics: always-valid inference on the difference of two conversion
//! rates, so that looking at an experiment after every batch of data (every day) does not
//! inflate the false-positive rate the way repeated fixed-horizon tests do.
//!
//! The method is the mixture sequential probability ratio test (mSPRT) of Johari, Koomen,
//! Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests",
//! *Operations Research* 70(3), 2022 (arXiv:1512.04922), with a normal mixing distribution
//! `N(0, τ²)` over the difference (Robbins' normal mixture). For an estimate `d` of the
//! difference `θ` with variance `s²`, the mixture likelihood ratio against `θ = θ₀` is
//!
//! ```text
//! Λ(θ₀) = sqrt(s² / (s² + τ²)) · exp( τ² (d − θ₀)² / (2 s² (s² + τ²)) )
//! ```
//!
//! which, with `n` users in each arm and per-user variance `σ²` in both (`s² = 2σ²/n`), is
//! the paper's two-stream statistic
//! `sqrt(2σ²/(2σ²+nτ²)) · exp(n²τ²(d−θ₀)² / (4σ²(2σ²+nτ²)))`. Under `θ = θ₀`, `Λ` is a
//! nonnegative martingale with mean 1, so by Ville's inequality it ever reaches `1/α` with
//! probability at most `α`, however often it is looked at. Hence:
//!
//! - the always-valid p-value is the running minimum of `min(1, 1/Λ(0))`;
//! - the confidence interval at a look is `{θ₀ : Λ(θ₀) < 1/α}`, that is
//!   `d ± sqrt( s²(s²+τ²)/τ² · (2 ln(1/α) + ln((s²+τ²)/s²)) )`, and the always-valid
//!   interval is the intersection of every look's.
//!
//! As in the paper's treatment of binary outcomes, the variance is the plug-in
//! `p̂_A(1−p̂_A)/n_A + p̂_B(1−p̂_B)/n_B` (a normal approximation that holds for the sample
//! sizes of web experiments). `τ` is the scale of differences the test is tuned to find:
//! the paper suggests the size of effects one expects; the interval is tightest when
//! `s²` is near `τ²`. Pure arithmetic: no clock, randomness or I/O.
//!
//! The plug-in variance is zero when an arm converts 0 % or 100 % of its users, which
//! measures nothing (a failing origin does exactly that: every user of one variant gets
//! an error, none of the other's). [`Arm::adjusted`] is Agresti and Caffo's adjustment
//! (one conversion and one non-conversion added to each arm; "Simple and effective
//! confidence intervals for proportions and differences of proportions result from
//! adding two successes and two failures", *The American Statistician* 54(4), 2000),
//! which the report and the guard apply before a look: it keeps the variance positive,
//! pulls small arms towards 50 %, and changes nothing that matters at web sample sizes.
//! Combining it with the mSPRT is this project's choice, not the paper's.

/// One arm of an experiment so far: its users and how many of them converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arm {
    /// Users exposed to the arm.
    pub users: u64,
    /// Users among them who converted (at most `users`).
    pub conversions: u64,
}

impl Arm {
    /// Agresti and Caffo's adjusted arm: one conversion and one non-conversion added
    /// (two users, one of whom converted), so an arm at 0 % or 100 % still has a variance.
    pub fn adjusted(self) -> Arm {
        Arm {
            users: self.users.saturating_add(2),
            conversions: self.conversions.saturating_add(1),
        }
    }

    /// The arm's conversion rate and the plug-in variance of that rate, `None` when the
    /// arm has no users or more conversions than users.
    fn rate(self) -> Option<(f64, f64)> {
        if self.users == 0 || self.conversions > self.users {
            return None;
        }
        let n = self.users as f64;
        let p = self.conversions as f64 / n;
        Some((p, p * (1.0 - p) / n))
    }
}

/// What was wrong with the parameters of a [`Monitor`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ParameterError {
    /// `alpha` must be strictly between 0 and 1.
    #[error("alpha must be strictly between 0 and 1 (got {0})")]
    Alpha(f64),
    /// `tau` must be a positive finite number.
    #[error("tau, the mixing scale of the difference, must be positive and finite (got {0})")]
    Tau(f64),
}

/// One look at an experiment: the estimate and the statistic at that look alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// The treatment's conversion rate minus the control's.
    pub difference: f64,
    /// The variance of that difference (plug-in).
    pub variance: f64,
    /// `ln Λ(0)`: the log of the mixture likelihood ratio against "no difference".
    pub log_ratio: f64,
    /// This look's interval for the difference, `{θ₀ : Λ(θ₀) < 1/α}`.
    pub lower: f64,
    /// Its upper end.
    pub upper: f64,
}

/// What the evidence so far says, at level `alpha`, valid whenever it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No difference shown yet.
    Undecided,
    /// The treatment converts better than the control.
    TreatmentBetter,
    /// The treatment converts worse than the control.
    TreatmentWorse,
}

/// An experiment watched look after look: the running always-valid p-value and interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    alpha: f64,
    tau2: f64,
    p_value: f64,
    lower: f64,
    upper: f64,
    looks: u32,
}

impl Monitor {
    /// A monitor at level `alpha` (such as 0.05) whose mixture has standard deviation
    /// `tau` on the difference of rates (such as 0.01 for one point).
    pub fn new(alpha: f64, tau: f64) -> Result<Monitor, ParameterError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(ParameterError::Alpha(alpha));
        }
        if !(tau > 0.0 && tau.is_finite()) {
            return Err(ParameterError::Tau(tau));
        }
        Ok(Monitor {
            alpha,
            tau2: tau * tau,
            p_value: 1.0,
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
            looks: 0,
        })
    }

    /// Looks at the cumulative counts of both arms. Returns this look's statistic and
    /// folds it into the running p-value and interval; `None` (and nothing folded) when
    /// either arm has no users or more conversions than users, or when the plug-in
    /// variance is zero (both arms at 0 % or both at 100 %), which measures nothing.
    pub fn look(&mut self, control: Arm, treatment: Arm) -> Option<Look> {
        let look = look(control, treatment, self.alpha, self.tau2)?;
        self.looks = self.looks.saturating_add(1);
        self.p_value = self.p_value.min((-look.log_ratio).exp().min(1.0));
        self.lower = self.lower.max(look.lower);
        self.upper = self.upper.min(look.upper);
        Some(look)
    }

    /// Looks at the counts of both arms after [`Arm::adjusted`], as the report and the
    /// guard do; `None` (and nothing folded) when either arm has no users or more
    /// conversions than users.
    pub fn look_adjusted(&mut self, control: Arm, treatment: Arm) -> Option<Look> {
        for arm in [control, treatment] {
            if arm.users == 0 || arm.conversions > arm.users {
                return None;
            }
        }
        self.look(control.adjusted(), treatment.adjusted())
    }

    /// The always-valid p-value against "no difference": the smallest `1/Λ(0)` of any
    /// look so far (1 before the first).
    pub fn p_value(&self) -> f64 {
        self.p_value
    }

    /// The always-valid interval for the difference: the intersection of every look's
    /// (unbounded before the first). Under the model it is empty (lower above upper) with
    /// probability at most `alpha`; an empty one says the counts do not fit the model.
    pub fn interval(&self) -> (f64, f64) {
        (self.lower, self.upper)
    }

    /// How many looks were folded in.
    pub fn looks(&self) -> u32 {
        self.looks
    }

    /// The verdict at level `alpha`: a side once the p-value is at or below `alpha`,
    /// the side the interval lies on.
    pub fn verdict(&self) -> Verdict {
        if self.p_value > self.alpha {
            Verdict::Undecided
        } else if self.lower > 0.0 {
            Verdict::TreatmentBetter
        } else if self.upper < 0.0 {
            Verdict::TreatmentWorse
        } else {
            // The p-value crossed at a look whose interval excluded 0; the intersection
            // then excludes it too, so this is reached only by an empty intersection.
            Verdict::Undecided
        }
    }
}

/// The statistic of one look (see the module's formulas).
fn look(control: Arm, treatment: Arm, alpha: f64, tau2: f64) -> Option<Look> {
    let (pa, va) = control.rate()?;
    let (pb, vb) = treatment.rate()?;
    let s2 = va + vb;
    if s2 <= 0.0 || !s2.is_finite() {
        return None;
    }
    let d = pb - pa;
    let log_ratio = 0.5 * (s2 / (s2 + tau2)).ln() + tau2 * d * d / (2.0 * s2 * (s2 + tau2));
    let half =
        (s2 * (s2 + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + ((s2 + tau2) / s2).ln())).sqrt();
    Some(Look {
        difference: d,
        variance: s2,
        log_ratio,
        lower: d - half,
        upper: d + half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(users: u64, conversions: u64) -> Arm {
        Arm { users, conversions }
    }

    #[test]
    fn the_statistic_is_the_papers_two_stream_formula() {
        // Equal arms and equal rates' variance: Λ = sqrt(2σ²/(2σ²+nτ²)) ·
        // exp(n²τ²d² / (4σ²(2σ²+nτ²))) with σ² the per-user variance.
        let (n, tau) = (10_000u64, 0.01f64);
        let control = arm(n, 1_000);
        let treatment = arm(n, 1_000 + 60);
        let l = look(control, treatment, 0.05, tau * tau).unwrap_or_else(|| panic!("a look"));
        let (pa, pb) = (0.1f64, 0.106f64);
        let nf = n as f64;
        let v = pa * (1.0 - pa) + pb * (1.0 - pb); // 2σ², the two arms' sum
        let d = pb - pa;
        let expected = 0.5 * (v / (v + nf * tau * tau)).ln()
            + nf * nf * tau * tau * d * d / (2.0 * v * (v + nf * tau * tau));
        assert!((l.log_ratio - expected).abs() < 1e-9, "{l:?} {expected}");
        assert!((l.difference - d).abs() < 1e-12);
    }

    #[test]
    fn the_interval_is_where_the_ratio_stays_under_one_over_alpha() {
        let alpha = 0.05;
        let tau2 = 0.02f64 * 0.02;
        let l =
            look(arm(4_000, 400), arm(4_000, 470), alpha, tau2).unwrap_or_else(|| panic!("a look"));
        let log_ratio_at = |theta0: f64| {
            let s2 = l.variance;
            let d = l.difference - theta0;
            0.5 * (s2 / (s2 + tau2)).ln() + tau2 * d * d / (2.0 * s2 * (s2 + tau2))
        };
        let edge = (1.0f64 / alpha).ln();
        for end in [l.lower, l.upper] {
            assert!((log_ratio_at(end) - edge).abs() < 1e-9, "{end}: {l:?}");
        }
        assert!(log_ratio_at(l.difference) < edge);
        assert!(l.lower < l.difference && l.difference < l.upper);
    }

    #[test]
    fn the_running_p_value_and_interval_never_loosen() {
        let mut m = Monitor::new(0.05, 0.01).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.p_value(), 1.0);
        assert_eq!(m.verdict(), Verdict::Undecided);
        // A strong early signal, then the arms drift together: the verdict stays.
        let mut last = (f64::NEG_INFINITY, f64::INFINITY, 1.0);
        for (a, b) in [(100, 200), (200, 300), (300, 330), (400, 440), (500, 540)] {
            m.look(arm(1_000 * (a / 100), a), arm(1_000 * (a / 100), b));
            let (lo, hi) = m.interval();
            assert!(lo >= last.0 && hi <= last.1 && m.p_value() <= last.2);
            last = (lo, hi, m.p_value());
        }
        assert_eq!(m.looks(), 5);
        assert_eq!(m.verdict(), Verdict::TreatmentBetter);
        let mut worse = Monitor::new(0.05, 0.01).unwrap_or_else(|e| panic!("{e}"));
        worse.look(arm(20_000, 2_000), arm(20_000, 1_700));
        assert_eq!(worse.verdict(), Verdict::TreatmentWorse);
    }

    #[test]
    fn the_adjustment_gives_arms_at_zero_and_a_hundred_percent_a_variance() {
        assert_eq!(arm(50, 0).adjusted(), arm(52, 1));
        assert_eq!(arm(50, 50).adjusted(), arm(52, 51));
        // Every user of one arm failing, none of the other's: nothing to measure as
        // counted, a decisive difference once adjusted.
        let mut m = Monitor::new(0.05, 0.01).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.look(arm(50, 0), arm(50, 50)), None);
        let l = m
            .look(arm(50, 0).adjusted(), arm(50, 50).adjusted())
            .unwrap_or_else(|| panic!("a look"));
        // d = 50/52 = 0.9615..., s² = 2 · (1/52)(51/52)/52.
        let s2 = 2.0 * (1.0 / 52.0) * (51.0 / 52.0) / 52.0;
        assert!((l.difference - 50.0 / 52.0).abs() < 1e-12 && (l.variance - s2).abs() < 1e-15);
        assert!(m.p_value() < 1e-30, "{}", m.p_value());
        assert_eq!(m.verdict(), Verdict::TreatmentBetter);
        // Both arms without a failure: no evidence either way.
        let mut none = Monitor::new(0.05, 0.01).unwrap_or_else(|e| panic!("{e}"));
        none.look(arm(50, 0).adjusted(), arm(50, 0).adjusted());
        assert_eq!((none.p_value(), none.verdict()), (1.0, Verdict::Undecided));
        assert_eq!(arm(u64::MAX, u64::MAX).adjusted(), arm(u64::MAX, u64::MAX));
        // The same through look_adjusted, which refuses arms without users.
        let mut both = Monitor::new(0.05, 0.01).unwrap_or_else(|e| panic!("{e}"));
        assert!(both.look_adjusted(arm(50, 0), arm(50, 50)).is_some());
        assert_eq!(both.p_value(), m.p_value());
        assert_eq!(both.look_adjusted(arm(0, 0), arm(50, 50)), None);
        assert_eq!(both.look_adjusted(arm(5, 6), arm(50, 50)), None);
        assert_eq!(both.looks(), 1);
    }

    #[test]
    fn counts_that_measure_nothing_are_not_folded_in_and_bad_parameters_are_refused() {
        let mut m = Monitor::new(0.05, 0.01).unwrap_or_else(|e| panic!("{e}"));
        for (a, b) in [
            (arm(0, 0), arm(10, 1)),
            (arm(10, 11), arm(10, 1)),
            (arm(10, 0), arm(10, 0)),
            (arm(10, 10), arm(10, 10)),
        ] {
            assert_eq!(m.look(a, b), None, "{a:?} {b:?}");
        }
        assert_eq!(m.looks(), 0);
        assert_eq!(m.p_value(), 1.0);
        for alpha in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(matches!(
                Monitor::new(alpha, 0.01),
                Err(ParameterError::Alpha(_))
            ));
        }
        for tau in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(matches!(
                Monitor::new(0.05, tau),
                Err(ParameterError::Tau(_))
            ));
        }
    }
}
