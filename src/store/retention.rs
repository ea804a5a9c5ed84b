//! Retention: deletes rows older than their configured lifetime, in bounded chunks.
//!
//! Every table keeps its rows forever unless a lifetime is set (nothing is deleted by
//! surprise). Each `DELETE` removes at most `batch_rows` rows and commits on its own, so
//! no lock is held for long and ingest goes on meanwhile. The `anomalies` table is
//! optional: it is skipped while it does not exist.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The `[retention]` settings. A lifetime left out keeps that table's rows forever.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How often old rows are looked for.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows deleted per statement (and per transaction).
    pub batch_rows: usize,
    /// Lifetime of raw readings (`readings`).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub raw: Option<Duration>,
    /// Lifetime of per-minute rollups (`readings_1m`).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub minute: Option<Duration>,
    /// Lifetime of per-hour rollups (`readings_1h`).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub hour: Option<Duration>,
    /// Lifetime of dead letters, by the time they were received.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<Duration>,
    /// Lifetime of anomaly events (`anomalies.ts`), when that table exists.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<Duration>,
}

impl Default for RetentionConfig {
    /// Hourly, 10,000 rows a statement, keep everything.
    fn default() -> Self {
        RetentionConfig {
            interval: Duration::from_secs(3600),
            batch_rows: 10_000,
            raw: None,
            minute: None,
            hour: None,
            dead_letters: None,
            anomalies: None,
        }
    }
}

impl RetentionConfig {

    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.interval.is_zero() {
            return Err(("retention.interval", "must be above zero".into()));
        }
        if self.batch_rows == 0 {
            return Err(("retention.batch_rows", "must be at least 1".into()));
        }
        for (key, life) in [
            ("retention.raw", self.raw),
            ("retention.minute", self.minute),
            ("retention.hour", self.hour),
            ("retention.dead_letters", self.dead_letters),
            ("retention.anomalies", self.anomalies),
        ] {
            if life.is_some_and(|d| d < Duration::from_secs(60)) {
                return Err((key, "must be at least 1m (or left out: keep forever)".into()));
            }
        }
        Ok(())
    }
}

/// A table under retention, with its chunked delete (fixed SQL; `$1` cutoff, `$2` rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Readings,
    Minute,
    Hour,
    DeadLetters,
    Anomalies,
}

impl Table {
    /// Every table, for metric labels.
    pub const ALL: [Table; 5] = [
        Table::Readings,
        Table::Minute,
        Table::Hour,
        Table::DeadLetters,
        Table::Anomalies,
    ];

    /// The table's name (also the metric label).
    pub fn name(self) -> &'static str {
        match self {
            Table::Readings => "readings",
            Table::Minute => "readings_1m",
            Table::Hour => "readings_1h",
            Table::DeadLetters => "dead_letters",
            Table::Anomalies => "anomalies",
        }
    }

    fn delete_sql(self) -> &'static str {
        match self {
            Table::Readings => "DELETE FROM readings WHERE ctid = ANY(ARRAY(\
                SELECT ctid FROM readings WHERE ts < $1 LIMIT $2))",
            Table::Minute => "DELETE FROM readings_1m WHERE ctid = ANY(ARRAY(\
                SELECT ctid FROM readings_1m WHERE bucket < $1 LIMIT $2))",
            Table::Hour => "DELETE FROM readings_1h WHERE ctid = ANY(ARRAY(\
                SELECT ctid FROM readings_1h WHERE bucket < $1 LIMIT $2))",
            Table::DeadLetters => "DELETE FROM dead_letters WHERE ctid = ANY(ARRAY(\
                SELECT ctid FROM dead_letters WHERE received_at < $1 LIMIT $2))",
            Table::Anomalies => "DELETE FROM anomalies WHERE ctid = ANY(ARRAY(\
                SELECT ctid FROM anomalies WHERE ts < $1 LIMIT $2))",
        }
    }
}

/// The tables with a lifetime and the time before which their rows go, at `now` (pure).
pub fn cutoffs(cfg: &RetentionConfig, now: DateTime<Utc>) -> Vec<(Table, DateTime<Utc>)> {
    [
        (Table::Readings, cfg.raw),
        (Table::Minute, cfg.minute),
        (Table::Hour, cfg.hour),
        (Table::DeadLetters, cfg.dead_letters),
        (Table::Anomalies, cfg.anomalies),
    ]
    .into_iter()
    .filter_map(|(table, life)| {
        let life = TimeDelta::from_std(life?).ok()?;
        Some((table, now.checked_sub_signed(life)?))
    })
    .collect()
}

/// The periodic retention task.
pub struct Retention {
    pub pool: PgPool,
    pub cfg: RetentionConfig,
    pub metrics: Metrics,
}

impl Retention {
    /// Enforces the lifetimes now and then every `interval`, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        if cutoffs(&self.cfg, Utc::now()).is_empty() {
            tracing::info!("retention: no lifetime configured, every row is kept");
            return;
        }
        loop {
            let mut wait = self.cfg.interval;
            match enforce(&self.pool, &self.cfg, Utc::now(), &stop, &self.metrics).await {
                Ok(deleted) => tracing::debug!(deleted, "retention pass done"),
                Err(e) if crate::history::rollup::schema_pending(&e) => {
                    // Start-up: the migrations are still running.
                    wait = wait.min(Duration::from_secs(1));
                }
                Err(e) => {
                    self.metrics.retention_errors.inc();
                    tracing::warn!(error = %e, "retention pass failed; retrying next interval");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// One retention pass at `now`: deletes every expired row, chunk by chunk; returns the
/// number of rows deleted.
pub async fn enforce(
    pool: &PgPool,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
    stop: &CancellationToken,
    metrics: &Metrics,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    for (table, cutoff) in cutoffs(cfg, now) {
        if table == Table::Anomalies {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass('anomalies') IS NOT NULL")
                .fetch_one(pool)
                .await?;
            if !exists {
                continue;
            }
        }
        let counter = metrics.retention_deleted.with_label_values(&[table.name()]);
        loop {
            if stop.is_cancelled() {
                return Ok(total);
            }
            let deleted = sqlx::query(table.delete_sql())
                .bind(cutoff)
                .bind(cfg.batch_rows as i64)
                .execute(pool)
                .await?
                .rows_affected();
            counter.inc_by(deleted);
            total += deleted;
            if deleted < cfg.batch_rows as u64 {
                break;
            }
        }
    }
    metrics
        .retention_last_run_seconds
        .set(now.timestamp_micros() as f64 / 1e6);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn only_configured_tables_have_a_cutoff() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        assert!(cutoffs(&RetentionConfig::default(), now).is_empty());
        let cfg = RetentionConfig {
            raw: Some(Duration::from_secs(86_400)),
            anomalies: Some(Duration::from_secs(3_600)),
            ..RetentionConfig::default()
        };
        assert_eq!(
            cutoffs(&cfg, now),
            vec![
                (Table::Readings, now - TimeDelta::days(1)),
                (Table::Anomalies, now - TimeDelta::hours(1)),
            ]
        );
    }

    #[test]
    fn lifetimes_are_validated() {
        assert!(RetentionConfig::default().validate().is_ok());
        let cfg = RetentionConfig {
            minute: Some(Duration::from_secs(1)),
            ..RetentionConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().0, "retention.minute");
        let cfg = RetentionConfig {
            batch_rows: 0,
            ..RetentionConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().0, "retention.batch_rows");
    }
}
