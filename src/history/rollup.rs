//! The rollup task: keeps `readings_1m` and `readings_1h` complete up to `rolled_up`, and
//! recomputes the minutes that late readings touched (see `migrations/0004_rollups.sql`).
//!
//! A pass is one of: recompute a batch of late minutes; roll up the next chunk of time
//! between `rolled_up` and the watermark; move the watermark up to `now - delay`. Each is
//! one short transaction, so a crash at any point leaves either the old or the new state
//! (late marks are deleted in the transaction that recomputes them). The row of
//! `rollup_state` is locked by every pass, so several vigils can run the task safely.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::HistoryConfig;
use crate::metrics::Metrics;

/// Advisory lock key shared with the trigger on `readings` (0x76696769, "vigi").
pub const LOCK_KEY: i64 = 0x7669_6769;

const STATE: &str = "SELECT watermark, rolled_up FROM rollup_state";
const STATE_FOR_UPDATE: &str = "SELECT watermark, rolled_up FROM rollup_state FOR UPDATE";

/// Upserts every rollup column from a subquery `g(device_id, metric, b, n, s, lo, hi)`
/// where `lo`/`hi` are `[value, epoch seconds]` arrays: min/max of arrays order by value,
/// then time, so each extreme keeps its real timestamp.
macro_rules! upsert {
    ($table:literal, $select:expr) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (device_id, metric, bucket, n, sum, min, min_ts, max, max_ts) \
             SELECT device_id, metric, b, n, s, lo[1], to_timestamp(lo[2]), hi[1], to_timestamp(hi[2]) \
             FROM (",
            $select,
            ") g ON CONFLICT (device_id, metric, bucket) DO UPDATE SET n = EXCLUDED.n, \
             sum = EXCLUDED.sum, min = EXCLUDED.min, min_ts = EXCLUDED.min_ts, \
             max = EXCLUDED.max, max_ts = EXCLUDED.max_ts"
        )
    };
}

const MINUTES_OF_RANGE: &str = upsert!(
    "readings_1m",
    "SELECT device_id, metric, date_bin('1 minute', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b, \
     count(*) AS n, sum(value) AS s, \
     min(ARRAY[value, date_part('epoch', ts)]) AS lo, max(ARRAY[value, date_part('epoch', ts)]) AS hi \
     FROM readings WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2, 3"
);

const HOURS_OF_RANGE: &str = upsert!(
    "readings_1h",
    "SELECT device_id, metric, date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b, \
     sum(n)::int8 AS n, sum(sum) AS s, \
     min(ARRAY[min, date_part('epoch', min_ts)]) AS lo, max(ARRAY[max, date_part('epoch', max_ts)]) AS hi \
     FROM readings_1m WHERE bucket >= $1 AND bucket < $2 GROUP BY 1, 2, 3"
);

const TAKE_LATE: &str = "WITH m AS (DELETE FROM rollup_dirty WHERE ctid = ANY(ARRAY(\
     SELECT ctid FROM rollup_dirty LIMIT $1)) RETURNING device_id, metric, bucket) \
     SELECT DISTINCT device_id, metric, bucket FROM m";

const MINUTES_OF_KEYS: &str = upsert!(
    "readings_1m",
    "SELECT k.device_id, k.metric, k.bucket AS b, count(*) AS n, sum(r.value) AS s, \
     min(ARRAY[r.value, date_part('epoch', r.ts)]) AS lo, max(ARRAY[r.value, date_part('epoch', r.ts)]) AS hi \
     FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS k(device_id, metric, bucket) \
     JOIN readings r ON r.device_id = k.device_id AND r.metric = k.metric \
     AND r.ts >= k.bucket AND r.ts < k.bucket + INTERVAL '1 minute' GROUP BY 1, 2, 3"
);

const HOURS_OF_KEYS: &str = upsert!(
    "readings_1h",
    "SELECT k.device_id, k.metric, k.hour AS b, sum(m.n)::int8 AS n, sum(m.sum) AS s, \
     min(ARRAY[m.min, date_part('epoch', m.min_ts)]) AS lo, max(ARRAY[m.max, date_part('epoch', m.max_ts)]) AS hi \
     FROM (SELECT DISTINCT device_id, metric, \
           date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS hour \
           FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(device_id, metric, bucket)) k \
     JOIN readings_1m m ON m.device_id = k.device_id AND m.metric = k.metric \
     AND m.bucket >= k.hour AND m.bucket < k.hour + INTERVAL '1 hour' GROUP BY 1, 2, 3"
);

/// What the next pass should do, from the state and the clock (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Roll up `[from, to)` and move `rolled_up` to `to`.
    RollUp {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Move the watermark to `to`: readings before it count as late from then on.
    Advance { to: DateTime<Utc> },
    /// Nothing to do until the clock moves on.
    Idle,
}

/// Floors `t` to the minute.
pub fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let us = t.timestamp_micros();
    DateTime::from_timestamp_micros(us - us.rem_euclid(60_000_000)).unwrap_or(t)
}

/// The next step for a state (`watermark`, `rolled_up`) at `now`.
pub fn next_step(
    watermark: DateTime<Utc>,
    rolled_up: DateTime<Utc>,
    now: DateTime<Utc>,
    delay: TimeDelta,
    chunk: TimeDelta,
) -> Step {
    if rolled_up < watermark {
        let to = minute_floor(rolled_up + chunk).max(rolled_up + TimeDelta::minutes(1));
        return Step::RollUp {
            from: rolled_up,
            to: to.min(watermark),
        };
    }
    let target = minute_floor(now - delay);
    if target > watermark {
        Step::Advance { to: target }
    } else {
        Step::Idle
    }
}

/// The rollup task.
pub struct Rollups {
    pub pool: PgPool,
    pub cfg: HistoryConfig,
    pub metrics: Metrics,
}

impl Rollups {
    /// Works until caught up, then every `rollup_interval`, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut delay = self.cfg.rollup_interval;
        loop {
            match catch_up(&self.pool, &self.cfg, Utc::now(), &stop, &self.metrics).await {
                Ok(()) => delay = self.cfg.rollup_interval,
                Err(e) if schema_pending(&e) => {
                    tracing::debug!("rollup tables not migrated yet");
                }
                Err(e) => {
                    self.metrics.rollup_errors.inc();
                    tracing::warn!(error = %e, retry_in = ?delay, "rollup pass failed");
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Whether the error means the migrations have not created the tables yet (start-up).
pub fn schema_pending(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}

/// Runs passes until there is nothing left to do at `now` (or `stop`).
pub async fn catch_up(
    pool: &PgPool,
    cfg: &HistoryConfig,
    now: DateTime<Utc>,
    stop: &CancellationToken,
    metrics: &Metrics,
) -> Result<(), sqlx::Error> {
    let delay = TimeDelta::from_std(cfg.rollup_delay).unwrap_or(TimeDelta::minutes(1));
    let chunk = TimeDelta::from_std(cfg.rollup_chunk).unwrap_or(TimeDelta::hours(1));
    while !stop.is_cancelled() {
        let late = late_pass(pool, cfg.late_batch).await?;
        metrics.rollup_late_minutes.inc_by(late as u64);
        let (watermark, rolled_up): (DateTime<Utc>, DateTime<Utc>) =
            sqlx::query_as(STATE).fetch_one(pool).await?;
        metrics
            .rollup_rolled_up_seconds
            .set(rolled_up.timestamp_micros() as f64 / 1e6);
        match next_step(watermark, rolled_up, now, delay, chunk) {
            Step::RollUp { .. } => roll_up(pool, chunk).await?,
            Step::Advance { to } => advance(pool, to).await?,
            // A full batch of late minutes may mean more are waiting.
            Step::Idle if late < cfg.late_batch => return Ok(()),
            Step::Idle => {}
        }
    }
    Ok(())
}

/// Moves the watermark once every writer that read the old one has committed.
async fn advance(pool: &PgPool, to: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE rollup_state SET watermark = $1 WHERE watermark < $1")
        .bind(to)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Rolls up the next chunk below the watermark, in one transaction with the mark.
async fn roll_up(pool: &PgPool, chunk: TimeDelta) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (watermark, rolled_up): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as(STATE_FOR_UPDATE).fetch_one(&mut *tx).await?;
    let Step::RollUp { from, to } = next_step(
        watermark,
        rolled_up,
        watermark,
        TimeDelta::zero(),
        chunk,
    ) else {
        return tx.commit().await;
    };
    sqlx::query(MINUTES_OF_RANGE)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    let hour_start = from - TimeDelta::microseconds(from.timestamp_micros().rem_euclid(3_600_000_000));
    sqlx::query(HOURS_OF_RANGE)
        .bind(hour_start)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE rollup_state SET rolled_up = $1")
        .bind(to)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Recomputes up to `batch` minutes marked by late readings; returns how many.
async fn late_pass(pool: &PgPool, batch: usize) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(STATE_FOR_UPDATE).execute(&mut *tx).await?;
    let keys: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(TAKE_LATE)
        .bind(batch as i64)
        .fetch_all(&mut *tx)
        .await?;
    if keys.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let devices: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let metrics: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let buckets: Vec<DateTime<Utc>> = keys.iter().map(|k| k.2).collect();
    for sql in [MINUTES_OF_KEYS, HOURS_OF_KEYS] {
        sqlx::query(sql)
            .bind(&devices)
            .bind(&metrics)
            .bind(&buckets)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
    }

    #[test]
    fn rolls_up_what_is_below_the_watermark_a_chunk_at_a_time() {
        let step = next_step(t(5, 0, 0), t(1, 0, 0), t(12, 0, 0), TimeDelta::minutes(1), TimeDelta::hours(1));
        assert_eq!(step, Step::RollUp { from: t(1, 0, 0), to: t(2, 0, 0) });
        let step = next_step(t(1, 30, 0), t(1, 0, 0), t(12, 0, 0), TimeDelta::minutes(1), TimeDelta::hours(1));
        assert_eq!(step, Step::RollUp { from: t(1, 0, 0), to: t(1, 30, 0) });
    }

    #[test]
    fn the_watermark_trails_the_clock_by_the_delay_on_minute_bounds() {
        let step = next_step(t(1, 0, 0), t(1, 0, 0), t(1, 10, 42), TimeDelta::minutes(1), TimeDelta::hours(1));
        assert_eq!(step, Step::Advance { to: t(1, 9, 0) });
        let step = next_step(t(1, 9, 0), t(1, 9, 0), t(1, 10, 42), TimeDelta::minutes(1), TimeDelta::hours(1));
        assert_eq!(step, Step::Idle);
    }
}
