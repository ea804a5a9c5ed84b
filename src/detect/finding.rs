//! What the detectors found, as a bounded label and a sentence a person can read.

/// The part of the detector that fired: a bounded label for metrics and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// A single reading far from the series' recent median (robust median/MAD baseline).
    Baseline,
    /// The last few readings, together, far from the recent median: the level moved.
    LevelShift,
    /// A series that used to change has repeated one value for too long.
    Stuck,
    /// The recent shape is unlike every shape the k-means model learned for this series.
    Pattern,
}

impl Detector {
    /// Every detector, for pre-registering metric labels.
    pub const ALL: [Detector; 4] = [
        Detector::Baseline,
        Detector::LevelShift,
        Detector::Stuck,
        Detector::Pattern,
    ];

    /// The stable label (metrics, the `anomalies.detector` column, the API).
    pub fn label(self) -> &'static str {
        match self {
            Detector::Baseline => "baseline",
            Detector::LevelShift => "level_shift",
            Detector::Stuck => "stuck",
            Detector::Pattern => "kmeans",
        }
    }
}

/// Why a reading scored as it did, with the numbers its explanation needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finding {
    /// `value` is `mads` median absolute deviations away from `median`.
    Spike { value: f64, median: f64, mads: f64 },
    /// The median of the last readings, `level`, is `mads` MADs away from `median`.
    Shift { level: f64, median: f64, mads: f64 },
    /// `value` repeated for `run` readings; runs here were at most `usual` before.
    Stuck { value: f64, run: u32, usual: u32 },
    /// The recent shape is `ratio` times the usual distance from the learned ones.
    Pattern { ratio: f64 },
}

impl Finding {
    pub fn detector(&self) -> Detector {
        match self {
            Finding::Spike { .. } => Detector::Baseline,
            Finding::Shift { .. } => Detector::LevelShift,
            Finding::Stuck { .. } => Detector::Stuck,
            Finding::Pattern { .. } => Detector::Pattern,
        }
    }

    /// A short sentence, e.g. "value 87.2 is 6.1 MADs above its recent median 41.0".
    pub fn explanation(&self) -> String {
        fn side(delta: f64) -> &'static str {
            if delta >= 0.0 {
                "above"
            } else {
                "below"
            }
        }
        match *self {
            Finding::Spike {
                value,
                median,
                mads,
            } => format!(
                "value {} is {:.1} MADs {} its recent median {}",
                num(value),
                mads.abs(),
                side(value - median),
                num(median)
            ),
            Finding::Shift {
                level,
                median,
                mads,
            } => format!(
                "level shifted {}: the last readings sit around {}, {:.1} MADs from the recent median {}",
                if level >= median { "up" } else { "down" },
                num(level),
                mads.abs(),
                num(median)
            ),
            Finding::Stuck { value, run, usual } => format!(
                "value {} unchanged for {run} readings (before, it repeated at most {usual} in a row)",
                num(value)
            ),
            Finding::Pattern { ratio } => format!(
                "recent movement unlike this series' learned patterns ({ratio:.1}× the usual distance)"
            ),
        }
    }
}

/// A value with as many digits as make it readable.
fn num(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0');
        s.strip_suffix('.').unwrap_or(s).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_read_like_sentences() {
        let f = Finding::Spike {
            value: 87.2,
            median: 41.0,
            mads: 6.1,
        };
        assert_eq!(
            f.explanation(),
            "value 87.2 is 6.1 MADs above its recent median 41"
        );
        let s = Finding::Stuck {
            value: 21.5,
            run: 12,
            usual: 1,
        };
        assert!(s.explanation().contains("unchanged for 12 readings"));
        assert_eq!(f.detector().label(), "baseline");
    }
}
