//! Every payload format, over MQTT and HTTP, ends as the rows it describes.

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::vigil::{settings, wait_ready, Publisher, TOKEN};
use common::{wait_for, Mosquitto, Postgres};
use serde_json::{json, Value};
use sqlx::Row;
use vigil::live::LiveEvent;

/// (ts in unix ms, value) of every row of one series.
async fn series(db: &str, device: &str, metric: &str) -> Vec<(i64, f64)> {
    let pool = sqlx::PgPool::connect(db).await.expect("db");
    let rows = sqlx::query(
        "SELECT (extract(epoch FROM ts) * 1000)::bigint, value FROM readings \
         WHERE device_id = $1 AND metric = $2 ORDER BY ts",
    )
    .bind(device)
    .bind(metric)
    .fetch_all(&pool)
    .await
    .expect("query");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

async fn wait_rows(db: &str, n: i64) {
    let db = db.to_owned();
    wait_for(
        &format!("{n} rows in readings"),
        Duration::from_secs(30),
        move || {
            let db = db.clone();
            async move { common::count_rows(&db, "SELECT count(*) FROM readings").await >= n }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_round_trips_over_mqtt_and_http() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let mut s = settings(&db, &broker.url(), "vigil-roundtrip");
    s.http.max_body_bytes = 64 * 1024;
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    let mut live = app.live.subscribe();

    let now_ms = Utc::now().timestamp_millis();
    let t1 = now_ms - 60_000;
    let t2 = Utc.timestamp_millis_opt(now_ms - 50_000).unwrap();
    let t3_s = (now_ms - 40_000) / 1000;
    let t4_ns = (now_ms - 30_000) * 1_000_000;

    let p = Publisher::connect(broker.port(), "rt-publisher");
    p.send(
        "sensors/rt-1/temp",
        json!({"ts": t1, "value": 21.5}).to_string(),
    )
    .await;
    p.send("sensors/rt-1/hum", "40.5").await;
    p.send(
        "sensors/rt-2",
        json!({"ts": t2.to_rfc3339(), "temp": 1.5, "hum": 2}).to_string(),
    )
    .await;
    let senml = json!([
        {"bn": "ignored:", "bt": t3_s, "n": "temp", "v": 3.5},
        {"n": "door", "vb": true, "t": 1}
    ]);
    p.send("sensors/rt-3", senml.to_string()).await;
    p.send(
        "ingest/line",
        format!("weather,device=rt-4 temp=4.5,value=7i {t4_ns}"),
    )
    .await;
    p.send(
        "devices/rt-1/meta",
        json!({"model": "X1", "location": {"lat": 52.5, "lon": 13.4}}).to_string(),
    )
    .await;
    p.send("devices/rt-1/status", "offline").await;
    p.wait_acked(7, Duration::from_secs(10)).await;
    wait_rows(&db, 8).await;

    assert_eq!(series(&db, "rt-1", "temp").await, vec![(t1, 21.5)]);
    let hum = series(&db, "rt-1", "hum").await;
    assert_eq!(hum.len(), 1);
    assert_eq!(hum[0].1, 40.5);
    assert!(
        (hum[0].0 - now_ms).abs() < 60_000,
        "a bare number is stamped on arrival"
    );
    assert_eq!(
        series(&db, "rt-2", "temp").await,
        vec![(t2.timestamp_millis(), 1.5)]
    );
    assert_eq!(
        series(&db, "rt-2", "hum").await,
        vec![(t2.timestamp_millis(), 2.0)]
    );
    assert_eq!(series(&db, "rt-3", "temp").await, vec![(t3_s * 1000, 3.5)]);
    assert_eq!(
        series(&db, "rt-3", "door").await,
        vec![(t3_s * 1000 + 1000, 1.0)]
    );
    assert_eq!(
        series(&db, "rt-4", "weather.temp").await,
        vec![(t4_ns / 1_000_000, 4.5)]
    );
    assert_eq!(
        series(&db, "rt-4", "weather").await,
        vec![(t4_ns / 1_000_000, 7.0)]
    );

    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    wait_for(
        "device metadata and status",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let row = sqlx::query("SELECT meta, status FROM devices WHERE device_id = 'rt-1'")
                    .fetch_optional(&pool)
                    .await
                    .expect("query");
                row.is_some_and(|r| {
                    let meta: Value = r.get(0);
                    let status: Option<String> = r.get(1);
                    meta["model"] == "X1"
                        && meta["location"]["lat"] == 52.5
                        && status.as_deref() == Some("offline")
                })
            }
        },
    )
    .await;

    // HTTP: JSON readings, SenML and line protocol, each answered after the commit.
    let http = reqwest::Client::new();
    let ingest = format!("{base}/api/v1/ingest");
    let post = |ct: &'static str, body: String| {
        http.post(&ingest)
            .bearer_auth(TOKEN)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = post(
        "application/json",
        json!([
            {"device_id": "h-1", "metric": "temp", "ts": t1, "value": 5.0},
            {"device_id": "h-1", "metric": "temp", "ts": t2.to_rfc3339(), "value": 6.0}
        ])
        .to_string(),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["accepted"], 2);
    // Answered after the commit: the rows are there already.
    assert_eq!(series(&db, "h-1", "temp").await.len(), 2);

    let r = post(
        "application/senml+json",
        json!([{"bn": "h-2:", "bt": t3_s, "n": "v", "v": 1}]).to_string(),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(series(&db, "h-2", "v").await, vec![(t3_s * 1000, 1.0)]);

    let r = post("text/plain", format!("m,device=h-3 value=9 {t4_ns}\n"))
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(
        series(&db, "h-3", "m").await,
        vec![(t4_ns / 1_000_000, 9.0)]
    );

    // A partly bad body stores the good readings and names the bad one.
    let r = post(
        "application/json",
        json!([
            {"device_id": "h-4", "metric": "temp", "ts": t1, "value": 1.0},
            {"device_id": "h-4", "metric": "temp", "ts": t2.to_rfc3339(), "value": "warm"}
        ])
        .to_string(),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["reason"], "wrong_type");
    assert!(
        body["rejected"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("value"),
        "{body}"
    );
    assert_eq!(series(&db, "h-4", "temp").await, vec![(t1, 1.0)]);

    // Authentication and size limits.
    let r = http.post(&ingest).body("[]").send().await.expect("post");
    assert_eq!(r.status(), 401);
    let r = http
        .post(&ingest)
        .bearer_auth("wrong")
        .body("[]")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let r = post("application/json", "x".repeat(100 * 1024))
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    let r = post("application/json", "{not json".into())
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("malformed"));

    // Live consumers saw every stored reading exactly once.
    let stored = common::count_rows(&db, "SELECT count(*) FROM readings").await;
    let mut seen = 0;
    while seen < stored {
        match tokio::time::timeout(Duration::from_secs(5), live.recv()).await {
            Ok(Some(LiveEvent::Readings(b))) => seen += b.len() as i64,
            // Device updates and anomaly events travel on the same feed.
            Ok(Some(LiveEvent::Device(_) | LiveEvent::Anomaly(_))) => {}
            other => panic!("live feed ended early after {seen} of {stored}: {other:?}"),
        }
    }
    assert_eq!(seen, stored);

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
