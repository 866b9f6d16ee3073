//! The sequential test under daily peeking, by simulation: experiments of two arms with
//! 5,000 new users each per day, looked at after every day for 30 days. With no real
//! difference (A/A, both at 10 %), the mixture SPRT calls a winner in at most `alpha` of
//! them; with a real +10 % relative lift (10 % against 11 %) it finds it in at least 80 %.
//! Beside it, the naive habit (a fixed-horizon z-test read every day) calls far more
//! false winners, which shows the simulation can see the inflation the test guards
//! against. Seeded and exact: each day's conversions are drawn from the binomial
//! distribution by inverting its cumulative table, so every figure is fixed.

use edgeflags_engine::sequential::{Arm, Monitor, Verdict};

const EXPERIMENTS: usize = 1_000;
const DAYS: u64 = 30;
const USERS_PER_DAY: u64 = 5_000;
const BASE: f64 = 0.10;
const ALPHA: f64 = 0.05;
/// The mixture's scale: one point of conversion rate, the size of a +10 % relative lift
/// at a 10 % base, which is what the experiment is meant to find.
const TAU: f64 = 0.01;
const SEED: u64 = 0x5EED_2026_1129;

/// SplitMix64 (Steele, Lea and Flood, 2014): a small seeded generator for the test.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The cumulative distribution of Binomial(n, p), built in log space from the ratio of
/// successive probabilities so nothing underflows before it is normalised.
struct Binomial {
    cdf: Vec<f64>,
}

impl Binomial {
    fn new(n: u64, p: f64) -> Binomial {
        let odds = (p / (1.0 - p)).ln();
        let mut log_pmf = Vec::with_capacity(n as usize + 1);
        let mut lp = n as f64 * (1.0 - p).ln();
        for k in 0..=n {
            log_pmf.push(lp);
            lp += ((n - k) as f64 / (k + 1) as f64).ln() + odds;
        }
        let top = log_pmf.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        let cdf: Vec<f64> = log_pmf
            .iter()
            .map(|l| {
                total += (l - top).exp();
                total
            })
            .collect();
        Binomial {
            cdf: cdf.into_iter().map(|c| c / total).collect(),
        }
    }

    fn draw(&self, rng: &mut SplitMix) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c <= u) as u64
    }
}

/// What happened in the simulated experiments.
struct Outcome {
    /// Experiments in which the mixture SPRT called a winner at some daily look.
    sequential_calls: usize,
    /// Of those, the ones calling the treatment better.
    sequential_better: usize,
    /// Experiments in which a two-sided z-test at 1.96, read every day, called one.
    naive_calls: usize,
    /// The day each call was first made, in order of experiments.
    call_days: Vec<u64>,
}

fn simulate(treatment_rate: f64, seed: u64) -> Outcome {
    let control_draw = Binomial::new(USERS_PER_DAY, BASE);
    let treatment_draw = Binomial::new(USERS_PER_DAY, treatment_rate);
    let mut rng = SplitMix(seed);
    let mut out = Outcome {
        sequential_calls: 0,
        sequential_better: 0,
        naive_calls: 0,
        call_days: Vec::new(),
    };
    for _ in 0..EXPERIMENTS {
        let mut monitor = Monitor::new(ALPHA, TAU).unwrap_or_else(|e| panic!("{e}"));
        let (mut a, mut b) = (Arm::default(), Arm::default());
        let mut naive = false;
        let mut called = None;
        for day in 1..=DAYS {
            a.users += USERS_PER_DAY;
            b.users += USERS_PER_DAY;
            a.conversions += control_draw.draw(&mut rng);
            b.conversions += treatment_draw.draw(&mut rng);
            let look = monitor.look(a, b).unwrap_or_else(|| panic!("{a:?} {b:?}"));
            naive |= look.difference.abs() / look.variance.sqrt() > 1.96;
            if called.is_none() && monitor.verdict() != Verdict::Undecided {
                called = Some(day);
            }
        }
        out.call_days.extend(called);
        match monitor.verdict() {
            Verdict::Undecided => {}
            Verdict::TreatmentBetter => {
                out.sequential_calls += 1;
                out.sequential_better += 1;
            }
            Verdict::TreatmentWorse => out.sequential_calls += 1,
        }
        out.naive_calls += usize::from(naive);
    }
    out
}

#[test]
fn a_a_experiments_peeked_at_daily_call_a_winner_at_most_alpha_of_the_time() {
    let aa = simulate(BASE, SEED);
    eprintln!(
        "A/A: {} of {EXPERIMENTS} experiments called a winner (mixture SPRT, alpha {ALPHA}, \
         tau {TAU}, {DAYS} daily looks); a z-test read daily called {}",
        aa.sequential_calls, aa.naive_calls
    );
    assert!(
        aa.sequential_calls as f64 <= ALPHA * EXPERIMENTS as f64,
        "{} false winners",
        aa.sequential_calls
    );
    // Peeking at a fixed-horizon test inflates its false positives well past alpha: the
    // simulation is sharp enough to show what the sequential test prevents.
    assert!(
        aa.naive_calls as f64 > 2.0 * ALPHA * EXPERIMENTS as f64,
        "{} naive false winners",
        aa.naive_calls
    );
}

#[test]
fn a_real_ten_percent_lift_is_found_in_at_least_eighty_percent_of_experiments() {
    let mut lift = simulate(BASE * 1.10, SEED ^ 0xA11CE);
    lift.call_days.sort_unstable();
    let median = lift.call_days.get(lift.call_days.len() / 2).copied();
    eprintln!(
        "+10% lift: {} of {EXPERIMENTS} experiments called the treatment better within \
         {DAYS} days ({} called a winner either way; median day of the call {median:?})",
        lift.sequential_better, lift.sequential_calls
    );
    assert!(
        lift.sequential_better as f64 >= 0.80 * EXPERIMENTS as f64,
        "{} found",
        lift.sequential_better
    );
}

#[test]
fn the_binomial_table_has_the_distributions_mean_and_spread() {
    // The sampler is what makes the figures above trustworthy: its draws must have the
    // binomial's mean n·p and variance n·p·(1−p).
    let table = Binomial::new(USERS_PER_DAY, BASE);
    let mut rng = SplitMix(SEED);
    let draws: Vec<f64> = (0..20_000).map(|_| table.draw(&mut rng) as f64).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
    let (m, v) = (
        USERS_PER_DAY as f64 * BASE,
        USERS_PER_DAY as f64 * BASE * (1.0 - BASE),
    );
    // Standard errors: sqrt(v/20000) ≈ 0.15 for the mean; about 1 % of v for the variance.
    assert!((mean - m).abs() < 0.6, "mean {mean} against {m}");
    assert!((var / v - 1.0).abs() < 0.05, "variance {var} against {v}");
}
