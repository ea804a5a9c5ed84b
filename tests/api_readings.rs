//! `GET /api/v1/readings`: downsampling keeps peaks, stays within max_points, reads the
//! right rollup level, matches the raw readings, sees late data; every bad parameter is a
//! 400 naming it, unknown series a 404.

#[allow(unused_imports)]
mod common;
#[path = "history_support/mod.rs"]
mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::vigil::metric;
use common::{wait_for, Postgres};
use reqwest::StatusCode;
use support::{assert_error, get_json, insert_one, insert_series, points, q, start, wait_rolled_up};

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(3600), 0).unwrap()
}

async fn queries_from(base: &str, source: &str) -> f64 {
    metric(base, &format!("vigil_history_queries_total{{source=\"{source}\"}}")).await
}

/// Rows of `readings_{1m,1h}` that disagree with the same aggregation of raw readings
/// (count, sum, extremes, and the timestamps of the extremes: earliest min, latest max).
async fn rollup_mismatches(pool: &sqlx::PgPool, table: &str, width: &str) -> (i64, i64) {
    let sql = format!(
        "WITH r AS (SELECT device_id, metric, date_bin('{width}', ts, TIMESTAMPTZ 'epoch') AS bucket, \
           count(*) AS n, sum(value) AS s, min(value) AS mn, max(value) AS mx FROM readings GROUP BY 1, 2, 3), \
         e AS (SELECT r.*, \
           (SELECT min(ts) FROM readings x WHERE x.device_id = r.device_id AND x.metric = r.metric \
              AND x.ts >= r.bucket AND x.ts < r.bucket + INTERVAL '{width}' AND x.value = r.mn) AS mn_ts, \
           (SELECT max(ts) FROM readings x WHERE x.device_id = r.device_id AND x.metric = r.metric \
              AND x.ts >= r.bucket AND x.ts < r.bucket + INTERVAL '{width}' AND x.value = r.mx) AS mx_ts \
           FROM r) \
         SELECT count(*) FILTER (WHERE e.n IS DISTINCT FROM m.n OR e.mn IS DISTINCT FROM m.min \
              OR e.mx IS DISTINCT FROM m.max OR e.mn_ts IS DISTINCT FROM m.min_ts \
              OR e.mx_ts IS DISTINCT FROM m.max_ts OR abs(e.s - m.sum) > 1e-6 * greatest(1, abs(e.s)) \
              OR e.n IS NULL OR m.n IS NULL), \
           count(m.n) \
         FROM e FULL JOIN {table} m ON e.device_id = m.device_id AND e.metric = m.metric \
           AND e.bucket = m.bucket"
    );
    sqlx::query_as(&sql).fetch_one(pool).await.expect("comparison query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downsampled_history_keeps_peaks_matches_raw_and_names_bad_parameters() {
    let pg = Postgres::start().await;
    let v = start(&pg, |_| {}).await;
    let (base, pool) = (v.base.clone(), v.pool.clone());

    // 30 days every 10 s, starting off any minute boundary, plus two spikes between samples.
    let start_ts = hour_floor(Utc::now()) - TimeDelta::days(40) + TimeDelta::seconds(17 * 60 + 13);
    let count = 30 * 8640;
    insert_series(&pool, "pump-7", "temperature", start_ts, count, 10.0).await;
    let end_ts = start_ts + TimeDelta::seconds(10 * (count - 1));
    let spike_ts = start_ts + TimeDelta::milliseconds(1_234_567_500);
    let dip_ts = start_ts + TimeDelta::milliseconds(2_000_003_250);
    insert_one(&pool, "pump-7", "temperature", spike_ts, 1e6).await;
    insert_one(&pool, "pump-7", "temperature", dip_ts, -1e6).await;
    insert_series(&pool, "pump-7", "humidity", start_ts, 600, 1.0).await;
    wait_rolled_up(&pool, end_ts).await;

    // Rollups agree with the raw readings, bucket by bucket.
    for (table, width) in [("readings_1m", "1 minute"), ("readings_1h", "1 hour")] {
        let (bad, rows) = rollup_mismatches(&pool, table, width).await;
        assert_eq!(bad, 0, "{table}: rows disagreeing with raw readings");
        assert!(rows > 0, "{table} is empty");
    }

    // 30 days at 1000 points: hourly rollups, both spikes visible at their real times.
    let hours_before = queries_from(&base, "1h").await;
    let path = format!(
        "/api/v1/readings?device=pump-7&metric=temperature&from={}&to={}&max_points=1000",
        q(start_ts),
        q(end_ts)
    );
    let (status, body) = get_json(&base, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(queries_from(&base, "1h").await, hours_before + 1.0);
    assert_eq!(body["device_id"], "pump-7");
    assert_eq!(body["metric"], "temperature");
    assert_eq!(body["downsampled"], true);
    let pts = points(&body);
    assert!(pts.len() <= 1000 && pts.len() >= 500, "{} points", pts.len());
    assert!(pts.windows(2).all(|w| w[0].0 < w[1].0), "time-ordered");
    assert!(pts.contains(&(spike_ts, 1e6)), "the spike is kept");
    assert!(pts.contains(&(dip_ts, -1e6)), "the dip is kept");
    // Every point is a stored reading, at its real timestamp.
    let ts: Vec<DateTime<Utc>> = pts.iter().map(|p| p.0).collect();
    let values: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let real: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM readings r JOIN UNNEST($1::timestamptz[], $2::float8[]) AS p(ts, value) \
         ON r.ts = p.ts AND r.value = p.value WHERE r.device_id = 'pump-7' AND r.metric = 'temperature'",
    )
    .bind(&ts)
    .bind(&values)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(real as usize, pts.len());

    // One day: minute rollups; two days at 10,000 points: raw readings bucketed.
    let minutes_before = queries_from(&base, "1m").await;
    let path = format!(
        "/api/v1/readings?device=pump-7&metric=temperature&from={}&to={}",
        q(spike_ts - TimeDelta::hours(12)),
        q(spike_ts + TimeDelta::hours(12))
    );
    let (status, body) = get_json(&base, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(queries_from(&base, "1m").await, minutes_before + 1.0);
    let pts = points(&body);
    assert!(pts.len() <= 1000 && pts.contains(&(spike_ts, 1e6)));
    let raw_before = queries_from(&base, "raw").await;
    let path = format!(
        "/api/v1/readings?device=pump-7&metric=temperature&from={}&to={}&max_points=10000",
        q(spike_ts - TimeDelta::days(1)),
        q(spike_ts + TimeDelta::days(1))
    );
    let (status, body) = get_json(&base, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(queries_from(&base, "raw").await, raw_before + 1.0);
    let pts = points(&body);
    assert!(pts.len() <= 10_000 && pts.contains(&(spike_ts, 1e6)));
    assert_eq!(body["downsampled"], true);

    // A small range comes back raw and complete: exactly the stored readings.
    let (from, to) = (start_ts + TimeDelta::hours(5), start_ts + TimeDelta::hours(5) + TimeDelta::minutes(10));
    let path = format!(
        "/api/v1/readings?device=pump-7&metric=temperature&from={}&to={}",
        q(from),
        q(to)
    );
    let (status, body) = get_json(&base, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["downsampled"], false);
    let stored: Vec<(DateTime<Utc>, f64)> = sqlx::query_as(
        "SELECT ts, value FROM readings WHERE device_id = 'pump-7' AND metric = 'temperature' \
         AND ts >= $1 AND ts <= $2 ORDER BY ts",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 61);
    assert_eq!(points(&body), stored);

    // Defaults: the last hour, up to 1000 points.
    let recent = Utc::now() - TimeDelta::minutes(10);
    let recent = DateTime::from_timestamp_millis(recent.timestamp_millis()).unwrap();
    insert_one(&pool, "pump-8", "flow", recent, 3.25).await;
    let (status, body) = get_json(&base, "/api/v1/readings?device=pump-8&metric=flow").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(points(&body), vec![(recent, 3.25)]);
    // A known series with nothing in range is an empty answer, not a 404.
    let (status, body) =
        get_json(&base, "/api/v1/readings?device=pump-8&metric=flow&from=0&to=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(points(&body).is_empty());

    // Every bad parameter is a 400 naming it.
    let ok = "device=pump-7&metric=temperature";
    let cases = [
        ("metric=temperature".to_owned(), "device"),
        ("device=pump-7".to_owned(), "metric"),
        ("device=pump%2F7&metric=temperature".to_owned(), "device"),
        ("device=pump-7&metric=temp+c".to_owned(), "metric"),
        (format!("{ok}&from=yesterday"), "from"),
        (format!("{ok}&to=2026-13-01T00:00:00Z"), "to"),
        (format!("{ok}&from=2000&to=1000"), "from"),
        (format!("{ok}&max_points=0"), "max_points"),
        (format!("{ok}&max_points=10001"), "max_points"),
        (format!("{ok}&max_points=lots"), "max_points"),
        (format!("{ok}&maxpoints=10"), "maxpoints"),
        (format!("{ok}&device=pump-8"), "device"),
    ];
    for (query, param) in cases {
        let path = format!("/api/v1/readings?{query}");
        assert_error(&base, &path, StatusCode::BAD_REQUEST, param).await;
    }
    // Unknown device or metric: 404 naming it.
    let path = "/api/v1/readings?device=nobody&metric=temperature";
    assert_error(&base, path, StatusCode::NOT_FOUND, "nobody").await;
    let path = "/api/v1/readings?device=pump-7&metric=pressure";
    assert_error(&base, path, StatusCode::NOT_FOUND, "pressure").await;

    v.app.shutdown();
    v.app.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_readings_in_a_rolled_up_minute_show_up_in_history() {
    let pg = Postgres::start().await;
    // Minutes close as soon as they end, so the recent minute below is rolled up by the
    // range pass (not as late data) within a minute.
    let v = start(&pg, |s| s.history.rollup_delay = Duration::ZERO).await;
    let (base, pool) = (v.base.clone(), v.pool.clone());

    let now = Utc::now();
    let mut minute = DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(60), 0).unwrap();
    if now - minute > TimeDelta::seconds(40) {
        minute += TimeDelta::minutes(1);
    }
    // Readings in the current (or next) minute, plus a day of older ones for context.
    insert_series(&pool, "late-1", "temp", minute - TimeDelta::hours(10), 3600, 10.0).await;
    for i in 0..10 {
        insert_one(&pool, "late-1", "temp", minute + TimeDelta::seconds(i * 5), 25.0).await;
    }
    wait_rolled_up(&pool, minute + TimeDelta::minutes(1)).await;
    let n: i64 = sqlx::query_scalar(
        "SELECT n FROM readings_1m WHERE device_id = 'late-1' AND metric = 'temp' AND bucket = $1",
    )
    .bind(minute)
    .fetch_one(&pool)
    .await
    .expect("the minute is rolled up");
    assert_eq!(n, 10);
    let late_before = metric(&base, "vigil_rollup_late_minutes_total").await;

    // 10 h at 1000 points reads minute rollups for the rolled-up part, that minute included.
    let path = format!(
        "/api/v1/readings?device=late-1&metric=temp&from={}&to={}",
        q(minute - TimeDelta::hours(10)),
        q(minute + TimeDelta::minutes(2))
    );
    let minutes_before = queries_from(&base, "1m").await;
    let (status, body) = get_json(&base, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(queries_from(&base, "1m").await, minutes_before + 1.0);
    let late_ts = minute + TimeDelta::milliseconds(42_500);
    assert!(!points(&body).contains(&(late_ts, 999.0)));

    // A late reading lands in that minute; the answer includes it once it is recomputed.
    insert_one(&pool, "late-1", "temp", late_ts, 999.0).await;
    wait_for("the late reading in history", Duration::from_secs(60), || {
        let (base, path) = (base.clone(), path.clone());
        async move {
            let (status, body) = get_json(&base, &path).await;
            status == StatusCode::OK && points(&body).contains(&(late_ts, 999.0))
        }
    })
    .await;
    wait_for("the late minute counted", Duration::from_secs(10), || {
        let base = base.clone();
        async move { metric(&base, "vigil_rollup_late_minutes_total").await > late_before }
    })
    .await;
    let (n, max, max_ts): (i64, f64, DateTime<Utc>) = sqlx::query_as(
        "SELECT n, max, max_ts FROM readings_1m WHERE device_id = 'late-1' AND metric = 'temp' AND bucket = $1",
    )
    .bind(minute)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((n, max, max_ts), (11, 999.0, late_ts));
    let hour = hour_floor(minute);
    let (hn, hmax): (i64, f64) = sqlx::query_as(
        "SELECT n, max FROM readings_1h WHERE device_id = 'late-1' AND metric = 'temp' AND bucket = $1",
    )
    .bind(hour)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(hmax, 999.0);
    let raw_in_hour: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM readings WHERE device_id = 'late-1' AND metric = 'temp' \
         AND ts >= $1 AND ts < $1 + INTERVAL '1 hour'",
    )
    .bind(hour)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(hn, raw_in_hour);

    v.app.shutdown();
    v.app.wait().await;
}
