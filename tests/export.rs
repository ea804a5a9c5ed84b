//! `GET /api/v1/export`: CSV and Arrow IPC round trips, whole-fleet export, streaming with
//! backpressure (PostgreSQL waits on vigil while the client has not read), bad parameters.

#[allow(unused_imports)]
mod common;
#[path = "history_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use arrow_array::{Float64Array, StringArray, TimestampMicrosecondArray};
use arrow_ipc::reader::StreamReader;
use chrono::{DateTime, TimeDelta, Utc};
use common::{wait_for, Postgres};
use reqwest::StatusCode;
use support::{assert_error, insert_series, q, start};

type Row = (String, String, DateTime<Utc>, f64);

async fn stored(pool: &sqlx::PgPool, device: Option<&str>, metric: Option<&str>) -> Vec<Row> {
    sqlx::query_as(
        "SELECT device_id, metric, ts, value FROM readings \
         WHERE ($1::text IS NULL OR device_id = $1) AND ($2::text IS NULL OR metric = $2) \
         ORDER BY device_id, metric, ts",
    )
    .bind(device)
    .bind(metric)
    .fetch_all(pool)
    .await
    .expect("stored rows")
}

fn parse_csv(text: &str) -> Vec<Row> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("device_id,metric,ts,value"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().expect("RFC 3339"),
                f[3].parse().expect("number"),
            )
        })
        .collect()
}

fn parse_arrow(bytes: Vec<u8>) -> (Vec<Row>, usize) {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("arrow stream");
    let schema = reader.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["device_id", "metric", "ts", "value"]);
    let mut rows = Vec::new();
    let mut batches = 0;
    for batch in reader {
        let b = batch.expect("record batch");
        batches += 1;
        let d = b.column(0).as_any().downcast_ref::<StringArray>().expect("utf8");
        let m = b.column(1).as_any().downcast_ref::<StringArray>().expect("utf8");
        let t = b.column(2).as_any().downcast_ref::<TimestampMicrosecondArray>().expect("ts");
        let v = b.column(3).as_any().downcast_ref::<Float64Array>().expect("f64");
        for i in 0..b.num_rows() {
            rows.push((
                d.value(i).to_owned(),
                m.value(i).to_owned(),
                DateTime::from_timestamp_micros(t.value(i)).expect("ts"),
                v.value(i),
            ));
        }
    }
    (rows, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_arrow_round_trip_every_row() {
    let pg = Postgres::start().await;
    let v = start(&pg, |s| s.history.export_batch_rows = 1000).await;
    let (base, pool) = (v.base.clone(), v.pool.clone());
    let t0 = Utc::now() - TimeDelta::days(2) + TimeDelta::microseconds(123_457);
    for device in ["exp-1", "exp-2"] {
        for metric in ["temp", "hum"] {
            insert_series(&pool, device, metric, t0, 2_500, 0.25).await;
        }
    }
    let range = format!("from={}&to={}", q(t0 - TimeDelta::seconds(1)), q(Utc::now()));
    let client = reqwest::Client::new();

    // One series as CSV: every row, in time order, exactly.
    let r = client
        .get(format!("{base}/api/v1/export?device=exp-1&metric=temp&{range}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"vigil-exp-1-temp.csv\""), "{disposition}");
    let rows = parse_csv(&r.text().await.unwrap());
    assert_eq!(rows.len(), 2_500);
    assert_eq!(rows, stored(&pool, Some("exp-1"), Some("temp")).await);

    // One device as Arrow: every metric, several record batches, every row.
    let r = client
        .get(format!("{base}/api/v1/export?device=exp-2&format=arrow&{range}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/vnd.apache.arrow.stream");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("vigil-exp-2.arrow"));
    let (rows, batches) = parse_arrow(r.bytes().await.unwrap().to_vec());
    assert_eq!(rows, stored(&pool, Some("exp-2"), None).await);
    assert!(batches >= 5, "{batches} batches of at most 1000 rows");

    // The whole fleet (storage order), and one metric across the fleet.
    let r = client.get(format!("{base}/api/v1/export?{range}")).send().await.unwrap();
    let all: BTreeSet<String> = parse_csv(&r.text().await.unwrap())
        .into_iter()
        .map(|r| format!("{r:?}"))
        .collect();
    let want: BTreeSet<String> = stored(&pool, None, None).await.into_iter().map(|r| format!("{r:?}")).collect();
    assert_eq!(all.len(), 10_000);
    assert_eq!(all, want);
    let r = client
        .get(format!("{base}/api/v1/export?metric=hum&format=arrow&{range}"))
        .send()
        .await
        .unwrap();
    let (mut rows, _) = parse_arrow(r.bytes().await.unwrap().to_vec());
    rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    assert_eq!(rows, stored(&pool, None, Some("hum")).await);

    // An empty range is a valid, empty file in both formats.
    let r = client
        .get(format!("{base}/api/v1/export?device=exp-1&metric=temp&from=0&to=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "device_id,metric,ts,value\n");
    let r = client
        .get(format!("{base}/api/v1/export?device=exp-1&format=arrow&from=0&to=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(parse_arrow(r.bytes().await.unwrap().to_vec()).0, vec![]);

    // Bad parameters and unknown series.
    let cases = [
        ("format=parquet", "format"),
        ("from=soon", "from"),
        ("to=x", "to"),
        ("from=2000&to=1000", "from"),
        ("device=a/b", "device"),
        ("metric=", "metric"),
        ("limit=5", "limit"),
    ];
    for (query, param) in cases {
        let path = format!("/api/v1/export?{query}");
        assert_error(&base, &path, StatusCode::BAD_REQUEST, param).await;
    }
    assert_error(&base, "/api/v1/export?device=ghost", StatusCode::NOT_FOUND, "ghost").await;
    let path = "/api/v1/export?device=exp-1&metric=pressure";
    assert_error(&base, path, StatusCode::NOT_FOUND, "pressure").await;

    v.app.shutdown();
    v.app.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_export_streams_under_backpressure() {
    let pg = Postgres::start().await;
    let v = start(&pg, |s| s.history.rollups = false).await;
    let (base, pool) = (v.base.clone(), v.pool.clone());
    let rows = 600_000_i64;
    let t0 = Utc::now() - TimeDelta::days(30);
    insert_series(&pool, "big-1", "temp", t0, rows, 1.0).await;

    let mut r = reqwest::get(format!(
        "{base}/api/v1/export?device=big-1&metric=temp&from={}",
        q(t0)
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut received = r.chunk().await.unwrap().expect("a first chunk").to_vec();

    // With the client not reading, the export query is still running and PostgreSQL is
    // blocked writing to vigil: rows are not being collected in memory.
    wait_for("the export query to wait on its client", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND wait_event = 'ClientWrite' AND query LIKE 'SELECT device_id, metric, ts, value FROM readings%'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            waiting == 1
        }
    })
    .await;

    while let Some(chunk) = r.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(received).unwrap();
    let lines = text.lines().count() as i64;
    assert_eq!(lines, rows + 1, "header and every row");
    assert!(metric_rows(&base).await >= rows as f64);

    v.app.shutdown();
    v.app.wait().await;
}

async fn metric_rows(base: &str) -> f64 {
    common::vigil::metric(base, "vigil_export_rows_total{format=\"csv\"}").await
}
