//! Which tables a history query reads: pure planning.
//!
//! The coarsest rollup whose width fits in one output bucket is read where it is complete
//! (whole buckets inside the range, before the rolled-up mark); the ragged edges around it
//! fall to the next finer level, and finally to raw readings. A year at `max_points=1000`
//! thus reads ~8,800 hourly rows plus a few minutes and seconds at either end.

use chrono::{DateTime, TimeDelta, Utc};

/// Where readings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The `readings` table itself.
    Raw,
    /// `readings_1m`.
    Minute,
    /// `readings_1h`.
    Hour,
}

impl Source {
    /// The width of one rollup row (none for raw readings).
    pub fn width(self) -> Option<TimeDelta> {
        match self {
            Source::Raw => None,
            Source::Minute => Some(TimeDelta::minutes(1)),
            Source::Hour => Some(TimeDelta::hours(1)),
        }
    }

    /// The next finer source.
    fn finer(self) -> Source {
        match self {
            Source::Hour => Source::Minute,
            Source::Minute | Source::Raw => Source::Raw,
        }
    }

    /// A label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Source::Raw => "raw",
            Source::Minute => "1m",
            Source::Hour => "1h",
        }
    }
}

/// Read `source` for `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub source: Source,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The coarsest source whose rows fit in an output bucket of `bucket_width`.
pub fn level(bucket_width: TimeDelta) -> Source {
    [Source::Hour, Source::Minute]
        .into_iter()
        .find(|s| s.width().is_some_and(|w| w <= bucket_width))
        .unwrap_or(Source::Raw)
}

fn floor_to(t: DateTime<Utc>, w: TimeDelta) -> DateTime<Utc> {
    let (us, step) = (t.timestamp_micros(), w.num_microseconds().unwrap_or(1));
    DateTime::from_timestamp_micros(us - us.rem_euclid(step)).unwrap_or(t)
}

fn ceil_to(t: DateTime<Utc>, w: TimeDelta) -> DateTime<Utc> {
    let floor = floor_to(t, w);
    if floor == t {
        t
    } else {
        floor + w
    }
}

/// The segments covering `[start, end)` with `level` and finer sources, rollups used only
/// for buckets that end by `rolled_up` (the rollups are complete before that mark).
pub fn plan(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    level: Source,
    rolled_up: DateTime<Utc>,
) -> Vec<Segment> {
    let mut out = Vec::new();
    split(start, end, level, rolled_up, &mut out);
    out
}

fn split(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    source: Source,
    rolled_up: DateTime<Utc>,
    out: &mut Vec<Segment>,
) {
    if start >= end {
        return;
    }
    let Some(w) = source.width() else {
        out.push(Segment { source, start, end });
        return;
    };
    let (a, b) = (ceil_to(start, w), floor_to(end.min(rolled_up), w));
    if a >= b {
        split(start, end, source.finer(), rolled_up, out);
        return;
    }
    split(start, a, source.finer(), rolled_up, out);
    out.push(Segment {
        source,
        start: a,
        end: b,
    });
    split(b, end, source.finer(), rolled_up, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
    }

    #[test]
    fn the_level_fits_the_bucket() {
        assert_eq!(level(TimeDelta::seconds(59)), Source::Raw);
        assert_eq!(level(TimeDelta::seconds(60)), Source::Minute);
        assert_eq!(level(TimeDelta::seconds(3_599)), Source::Minute);
        assert_eq!(level(TimeDelta::days(1)), Source::Hour);
    }

    #[test]
    fn edges_fall_to_finer_sources_and_the_recent_end_to_raw() {
        let segs = plan(t(1, 59, 30), t(6, 0, 0), Source::Hour, t(4, 30, 15));
        let want = [
            (Source::Raw, t(1, 59, 30), t(2, 0, 0)),
            (Source::Hour, t(2, 0, 0), t(4, 0, 0)),
            (Source::Minute, t(4, 0, 0), t(4, 30, 0)),
            (Source::Raw, t(4, 30, 0), t(6, 0, 0)),
        ];
        let got: Vec<_> = segs.iter().map(|s| (s.source, s.start, s.end)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn segments_tile_the_range_without_gaps() {
        for rolled in [t(0, 0, 0), t(3, 17, 0), t(12, 0, 0)] {
            let segs = plan(t(0, 0, 1), t(9, 45, 7), Source::Hour, rolled);
            assert_eq!(segs.first().unwrap().start, t(0, 0, 1));
            assert_eq!(segs.last().unwrap().end, t(9, 45, 7));
            assert!(segs.windows(2).all(|w| w[0].end == w[1].start));
            assert!(segs
                .iter()
                .all(|s| s.source == Source::Raw || s.end <= rolled));
        }
    }

    #[test]
    fn nothing_rolled_up_means_raw_only() {
        let segs = plan(t(0, 0, 0), t(5, 0, 0), Source::Hour, t(0, 0, 0));
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].source, Source::Raw);
    }
}
