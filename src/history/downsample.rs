//! Min/max downsampling: the pure core of history queries.
//!
//! The requested range is cut into `max_points / 2` equal buckets; each keeps its lowest
//! and its highest reading at their real timestamps, so a single spike anywhere in a year
//! still shows. Inputs are [`Partial`]s — a raw reading, a rollup row or a pre-aggregated
//! group of raw readings — and each extreme lands in the bucket of its own timestamp, so
//! mixing sources (rollups in the middle, raw readings at the edges) gives the same answer
//! as reading everything raw.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// One point of a history answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// When the reading was taken (RFC 3339, UTC).
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// A summary of some readings of one series: their count and extremes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partial {
    pub n: i64,
    pub min: f64,
    pub min_ts: DateTime<Utc>,
    pub max: f64,
    pub max_ts: DateTime<Utc>,
}

impl Partial {
    /// One raw reading.
    pub fn reading(ts: DateTime<Utc>, value: f64) -> Partial {
        Partial {
            n: 1,
            min: value,
            min_ts: ts,
            max: value,
            max_ts: ts,
        }
    }
}

/// The output grid: `buckets` slices of `width` from `origin`, covering `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    origin_us: i64,
    width_us: i64,
    buckets: usize,
}

impl Grid {
    /// The grid for `max_points` points (two per bucket: its min and its max). With
    /// `align`, the origin and the width are multiples of it, so that every rollup row of
    /// that width (or a finer one) falls in exactly one bucket: then summaries merge into
    /// exactly what the raw readings would give.
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_points: usize,
        align: Option<TimeDelta>,
    ) -> Grid {
        let max_buckets = (max_points / 2).max(1) as i64;
        let (from_us, end_us) = (from.timestamp_micros(), to.timestamp_micros() + 1);
        let step = align.map_or(1, |a| a.num_microseconds().unwrap_or(1).max(1));
        let origin_us = from_us - from_us.rem_euclid(step);
        let end_us = end_us + (step - end_us.rem_euclid(step)) % step;
        let span = (end_us - origin_us).max(1);
        let width_us = (span + max_buckets - 1) / max_buckets;
        let width_us = ((width_us + step - 1) / step * step).max(1);
        Grid {
            origin_us,
            width_us,
            buckets: ((span + width_us - 1) / width_us) as usize,
        }
    }

    /// The width of one bucket.
    pub fn width(&self) -> TimeDelta {
        TimeDelta::microseconds(self.width_us)
    }

    /// Where bucket 0 starts.
    pub fn origin(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.origin_us).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The bucket holding `ts`, or `None` outside the grid.
    fn index(&self, ts: DateTime<Utc>) -> Option<usize> {
        let offset = ts.timestamp_micros() - self.origin_us;
        if offset < 0 {
            return None;
        }
        let i = (offset / self.width_us) as usize;
        (i < self.buckets).then_some(i)
    }
}

/// Extremes of one bucket: (value, ts) of its min and of its max.
type Extremes = Option<((f64, DateTime<Utc>), (f64, DateTime<Utc>))>;

/// Accumulates partials into the grid's buckets.
#[derive(Debug, Clone)]
pub struct Downsampler {
    grid: Grid,
    buckets: Vec<Extremes>,
    readings: i64,
}

/// What a downsampled query found.
#[derive(Debug, Clone, PartialEq)]
pub struct Downsampled {
    /// Time-ordered, at most `max_points`.
    pub points: Vec<Point>,
    /// Readings summarised by those points.
    pub readings: i64,
}

impl Downsampled {
    /// Whether some readings are not in `points`.
    pub fn is_downsampled(&self) -> bool {
        self.readings > self.points.len() as i64
    }
}

/// Lower value wins; on a tie, the earlier reading (rollups use the same rule).
fn lower(a: (f64, DateTime<Utc>), b: (f64, DateTime<Utc>)) -> bool {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt()
}

/// Higher value wins; on a tie, the later reading.
fn higher(a: (f64, DateTime<Utc>), b: (f64, DateTime<Utc>)) -> bool {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_gt()
}

impl Downsampler {
    pub fn new(grid: Grid) -> Downsampler {
        Downsampler {
            grid,
            buckets: vec![None; grid.buckets],
            readings: 0,
        }
    }

    /// Adds a summary; extremes outside the grid are ignored (callers only pass in-range data).
    pub fn add(&mut self, p: &Partial) {
        self.readings += p.n;
        self.offer((p.min, p.min_ts));
        if (p.max, p.max_ts) != (p.min, p.min_ts) {
            self.offer((p.max, p.max_ts));
        }
    }

    fn offer(&mut self, point: (f64, DateTime<Utc>)) {
        let Some(i) = self.grid.index(point.1) else {
            return;
        };
        let slot = &mut self.buckets[i];
        match slot {
            None => *slot = Some((point, point)),
            Some((lo, hi)) => {
                if lower(point, *lo) {
                    *lo = point;
                }
                if higher(point, *hi) {
                    *hi = point;
                }
            }
        }
    }

    /// The time-ordered points: per bucket its min and max (one point when they coincide).
    /// With `max_points` = 1 the single bucket gives its max only.
    pub fn finish(self, max_points: usize) -> Downsampled {
        let mut points = Vec::with_capacity(self.buckets.len() * 2);
        for (lo, hi) in self.buckets.into_iter().flatten() {
            let pair = if lo.1 == hi.1 {
                vec![hi]
            } else if max_points == 1 {
                vec![hi]
            } else if lo.1 < hi.1 {
                vec![lo, hi]
            } else {
                vec![hi, lo]
            };
            points.extend(pair.into_iter().map(|(value, ts)| Point { ts, value }));
        }
        Downsampled {
            points,
            readings: self.readings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn run(from: i64, to: i64, max_points: usize, readings: &[(i64, f64)]) -> Downsampled {
        let mut d = Downsampler::new(Grid::new(t(from), t(to), max_points, None));
        for &(s, v) in readings {
            d.add(&Partial::reading(t(s), v));
        }
        d.finish(max_points)
    }

    #[test]
    fn a_single_spike_in_a_long_range_survives() {
        let mut readings: Vec<(i64, f64)> = (0..100_000).map(|s| (s, 20.0)).collect();
        readings[77_777].1 = 1e6;
        let out = run(0, 99_999, 100, &readings);
        assert!(out.points.len() <= 100);
        assert!(out.points.contains(&Point {
            ts: t(77_777),
            value: 1e6
        }));
        assert!(out.is_downsampled());
        assert_eq!(out.readings, 100_000);
    }

    #[test]
    fn points_are_time_ordered_real_readings_and_bounded() {
        let readings: Vec<(i64, f64)> = (0..10_000)
            .map(|s| (s, ((s * 7919) % 1000) as f64))
            .collect();
        for max_points in [1, 2, 3, 10, 999, 1000] {
            let out = run(0, 9_999, max_points, &readings);
            assert!(out.points.len() <= max_points, "{max_points}");
            assert!(out.points.windows(2).all(|w| w[0].ts < w[1].ts));
            for p in &out.points {
                let s = p.ts.timestamp() - 1_700_000_000;
                assert_eq!(readings[s as usize].1, p.value);
            }
        }
    }

    #[test]
    fn few_readings_come_back_unchanged() {
        let readings = [(0, 1.0), (10, 2.0), (20, 3.0)];
        let out = run(0, 20, 10, &readings);
        assert_eq!(out.points.len(), 3);
        assert!(!out.is_downsampled());
    }

    #[test]
    fn each_bucket_keeps_its_min_and_max_in_time_order() {
        // Two buckets of 5 s: [0, 5) and [5, 10].
        let readings = [(0, 5.0), (1, 9.0), (2, 1.0), (6, 3.0), (7, 2.0), (8, 4.0)];
        let out = run(0, 9, 4, &readings);
        let got: Vec<(i64, f64)> = out
            .points
            .iter()
            .map(|p| (p.ts.timestamp() - 1_700_000_000, p.value))
            .collect();
        assert_eq!(got, vec![(1, 9.0), (2, 1.0), (7, 2.0), (8, 4.0)]);
    }

    #[test]
    fn merging_minute_summaries_on_an_aligned_grid_equals_reading_everything() {
        let readings: Vec<(i64, f64)> = (0..7_200)
            .map(|s| (s, ((s * 31) % 97) as f64 - 40.0))
            .collect();
        let minute = Some(TimeDelta::minutes(1));
        // An unaligned range: the grid widens to whole minutes.
        let grid = Grid::new(t(30), t(7_000), 50, minute);
        assert_eq!(grid.width().num_seconds() % 60, 0);
        assert!(grid.buckets <= 25);
        let inside: Vec<(i64, f64)> = readings[30..=7_000].to_vec();
        let mut raw = Downsampler::new(grid);
        for &(s, v) in &inside {
            raw.add(&Partial::reading(t(s), v));
        }
        let raw = raw.finish(50);
        // The same readings summarised per minute first, as a rollup would.
        let mut merged = Downsampler::new(grid);
        for chunk in inside.chunk_by(|a, b| (a.0 + 1_700_000_000) / 60 == (b.0 + 1_700_000_000) / 60) {
            let mut p = Partial::reading(t(chunk[0].0), chunk[0].1);
            for &(s, v) in &chunk[1..] {
                if lower((v, t(s)), (p.min, p.min_ts)) {
                    (p.min, p.min_ts) = (v, t(s));
                }
                if higher((v, t(s)), (p.max, p.max_ts)) {
                    (p.max, p.max_ts) = (v, t(s));
                }
                p.n += 1;
            }
            merged.add(&p);
        }
        assert_eq!(merged.finish(50), raw);
    }

    #[test]
    fn readings_outside_the_grid_are_ignored_and_the_end_is_inclusive() {
        let out = run(10, 20, 10, &[(5, 1.0), (10, 2.0), (20, 3.0), (21, 4.0)]);
        let values: Vec<f64> = out.points.iter().map(|p| p.value).collect();
        assert_eq!(values, vec![2.0, 3.0]);
    }
}
