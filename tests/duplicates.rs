//! The same reading delivered twice is stored once and broadcast once.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::vigil::{metric, settings, wait_ready, Publisher, TOKEN};
use common::{count_rows, wait_for, Mosquitto, Postgres};
use serde_json::json;
use vigil::live::LiveEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_gives_one_row() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let mut s = settings(&db, &broker.url(), "vigil-dups");
    s.writer.writers = 1;
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    let mut live = app.live.subscribe();

    let ts = Utc::now().timestamp_millis() - 1000;
    let msg = json!({"ts": ts, "value": 7.5}).to_string();
    let p = Publisher::connect(broker.port(), "dup-publisher");
    p.send("sensors/d-1/temp", msg.clone()).await;
    p.send("sensors/d-1/temp", msg.clone()).await;
    // The same (device, metric, ts) with another value is a duplicate too: first wins.
    p.send(
        "sensors/d-1/temp",
        json!({"ts": ts, "value": 9.9}).to_string(),
    )
    .await;
    p.send(
        "sensors/d-1/marker",
        json!({"ts": ts, "value": 1}).to_string(),
    )
    .await;
    p.wait_acked(4, Duration::from_secs(10)).await;
    wait_for("the marker", Duration::from_secs(30), || {
        let db = db.clone();
        async move {
            count_rows(&db, "SELECT count(*) FROM readings WHERE metric = 'marker'").await == 1
        }
    })
    .await;
    assert_eq!(
        count_rows(&db, "SELECT count(*) FROM readings WHERE metric = 'temp'").await,
        1
    );
    assert_eq!(
        count_rows(
            &db,
            "SELECT count(*) FROM readings WHERE metric = 'temp' AND value = 7.5"
        )
        .await,
        1
    );
    assert_eq!(metric(&base, "vigil_readings_duplicate_total").await, 2.0);

    // Over HTTP: a retried request stores nothing new and still answers 200.
    let http = reqwest::Client::new();
    let body = json!([{"device_id": "d-2", "metric": "temp", "ts": ts, "value": 1.0}]).to_string();
    for _ in 0..2 {
        let r = http
            .post(format!("{base}/api/v1/ingest"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        count_rows(&db, "SELECT count(*) FROM readings WHERE device_id = 'd-2'").await,
        1
    );

    // Live consumers saw each stored reading once: d-1/temp, d-1/marker, d-2/temp.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), live.recv()).await {
            Ok(Some(LiveEvent::Readings(b))) => {
                seen.extend(b.iter().map(|r| (r.device_id.clone(), r.metric.clone())))
            }
            other => panic!("live feed: {other:?} after {seen:?}"),
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("d-1".into(), "marker".into()),
            ("d-1".into(), "temp".into()),
            ("d-2".into(), "temp".into())
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), live.recv())
            .await
            .is_err(),
        "nothing broadcast twice"
    );

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
