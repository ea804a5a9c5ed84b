//! One series' streaming detector: pure, synchronous, time given as an argument.
//!
//! Components, each turning its own evidence into a "surprise" `u` (1 = just anomalous
//! at sensitivity 1):
//! - baseline: the reading's distance from the median of the last [`WINDOW`] readings,
//!   in robust standard deviations (1.4826 × MAD, floored by the series' resolution);
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
//! - stuck: a series that used to change repeats one value longer than its own history
//!   of runs makes likely (probability below 10⁻⁶, at least [`STUCK_MIN_RUN`]).
//! - learned: k-means distance of the recent shape ([`super::learned`]).
//!
//! Combination: `score = 1 − 2^(−(sensitivity·u)²)` for the most surprised component, so
//! 0.5 means "just anomalous" and scores are always in [0, 1]; [`super::episode`] turns
//! scores into events, one per anomalous stretch.
//!
//! Degenerate series do not spam: nothing is scored during warm-up; a series that never
//! varied is judged against 1% of its level; runs of a repeated value only count as stuck
//! in a series that varied; while stuck, the baseline and the model are frozen so that
//! recovery is judged against the series as it was.

use super::calibrate::Calibrator;
use super::episode::Episodes;
use super::finding::Finding;
use super::learned::{Learned, Model, TrainingSet};
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
/// A stuck run is never shorter than this.
pub const STUCK_MIN_RUN: u32 = 6;
/// How improbable a run must be, under the series' own repeat rate, to count as stuck.
const STUCK_PROBABILITY: f64 = 1e-6;
/// Usual k-means distances that make a shape anomalous.
pub const PATTERN_U: f64 = 3.0;
/// A gap longer than this many usual intervals restarts the shape features.
const GAP_FACTOR: f64 = 10.0;
/// A gap longer than the baseline window's span (in usual intervals) restarts the
/// short-term context and the warm-up ([`SeriesDetector::score`] after a gap).
const CONTEXT_GAP: f64 = WINDOW as f64;
const MAD_TO_SIGMA: f64 = 1.4826;
const SHORT: usize = 3;

/// The settings one series is scored with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Multiplies every surprise: 2 flags deviations half as large, 0.5 twice as large.
    pub sensitivity: f64,
    /// Score at or above which a reading starts an episode (an anomaly event).
    pub threshold: f64,
    /// Readings observed before the series is scored at all.
    pub warmup: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            sensitivity: 1.0,
            threshold: 0.5,
            warmup: 30,
        }
    }
}

/// The verdict on one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// In [0, 1]: the combined score, capped at half the threshold inside an episode.
    pub score: f64,
    /// The combined score before episode suppression.
    pub raw: f64,
    /// Too few readings yet: the score is 0.
    pub warming_up: bool,
    /// Set on the reading that starts an episode: this reading is an anomaly event.
    pub event: Option<Finding>,
}

/// The state of one series (a few KiB, bounded: see [`SeriesDetector::heap_bytes`]).
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    params: Params,
    window: RollingWindow,
    /// Recent absolute steps |Δ| between consecutive readings.
    steps: RollingWindow,
    /// Recent medians of 3 readings, for the level-shift detector's own scale.
    levels: RollingWindow,
    /// The last readings (ring), for the level-shift median.
    recent: [f64; SHORT],
    recent_len: usize,
    seen: u64,
    /// After a gap, readings before this count are not scored (a fresh warm-up).
    rewarm_until: u64,
    last_ts: Option<i64>,
    /// Usual interval between readings (ms), an EWMA.
    interval: f64,
    prev: Option<f64>,
    /// Consecutive repeats of `prev`.
    run: u32,
    /// EWMA of "this reading repeats the last one".
    repeat_rate: f64,
    /// Longest run seen while the series was not stuck.
    longest_run: u32,
    /// Slow EWMA of the window's robust sigma.
    long_sigma: f64,
    /// Mean absolute step between readings (winsorised EWMA, so spikes barely move it).
    abs_step: f64,
    /// The previous reading was part of a stuck run.
    stuck: bool,
    learned: Learned,
    /// Each component's surprise history: spike, isolation, level shift, pattern.
    calibration: [Calibrator; 4],
    episode: Episodes,
}

/// Indexes of [`SeriesDetector::calibration`].
const SPIKE: usize = 0;
const ISOLATION: usize = 1;
const SHIFT: usize = 2;
const PATTERN: usize = 3;

/// Maps a surprise to [0, 1]: 0 → 0, 1 → 0.5, 2 → 0.94, ∞ → 1; NaN → 0.
pub fn squash(u: f64) -> f64 {
    if u.is_nan() || u <= 0.0 {
        return 0.0;
    }
    let s = 1.0 - (-(u * u)).exp2();
    s.clamp(0.0, 1.0)
}

impl SeriesDetector {
    pub fn new(params: Params) -> SeriesDetector {
        SeriesDetector {
            params,
            window: RollingWindow::new(WINDOW),
            levels: RollingWindow::new(WINDOW),
            steps: RollingWindow::new(WINDOW),
            recent: [0.0; SHORT],
            recent_len: 0,
            seen: 0,
            rewarm_until: 0,
            last_ts: None,
            interval: 0.0,
            prev: None,
            run: 0,
            repeat_rate: 0.0,
            longest_run: 0,
            stuck: false,
            abs_step: 0.0,
            long_sigma: 0.0,
            learned: Learned::default(),
            calibration: Default::default(),
            episode: Episodes::default(),
        }
    }

    pub fn params(&self) -> Params {
        self.params
    }

    /// Scores one reading taken at `ts_ms` (unix milliseconds) and learns from it.
    pub fn score(&mut self, ts_ms: i64, value: f64) -> Score {
        if !value.is_finite() {
            // vigil never stores one; score it as nothing rather than poison the state.
            return Score {
                score: 0.0,
                raw: 0.0,
                warming_up: self.warming_up(),
                event: None,
            };
        }
        let silence = self.note_time(ts_ms);
        if silence > CONTEXT_GAP {
            self.restart_context();
        } else if silence > GAP_FACTOR {
            self.learned.restart_shape();
            self.recent_len = 0;
        }
        let warming_up = self.warming_up();
        let repeat = self.prev == Some(value);
        let run = if repeat {
            self.run.saturating_add(1)
        } else {
            0
        };
        let resolution = self.window.resolution();
        let stuck_u = if resolution > 0.0 && run > 0 {
            f64::from(run) / self.stuck_run()
        } else {
            0.0
        };
        let stuck = stuck_u * self.params.sensitivity >= 1.0;

        let mut window_sigma = None;
        // Each calibrated component's surprise and finding, judged after the fact.
        let mut found: [Option<(f64, Finding)>; 4] = [None; 4];
        let mut best: (f64, Option<Finding>) = (0.0, None);
        let mut consider = |u: f64, f: Finding| {
            if u > best.0 {
                best = (u, Some(f));
            }
        };
        if !warming_up && !self.window.is_empty() {
            let median = self.window.median();
            let mad = self.window.mad(median);
            window_sigma = Some(MAD_TO_SIGMA * mad);
            // A 64-reading window of an autocorrelated series is sometimes calmer than
            // the series: a slow average of the scale keeps one calm hour from making the
            // next ordinary excursion look extreme.
            let sigma = robust_sigma(mad, resolution, median).max(0.8 * self.long_sigma);
            let z = (value - median) / sigma;
            found[SPIKE] = Some((
                z.abs() / SPIKE_Z,
                Finding::Spike {
                    value,
                    median,
                    mads: z * MAD_TO_SIGMA,
                },
            ));
            if self.steps.len() >= SHORT {
                // Median |Δ| ≈ 0.954 σ for independent noise; within one level of a
                // switching series it measures that level's noise.
                let step = (self.steps.median() / 0.954)
                    .max(resolution)
                    .max(1e-9 * median.abs());
                if step > 0.0 {
                    let d = self.window.nearest_distance(value, NEIGHBOURS);
                    let z = d / step;
                    found[ISOLATION] = Some((
                        z / ISOLATION_Z,
                        Finding::Isolated {
                            value,
                            nearest: if value >= median {
                                value - d
                            } else {
                                value + d
                            },
                            steps: z,
                        },
                    ));
                }
            }
            if self.recent_len >= SHORT - 1 && self.levels.len() >= SHORT {
                let level = self.short_median(value);
                let center = self.levels.median();
                let spread = robust_sigma(self.levels.mad(center), resolution, center);
                let zs = (level - center) / spread;
                let zr = (level - median) / sigma / self.persistence(sigma);
                // Both views must agree: against the readings' scale (calibrated for
                // independent noise) and against the short medians' own wandering (which
                // is wider in autocorrelated series, and noisier to estimate).
                found[SHIFT] = Some((
                    (zs.abs() / SHIFT_Z).min(zr.abs() / SHIFT_RAW_Z),
                    Finding::Shift {
                        level,
                        median,
                        // In MADs of the readings, as a person would measure the shift.
                        mads: (level - median) / sigma * MAD_TO_SIGMA,
                    },
                ));
            }
            if stuck_u > 0.0 {
                consider(
                    stuck_u,
                    Finding::Stuck {
                        value,
                        run,
                        usual: self.longest_run,
                    },
                );
            }
        }
        if !stuck {
            self.learn(value, repeat, run, window_sigma);
            if !warming_up {
                if let Some(ratio) = self.learned.distance_ratio() {
                    found[PATTERN] = Some((ratio / PATTERN_U, Finding::Pattern { ratio }));
                }
            }
        }
        for (cal, found) in self.calibration.iter_mut().zip(found) {
            if let Some((u, finding)) = found {
                consider(cal.calibrated(u), finding);
                cal.observe(u);
            }
        }
        self.run = run;
        self.stuck = stuck;
        self.prev = Some(value);
        self.seen += 1;
        if warming_up {
            return Score {
                score: 0.0,
                raw: 0.0,
                warming_up,
                event: None,
            };
        }
        let raw = squash(best.0 * self.params.sensitivity);
        self.episode_step(raw, best.1)
    }

    /// Whether a model fit should start now (see [`Learned::training_due`]).
    pub fn training_due(&self) -> bool {
        self.learned.training_due()
    }

    /// The data of the next fit.
    pub fn training_set(&mut self) -> TrainingSet {
        self.learned.training_set()
    }

    /// Installs a fitted model.
    pub fn install(&mut self, model: Option<Model>) {
        self.learned.install(model);
    }

    /// Fits inline when due (offline replay and state rebuild; the live task fits off
    /// its scoring thread instead).
    pub fn train_if_due(&mut self) {
        if self.training_due() {
            let set = self.training_set();
            self.install(super::learned::fit(&set));
        }
    }

    /// Whether the learned model is in use.
    pub fn trained(&self) -> bool {
        self.learned.trained()
    }

    /// Bytes this series holds, itself included.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.window.heap_bytes()
            + self.levels.heap_bytes()
            + self.steps.heap_bytes()
            + self.learned.heap_bytes()
    }

    /// Too few readings, since the start or since the last gap, to score this one.
    fn warming_up(&self) -> bool {
        self.seen < self.rewarm_until.max(u64::from(self.params.warmup))
    }

    /// After a gap (the device was away, or vigil was), the recent readings describe a
    /// context that has passed: a daily cycle moved on, a machine was restarted. Judging
    /// the first readings after it against them would flag nearly every series that
    /// returns. The short-term state starts again and the series warms up anew; what it
    /// learned over the long run (its scale, its surprise history, its model, how long
    /// it usually repeats a value) is kept.
    fn restart_context(&mut self) {
        self.learned.restart_shape();
        self.recent_len = 0;
        self.window.clear();
        self.levels.clear();
        self.steps.clear();
        self.prev = None;
        self.run = 0;
        self.stuck = false;
        self.episode = Episodes::default();
        self.rewarm_until = self.seen + u64::from(self.params.warmup);
    }

    /// Updates the usual interval; returns the silence before this reading in usual
    /// intervals (0 when there is nothing to compare).
    fn note_time(&mut self, ts_ms: i64) -> f64 {
        let Some(last) = self.last_ts.replace(ts_ms) else {
            return 0.0;
        };
        let dt = (ts_ms - last) as f64;
        if dt <= 0.0 {
            // Late or duplicate timestamps happen (parallel writers, replays): score them
            // in arrival order without learning an interval from them.
            self.last_ts = Some(last);
            return 0.0;
        }
        if self.interval == 0.0 {
            self.interval = dt;
            return 0.0;
        }
        let silence = dt / self.interval;
        // A gap must not teach that gaps are usual: clamp what the EWMA learns from it.
        self.interval += 0.05 * (dt.min(4.0 * self.interval) - self.interval);
        silence
    }

    /// How much more an autocorrelated series wanders than independent noise would, in
    /// [1, 1.5]: from the mean absolute step against the spread (both ≈ 1.128 σ for
    /// independent noise, the step smaller when readings follow each other). A series
    /// that moves smoothly makes 3-reading excursions that are not shifts.
    fn persistence(&self, sigma: f64) -> f64 {
        if self.abs_step <= 0.0 {
            return 1.0;
        }
        let r = self.abs_step / (1.128 * sigma);
        (1.0 / r.max(1e-9).sqrt()).clamp(1.0, 2.0)
    }

    /// Run length that counts as stuck for this series (before sensitivity).
    fn stuck_run(&self) -> f64 {
        let p = self.repeat_rate.clamp(1e-3, 0.999);
        let improbable = STUCK_PROBABILITY.ln() / p.ln();
        improbable
            .max(2.0 * f64::from(self.longest_run))
            .max(f64::from(STUCK_MIN_RUN))
    }

    fn short_median(&self, value: f64) -> f64 {
        let i = self.recent_len;
        let a = self.recent[(i + SHORT - 1) % SHORT];
        let b = self.recent[(i + SHORT - 2) % SHORT];
        a.max(b).min(value).max(a.min(b))
    }

    /// Learns from a reading that is not part of a stuck run.
    /// `window_sigma`: the window's robust sigma before this reading, when scoring
    /// computed it (saves a second median and MAD).
    fn learn(&mut self, value: f64, repeat: bool, run: u32, window_sigma: Option<f64>) {
        // `self.run` is still the previous reading's run here.
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
        if let Some(prev) = self.prev {
            let step = (value - prev).abs();
            self.steps.push(step);
            self.abs_step = if self.abs_step == 0.0 {
                step
            } else {
                self.abs_step + (step.min(4.0 * self.abs_step) - self.abs_step) / 64.0
            };
        }
        let r = if repeat { 1.0 } else { 0.0 };
        self.repeat_rate += (r - self.repeat_rate) / 64.0;
        if run == 0 && !self.stuck {
            // A run just ended (or none was going on), and it was a normal one.
            self.longest_run = self.longest_run.max(self.run);
        }
        self.learned.observe(value);
    }

    fn episode_step(&mut self, raw: f64, finding: Option<Finding>) -> Score {
        let (score, started) = self.episode.step(raw, self.params.threshold);
        let event = if started { finding } else { None };
        Score {
            score: if score.is_finite() {
                score.clamp(0.0, 1.0)
            } else {
                0.0
            },
            raw,
            warming_up: false,
            event,
        }
    }

    /// Whether an episode is running (events suppressed).
    pub fn in_episode(&self) -> bool {
        self.episode.running()
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
