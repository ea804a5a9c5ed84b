//! Detection quality against labelled series: the built-in generator, the vigil-sim
//! offline format, and the scoring rule.
//!
//! An injected anomaly counts as detected when an anomaly event falls in its window
//! `[start, end + grace]` (grace: `GRACE` readings of the series); its delay is the number
//! of readings from its first one to that event. An event outside every window is a
//! false alarm, charged to the kind of the nearest label of its series (the built-in
//! generator puts one kind per series, so there it is exact).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use vigil::detect::{Params, SeriesDetector};

/// Readings after a window's end during which an event still counts as a detection.
pub const GRACE: usize = 5;

/// One series: readings (unix ms, value) and its labelled windows (kind, start, end ms).
pub struct Series {
    pub points: Vec<(i64, f64)>,
    pub labels: Vec<(String, i64, i64)>,
}

/// Totals per anomaly kind.
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    pub labels: usize,
    pub detected: usize,
    pub false_alarms: usize,
    pub delays: Vec<usize>,
}

impl KindStats {
    pub fn precision(&self) -> f64 {
        let flagged = self.detected + self.false_alarms;
        if flagged == 0 {
            return 1.0;
        }
        self.detected as f64 / flagged as f64
    }
    pub fn recall(&self) -> f64 {
        if self.labels == 0 {
            return 0.0;
        }
        self.detected as f64 / self.labels as f64
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    pub fn median_delay(&self) -> Option<usize> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

/// What one evaluation found.
#[derive(Debug, Default)]
pub struct Report {
    pub kinds: BTreeMap<String, KindStats>,
    /// False alarms and days of data of the series without any label.
    pub clean_false_alarms: usize,
    pub clean_days: f64,
    pub series: usize,
    pub readings: u64,
}

/// Event indices of the live detector (default settings, fits inline as in `vigil detect`).
pub fn events_of(points: &[(i64, f64)]) -> Vec<usize> {
    let mut d = SeriesDetector::new(Params::default());
    let mut events = Vec::new();
    for (i, (ts, v)) in points.iter().enumerate() {
        if d.score(*ts, *v).event.is_some() {
            events.push(i);
        }
        d.train_if_due();
    }
    events
}

/// Scores `series` into `report`.
pub fn evaluate(series: &[Series], report: &mut Report) {
    for s in series {
        report.series += 1;
        report.readings += s.points.len() as u64;
        let events = events_of(&s.points);
        if s.labels.is_empty() {
            report.clean_false_alarms += events.len();
            if let (Some(a), Some(b)) = (s.points.first(), s.points.last()) {
                report.clean_days += (b.0 - a.0) as f64 / 86_400_000.0;
            }
            continue;
        }
        // Index range of each window, grace included.
        let windows: Vec<(usize, usize)> = s
            .labels
            .iter()
            .map(|(_, start, end)| {
                let a = s.points.partition_point(|p| p.0 < *start);
                let b = s.points.partition_point(|p| p.0 <= *end);
                (a, b.saturating_sub(1) + GRACE)
            })
            .collect();
        let mut first = vec![None; windows.len()];
        for &e in &events {
            match windows.iter().position(|(a, b)| (*a..=*b).contains(&e)) {
                Some(w) => {
                    first[w].get_or_insert(e);
                }
                None => {
                    let nearest = windows
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (a, _))| a.abs_diff(e))
                        .map(|(w, _)| w)
                        .expect("labels are not empty");
                    report
                        .kinds
                        .entry(s.labels[nearest].0.clone())
                        .or_default()
                        .false_alarms += 1;
                }
            }
        }
        for (w, (kind, _, _)) in s.labels.iter().enumerate() {
            let k = report.kinds.entry(kind.clone()).or_default();
            k.labels += 1;
            if let Some(e) = first[w] {
                k.detected += 1;
                k.delays.push(e - windows[w].0);
            }
        }
    }
}

/// Reads a `vigil-sim --to-csv DIR` output: `<device>__<metric>.csv` and `labels.jsonl`.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Series>> {
    let mut labels: BTreeMap<String, Vec<(String, i64, i64)>> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join("labels.jsonl"))
        .with_context(|| format!("{}/labels.jsonl", dir.display()))?;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("labels.jsonl line {}", n + 1))?;
        let field = |k: &str| v[k].as_str().map(str::to_owned);
        let time = |k: &str| {
            field(k)
                .and_then(|s| vigil::detect::replay::parse_time(&s))
                .map(|t| t.timestamp_millis())
        };
        let (Some(device), Some(metric), Some(kind), Some(start), Some(end)) = (
            field("device"),
            field("metric"),
            field("kind"),
            time("start"),
            time("end"),
        ) else {
            anyhow::bail!("labels.jsonl line {}: missing or malformed field", n + 1);
        };
        labels
            .entry(format!("{device}__{metric}"))
            .or_default()
            .push((kind, start, end));
    }
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut r = csv::Reader::from_path(&path)?;
        let mut points = Vec::new();
        for (n, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{}: row {}", path.display(), n + 2))?;
            let ts = vigil::detect::replay::parse_time(&rec[0])
                .with_context(|| format!("{}: row {}: timestamp", path.display(), n + 2))?;
            let v: f64 = rec[1]
                .parse()
                .with_context(|| format!("{}: row {}: value", path.display(), n + 2))?;
            points.push((ts.timestamp_millis(), v));
        }
        out.push(Series {
            points,
            labels: labels.remove(&stem).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn gauss(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The kinds the built-in generator injects.
pub const KINDS: [&str; 5] = ["spike", "level_shift", "stuck", "drift", "noise_burst"];

/// A built-in labelled set: per kind `per_kind` series of `days` days at about one reading
/// a minute (jittered), each with anomalies of that kind every ~`spacing` readings, plus
/// `per_kind` clean series. Signals mix levels, scales, daily cycles, autocorrelated and
/// quantised noise. Sizes are in units of the noise σ.
pub fn generate(seed: u64, per_kind: usize, days: f64) -> Vec<Series> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = (days * 1440.0) as usize;
    let mut out = Vec::new();
    for kind in KINDS.iter().map(Some).chain(std::iter::once(None)) {
        for _ in 0..per_kind {
            let level = rng.random_range(-50.0..500.0);
            let sigma = 10f64.powf(rng.random_range(-2.0..1.0));
            let phi: f64 = [0.0, 0.3, 0.6][rng.random_range(0..3)];
            let daily = sigma * [0.0, 2.0, 6.0][rng.random_range(0..3)];
            let quantum = if rng.random_bool(0.25) {
                sigma * 0.5
            } else {
                0.0
            };
            let mut ts = 1_700_000_000_000_i64;
            let mut ar = 0.0;
            let mut points = Vec::with_capacity(n);
            let mut labels = Vec::new();
            let mut clean = Vec::with_capacity(n);
            for i in 0..n {
                ts += rng.random_range(48_000..72_000);
                ar = phi * ar + (1.0 - phi * phi).sqrt() * gauss(&mut rng);
                let day = (ts % 86_400_000) as f64 / 86_400_000.0;
                clean.push(level + daily * (std::f64::consts::TAU * day).sin() + sigma * ar);
                points.push((ts, 0.0));
                let _ = i;
            }
            let mut values = clean.clone();
            if let Some(kind) = kind {
                let mut at = rng.random_range(300..700);
                while at + 400 < n {
                    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    let len = match *kind {
                        "spike" => 1,
                        "level_shift" => rng.random_range(100..300),
                        "stuck" => rng.random_range(30..200),
                        "drift" => rng.random_range(200..400),
                        _ => rng.random_range(20..60),
                    };
                    let size = sigma * rng.random_range(6.0..12.0) * sign;
                    let stuck_at = values[at - 1];
                    for j in 0..len {
                        let v = &mut values[at + j];
                        match *kind {
                            "spike" | "level_shift" => *v += size,
                            "stuck" => *v = stuck_at,
                            "drift" => *v += size * (j + 1) as f64 / len as f64,
                            _ => *v += sigma * 4.0 * gauss(&mut rng),
                        }
                    }
                    labels.push((kind.to_string(), points[at].0, points[at + len - 1].0));
                    at += len + rng.random_range(400..900);
                }
            }
            for (p, v) in points.iter_mut().zip(values) {
                p.1 = if quantum > 0.0 {
                    (v / quantum).round() * quantum
                } else {
                    v
                };
            }
            out.push(Series { points, labels });
        }
    }
    out
}
