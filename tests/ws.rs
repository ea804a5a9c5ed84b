//! `GET /ws`: filters, batching, the backfill seam, lag notices, bad client messages,
//! limits, slow and dead clients, device and anomaly messages, against a real vigil on
//! PostgreSQL and Mosquitto.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::vigil::{metric, settings, wait_ready, Publisher};
use common::ws::{tally, Seen, WsClient};
use common::{count_rows, wait_for, Mosquitto, Postgres};
use futures_util::SinkExt as _;
use serde_json::{json, Value};
use vigil::app::App;
use vigil::config::Settings;
use vigil::ingest::reading::Reading;
use vigil::live::LiveMessage;

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    pg: Postgres,
    broker: Mosquitto,
    app: App,
    base: String,
}

async fn start(id: &str, tune: impl FnOnce(&mut Settings)) -> Env {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let mut s = settings(&pg.url(), &broker.url(), id);
    tune(&mut s);
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    Env {
        pg,
        broker,
        app,
        base,
    }
}

impl Env {
    async fn wait_rows(&self, n: i64) {
        let db = self.pg.url();
        wait_for(&format!("{n} rows stored"), WAIT, move || {
            let db = db.clone();
            async move { count_rows(&db, "SELECT count(*) FROM readings").await >= n }
        })
        .await;
    }

    async fn wait_metric(&self, name: &str, at_least: f64) {
        let (base, name) = (self.base.clone(), name.to_owned());
        wait_for(&format!("{name} >= {at_least}"), WAIT, move || {
            let (base, name) = (base.clone(), name.clone());
            async move { metric(&base, &name).await >= at_least }
        })
        .await;
    }
}

fn payload(ts_ms: i64, value: f64) -> String {
    json!({"ts": ts_ms, "value": value}).to_string()
}

fn key(d: &str, m: &str, ts: i64) -> (String, String, i64) {
    (d.to_owned(), m.to_owned(), ts)
}

/// `n` readings of one series for injecting straight into the live feed.
fn batch(device: &str, metric: &str, first_ms: i64, n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            device_id: device.into(),
            metric: metric.into(),
            ts: Utc.timestamp_millis_opt(first_ms + i as i64).unwrap(),
            value: i as f64,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_delivers_exactly_the_matching_readings() {
    let env = start("vigil-ws-filters", |_| {}).await;
    let filters = ["#", "f-1/+", "+/temp", "f-2/hum", "f-3/#"];
    let mut clients = Vec::new();
    for f in filters {
        let mut c = WsClient::connect(env.app.addr).await;
        let reply = c.subscribe(f).await;
        assert_eq!(reply["filter"], f);
        clients.push(c);
    }
    let p = Publisher::connect(env.broker.port(), "ws-filters-pub");
    let t0 = Utc::now().timestamp_millis() - 60_000;
    let mut sent = Vec::new();
    for i in 0..10 {
        for d in ["f-1", "f-2", "f-3"] {
            for m in ["temp", "hum"] {
                p.send(&format!("sensors/{d}/{m}"), payload(t0 + i, i as f64))
                    .await;
                sent.push(key(d, m, t0 + i));
            }
        }
    }
    env.wait_rows(60).await;
    // Sentinels, stored after everything else: one that each filter matches.
    let sentinels = [
        key("f-1", "temp", t0 + 100),
        key("f-2", "hum", t0 + 100),
        key("f-3", "hum", t0 + 100),
    ];
    for (d, m, ts) in &sentinels {
        p.send(&format!("sensors/{d}/{m}"), payload(*ts, -1.0))
            .await;
    }
    for (f, c) in filters.iter().zip(clients.iter_mut()) {
        let matches = |k: &(String, String, i64)| match *f {
            "#" => true,
            "f-1/+" => k.0 == "f-1",
            "+/temp" => k.1 == "temp",
            "f-2/hum" => k.0 == "f-2" && k.1 == "hum",
            "f-3/#" => k.0 == "f-3",
            _ => unreachable!(),
        };
        let expected: HashSet<_> = sent
            .iter()
            .chain(&sentinels)
            .filter(|k| matches(k))
            .cloned()
            .collect();
        let (got, frames) = c
            .readings_until(|all: &[Seen]| {
                let keys: HashSet<_> = all.iter().map(|(d, m, ts, _)| key(d, m, *ts)).collect();
                expected.is_subset(&keys)
            })
            .await;
        let counts = tally(&got);
        let unexpected: Vec<_> = counts.keys().filter(|k| !expected.contains(*k)).collect();
        assert!(unexpected.is_empty(), "{f}: unexpected {unexpected:?}");
        assert!(
            counts.values().all(|&n| n == 1),
            "{f}: duplicates in {counts:?}"
        );
        assert!(frames <= got.len(), "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arriving_together_go_out_in_few_frames() {
    let env = start("vigil-ws-batch", |s| {
        s.stream.batch_interval = Duration::from_millis(500);
    })
    .await;
    let mut c = WsClient::connect(env.app.addr).await;
    c.subscribe("b/+").await;
    let t0 = Utc::now().timestamp_millis();
    // One committed batch of 1,000 readings is one frame.
    env.app.live.publish(batch("b", "m", t0, 1000));
    let v = c.next_json().await;
    assert_eq!(v["readings"].as_array().unwrap().len(), 1000);
    // Ten batches in a row, right after a frame went out, wait for the next batch time.
    for i in 0..10 {
        env.app.live.publish(batch("b", "n", t0 + i * 100, 100));
    }
    let (got, frames) = c.readings_until(|all| all.len() >= 1000).await;
    assert_eq!(got.len(), 1000);
    assert!(frames < 10, "10 committed batches came in {frames} frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_live_tail_has_no_gap_and_no_duplicate() {
    let env = start("vigil-ws-seam", |_| {}).await;
    let p = Publisher::connect(env.broker.port(), "ws-seam-pub");
    let since = Utc::now().timestamp_millis() - 600_000;
    // Before `since`: stored, never expected.
    for i in 0..5 {
        p.send("sensors/bf/m", payload(since - 1000 + i, 0.0)).await;
    }
    // Stored before the subscription: even timestamps.
    let mut expected = HashSet::new();
    for i in 0..200 {
        p.send("sensors/bf/m", payload(since + 2 * i, 1.0)).await;
        expected.insert(key("bf", "m", since + 2 * i));
    }
    env.wait_rows(205).await;
    // Published around the subscription: odd timestamps, interleaved in time with the
    // stored ones, so only a key comparison can tell the two apart at the seam.
    let live = Arc::new(Publisher::connect(env.broker.port(), "ws-seam-live"));
    let publishing = {
        let live = live.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            for i in 0..300 {
                tick.tick().await;
                live.send("sensors/bf/m", payload(since + 2 * i + 1, 2.0))
                    .await;
            }
        })
    };
    for i in 0..300 {
        expected.insert(key("bf", "m", since + 2 * i + 1));
    }
    env.wait_rows(255).await;
    let mut c = WsClient::connect(env.app.addr).await;
    c.send(json!({"op": "subscribe", "filter": "bf/+", "since": since}))
        .await;
    publishing.await.unwrap();
    env.wait_rows(505).await;
    let sentinel = key("bf", "m", since + 100_000);
    p.send("sensors/bf/m", payload(sentinel.2, 3.0)).await;
    expected.insert(sentinel.clone());

    let mut got: Vec<Seen> = Vec::new();
    let mut backfilled = None;
    loop {
        let keys: HashSet<_> = got.iter().map(|(d, m, ts, _)| key(d, m, *ts)).collect();
        if backfilled.is_some() && expected.is_subset(&keys) {
            break;
        }
        let v = c.next_json().await;
        match v["type"].as_str() {
            Some("readings") => got.extend(
                v["readings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(common::ws::seen),
            ),
            Some("subscribed") => {
                assert_eq!(v["truncated"], false, "{v}");
                backfilled = v["backfilled"].as_u64();
            }
            _ => panic!("unexpected {v}"),
        }
    }
    let counts = tally(&got);
    let dups: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "duplicates at the seam: {dups:?}");
    let extra: Vec<_> = counts.keys().filter(|k| !expected.contains(*k)).collect();
    assert!(
        extra.is_empty(),
        "readings before since or unknown: {extra:?}"
    );
    assert!(backfilled.unwrap() >= 250, "backfilled {backfilled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_error_frames_and_limits_hold() {
    let env = start("vigil-ws-bad", |s| {
        s.stream.max_subscriptions = 2;
        s.stream.max_connections = 2;
    })
    .await;
    let mut c = WsClient::connect(env.app.addr).await;
    for (bad, says) in [
        ("not json", "not JSON"),
        (r#"{"op":"dance","filter":"a/b"}"#, "unknown op"),
        (r#"{"op":"subscribe","filter":"a/b/c"}"#, "two levels"),
        (r#"{"op":"subscribe","filter":"pump+/x"}"#, "device level"),
        (
            r#"{"op":"subscribe","filter":"a/+","since":"last tuesday"}"#,
            "since",
        ),
        (
            r#"{"op":"unsubscribe","filter":"never/subscribed"}"#,
            "not subscribed",
        ),
    ] {
        c.send_text(bad).await;
        let v = c.next_json().await;
        assert_eq!(v["type"], "error", "{bad} -> {v}");
        assert!(
            v["message"].as_str().unwrap().contains(says),
            "{bad} -> {v}"
        );
    }
    c.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1u8, 2,
    ]))
    .await
    .unwrap();
    assert_eq!(c.next_json().await["type"], "error");
    // Subscriptions: two fit, a third is refused, the connection still works.
    c.subscribe("ok/+").await;
    c.subscribe("+/other").await;
    c.send(json!({"op": "subscribe", "filter": "third/+"}))
        .await;
    let v = c.next_json().await;
    assert_eq!(v["type"], "error");
    assert!(
        v["message"].as_str().unwrap().contains("max_subscriptions"),
        "{v}"
    );
    env.app.live.publish(batch("ok", "m", 0, 3));
    let (got, _) = c.readings_until(|all| all.len() >= 3).await;
    assert_eq!(got.len(), 3);
    c.send(json!({"op": "unsubscribe", "filter": "+/other"}))
        .await;
    assert_eq!(c.next_json().await["type"], "unsubscribed");
    c.subscribe("third/+").await;

    // Connections: the third is refused with 503 and a reason.
    let _second = WsClient::connect(env.app.addr).await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", env.app.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("max_connections"), "{body}");
        }
        other => panic!("third connection not refused: {:?}", other.map(|_| ())),
    }
    assert!(metric(&env.base, "vigil_stream_refused_total").await >= 1.0);
    drop(c);
    env.wait_metric("vigil_stream_disconnects_total{reason=\"closed\"}", 1.0)
        .await;
    let mut again = WsClient::connect(env.app.addr).await;
    again.subscribe("#").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_told_how_much_it_skipped() {
    let env = start("vigil-ws-lag", |s| {
        s.stream.queue_capacity = 2;
        s.stream.slow_client_timeout = Duration::from_secs(300);
        s.stream.ping_interval = Duration::from_secs(300);
    })
    .await;
    let mut c = WsClient::connect_small(env.app.addr).await;
    c.subscribe("lag/+").await;
    // 300 batches of 1,000 readings (about 27 MB of JSON): far more than the sockets
    // hold while the client is not reading, so its queue overflows.
    let (batches, per) = (300usize, 1000usize);
    for i in 0..batches {
        env.app
            .live
            .publish(batch("lag", "m", (i * per) as i64, per));
    }
    env.wait_metric("vigil_stream_lagged_total", 1.0).await;
    let (mut received, mut skipped, mut notices) = (0u64, 0u64, 0);
    while received + skipped < (batches * per) as u64 {
        let v = c.next_json().await;
        match v["type"].as_str() {
            Some("readings") => received += v["readings"].as_array().unwrap().len() as u64,
            Some("lagged") => {
                skipped += v["skipped"].as_u64().unwrap();
                notices += 1;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!(
        received + skipped,
        (batches * per) as u64,
        "every reading accounted for"
    );
    assert!(notices >= 1 && skipped > 0);
    assert_eq!(
        metric(&env.base, "vigil_stream_lagged_total").await,
        skipped as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_is_disconnected_while_ingest_and_others_go_on() {
    let env = start("vigil-ws-stuck", |s| {
        s.stream.queue_capacity = 4;
        s.stream.slow_client_timeout = Duration::from_secs(1);
        s.stream.ping_interval = Duration::from_secs(300);
    })
    .await;
    let mut stuck = WsClient::connect_small(env.app.addr).await;
    stuck.subscribe("#").await;
    let mut other = WsClient::connect(env.app.addr).await;
    other.subscribe("+/v").await;
    // The stuck client never reads again while lots of data goes its way...
    let live = env.app.live.clone();
    let flood = tokio::spawn(async move {
        for i in 0..300 {
            live.publish(batch("bulk", "bulk", i * 1000, 1000));
            tokio::task::yield_now().await;
        }
    });
    // ... and ingest goes on meanwhile, every reading stored and acknowledged.
    let p = Publisher::connect(env.broker.port(), "ws-stuck-pub");
    common::vigil::publish_stream_acked(&p, 5000, 5000).await;
    common::vigil::wait_stream_rows(&env.pg.url(), 5000, WAIT).await;
    flood.await.unwrap();
    env.wait_metric("vigil_stream_disconnects_total{reason=\"slow\"}", 1.0)
        .await;
    // The other client got every ingested reading, once.
    let (got, _) = other.readings_until(|all| tally(all).len() >= 5000).await;
    assert_eq!(got.len(), 5000);
    let base = env.base.clone();
    wait_for("the stuck client gone from the gauge", WAIT, move || {
        let base = base.clone();
        async move { metric(&base, "vigil_stream_clients{transport=\"ws\"}").await == 1.0 }
    })
    .await;
    // What reached the stuck client's socket before the end is still readable; then
    // the connection is over.
    while let Some(v) = stuck.next_or_end().await {
        assert!(
            matches!(v["type"].as_str(), Some("readings" | "lagged" | "error")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_dropped() {
    let env = start("vigil-ws-ping", |s| {
        s.stream.ping_interval = Duration::from_millis(300);
    })
    .await;
    let mut silent = WsClient::connect(env.app.addr).await;
    silent.subscribe("#").await;
    let mut alive = WsClient::connect(env.app.addr).await;
    alive.subscribe("#").await;
    // Reading is what answers pings: the live client reads in the background.
    let reader = tokio::spawn(async move {
        let (got, _) = alive.readings_until(|all| !all.is_empty()).await;
        let pings = alive.pings;
        (got, pings, alive)
    });
    env.wait_metric(
        "vigil_stream_disconnects_total{reason=\"ping_timeout\"}",
        1.0,
    )
    .await;
    env.app.live.publish(batch("after", "m", 0, 1));
    let (got, pings, _alive) = reader.await.unwrap();
    assert_eq!(got[0].0, "after");
    assert!(pings >= 1, "vigil pinged the live client");
    assert_eq!(
        metric(&env.base, "vigil_stream_clients{transport=\"ws\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_anomaly_messages_reach_matching_clients() {
    let env = start("vigil-ws-device", |_| {}).await;
    let mut one = WsClient::connect(env.app.addr).await;
    one.subscribe("dv-1/+").await;
    let mut two = WsClient::connect(env.app.addr).await;
    two.subscribe("dv-2/temp").await;
    let p = Publisher::connect(env.broker.port(), "ws-device-pub");
    p.send("devices/dv-1/status", "offline").await;
    p.send("devices/dv-2/status", "online").await;
    assert_eq!(
        one.next_json().await,
        json!({"type": "device", "device_id": "dv-1", "status": "offline"})
    );
    assert_eq!(
        two.next_json().await,
        json!({"type": "device", "device_id": "dv-2", "status": "online"})
    );
    let anomaly = |device: &str| vigil::detect::Anomaly {
        device_id: device.into(),
        metric: "temp".into(),
        ts: Utc::now(),
        value: 99.0,
        score: 0.97,
        detector: "baseline".into(),
        explanation: "far above the usual range".into(),
    };
    env.app
        .live
        .send(LiveMessage::Anomaly(Arc::new(anomaly("dv-1"))));
    env.app
        .live
        .send(LiveMessage::Anomaly(Arc::new(anomaly("dv-2"))));
    let a: Value = one.next_json().await;
    assert_eq!(
        (a["type"].as_str(), a["device_id"].as_str()),
        (Some("anomaly"), Some("dv-1"))
    );
    assert_eq!(a["score"], 0.97);
    assert_eq!(a["detector"], "baseline");
    // Messages keep their order, so dv-2's client seeing dv-2 first proves dv-1 was not sent.
    let b: Value = two.next_json().await;
    assert_eq!(
        (b["type"].as_str(), b["device_id"].as_str()),
        (Some("anomaly"), Some("dv-2"))
    );
}
