//! `GET /api/v1/stream`: the live stream as Server-Sent Events, same filters and events
//! as the WebSocket, read with a streaming HTTP client.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::vigil::{metric, settings, wait_ready, Publisher};
use common::{count_rows, wait_for, Mosquitto, Postgres};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// One SSE event: its name and its JSON data; comments are counted apart.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
    comments: usize,
}

impl SseReader {
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = Some(e.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    } else if line.starts_with(':') {
                        self.comments += 1;
                    }
                }
                if let Some(event) = event {
                    return (event, serde_json::from_str(&data).expect("data is JSON"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("an event within the timeout")
                .expect("stream readable")
                .expect("stream still open");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

async fn open(base: &str, query: &str) -> reqwest::Response {
    reqwest::get(format!("{base}/api/v1/stream?{query}"))
        .await
        .expect("request sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_backfill_live_readings_and_device_events() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let mut s = settings(&pg.url(), &broker.url(), "vigil-sse");
    s.detect.enabled = false;
    s.stream.ping_interval = Duration::from_millis(200);
    s.stream.max_connections = 1;
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    common::ws::wait_schema(&pg.url()).await;

    // Bad parameters: 400 naming the parameter.
    for (query, names) in [
        ("", "filter"),
        ("filter=a/b/c", "filter"),
        ("filter=pump%2B/x", "filter"),
        ("filter=%23&since=yesterday", "since"),
        ("filter=%23&colour=red", "colour"),
    ] {
        let r = open(&base, query).await;
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }

    let p = Publisher::connect(broker.port(), "sse-pub");
    let since = Utc::now().timestamp_millis() - 60_000;
    p.send(
        "sensors/s1/t",
        json!({"ts": since + 1, "value": 1.0}).to_string(),
    )
    .await;
    p.send(
        "sensors/s2/h",
        json!({"ts": since + 2, "value": 2.0}).to_string(),
    )
    .await;
    p.send(
        "sensors/s9/x",
        json!({"ts": since + 3, "value": 3.0}).to_string(),
    )
    .await;
    let db = pg.url();
    wait_for("3 rows", WAIT, move || {
        let db = db.clone();
        async move { count_rows(&db, "SELECT count(*) FROM readings").await >= 3 }
    })
    .await;

    let resp = open(&base, &format!("filter=s1/%2B&filter=%2B/h&since={since}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The cap (1) is taken by this stream.
    assert_eq!(open(&base, "filter=%23").await.status(), 503);
    let mut sse = SseReader {
        resp,
        buf: String::new(),
        comments: 0,
    };
    let mut backfilled = Vec::new();
    let mut subscribed = Vec::new();
    while subscribed.len() < 2 {
        let (event, data) = sse.next().await;
        assert_eq!(data["type"], event.as_str(), "event name is the type");
        match event.as_str() {
            "readings" => backfilled.extend(data["readings"].as_array().unwrap().clone()),
            "subscribed" => subscribed.push(data["filter"].as_str().unwrap().to_owned()),
            other => panic!("unexpected {other}: {data}"),
        }
    }
    subscribed.sort();
    assert_eq!(subscribed, ["+/h", "s1/+"]);
    let mut values: Vec<f64> = backfilled
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(
        values,
        [1.0, 2.0],
        "backfill has exactly the matching stored readings"
    );

    p.send("sensors/s9/x", "9").await;
    p.send(
        "sensors/s1/t",
        json!({"ts": since + 10, "value": 10.0}).to_string(),
    )
    .await;
    let (event, data) = sse.next().await;
    assert_eq!(event, "readings");
    assert_eq!(data["readings"][0]["value"], 10.0);
    assert_eq!(data["readings"].as_array().unwrap().len(), 1);
    p.send("devices/s1/status", "offline").await;
    let (event, data) = sse.next().await;
    assert_eq!(event, "device");
    assert_eq!(
        data,
        json!({"type": "device", "device_id": "s1", "status": "offline"})
    );
    // Keep-alive comments flow while nothing else does.
    while sse.comments == 0 {
        let _ = tokio::time::timeout(Duration::from_millis(500), sse.next()).await;
    }
    assert_eq!(
        metric(&base, "vigil_stream_clients{transport=\"sse\"}").await,
        1.0
    );
    drop(sse);
    let b = base.clone();
    wait_for("the SSE client to be gone", WAIT, move || {
        let b = b.clone();
        async move { metric(&b, "vigil_stream_clients{transport=\"sse\"}").await == 0.0 }
    })
    .await;
}
