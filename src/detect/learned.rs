//! The learned detector: k-means over short windows of smoothed first differences, the
//! approach Netdata runs at scale. A series' recent shape (how it has been moving over
//! the last few readings) is compared with the shapes it showed during a bounded stretch
//! of its own history; a shape far from every learned centroid is unusual even when each
//! value on its own looks ordinary (a noise burst, an oscillation, a change of slope).
//!
//! Fitting is CPU work and runs off the scoring path: the series hands out a
//! [`TrainingSet`] when one is due, [`fit`] runs elsewhere (`spawn_blocking`, a worker,
//! or inline in an offline replay), and the [`Model`] comes back with [`Learned::install`].
//! Scoring a reading against the centroids is a few dozen multiply-adds.

use linfa::traits::Fit as _;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;

/// Differences per feature vector (the "lag" of the shape).
pub const LAGS: usize = 6;
/// Raw values averaged before differencing, so single-sample jitter does not dominate.
const SMOOTH: usize = 3;
/// Differences kept for training (bounded history: 2 KiB as f32).
pub const HISTORY: usize = 512;
/// Differences needed before the first fit.
pub const TRAIN_FIRST: u32 = 256;
/// Differences between two fits: the model follows a series that changes its habits.
pub const TRAIN_EVERY: u32 = 1024;
/// Clusters per series. Few: they describe the usual kinds of movement, not every value.
const CLUSTERS: usize = 4;
/// One k-means++ run and a few iterations: centroids need to be reasonable, not optimal,
/// and linfa's defaults (10 runs × 300 iterations) would cost 30× more per fit.
const RUNS: usize = 1;
const ITERATIONS: u64 = 30;
/// The training distance percentile that calibrates "usual".
const CALIBRATION_PERCENTILE: f64 = 0.99;

/// A fitted model: centroids and the distance that counts as usual for this series.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    centroids: Vec<[f64; LAGS]>,
    /// The 99th percentile of the training vectors' distances to their nearest centroid.
    usual: f64,
}

/// A copy of a series' recent differences, oldest first, to fit a model on.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub diffs: Vec<f32>,
}

/// Shape features of one series, its bounded history and its model.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    /// The last raw values (ring) for smoothing.
    raw: [f64; SMOOTH],
    raw_len: usize,
    prev_smooth: Option<f64>,
    /// The last `LAGS` differences (ring, `lag_head` is the oldest once full).
    lags: [f64; LAGS],
    lag_len: usize,
    lag_head: usize,
    /// Differences for training (ring of `HISTORY`).
    history: Vec<f32>,
    hist_head: usize,
    since_train: u32,
    pending: bool,
    model: Option<Model>,
}

impl Learned {
    /// Takes the next raw value.
    pub fn observe(&mut self, x: f64) {
        self.raw[self.raw_len % SMOOTH] = x;
        self.raw_len += 1;
        if self.raw_len < SMOOTH {
            return;
        }
        let smooth = self.raw.iter().sum::<f64>() / SMOOTH as f64;
        let Some(prev) = self.prev_smooth.replace(smooth) else {
            return;
        };
        let d = smooth - prev;
        if self.lag_len < LAGS {
            self.lags[self.lag_len] = d;
            self.lag_len += 1;
        } else {
            self.lags[self.lag_head] = d;
            self.lag_head = (self.lag_head + 1) % LAGS;
        }
        if self.history.len() < HISTORY {
            self.history.push(d as f32);
        } else {
            self.history[self.hist_head] = d as f32;
            self.hist_head = (self.hist_head + 1) % HISTORY;
        }
        self.since_train = self.since_train.saturating_add(1);
    }

    /// Forgets the current shape (after a gap, differences across it mean nothing).
    pub fn restart_shape(&mut self) {
        self.raw_len = 0;
        self.prev_smooth = None;
        self.lag_len = 0;
        self.lag_head = 0;
    }

    /// Distance of the current shape to the nearest centroid, in units of the usual
    /// distance; `None` without a model or a full shape.
    pub fn distance_ratio(&self) -> Option<f64> {
        let model = self.model.as_ref()?;
        if self.lag_len < LAGS {
            return None;
        }
        let mut v = [0.0; LAGS];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = self.lags[(self.lag_head + i) % LAGS];
        }
        Some(model.nearest(&v) / model.usual)
    }

    /// Whether a fit should be started now.
    pub fn training_due(&self) -> bool {
        if self.pending {
            return false;
        }
        match self.model {
            None => self.since_train >= TRAIN_FIRST,
            Some(_) => self.since_train >= TRAIN_EVERY,
        }
    }

    /// The data for the next fit; no other fit is started until [`Learned::install`].
    pub fn training_set(&mut self) -> TrainingSet {
        self.pending = true;
        self.since_train = 0;
        let (newer, older) = self.history.split_at(self.hist_head);
        let mut diffs = Vec::with_capacity(self.history.len());
        diffs.extend_from_slice(older);
        diffs.extend_from_slice(newer);
        TrainingSet { diffs }
    }

    /// Installs the result of a fit; `None` (degenerate data) keeps the previous model.
    pub fn install(&mut self, model: Option<Model>) {
        self.pending = false;
        if model.is_some() {
            self.model = model;
        }
    }

    /// Whether a model is in use.
    pub fn trained(&self) -> bool {
        self.model.is_some()
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.history.capacity() * std::mem::size_of::<f32>()
            + self.model.as_ref().map_or(0, |m| {
                m.centroids.capacity() * std::mem::size_of::<[f64; LAGS]>()
            })
    }
}

impl Model {
    fn nearest(&self, v: &[f64; LAGS]) -> f64 {
        self.centroids
            .iter()
            .map(|c| c.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
            .fold(f64::INFINITY, f64::min)
            .sqrt()
    }
}

/// Fits k-means on the shapes in `set`. `None` when the data cannot calibrate a model
/// (too short, or flat: every shape at a centroid).
pub fn fit(set: &TrainingSet) -> Option<Model> {
    let n = set.diffs.len().checked_sub(LAGS - 1)?;
    if n < CLUSTERS * 8 {
        return None;
    }
    let mut data = Array2::<f64>::zeros((n, LAGS));
    for (r, mut row) in data.rows_mut().into_iter().enumerate() {
        for (c, cell) in row.iter_mut().enumerate() {
            *cell = f64::from(set.diffs[r + c]);
        }
    }
    let kmeans = KMeans::params(CLUSTERS)
        .n_runs(RUNS)
        .max_n_iterations(ITERATIONS)
        .tolerance(1e-4)
        .fit(&DatasetBase::from(data.clone()))
        .ok()?;
    let centroids: Vec<[f64; LAGS]> = kmeans
        .centroids()
        .rows()
        .into_iter()
        .map(|row| {
            let mut c = [0.0; LAGS];
            c.iter_mut().zip(row.iter()).for_each(|(d, s)| *d = *s);
            c
        })
        .collect();
    let mut model = Model {
        centroids,
        usual: 1.0,
    };
    let mut distances: Vec<f64> = data
        .rows()
        .into_iter()
        .map(|row| {
            let mut v = [0.0; LAGS];
            v.iter_mut().zip(row.iter()).for_each(|(d, s)| *d = *s);
            model.nearest(&v)
        })
        .collect();
    distances.sort_by(f64::total_cmp);
    let at = ((distances.len() - 1) as f64 * CALIBRATION_PERCENTILE).round() as usize;
    let usual = distances[at];
    if !(usual.is_finite() && usual > 0.0)
        || model.centroids.iter().flatten().any(|c| !c.is_finite())
    {
        return None;
    }
    model.usual = usual;
    Some(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(i: usize) -> f64 {
        (i as f64 * 0.3).sin() * 10.0 + ((i * 7919) % 13) as f64 * 0.1
    }

    #[test]
    fn a_fitted_model_finds_the_usual_shape_near_and_a_new_one_far() {
        let mut l = Learned::default();
        for i in 0..600 {
            l.observe(wave(i));
            if l.training_due() {
                let set = l.training_set();
                l.install(fit(&set));
            }
        }
        assert!(l.trained());
        let usual = l.distance_ratio().expect("model and shape");
        assert!(usual < 1.5, "usual shape ratio {usual}");
        // A sudden oscillation of a kind never seen.
        for i in 0..LAGS + SMOOTH {
            l.observe(if i % 2 == 0 { 60.0 } else { -60.0 });
        }
        let odd = l.distance_ratio().expect("model and shape");
        assert!(odd > 5.0, "unusual shape ratio {odd}");
    }

    #[test]
    fn a_flat_series_gives_no_model_and_bounded_memory() {
        let mut l = Learned::default();
        for _ in 0..3000 {
            l.observe(5.0);
            if l.training_due() {
                let set = l.training_set();
                assert!(set.diffs.len() <= HISTORY);
                l.install(fit(&set));
            }
        }
        assert!(!l.trained());
        assert_eq!(l.distance_ratio(), None);
        assert!(l.heap_bytes() <= HISTORY * 4 + 256);
    }

    #[test]
    fn training_is_scheduled_once_until_installed() {
        let mut l = Learned::default();
        for i in 0..(TRAIN_FIRST as usize + 3) {
            l.observe(wave(i));
        }
        assert!(l.training_due());
        let set = l.training_set();
        assert!(!l.training_due(), "a fit is pending");
        l.install(fit(&set));
        assert!(!l.training_due());
        assert!(l.trained());
    }
}
