//! `GET /ws`: filters, batching, the backfill seam, bad client messages, limits, device
//! and anomaly messages, against a real vigil on PostgreSQL and Mosquitto.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::vigil::{metric, Publisher};
use common::ws::{batch, key, payload, start, tally, Seen, WsClient};
use futures_util::SinkExt as _;
use serde_json::{json, Value};
use vigil::live::LiveMessage;

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
