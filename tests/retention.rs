//! Retention deletes rows past their lifetime, in chunks, and only those; it counts them
//! by table; tables without a lifetime are left alone.

#[allow(unused_imports)]
mod common;
#[path = "history_support/mod.rs"]
mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::vigil::metric;
use common::{wait_for, Postgres};
use support::{insert_series, start};

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Rollup rows for `n` consecutive buckets of `width` from `start` (inserted directly:
/// the rollup task is off here so that only retention touches these tables).
async fn insert_rollups(pool: &sqlx::PgPool, table: &str, start: DateTime<Utc>, n: i64, width: &str) {
    let sql = format!(
        "INSERT INTO {table} (device_id, metric, bucket, n, sum, min, min_ts, max, max_ts) \
         SELECT 'ret-1', 'temp', b, 1, 1, 1, b, 1, b FROM \
         (SELECT $1 + i * INTERVAL '{width}' AS b FROM generate_series(0, $2 - 1) AS i) s"
    );
    sqlx::query(&sql).bind(start).bind(n).execute(pool).await.expect("insert rollups");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_rows_are_deleted_in_chunks_and_counted() {
    let pg = Postgres::start().await;
    // Set up the data before vigil starts, so the first pass sees all of it.
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    vigil::store::migrate(&pool).await.unwrap();
    let now = Utc::now();
    let day = TimeDelta::days(1);
    // readings: 1,234 from 12 days ago (1,200 s), 500 from 1 day ago.
    insert_series(&pool, "ret-1", "temp", now - day * 12, 1_234, 1.0).await;
    insert_series(&pool, "ret-1", "temp", now - day, 500, 1.0).await;
    // readings_1m: 250 minutes 40 days ago, 100 minutes a day ago; readings_1h kept forever.
    insert_rollups(&pool, "readings_1m", now - day * 40, 250, "1 minute").await;
    insert_rollups(&pool, "readings_1m", now - day, 100, "1 minute").await;
    insert_rollups(&pool, "readings_1h", now - day * 400, 300, "1 hour").await;
    // dead letters: 30 old, 7 recent.
    sqlx::query(
        "INSERT INTO dead_letters (fingerprint, received_at, source, topic, payload, reason, detail) \
         SELECT decode(md5(i::text), 'hex'), CASE WHEN i < 30 THEN $1 ELSE $2 END, \
         'mqtt', 't', 'p', 'malformed', 'd' FROM generate_series(0, 36) AS i",
    )
    .bind(now - day * 8)
    .bind(now - TimeDelta::hours(1))
    .execute(&pool)
    .await
    .unwrap();
    // anomalies: created here when no migration has (its retention needs only `ts`).
    let had_anomalies: bool =
        sqlx::query_scalar("SELECT to_regclass('anomalies') IS NOT NULL").fetch_one(&pool).await.unwrap();
    if !had_anomalies {
        sqlx::query("CREATE TABLE anomalies (device_id text, metric text, ts timestamptz NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO anomalies SELECT 'ret-1', 'temp', $1 - i * INTERVAL '1 hour' \
             FROM generate_series(0, 47) AS i",
        )
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    }

    let v = start(&pg, |s| {
        s.history.rollups = false;
        s.retention.interval = Duration::from_millis(200);
        s.retention.batch_rows = 100;
        s.retention.raw = Some(Duration::from_secs(7 * 86_400));
        s.retention.minute = Some(Duration::from_secs(30 * 86_400));
        s.retention.dead_letters = Some(Duration::from_secs(2 * 86_400));
        s.retention.anomalies = Some(Duration::from_secs(86_400));
    })
    .await;
    let base = v.base.clone();
    wait_for("a retention pass", Duration::from_secs(60), || {
        let base = base.clone();
        async move { metric(&base, "vigil_retention_last_run_timestamp_seconds").await > 0.0 }
    })
    .await;

    let deleted = |table: &'static str| {
        let base = base.clone();
        async move { metric(&base, &format!("vigil_retention_deleted_rows_total{{table=\"{table}\"}}")).await }
    };
    assert_eq!(deleted("readings").await, 1_234.0);
    assert_eq!(deleted("readings_1m").await, 250.0);
    assert_eq!(deleted("readings_1h").await, 0.0);
    assert_eq!(deleted("dead_letters").await, 30.0);
    assert_eq!(count(&pool, "SELECT count(*) FROM readings").await, 500);
    assert_eq!(count(&pool, "SELECT count(*) FROM readings WHERE ts < now() - INTERVAL '7 days'").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM readings_1m").await, 100);
    assert_eq!(count(&pool, "SELECT count(*) FROM readings_1h").await, 300);
    assert_eq!(count(&pool, "SELECT count(*) FROM dead_letters").await, 7);
    if !had_anomalies {
        // 48 hourly events back from now: those older than a day go (24 or 25 of them,
        // depending on the instant of the pass), the rest stay.
        let left = count(&pool, "SELECT count(*) FROM anomalies").await;
        assert_eq!(deleted("anomalies").await as i64 + left, 48);
        assert!((23..=25).contains(&left), "{left} anomalies left");
        assert_eq!(
            count(&pool, "SELECT count(*) FROM anomalies WHERE ts < now() - INTERVAL '1 day' - INTERVAL '1 minute'").await,
            0
        );
    } else {
        assert_eq!(
            count(&pool, "SELECT count(*) FROM anomalies WHERE ts < now() - INTERVAL '1 day' - INTERVAL '1 minute'").await,
            0
        );
    }
    assert_eq!(metric(&base, "vigil_retention_errors_total").await, 0.0);

    v.app.shutdown();
    v.app.wait().await;
}
