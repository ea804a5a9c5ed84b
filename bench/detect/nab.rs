//! Quality on real-world series: a checkout of the Numenta Anomaly Benchmark (NAB; its
//! `data/` CSV files and `labels/combined_windows.json`), scored with the default settings
//! and threshold exactly as `vigil detect` would score each file.
//!
//! Two views of the same events (readings whose score reaches the threshold):
//! - windows: a labelled window is detected when an event falls in it; an event outside
//!   every window (after the probationary period) is a false alarm;
//! - the NAB score, standard profile (true positive 1, false positive 0.11, false
//!   negative 1, weighted by how early in the window the first event comes), normalised
//!   so that a detector that never fires scores 0 and a perfect one 100.
//!
//! The data is not part of vigil: pass the directory of a NAB checkout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use vigil::detect::replay::parse_time;

use vigil::detect::{Finding, Params, SeriesDetector};

use crate::quality::KindStats;

/// The standard profile's weights.
const TP_WEIGHT: f64 = 1.0;
const FP_WEIGHT: f64 = 0.11;
const FN_WEIGHT: f64 = 1.0;
/// Leading share of each file where events are not scored (NAB's probationary period).
const PROBATION: f64 = 0.15;

/// Totals of one group of files (a NAB category, or everything).
#[derive(Debug, Default, Clone)]
pub struct Group {
    pub files: usize,
    pub readings: usize,
    /// Windows (as labels), windows detected, false alarms, and the readings from each
    /// detected window's start to its first event.
    pub hits: KindStats,
    pub score: f64,
    pub null_score: f64,
    pub perfect_score: f64,
    /// Per detector label: (events inside a window, events outside every window).
    pub by_detector: BTreeMap<&'static str, (usize, usize)>,
}

impl Group {
    fn add(&mut self, o: &Group) {
        self.files += o.files;
        self.readings += o.readings;
        self.hits.labels += o.hits.labels;
        self.hits.detected += o.hits.detected;
        self.hits.false_alarms += o.hits.false_alarms;
        self.hits.delays.extend_from_slice(&o.hits.delays);
        self.score += o.score;
        self.null_score += o.null_score;
        self.perfect_score += o.perfect_score;
        for (k, (a, b)) in &o.by_detector {
            let e = self.by_detector.entry(k).or_default();
            e.0 += a;
            e.1 += b;
        }
    }

    /// NAB's normalised score: 0 for a detector that never fires, 100 for a perfect one.
    pub fn normalised(&self) -> f64 {
        let span = self.perfect_score - self.null_score;
        if span == 0.0 {
            return 0.0;
        }
        100.0 * (self.score - self.null_score) / span
    }
}

/// Per category (`realKnownCause`, ...) and in total.
#[derive(Debug, Default)]
pub struct NabReport {
    pub categories: BTreeMap<String, Group>,
    pub total: Group,
}

/// Scores every labelled file of the NAB checkout at `root`.
pub fn run(root: &Path) -> anyhow::Result<NabReport> {
    let labels_path = root.join("labels/combined_windows.json");
    let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(
        &std::fs::read_to_string(&labels_path)
            .with_context(|| format!("reading {}", labels_path.display()))?,
    )
    .with_context(|| format!("parsing {}", labels_path.display()))?;
    let mut report = NabReport::default();
    for (name, windows) in &labels {
        let path: PathBuf = root.join("data").join(name);
        let points = read_csv(&path)?;
        let windows = windows
            .iter()
            .map(|[a, b]| -> anyhow::Result<(i64, i64)> {
                let t = |s: &str| {
                    parse_time(s)
                        .map(|t| t.timestamp_millis())
                        .with_context(|| format!("{name}: window time {s:?}"))
                };
                Ok((t(a)?, t(b)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let group = score_file(&points, &windows);
        eprintln!(
            "{name}: {} readings, {}/{} windows, {} false alarms {:?}",
            points.len(),
            group.hits.detected,
            group.hits.labels,
            group.hits.false_alarms,
            group.by_detector
        );
        let category = name.split('/').next().unwrap_or(name).to_owned();
        report.categories.entry(category).or_default().add(&group);
        report.total.add(&group);
    }
    Ok(report)
}

fn read_csv(path: &Path) -> anyhow::Result<Vec<(i64, f64)>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    let mut points = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{} row {}", path.display(), i + 2))?;
        let ts = parse_time(&rec[0])
            .with_context(|| format!("{} row {}: timestamp", path.display(), i + 2))?;
        let v: f64 = rec[1]
            .trim()
            .parse()
            .with_context(|| format!("{} row {}: value", path.display(), i + 2))?;
        points.push((ts.timestamp_millis(), v));
    }
    Ok(points)
}

/// NAB's scaled sigmoid of a position relative to a window's right edge.
fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// Scores one file's events against its windows (start and end times, inclusive).
fn score_file(points: &[(i64, f64)], windows: &[(i64, i64)]) -> Group {
    let mut detector = SeriesDetector::new(Params::default());
    let mut events = Vec::new();
    for (i, (ts, v)) in points.iter().enumerate() {
        if let Some(f) = detector.score(*ts, *v).event {
            // The baseline has two views: split them, they fail differently.
            let label = match f {
                Finding::Isolated { .. } => "baseline (isolated)",
                f => f.detector().label(),
            };
            events.push((i, label));
        }
        detector.train_if_due();
    }
    let n = points.len();
    let probation = ((PROBATION * n as f64).floor()).min(PROBATION * 5000.0) as usize;
    let ranges: Vec<(usize, usize)> = windows
        .iter()
        .map(|(a, b)| {
            let lo = points.partition_point(|p| p.0 < *a);
            let hi = points.partition_point(|p| p.0 <= *b).saturating_sub(1);
            (lo, hi)
        })
        .filter(|(lo, hi)| lo <= hi && *hi < n)
        .collect();
    let max_tp = scaled_sigmoid(-1.0);
    let mut g = Group {
        files: 1,
        readings: n,
        ..Group::default()
    };
    // A window counts when any of it lies after the probationary period.
    let scored: Vec<&(usize, usize)> = ranges.iter().filter(|(_, hi)| *hi >= probation).collect();
    g.hits.labels = scored.len();
    g.null_score = -FN_WEIGHT * scored.len() as f64;
    g.perfect_score = TP_WEIGHT * scored.len() as f64;
    let mut best: Vec<Option<f64>> = vec![None; ranges.len()];
    let mut first: Vec<Option<usize>> = vec![None; ranges.len()];
    let mut fp_score = 0.0;
    for &(i, label) in events.iter().filter(|(i, _)| *i >= probation) {
        let inside = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&i));
        let e = g.by_detector.entry(label).or_default();
        if inside {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        if let Some(w) = ranges.iter().position(|(lo, hi)| (*lo..=*hi).contains(&i)) {
            let (lo, hi) = ranges[w];
            let width = (hi - lo + 1) as f64;
            let s = scaled_sigmoid(-((hi - i + 1) as f64) / width) * TP_WEIGHT / max_tp;
            best[w] = Some(best[w].map_or(s, |b: f64| b.max(s)));
            first[w] = Some(first[w].map_or(i, |f| f.min(i)));
        } else {
            g.hits.false_alarms += 1;
            // Weighted by the distance past the preceding window, if any.
            let prev = ranges.iter().rev().find(|(_, hi)| *hi < i);
            let s = match prev {
                None => -1.0,
                Some((lo, hi)) => {
                    let width = (hi - lo + 1) as f64;
                    scaled_sigmoid((i - hi) as f64 / (width - 1.0).max(1.0))
                }
            };
            fp_score += s * FP_WEIGHT;
        }
    }
    let mut score = fp_score;
    for (w, (lo, hi)) in ranges.iter().enumerate() {
        if *hi < probation {
            continue;
        }
        match best[w] {
            Some(s) => {
                g.hits.detected += 1;
                g.hits.delays.push(first[w].unwrap_or(*lo) - lo);
                score += s;
            }
            None => score -= FN_WEIGHT,
        }
    }
    g.score = score;
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaled_sigmoid_matches_nab() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert!(scaled_sigmoid(0.0).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }
}
