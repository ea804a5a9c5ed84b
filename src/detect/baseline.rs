//! The baseline components: how far a reading, or the last few together, sit from the
//! series' recent readings. Each turns its evidence into a "surprise" `u` (1 = just
//! anomalous at sensitivity 1):
//! - spike: the reading's distance from the median of the last [`WINDOW`] readings, in
//!   robust standard deviations (1.4826 × MAD, floored by the series' resolution);
//!   anomalous at [`SPIKE_Z`]. Median and MAD ignore the outliers they are meant to find,
//!   and adapt to each series' scale, noise and slow drift.
//! - isolation: the reading's distance to its 2nd-nearest recent reading, in typical
//!   steps between consecutive readings (median |Δ|); anomalous at [`ISOLATION_Z`]. It
//!   sees a spike in a series that switches between levels (a machine's load steps, a
//!   duty cycle), where the median and MAD of the mixture are blind.
//! - level shift: the median of the last 3 readings against the recent distribution of
//!   that same statistic (its own rolling median and MAD, so autocorrelated series, whose
//!   short medians wander more, are not mistaken for shifting), anomalous at
//!   [`SHIFT_Z`]: two readings at a new level flag a shift too small to be a spike (early,
//!   not after the window has filled with it).

use super::finding::Finding;
use super::window::RollingWindow;

/// Readings in the baseline window.
pub const WINDOW: usize = 64;
/// Robust standard deviations that make one reading anomalous.
pub const SPIKE_Z: f64 = 6.0;
/// Typical steps from the 2nd-nearest recent reading that make one reading anomalous.
pub const ISOLATION_Z: f64 = 10.0;
/// Neighbours a reading needs nearby to be unremarkable.
const NEIGHBOURS: usize = 2;
/// Robust standard deviations of the 3-reading median that make a level anomalous ...
pub const SHIFT_Z: f64 = 4.5;
/// ... and robust standard deviations of the readings it must also be away.
pub const SHIFT_RAW_Z: f64 = 4.5;
const MAD_TO_SIGMA: f64 = 1.4826;
/// Readings in the level-shift median.
const SHORT: usize = 3;

/// What the baseline components make of one reading, before calibration.
#[derive(Debug, Clone, Copy)]
pub struct Assessment {
    pub spike: (f64, Finding),
    pub isolation: Option<(f64, Finding)>,
    pub shift: Option<(f64, Finding)>,
    /// The window's robust sigma before this reading (spares [`Baseline::learn`] a
    /// second median and MAD).
    pub window_sigma: f64,
}

/// The recent readings of one series and the slow statistics of their scale.
#[derive(Debug, Clone)]
pub struct Baseline {
    window: RollingWindow,
    /// Recent absolute steps |Δ| between consecutive readings.
    steps: RollingWindow,
    /// Recent medians of 3 readings, for the level-shift detector's own scale.
    levels: RollingWindow,
    /// The last readings (ring), for the level-shift median.
    recent: [f64; SHORT],
    recent_len: usize,
    /// Slow EWMA of the window's robust sigma.
    long_sigma: f64,
    /// Mean absolute step between readings (winsorised EWMA, so spikes barely move it).
    abs_step: f64,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            window: RollingWindow::new(WINDOW),
            steps: RollingWindow::new(WINDOW),
            levels: RollingWindow::new(WINDOW),
            recent: [0.0; SHORT],
            recent_len: 0,
            long_sigma: 0.0,
            abs_step: 0.0,
        }
    }
}

impl Baseline {
    /// The smallest step between recent readings (0 when they are all equal).
    pub fn resolution(&self) -> f64 {
        self.window.resolution()
    }

    /// Forgets the recent readings (their context has passed); the slow scale is kept.
    pub fn restart(&mut self) {
        self.window.clear();
        self.steps.clear();
        self.levels.clear();
        self.recent_len = 0;
    }

    /// Restarts the level-shift median only (readings across a short gap are not a level).
    pub fn restart_levels(&mut self) {
        self.recent_len = 0;
    }

    /// Judges `value` against the recent readings; `None` before there are any.
    pub fn assess(&self, value: f64, resolution: f64) -> Option<Assessment> {
        if self.window.is_empty() {
            return None;
        }
        let median = self.window.median();
        let mad = self.window.mad(median);
        // A 64-reading window of an autocorrelated series is sometimes calmer than the
        // series: a slow average of the scale keeps one calm hour from making the next
        // ordinary excursion look extreme.
        let sigma = robust_sigma(mad, resolution, median).max(0.8 * self.long_sigma);
        let z = (value - median) / sigma;
        let spike = (
            z.abs() / SPIKE_Z,
            Finding::Spike {
                value,
                median,
                mads: z * MAD_TO_SIGMA,
            },
        );
        Some(Assessment {
            spike,
            isolation: self.isolation(value, median, resolution),
            shift: self.shift(value, median, sigma, resolution),
            window_sigma: MAD_TO_SIGMA * mad,
        })
    }

    fn isolation(&self, value: f64, median: f64, resolution: f64) -> Option<(f64, Finding)> {
        if self.steps.len() < SHORT {
            return None;
        }
        // Median |Δ| ≈ 0.954 σ for independent noise; within one level of a switching
        // series it measures that level's noise.
        let step = (self.steps.median() / 0.954)
            .max(resolution)
            .max(1e-9 * median.abs());
        if step <= 0.0 {
            return None;
        }
        let d = self.window.nearest_distance(value, NEIGHBOURS);
        let z = d / step;
        let nearest = if value >= median {
            value - d
        } else {
            value + d
        };
        Some((
            z / ISOLATION_Z,
            Finding::Isolated {
                value,
                nearest,
                steps: z,
            },
        ))
    }

    fn shift(
        &self,
        value: f64,
        median: f64,
        sigma: f64,
        resolution: f64,
    ) -> Option<(f64, Finding)> {
        if self.recent_len < SHORT - 1 || self.levels.len() < SHORT {
            return None;
        }
        let level = self.short_median(value);
        let center = self.levels.median();
        let spread = robust_sigma(self.levels.mad(center), resolution, center);
        let zs = (level - center) / spread;
        let zr = (level - median) / sigma / self.persistence(sigma);
        // Both views must agree: against the readings' scale (calibrated for independent
        // noise) and against the short medians' own wandering (which is wider in
        // autocorrelated series, and noisier to estimate).
        Some((
            (zs.abs() / SHIFT_Z).min(zr.abs() / SHIFT_RAW_Z),
            Finding::Shift {
                level,
                median,
                // In MADs of the readings, as a person would measure the shift.
                mads: (level - median) / sigma * MAD_TO_SIGMA,
            },
        ))
    }

    /// Learns `value`, which followed `prev`. `window_sigma`: from [`Baseline::assess`]
    /// of this reading, when it was assessed.
    pub fn learn(&mut self, value: f64, prev: Option<f64>, window_sigma: Option<f64>) {
        if self.window.len() >= 16 {
            let sigma = window_sigma.unwrap_or_else(|| {
                let m = self.window.median();
                MAD_TO_SIGMA * self.window.mad(m)
            });
            self.long_sigma += (sigma - self.long_sigma) / 512.0;
        }
        self.window.push(value);
        if self.recent_len >= SHORT - 1 {
            self.levels.push(self.short_median(value));
        }
        self.recent[self.recent_len % SHORT] = value;
        self.recent_len += 1;
        if self.recent_len >= 2 * SHORT {
            self.recent_len -= SHORT; // keep the ring index small, same position mod SHORT
        }
        if let Some(prev) = prev {
            let step = (value - prev).abs();
            self.steps.push(step);
            self.abs_step = if self.abs_step == 0.0 {
                step
            } else {
                self.abs_step + (step.min(4.0 * self.abs_step) - self.abs_step) / 64.0
            };
        }
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.window.heap_bytes() + self.levels.heap_bytes() + self.steps.heap_bytes()
    }

    /// How much more an autocorrelated series wanders than independent noise would, in
    /// [1, 2]: from the mean absolute step against the spread (both ≈ 1.128 σ for
    /// independent noise, the step smaller when readings follow each other). A series
    /// that moves smoothly makes 3-reading excursions that are not shifts.
    fn persistence(&self, sigma: f64) -> f64 {
        if self.abs_step <= 0.0 {
            return 1.0;
        }
        let r = self.abs_step / (1.128 * sigma);
        (1.0 / r.max(1e-9).sqrt()).clamp(1.0, 2.0)
    }

    /// The median of the last two readings and `value`.
    fn short_median(&self, value: f64) -> f64 {
        let i = self.recent_len;
        let a = self.recent[(i + SHORT - 1) % SHORT];
        let b = self.recent[(i + SHORT - 2) % SHORT];
        a.max(b).min(value).max(a.min(b))
    }
}

/// 1.4826 × MAD, but never below the series' resolution (a quantised series moving by
/// one step is not an outlier) nor, for a window of one repeated value, below 1% of it.
fn robust_sigma(mad: f64, resolution: f64, median: f64) -> f64 {
    let floor = if resolution > 0.0 {
        resolution
    } else {
        (0.01 * median.abs()).max(1e-9)
    };
    (MAD_TO_SIGMA * mad).max(floor).max(1e-12 * median.abs())
}
