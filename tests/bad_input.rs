//! Every kind of bad input ends as a dead letter with a readable reason, the good parts of
//! a mixed payload are stored, and vigil keeps ingesting.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::vigil::{metric, settings, wait_ready, Publisher};
use common::{count_rows, wait_for, Mosquitto, Postgres};
use serde_json::json;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_with_its_reason_and_ingest_goes_on() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let mut s = settings(&db, &broker.url(), "vigil-bad-input");
    // One writer commits batches in order: once the marker is stored, so is all before it.
    s.writer.writers = 1;
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let now = Utc::now().timestamp_millis();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("sensors/b-1/temp", b"{\"value\": 1".to_vec(), "malformed"),
        (
            "sensors/b-1/temp",
            br#"{"value": "hot"}"#.to_vec(),
            "wrong_type",
        ),
        (
            "sensors/b-1/temp",
            br#"{"ts": true, "value": 1}"#.to_vec(),
            "wrong_type",
        ),
        ("sensors/b-1/temp", b"NaN".to_vec(), "non_finite"),
        ("sensors/b-1/temp", b"Infinity".to_vec(), "non_finite"),
        (
            "sensors/b-1/temp",
            br#"{"value": 1e400}"#.to_vec(),
            "non_finite",
        ),
        (
            "sensors/b-1/temp",
            json!({"ts": 0, "value": 1}).to_string().into_bytes(),
            "timestamp_out_of_window",
        ),
        (
            "sensors/b-1/temp",
            json!({"ts": now + 86_400_000, "value": 1})
                .to_string()
                .into_bytes(),
            "timestamp_out_of_window",
        ),
        (
            "sensors/b-1/temp",
            vec![b'1'; 300 * 1024],
            "payload_too_large",
        ),
        ("sensors/b-1/temp/extra", b"1".to_vec(), "unmapped_topic"),
        ("sensors/b-1/temp", vec![b'1', 0xff, 0xfe], "invalid_utf8"),
        ("sensors/b$1/temp", b"1".to_vec(), "invalid_id"),
        (
            "sensors/b-1",
            br#"{"temp": 1, "hum": "x"}"#.to_vec(),
            "wrong_type",
        ),
        (
            "ingest/line",
            b"m,device=b-1 value=\"text\"".to_vec(),
            "unsupported_value",
        ),
        ("ingest/line", b"m,site=x value=1".to_vec(), "invalid_id"),
        ("devices/b-1/status", b"sleepy".to_vec(), "malformed"),
    ];
    let p = Publisher::connect(broker.port(), "bad-publisher");
    for (topic, payload, _) in &cases {
        p.send(topic, payload.clone()).await;
    }
    // The same malformed message again: a redelivery must not add a second dead letter.
    p.send(cases[0].0, cases[0].1.clone()).await;
    // Ingest goes on after all of that.
    p.send(
        "sensors/b-9/marker",
        json!({"ts": now, "value": 42}).to_string(),
    )
    .await;
    p.wait_acked(cases.len() as u64 + 2, Duration::from_secs(10))
        .await;
    wait_for("the marker reading", Duration::from_secs(30), || {
        let db = db.clone();
        async move {
            count_rows(&db, "SELECT count(*) FROM readings WHERE device_id = 'b-9'").await == 1
        }
    })
    .await;

    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let letters =
        sqlx::query("SELECT topic, reason, detail, payload, source FROM dead_letters ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("query");
    let letters: Vec<(String, String, String, String, String)> = letters
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        letters.len(),
        cases.len(),
        "one dead letter per bad message: {letters:#?}"
    );
    for (topic, payload, reason) in &cases {
        let prefix = String::from_utf8_lossy(&payload[..payload.len().min(64)]).into_owned();
        let found = letters
            .iter()
            .find(|l| &l.0 == topic && l.1 == *reason && l.3.starts_with(&prefix));
        let l =
            found.unwrap_or_else(|| panic!("no {reason} dead letter for {topic}: {letters:#?}"));
        assert!(l.2.len() > 10, "the reason is explained: {l:?}");
        assert_eq!(l.4, "mqtt");
    }
    // Readable reasons, not codes.
    assert!(
        letters
            .iter()
            .any(|l| l.1 == "payload_too_large" && l.2.contains("262144")),
        "{letters:#?}"
    );
    assert!(letters
        .iter()
        .any(|l| l.1 == "unmapped_topic" && l.2.contains("sensors/b-1/temp/extra")));
    assert!(letters
        .iter()
        .any(|l| l.1 == "wrong_type" && l.2.contains("hum")));

    // The good half of the mixed payload was stored.
    assert_eq!(
        count_rows(
            &db,
            "SELECT count(*) FROM readings WHERE device_id = 'b-1' AND metric = 'temp'"
        )
        .await,
        1
    );
    // Counted by reason (the redelivered one counts again: it was refused again).
    assert_eq!(
        metric(&base, r#"vigil_rejections_total{reason="malformed"}"#).await,
        3.0
    );
    assert_eq!(
        metric(&base, r#"vigil_rejections_total{reason="non_finite"}"#).await,
        3.0
    );
    assert_eq!(
        metric(&base, "vigil_dead_letters_stored_total").await,
        cases.len() as f64
    );

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
