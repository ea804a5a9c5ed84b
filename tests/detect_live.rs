//! Readings with injected anomalies, published over MQTT, become anomaly events: stored,
//! broadcast, counted and served at /api/v1/anomalies; after a restart the detectors are
//! rebuilt from the stored history (no second warm-up); a series returning after a long
//! silence warms up again rather than being flagged for its return.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use common::vigil::{metric, settings, wait_ready, Publisher};
use common::{count_rows, wait_for, Mosquitto, Postgres};
use serde_json::{json, Value};
use vigil::live::LiveEvent;

const STEP_MS: i64 = 60_000;
const SPIKE: usize = 200;
const SHIFT: usize = 250;

/// The value of reading `i` of a steady series around 20 (± 1, deterministic), with a
/// spike at `SPIKE` and a level shift of +5 (about 7 MADs) from `SHIFT` when `anomalous`.
fn value(i: usize, anomalous: bool) -> f64 {
    // splitmix64 of the index: independent-looking noise, the same on every run.
    let mut x = (i as u64).wrapping_add(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
    x ^= x >> 31;
    let noise = ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0;
    match (anomalous, i) {
        (true, SPIKE) => 45.0,
        (true, i) if i >= SHIFT => 25.0 + noise,
        _ => 20.0 + noise,
    }
}

async fn publish(
    p: &Publisher,
    device: &str,
    base_ms: i64,
    range: std::ops::Range<usize>,
    anomalous: bool,
) {
    for i in range {
        let payload = json!({"ts": base_ms + i as i64 * STEP_MS, "value": value(i, anomalous)});
        p.send(&format!("sensors/{device}/temp"), payload.to_string())
            .await;
    }
}

fn at(base_ms: i64, i: usize) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(base_ms + i as i64 * STEP_MS)
        .single()
        .expect("valid time")
}

async fn anomalies(base: &str, query: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}/api/v1/anomalies?{query}"))
        .await
        .expect("reachable");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

async fn wait_anomalies(db: &str, device: &str, n: i64) {
    let sql = format!("SELECT count(*) FROM anomalies WHERE device_id = '{device}'");
    let db = db.to_owned();
    wait_for(
        &format!("{n} anomalies for {device}"),
        Duration::from_secs(60),
        move || {
            let (db, sql) = (db.clone(), sql.clone());
            async move { count_rows(&db, &sql).await >= n }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_anomalies_become_events_stored_broadcast_and_served() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let mut s = settings(&db, &broker.url(), "vigil-detect");
    // One writer commits batches in publish order, so the series is scored in order.
    s.writer.writers = 1;
    let app = vigil::app::start(s.clone()).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    let mut live = app.live.subscribe();

    let base_ms = (Utc::now().timestamp_millis() - 6 * 3_600_000) / STEP_MS * STEP_MS;
    let p = Publisher::connect(broker.port(), "detect-publisher");
    publish(&p, "det-1", base_ms, 0..300, true).await;
    publish(&p, "det-2", base_ms, 0..300, false).await;
    p.wait_acked(600, Duration::from_secs(60)).await;
    wait_for("600 readings stored", Duration::from_secs(60), || {
        let db = db.clone();
        async move { count_rows(&db, "SELECT count(*) FROM readings").await >= 600 }
    })
    .await;
    wait_anomalies(&db, "det-1", 2).await;
    wait_for("every reading scored", Duration::from_secs(60), || {
        let base = base.clone();
        async move { metric(&base, "vigil_detect_points_scored_total").await >= 600.0 }
    })
    .await;

    // Stored, and served newest first.
    let (status, body) = anomalies(&base, "device=det-1").await;
    assert_eq!(status, 200, "{body}");
    let events = body["anomalies"].as_array().expect("a list").clone();
    assert_eq!(events.len(), 2, "one event per anomaly: {body}");
    let shift_ts: DateTime<Utc> = events[0]["ts"]
        .as_str()
        .expect("ts")
        .parse()
        .expect("RFC 3339");
    assert!(
        shift_ts >= at(base_ms, SHIFT) && shift_ts <= at(base_ms, SHIFT + 2),
        "level shift flagged within 3 readings: {body}"
    );
    let spike = &events[1];
    assert_eq!(
        spike["ts"]
            .as_str()
            .expect("ts")
            .parse::<DateTime<Utc>>()
            .expect("time"),
        at(base_ms, SPIKE)
    );
    assert_eq!(spike["value"], 45.0);
    assert_eq!(spike["detector"], "baseline");
    let score = spike["score"].as_f64().expect("score");
    assert!((0.5..=1.0).contains(&score), "{score}");
    assert!(
        spike["explanation"]
            .as_str()
            .expect("text")
            .starts_with("value 45 is "),
        "{spike}"
    );
    let (_, clean) = anomalies(&base, "device=det-2").await;
    assert_eq!(
        clean["anomalies"].as_array().expect("list").len(),
        0,
        "{clean}"
    );

    // Filters and limit.
    let from = at(base_ms, SPIKE + 1).to_rfc3339();
    let (_, later) = anomalies(&base, &format!("metric=temp&from={}", urlencode(&from))).await;
    assert_eq!(
        later["anomalies"].as_array().expect("list").len(),
        1,
        "{later}"
    );
    let (_, one) = anomalies(&base, "limit=1").await;
    assert_eq!(one["anomalies"][0]["ts"], events[0]["ts"]);
    let (status, err) = anomalies(&base, "from=yesterday").await;
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().expect("message").contains("from"),
        "{err}"
    );

    // Broadcast on the live feed after storage.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen.len() < 2 {
            if let Some(LiveEvent::Anomaly(a)) = live.recv().await {
                seen.push(a.ts);
            }
        }
    })
    .await
    .expect("both anomalies broadcast");
    assert!(seen.contains(&at(base_ms, SPIKE)));

    // Counted; nothing skipped.
    for detector in ["baseline", "level_shift", "stuck", "kmeans"] {
        let stored = events.iter().filter(|e| e["detector"] == detector).count();
        let name = format!("vigil_anomalies_total{{detector=\"{detector}\"}}");
        assert_eq!(metric(&base, &name).await, stored as f64, "{name}");
    }
    assert_eq!(metric(&base, "vigil_detect_lagged_total").await, 0.0);
    assert_eq!(metric(&base, "vigil_detect_series").await, 2.0);

    // Restart: the detectors come back from the stored history, so a spike three readings
    // after the restart is flagged (a fresh detector would still be warming up).
    app.shutdown();
    app.wait().await;
    let app = vigil::app::start(s).await.expect("vigil restarts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    let restart_spike = 303;
    for i in 300..306 {
        let v = if i == restart_spike {
            60.0
        } else {
            value(i, true)
        };
        let payload = json!({"ts": base_ms + i as i64 * STEP_MS, "value": v});
        p.send("sensors/det-1/temp", payload.to_string()).await;
    }
    wait_anomalies(&db, "det-1", 3).await;
    let (_, body) = anomalies(&base, "device=det-1&limit=1").await;
    let newest = &body["anomalies"][0];
    assert_eq!(
        newest["ts"]
            .as_str()
            .expect("ts")
            .parse::<DateTime<Utc>>()
            .expect("time"),
        at(base_ms, restart_spike)
    );
    assert_eq!(newest["value"], 60.0);

    // A series that was away for most of a day returns at another level: it warms up
    // again instead of being flagged for it, and a spike once it is warm still is.
    let away_ms = base_ms - 20 * 3_600_000;
    publish(&p, "det-3", away_ms, 0..200, false).await;
    let returned_spike = 60;
    for i in 0..100 {
        let v = if i == returned_spike {
            45.0
        } else {
            value(i, false) + 7.0
        };
        let payload = json!({"ts": base_ms + i as i64 * STEP_MS, "value": v});
        p.send("sensors/det-3/temp", payload.to_string()).await;
    }
    wait_anomalies(&db, "det-3", 1).await;
    wait_for(
        "the returned series scored",
        Duration::from_secs(60),
        || {
            let base = base.clone();
            async move { metric(&base, "vigil_detect_points_scored_total").await >= 306.0 }
        },
    )
    .await;
    let (_, body) = anomalies(&base, "device=det-3").await;
    let events = body["anomalies"].as_array().expect("a list");
    assert_eq!(events.len(), 1, "only the spike, not the return: {body}");
    assert_eq!(events[0]["value"], 45.0, "{body}");
    app.shutdown();
    app.wait().await;
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
