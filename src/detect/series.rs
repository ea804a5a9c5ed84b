//! One series' streaming detector: pure, synchronous, time given as an argument.
//!
//! Components, each turning its own evidence into a "surprise" `u` (1 = just anomalous
//! at sensitivity 1):
//! - spike, isolation and level shift against the recent readings ([`super::baseline`]);
//! - stuck: a series that used to change repeats one value longer than its own history
//!   of runs makes likely (probability below 10⁻⁶, at least [`STUCK_MIN_RUN`]).
//! - learned: k-means distance of the recent shape ([`super::learned`]).
//!
//! Calibration: each component but stuck is also judged against the surprises it has
//! produced on this series before ([`super::calibrate`]), so a bursty series is flagged
//! for what is rare for it, not for what is routine.
//!
//! Combination: `score = 1 − 2^(−(sensitivity·u)²)` for the most surprised component, so
//! 0.5 means "just anomalous" and scores are always in [0, 1]; [`super::episode`] turns
//! scores into events, one per anomalous stretch.
//!
//! Degenerate series do not spam: nothing is scored during warm-up; a series that never
//! varied is judged against 1% of its level; runs of a repeated value only count as stuck
//! in a series that varied; while stuck, the baseline and the model are frozen so that
//! recovery is judged against the series as it was.

use super::baseline::{Baseline, WINDOW};
use super::calibrate::Calibrator;
use super::episode::Episodes;
use super::finding::Finding;
use super::learned::{Learned, Model, TrainingSet};

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
    baseline: Baseline,
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
            baseline: Baseline::default(),
            seen: 0,
            rewarm_until: 0,
            last_ts: None,
            interval: 0.0,
            prev: None,
            run: 0,
            repeat_rate: 0.0,
            longest_run: 0,
            stuck: false,
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
            self.baseline.restart_levels();
        }
        let warming_up = self.warming_up();
        let repeat = self.prev == Some(value);
        let run = if repeat {
            self.run.saturating_add(1)
        } else {
            0
        };
        let resolution = self.baseline.resolution();
        let stuck_u = if resolution > 0.0 && run > 0 {
            f64::from(run) / self.stuck_run()
        } else {
            0.0
        };
        let stuck = stuck_u * self.params.sensitivity >= 1.0;

        // Each calibrated component's surprise and finding, judged after the fact.
        let mut found: [Option<(f64, Finding)>; 4] = [None; 4];
        let mut best: (f64, Option<Finding>) = (0.0, None);
        let mut consider = |u: f64, f: Finding| {
            if u > best.0 {
                best = (u, Some(f));
            }
        };
        let assessment = if warming_up {
            None
        } else {
            self.baseline.assess(value, resolution)
        };
        if let Some(a) = &assessment {
            found[SPIKE] = Some(a.spike);
            found[ISOLATION] = a.isolation;
            found[SHIFT] = a.shift;
        }
        if assessment.is_some() && stuck_u > 0.0 {
            consider(
                stuck_u,
                Finding::Stuck {
                    value,
                    run,
                    usual: self.longest_run,
                },
            );
        }
        if !stuck {
            self.learn(value, repeat, run, assessment.map(|a| a.window_sigma));
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
        std::mem::size_of::<Self>() + self.baseline.heap_bytes() + self.learned.heap_bytes()
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
        self.baseline.restart();
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

    /// Run length that counts as stuck for this series (before sensitivity).
    fn stuck_run(&self) -> f64 {
        let p = self.repeat_rate.clamp(1e-3, 0.999);
        let improbable = STUCK_PROBABILITY.ln() / p.ln();
        improbable
            .max(2.0 * f64::from(self.longest_run))
            .max(f64::from(STUCK_MIN_RUN))
    }

    /// Learns from a reading that is not part of a stuck run.
    /// `window_sigma`: the window's robust sigma before this reading, when scoring
    /// computed it (saves a second median and MAD).
    fn learn(&mut self, value: f64, repeat: bool, run: u32, window_sigma: Option<f64>) {
        // `self.run` is still the previous reading's run here.
        self.baseline.learn(value, self.prev, window_sigma);
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
