//! vigil-sim against a real vigil: every reading it publishes is stored, every bad message
//! it sends is rejected with the reason it predicted, and a device whose connection dies
//! is marked offline by its Last Will.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::vigil::{metric, settings, wait_ready};
use common::{count_rows, wait_for, Mosquitto, Postgres};
use serde_json::Value;
use sqlx::Row;

/// Runs the real `vigil-sim` binary with `flags` and returns its JSON summary.
async fn run_sim(flags: Vec<String>, summary: &Path) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-sim"));
    cmd.args(&flags).arg("--summary").arg(summary);
    let run = tokio::task::spawn_blocking(move || cmd.output());
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("vigil-sim ends within 120 s")
        .expect("join")
        .expect("vigil-sim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "vigil-sim {flags:?} failed:\n{stderr}"
    );
    let text = std::fs::read_to_string(summary).expect("summary written");
    serde_json::from_str(&text).expect("summary is JSON")
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulated_reading_arrives_and_bad_input_is_rejected_as_predicted() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let app = vigil::app::start(settings(&db, &broker.url(), "vigil-sim-test"))
        .await
        .expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let labels = dir.path().join("labels.jsonl");
    let url = broker.url();
    let labels_arg = labels.display().to_string();
    let summary = run_sim(
        flags(&[
            "--url",
            &url,
            "--devices",
            "20",
            "--metrics",
            "3",
            "--rate",
            "2000",
            "--count",
            "6000",
            "--qos",
            "1",
            "--connections",
            "2",
            "--seed",
            "5",
            "--anomaly-rate",
            "0.01",
            "--bad-fraction",
            "0.05",
            "--labels",
            &labels_arg,
            "--prefix",
            "simt",
        ]),
        &dir.path().join("summary.json"),
    )
    .await;

    let readings = summary["readings"].as_i64().expect("readings");
    let bad = summary["bad_messages"].as_i64().expect("bad_messages");
    assert_eq!(summary["unacked"], 0, "{summary}");
    assert!(readings > 4000, "{summary}");
    assert!(bad > 100, "{summary}");
    assert!(summary["anomalies"].as_i64().unwrap() > 0, "{summary}");
    let expected: BTreeMap<String, i64> = summary["expected_rejections"]
        .as_object()
        .expect("expected_rejections")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .collect();
    assert_eq!(expected.values().sum::<i64>(), bad);
    assert_eq!(
        expected.len(),
        9,
        "every kind of bad input was sent: {expected:?}"
    );
    let labels_written = std::fs::read_to_string(&labels).expect("labels file");
    assert_eq!(
        labels_written.lines().count() as i64,
        summary["anomalies"].as_i64().unwrap()
    );

    // Every published reading is stored: exactly that many rows.
    let db2 = db.clone();
    wait_for(
        &format!("{readings} rows from vigil-sim"),
        Duration::from_secs(60),
        move || {
            let db = db2.clone();
            async move {
                count_rows(
                    &db,
                    "SELECT count(*) FROM readings WHERE device_id LIKE 'simt-%'",
                )
                .await
                    == readings
            }
        },
    )
    .await;
    // Every bad message is one dead letter, with the predicted reason.
    let db2 = db.clone();
    wait_for(
        &format!("{bad} dead letters"),
        Duration::from_secs(60),
        move || {
            let db = db2.clone();
            async move { count_rows(&db, "SELECT count(*) FROM dead_letters").await == bad }
        },
    )
    .await;
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let stored: BTreeMap<String, i64> =
        sqlx::query("SELECT reason, count(*) FROM dead_letters GROUP BY reason")
            .fetch_all(&pool)
            .await
            .expect("query")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(stored, expected);
    for (reason, n) in &expected {
        let counted = metric(
            &base,
            &format!("vigil_rejections_total{{reason=\"{reason}\"}}"),
        )
        .await;
        assert_eq!(counted as i64, *n, "vigil_rejections_total for {reason}");
    }
    assert_eq!(
        count_rows(
            &db,
            "SELECT count(*) FROM readings WHERE device_id LIKE 'simt-%'"
        )
        .await,
        readings,
        "no extra rows"
    );
    // Retained metadata of every device.
    let with_meta = count_rows(
        &db,
        "SELECT count(*) FROM devices WHERE device_id LIKE 'simt-%' AND meta ? 'model' \
         AND meta->'location' ? 'lat' AND meta->'units' ? 'temperature'",
    )
    .await;
    assert_eq!(with_meta, 20);
    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("vigil stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_device_connection_is_stored_offline_by_its_will() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let app = vigil::app::start(settings(&db, &broker.url(), "vigil-sim-presence"))
        .await
        .expect("vigil starts");
    wait_ready(&format!("http://{}", app.addr)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = broker.url();
    // Three devices, one dropped every second, never back within the run.
    let summary = run_sim(
        flags(&[
            "--url",
            &url,
            "--presence",
            "--devices",
            "3",
            "--metrics",
            "1",
            "--rate",
            "30",
            "--duration",
            "3500ms",
            "--drop-every",
            "1s",
            "--drop-for",
            "1h",
            "--seed",
            "3",
            "--prefix",
            "pres",
        ]),
        &dir.path().join("summary.json"),
    )
    .await;
    let offline: Vec<String> = summary["offline_devices"]
        .as_array()
        .expect("offline_devices")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(!offline.is_empty(), "{summary}");
    assert!(
        offline.len() < 3 || summary["drops"].as_u64() >= Some(3),
        "{summary}"
    );

    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let expected: BTreeMap<String, String> = (0..3)
        .map(|d| {
            let id = format!("pres-{d:04}");
            let status = if offline.contains(&id) {
                "offline"
            } else {
                "online"
            };
            (id, status.to_owned())
        })
        .collect();
    let pool2 = pool.clone();
    let want = expected.clone();
    wait_for(
        "the wills of the dropped devices",
        Duration::from_secs(60),
        move || {
            let pool = pool2.clone();
            let want = want.clone();
            async move {
                let rows = sqlx::query(
                    "SELECT device_id, status FROM devices WHERE device_id LIKE 'pres-%'",
                )
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                let got: BTreeMap<String, String> = rows
                    .iter()
                    .filter_map(|r| Some((r.get(0), r.try_get::<Option<String>, _>(1).ok()??)))
                    .collect();
                got == want
            }
        },
    )
    .await;
    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("vigil stops");
}
