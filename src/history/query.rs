//! The database side of history queries: plan, read each segment, downsample.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;

use super::downsample::{Downsampler, Grid, Partial, Point};
use super::plan::{self, Source};

const ROLLED_UP: &str = "SELECT rolled_up FROM rollup_state";

const RAW_POINTS: &str = "SELECT ts, value FROM readings \
     WHERE device_id = $1 AND metric = $2 AND ts >= $3 AND ts < $4 ORDER BY ts LIMIT $5";

/// Raw readings pre-aggregated per output bucket (`date_bin` on the grid), extremes as
/// `[value, epoch seconds]` so each keeps its real timestamp.
const RAW_BUCKETS: &str = "SELECT count(*)::int8, \
     min(ARRAY[value, date_part('epoch', ts)]), max(ARRAY[value, date_part('epoch', ts)]) \
     FROM readings WHERE device_id = $1 AND metric = $2 AND ts >= $3 AND ts < $4 \
     GROUP BY date_bin($5, ts, $6)";

const MINUTE_ROWS: &str = "SELECT n, min, min_ts, max, max_ts FROM readings_1m \
     WHERE device_id = $1 AND metric = $2 AND bucket >= $3 AND bucket < $4";

const HOUR_ROWS: &str = "SELECT n, min, min_ts, max, max_ts FROM readings_1h \
     WHERE device_id = $1 AND metric = $2 AND bucket >= $3 AND bucket < $4";

const DEVICE_KNOWN: &str = "SELECT EXISTS (SELECT 1 FROM devices WHERE device_id = $1) \
     OR EXISTS (SELECT 1 FROM readings WHERE device_id = $1) \
     OR EXISTS (SELECT 1 FROM readings_1h WHERE device_id = $1)";

const SERIES_KNOWN: &str = "SELECT EXISTS (SELECT 1 FROM readings WHERE device_id = $1 AND metric = $2) \
     OR EXISTS (SELECT 1 FROM readings_1m WHERE device_id = $1 AND metric = $2) \
     OR EXISTS (SELECT 1 FROM readings_1h WHERE device_id = $1 AND metric = $2)";

/// One series over `[from, to]`, at most `max_points` points.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub device: &'a str,
    pub metric: &'a str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub max_points: usize,
}

/// A history answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Time-ordered, at most `max_points`.
    pub points: Vec<Point>,
    /// Whether some readings of the range are not among `points`.
    pub downsampled: bool,
    /// The coarsest source read.
    pub source: Source,
}

/// Whether a device, and one of its metrics, have ever been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Series,
    DeviceOnly,
    Nothing,
}

/// Answers a history request from rollups and raw readings.
pub async fn history(pool: &PgPool, req: Request<'_>) -> Result<Answer, sqlx::Error> {
    let end = req.to + TimeDelta::microseconds(1);
    let level = plan::level(Grid::new(req.from, req.to, req.max_points, None).width());
    if level == Source::Raw {
        // Few enough readings come back as they are.
        let rows: Vec<(DateTime<Utc>, f64)> = sqlx::query_as(RAW_POINTS)
            .bind(req.device)
            .bind(req.metric)
            .bind(req.from)
            .bind(end)
            .bind(req.max_points as i64 + 1)
            .fetch_all(pool)
            .await?;
        if rows.len() <= req.max_points {
            return Ok(Answer {
                points: rows.into_iter().map(|(ts, value)| Point { ts, value }).collect(),
                downsampled: false,
                source: Source::Raw,
            });
        }
    }
    let rolled_up: DateTime<Utc> = sqlx::query_scalar(ROLLED_UP).fetch_one(pool).await?;
    let grid = Grid::new(req.from, req.to, req.max_points, level.width());
    let mut down = Downsampler::new(grid);
    for seg in plan::plan(req.from, end, level, rolled_up) {
        for p in segment(pool, &req, &grid, seg).await? {
            down.add(&p);
        }
    }
    let out = down.finish(req.max_points);
    Ok(Answer {
        downsampled: out.is_downsampled(),
        points: out.points,
        source: level,
    })
}

/// The summaries of one segment.
async fn segment(
    pool: &PgPool,
    req: &Request<'_>,
    grid: &Grid,
    seg: plan::Segment,
) -> Result<Vec<Partial>, sqlx::Error> {
    let rollup_sql = match seg.source {
        Source::Minute => MINUTE_ROWS,
        Source::Hour => HOUR_ROWS,
        Source::Raw => {
            type Row = (i64, Vec<f64>, Vec<f64>);
            let rows: Vec<Row> = sqlx::query_as(RAW_BUCKETS)
                .bind(req.device)
                .bind(req.metric)
                .bind(seg.start)
                .bind(seg.end)
                .bind(grid.width())
                .bind(grid.origin())
                .fetch_all(pool)
                .await?;
            return Ok(rows
                .into_iter()
                .filter_map(|(n, lo, hi)| {
                    Some(Partial {
                        n,
                        min: *lo.first()?,
                        min_ts: from_epoch(*lo.get(1)?)?,
                        max: *hi.first()?,
                        max_ts: from_epoch(*hi.get(1)?)?,
                    })
                })
                .collect());
        }
    };
    type Row = (i64, f64, DateTime<Utc>, f64, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(rollup_sql)
        .bind(req.device)
        .bind(req.metric)
        .bind(seg.start)
        .bind(seg.end)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(n, min, min_ts, max, max_ts)| Partial {
            n,
            min,
            min_ts,
            max,
            max_ts,
        })
        .collect())
}

/// Epoch seconds (a float8 carrying microseconds) back to a timestamp, exactly.
fn from_epoch(secs: f64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
}

/// Whether the device and the series exist (for a 404 that says which is unknown).
pub async fn known(pool: &PgPool, device: &str, metric: &str) -> Result<Known, sqlx::Error> {
    let series: bool = sqlx::query_scalar(SERIES_KNOWN)
        .bind(device)
        .bind(metric)
        .fetch_one(pool)
        .await?;
    if series {
        return Ok(Known::Series);
    }
    let device: bool = sqlx::query_scalar(DEVICE_KNOWN)
        .bind(device)
        .fetch_one(pool)
        .await?;
    Ok(if device {
        Known::DeviceOnly
    } else {
        Known::Nothing
    })
}

/// Whether a device has ever been seen.
pub async fn device_known(pool: &PgPool, device: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(DEVICE_KNOWN)
        .bind(device)
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_round_trip_to_the_microsecond() {
        for us in [0_i64, 1, 1_795_000_000_123_457, 1_795_000_000_999_999, -1_000_001] {
            let t = DateTime::from_timestamp_micros(us).unwrap();
            let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6;
            assert_eq!(from_epoch(secs), Some(t), "{us}");
        }
    }
}
