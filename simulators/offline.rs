//! Offline mode (`--to-csv DIR`): the same fleet in simulated time, no broker. One CSV per
//! series (`DIR/<device>__<metric>.csv`, header `timestamp,value`) and `DIR/labels.jsonl`:
//! the input of `vigil detect --input` and of the detector's quality benchmark.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::anomaly::{rfc3339, Label};
use crate::fleet::Fleet;
use crate::schedule::Schedule;

/// Every series' points, by (device, metric).
pub type SeriesMap = BTreeMap<(String, String), Vec<(i64, f64)>>;

/// What an offline run produced.
#[derive(Debug, Default, PartialEq)]
pub struct Written {
    pub series: usize,
    pub readings: u64,
    pub withheld: u64,
    pub labels: usize,
}

/// Samples `count` readings of `fleet` at the schedule's pace from `start_ms`, in simulated
/// time (as fast as the machine goes). Pure: returns the series and the labels.
pub fn simulate(
    fleet: &mut Fleet,
    schedule: &Schedule,
    start_ms: i64,
    count: u64,
) -> (SeriesMap, Vec<Label>, u64) {
    let mut series = SeriesMap::new();
    let mut withheld = 0;
    let mut t = 0.0f64;
    for k in 0..count {
        t = time_of(schedule, k as f64, t);
        let now_ms = start_ms + (t * 1000.0) as i64;
        let Some(s) = fleet.next_sample(now_ms) else {
            break;
        };
        let key = (
            fleet.device_id(s.device).to_owned(),
            fleet.metric_name(s.device, s.metric).to_owned(),
        );
        let points = series.entry(key).or_default();
        match s.value {
            Some(v) => points.push((s.ts_ms, v)),
            None => withheld += 1,
        }
    }
    let mut labels = fleet.take_labels();
    labels.extend(fleet.close());
    (series, labels, withheld)
}

/// The time at which `k` samples are due (the schedule inverted by bisection), no earlier
/// than `after`.
fn time_of(schedule: &Schedule, k: f64, after: f64) -> f64 {
    let (mut lo, mut hi) = (after, after + 1.0 / schedule.rate_at(after).max(1e-6));
    while schedule.due(hi) < k {
        lo = hi;
        hi = lo + (hi - after).max(1e-3) * 2.0;
    }
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if schedule.due(mid) < k {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-7 {
            break;
        }
    }
    hi
}

/// Runs [`simulate`] and writes the files into `dir` (created if missing).
pub fn write(
    dir: &Path,
    fleet: &mut Fleet,
    schedule: &Schedule,
    start_ms: i64,
    count: u64,
) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--to-csv: cannot create {}", dir.display()))?;
    let (series, labels, withheld) = simulate(fleet, schedule, start_ms, count);
    let mut readings = 0;
    for ((device, metric), points) in &series {
        let path = dir.join(format!("{device}__{metric}.csv"));
        let mut w = csv::Writer::from_path(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        w.write_record(["timestamp", "value"])?;
        for (ts, v) in points {
            w.write_record([rfc3339(*ts), v.to_string()])?;
        }
        w.flush()?;
        readings += points.len() as u64;
    }
    let path = dir.join("labels.jsonl");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    for l in &labels {
        writeln!(f, "{}", l.to_json())?;
    }
    f.flush()?;
    Ok(Written {
        series: series.len(),
        readings,
        withheld,
        labels: labels.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Spec;

    fn fleet(seed: u64) -> Fleet {
        let spec = Spec {
            prefix: "sim".into(),
            devices: 2,
            metrics: 3,
            seed,
            anomaly_rate: 0.01,
        };
        Fleet::new(&spec, 0, 1)
    }

    #[test]
    fn samples_are_spaced_by_the_simulated_rate() {
        // 6 series at 6 samples/s: each series once a second.
        let (series, _, _) = simulate(&mut fleet(1), &Schedule::steady(6.0), 0, 600);
        assert_eq!(series.len(), 6);
        for points in series.values() {
            for w in points.windows(2) {
                assert!((999..=1001).contains(&(w[1].0 - w[0].0)), "{w:?}");
            }
        }
    }

    #[test]
    fn the_csv_files_and_labels_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let w = write(
            dir.path(),
            &mut fleet(2),
            &Schedule::steady(60.0),
            start,
            60_000,
        )
        .unwrap();
        assert_eq!(w.series, 6);
        assert_eq!(w.readings + w.withheld, 60_000);
        assert!(w.labels > 0);
        let text = std::fs::read_to_string(dir.path().join("sim-0001__humidity.csv")).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("timestamp,value"));
        let first = lines.next().unwrap();
        assert!(first.starts_with("2026-01-01T00:00:00"), "{first}");
        let (ts, v) = first.split_once(',').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok());
        assert!(v.parse::<f64>().unwrap().is_finite());
        let labels = std::fs::read_to_string(dir.path().join("labels.jsonl")).unwrap();
        assert_eq!(labels.lines().count(), w.labels);
        for l in labels.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let file = format!(
                "{}__{}.csv",
                v["device"].as_str().unwrap(),
                v["metric"].as_str().unwrap()
            );
            assert!(dir.path().join(file).exists(), "{l}");
            assert!(v["start"].as_str().unwrap() <= v["end"].as_str().unwrap());
        }
        // Same seed, same files.
        let again = tempfile::tempdir().unwrap();
        write(
            again.path(),
            &mut fleet(2),
            &Schedule::steady(60.0),
            start,
            60_000,
        )
        .unwrap();
        let b = std::fs::read_to_string(again.path().join("sim-0001__humidity.csv")).unwrap();
        assert_eq!(text, b);
    }
}
