//! Per-series calibration of a detector's surprise against the series' own history.
//!
//! A fixed bar ("6 robust standard deviations") suits a series with light tails, but
//! many real series are bursty: request counts, network bytes, social volumes routinely
//! step far outside their median ± a few MADs. Flagging every such step is noise. So each
//! component's surprise is also judged against what this series has produced before:
//! the bar rises to the surprise the series' own recent history makes as rare as
//! [`TAIL_P`] per reading, and never falls below the absolute one.
//!
//! The tail is estimated the way peaks-over-threshold methods do (extreme value theory):
//! above the series' [`BASE_QUANTILE`] of surprise, the excesses are fitted with a
//! Pareto tail (an exponential in log surprise, so one huge outlier moves it little),
//! and the bar is that tail's `1 − TAIL_P` quantile. The history is a log-spaced
//! histogram with exponential forgetting ([`HORIZON`] readings): a fixed 400 bytes.

/// Log-spaced bins over [`LOW`, `LOW`·10^DECADES).
const BINS_PER_DECADE: usize = 6;
const DECADES: usize = 8;
const BINS: usize = BINS_PER_DECADE * DECADES;
const LOW: f64 = 1e-3;
/// Where the tail starts.
const BASE_QUANTILE: f64 = 0.98;
/// How rare, per reading, a surprise must be in this series' own history to count.
pub const TAIL_P: f64 = 1e-3;
/// Readings after which old history weighs 1/e.
pub const HORIZON: f64 = 8192.0;
/// History (in readings) before the series' own tail is trusted at all.
const MIN_WEIGHT: f64 = 256.0;
/// Surprises above this many bars are counted as this many.
const CLAMP: f64 = 10.0;
/// Readings between two re-estimates of the bar.
const REFRESH: u32 = 16;

/// The surprise history of one detector component of one series.
#[derive(Debug, Clone)]
pub struct Calibrator {
    /// Decayed counts per bin.
    counts: [f32; BINS],
    /// Decayed sums of ln(surprise) per bin.
    sums: [f32; BINS],
    since: u32,
    /// The current bar (≥ 1): surprises are divided by it.
    bar: f32,
}

impl Default for Calibrator {
    fn default() -> Self {
        Calibrator {
            counts: [0.0; BINS],
            sums: [0.0; BINS],
            since: 0,
            bar: 1.0,
        }
    }
}

impl Calibrator {
    /// `u` judged against this series' history: `u / bar`, with `bar ≥ 1`.
    pub fn calibrated(&self, u: f64) -> f64 {
        u / f64::from(self.bar)
    }

    /// The current bar (1 until the history is long enough, or when its tail is light).
    pub fn bar(&self) -> f64 {
        f64::from(self.bar)
    }

    /// Adds one surprise (raw, before calibration) to the history.
    pub fn observe(&mut self, u: f64) {
        if !u.is_finite() || u < 0.0 {
            return;
        }
        // Winsorised: one absurd reading (a surprise of millions where the series' usual
        // step is its resolution) must not hold the bar up for a whole horizon.
        let ln = u.clamp(LOW, CLAMP * f64::from(self.bar)).ln();
        let at = ((ln - LOW.ln()) / std::f64::consts::LN_10 * BINS_PER_DECADE as f64)
            .floor()
            .clamp(0.0, (BINS - 1) as f64) as usize;
        self.counts[at] += 1.0;
        self.sums[at] += ln as f32;
        self.since += 1;
        if self.since >= REFRESH {
            self.since = 0;
            let keep = (-f64::from(REFRESH) / HORIZON).exp() as f32;
            self.counts.iter_mut().for_each(|c| *c *= keep);
            self.sums.iter_mut().for_each(|s| *s *= keep);
            self.bar = self.estimate() as f32;
        }
    }

    /// The `1 − TAIL_P` quantile of the fitted tail, at least 1.
    fn estimate(&self) -> f64 {
        let total: f64 = self.counts.iter().map(|c| f64::from(*c)).sum();
        if total < MIN_WEIGHT {
            return 1.0;
        }
        let target = (1.0 - BASE_QUANTILE) * total;
        let (mut count, mut sum) = (0.0, 0.0);
        for i in (0..BINS).rev() {
            count += f64::from(self.counts[i]);
            sum += f64::from(self.sums[i]);
            if count >= target {
                // Everything counted lies at or above this bin's lower edge.
                let base = LOW.ln() + i as f64 / BINS_PER_DECADE as f64 * std::f64::consts::LN_10;
                let excess = (sum / count - base).max(0.0);
                let ln_bar = base + excess * (count / total / TAIL_P).ln();
                return ln_bar.exp().max(1.0);
            }
        }
        1.0
    }

    /// Bytes held (all inline).
    pub const BYTES: usize = std::mem::size_of::<Calibrator>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng as _, SeedableRng as _};

    #[test]
    fn light_tails_keep_the_absolute_bar() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut c = Calibrator::default();
        for _ in 0..20_000 {
            // |N(0,1)| / 6: the spike detector's surprise on Gaussian noise.
            let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
            c.observe(z.abs() / 6.0);
        }
        assert_eq!(c.bar(), 1.0);
    }

    #[test]
    fn heavy_tails_raise_the_bar_and_rarer_surprises_still_pass() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut c = Calibrator::default();
        for _ in 0..20_000 {
            // Pareto with index 2: surprises of 1 (6 sigma) are routine here.
            let u = 0.2 / rng.random::<f64>().max(1e-12).sqrt();
            c.observe(u);
        }
        let bar = c.bar();
        // P(u > x) = (0.2/x)^2 ⇒ the 1 − 1e-3 quantile is 0.2/√1e-3 ≈ 6.3.
        assert!(bar > 4.5 && bar < 9.0, "bar {bar}");
        assert!(c.calibrated(20.0) > 1.0);
        assert!(c.calibrated(2.0) < 1.0);
    }

    #[test]
    fn one_huge_outlier_barely_moves_the_bar_and_history_fades() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut c = Calibrator::default();
        for _ in 0..5_000 {
            c.observe(0.3 * rng.random::<f64>());
        }
        let before = c.bar();
        c.observe(1e6);
        for _ in 0..32 {
            c.observe(0.3 * rng.random::<f64>());
        }
        assert!(c.bar() < 1.5 * before.max(1.0), "{before} → {}", c.bar());
        // A burst of large surprises raises the bar; once they stop, it comes back.
        for _ in 0..2_000 {
            c.observe(5.0 + rng.random::<f64>());
        }
        assert!(c.bar() > 5.0);
        for _ in 0..60_000 {
            c.observe(0.3 * rng.random::<f64>());
        }
        assert_eq!(c.bar(), 1.0);
    }
}
