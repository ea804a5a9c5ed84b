//! The `anomalies` table: batched inserts, the API's query, and the recent history that
//! rebuilds the detectors' state at start.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use sqlx::{PgPool, Row as _};
use tokio::sync::mpsc;

use super::Anomaly;
use crate::ingest::reading::Reading;

/// Stores anomaly events; one already stored (same series, time, detector) is skipped.
pub async fn insert(pool: &PgPool, events: &[std::sync::Arc<Anomaly>]) -> sqlx::Result<u64> {
    let col = |f: fn(&Anomaly) -> String| events.iter().map(|a| f(a)).collect::<Vec<_>>();
    let done = sqlx::query(
        "INSERT INTO anomalies (device_id, metric, ts, value, score, detector, explanation) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::float8[], \
                              $5::float8[], $6::text[], $7::text[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(col(|a| a.device_id.clone()))
    .bind(col(|a| a.metric.clone()))
    .bind(events.iter().map(|a| a.ts).collect::<Vec<_>>())
    .bind(events.iter().map(|a| a.value).collect::<Vec<_>>())
    .bind(events.iter().map(|a| a.score).collect::<Vec<_>>())
    .bind(col(|a| a.detector.clone()))
    .bind(col(|a| a.explanation.clone()))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Filters of `GET /api/v1/anomalies`.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    pub device: Option<String>,
    pub metric: Option<String>,
    pub from: Option<DateTime<Utc>>,
    /// Inclusive.
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// Stored anomalies matching `f`, newest first.
pub async fn query(pool: &PgPool, f: &AnomalyFilter) -> sqlx::Result<Vec<Anomaly>> {
    let rows = sqlx::query(
        "SELECT device_id, metric, ts, value, score, detector, explanation FROM anomalies \
         WHERE ($1::text IS NULL OR device_id = $1) AND ($2::text IS NULL OR metric = $2) \
           AND ($3::timestamptz IS NULL OR ts >= $3) AND ($4::timestamptz IS NULL OR ts <= $4) \
         ORDER BY ts DESC, id DESC LIMIT $5",
    )
    .bind(&f.device)
    .bind(&f.metric)
    .bind(f.from)
    .bind(f.to)
    .bind(f.limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Anomaly {
                device_id: r.try_get(0)?,
                metric: r.try_get(1)?,
                ts: r.try_get(2)?,
                value: r.try_get(3)?,
                score: r.try_get(4)?,
                detector: r.try_get(5)?,
                explanation: r.try_get(6)?,
            })
        })
        .collect()
}

/// Streams the last `per_series` readings of every series stored since `since`, series
/// by series in time order, in chunks, into `out`. Returns the rows sent.
pub async fn load_recent(
    pool: &PgPool,
    since: DateTime<Utc>,
    per_series: u32,
    out: &mpsc::Sender<Vec<Reading>>,
) -> sqlx::Result<u64> {
    let mut rows = sqlx::query(
        "SELECT device_id, metric, ts, value FROM ( \
             SELECT device_id, metric, ts, value, row_number() OVER \
                 (PARTITION BY device_id, metric ORDER BY ts DESC) AS rn \
             FROM readings WHERE ts >= $1) recent \
         WHERE rn <= $2 ORDER BY device_id, metric, ts",
    )
    .bind(since)
    .bind(i64::from(per_series))
    .fetch(pool);
    let mut chunk = Vec::with_capacity(1024);
    let mut sent = 0;
    while let Some(row) = rows.try_next().await? {
        chunk.push(Reading {
            device_id: row.try_get(0)?,
            metric: row.try_get(1)?,
            ts: row.try_get(2)?,
            value: row.try_get(3)?,
        });
        if chunk.len() == 1024 {
            sent += chunk.len() as u64;
            if out.send(std::mem::take(&mut chunk)).await.is_err() {
                return Ok(sent);
            }
        }
    }
    sent += chunk.len() as u64;
    if !chunk.is_empty() {
        let _ = out.send(chunk).await;
    }
    Ok(sent)
}
