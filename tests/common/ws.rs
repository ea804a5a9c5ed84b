//! A WebSocket client for vigil's `GET /ws`, with the waiting helpers stream tests use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use chrono::{TimeZone, Utc};
use vigil::app::App;
use vigil::config::Settings;
use vigil::ingest::reading::Reading;

use super::vigil::{metric, settings, wait_ready};
use super::{count_rows, wait_for, Mosquitto, Postgres};

/// How long any single wait for a frame may take before the test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// (device, metric, ts in unix ms, value): one reading as a client saw it.
pub type Seen = (String, String, i64, f64);

pub fn seen(r: &Value) -> Seen {
    let ts = chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().expect("ts is a string"))
        .expect("ts is RFC 3339")
        .timestamp_millis();
    (
        r["device_id"].as_str().expect("device_id").to_owned(),
        r["metric"].as_str().expect("metric").to_owned(),
        ts,
        r["value"].as_f64().expect("value"),
    )
}

pub struct WsClient<S = MaybeTlsStream<TcpStream>> {
    pub ws: WebSocketStream<S>,
    /// Pings received from vigil.
    pub pings: usize,
}

impl WsClient {
    pub async fn connect(addr: SocketAddr) -> WsClient {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("WebSocket connects");
        WsClient { ws, pings: 0 }
    }
}

impl WsClient<TcpStream> {
    /// A client whose socket receive buffer is tiny, so that when it stops reading the
    /// server's writes block soon.
    pub async fn connect_small(addr: SocketAddr) -> WsClient<TcpStream> {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("TCP connects");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .expect("WebSocket handshake");
        WsClient { ws, pings: 0 }
    }
}

impl<S> WsClient<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("frame sent");
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Subscribes and waits for the `subscribed` reply (returned).
    pub async fn subscribe(&mut self, filter: &str) -> Value {
        self.send(json!({"op": "subscribe", "filter": filter}))
            .await;
        let reply = self.next_json().await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        reply
    }

    /// The next text frame as JSON, or `None` once the connection ended.
    pub async fn next_or_end(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .expect("a frame or the end within the timeout");
            match m {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("frames are JSON"))
                }
                Some(Ok(Message::Ping(_))) => self.pings += 1,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        self.next_or_end().await.expect("connection open")
    }

    /// Reads `readings` frames until `done` says so; returns what was seen and how many
    /// `readings` frames carried it. Any other frame type fails the test.
    pub async fn readings_until(
        &mut self,
        mut done: impl FnMut(&[Seen]) -> bool,
    ) -> (Vec<Seen>, usize) {
        let mut all = Vec::new();
        let mut frames = 0;
        while !done(&all) {
            let v = self.next_json().await;
            assert_eq!(v["type"], "readings", "{v}");
            frames += 1;
            all.extend(v["readings"].as_array().expect("array").iter().map(seen));
        }
        (all, frames)
    }
}

/// Counts of each reading: duplicates show as counts above one.
pub fn tally(readings: &[Seen]) -> HashMap<(String, String, i64), usize> {
    let mut counts = HashMap::new();
    for (d, m, ts, _) in readings {
        *counts.entry((d.clone(), m.clone(), *ts)).or_insert(0) += 1;
    }
    counts
}

pub const WAIT: Duration = Duration::from_secs(60);

/// A vigil on private PostgreSQL and Mosquitto, ready.
pub struct Env {
    pub pg: Postgres,
    pub broker: Mosquitto,
    pub app: App,
    pub base: String,
}

pub async fn start(id: &str, tune: impl FnOnce(&mut Settings)) -> Env {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let mut s = settings(&pg.url(), &broker.url(), id);
    // The protocol tests count exact frames: the detector's events on their synthetic
    // series would interleave. Anomaly delivery is tested by sending events directly.
    s.detect.enabled = false;
    tune(&mut s);
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    wait_schema(&pg.url()).await;
    Env {
        pg,
        broker,
        app,
        base,
    }
}

impl Env {
    pub async fn wait_rows(&self, n: i64) {
        let db = self.pg.url();
        wait_for(&format!("{n} rows stored"), WAIT, move || {
            let db = db.clone();
            async move { count_rows(&db, "SELECT count(*) FROM readings").await >= n }
        })
        .await;
    }

    pub async fn wait_metric(&self, name: &str, at_least: f64) {
        let (base, name) = (self.base.clone(), name.to_owned());
        wait_for(&format!("{name} >= {at_least}"), WAIT, move || {
            let (base, name) = (base.clone(), name.clone());
            async move { metric(&base, &name).await >= at_least }
        })
        .await;
    }
}

pub fn payload(ts_ms: i64, value: f64) -> String {
    json!({"ts": ts_ms, "value": value}).to_string()
}

pub fn key(d: &str, m: &str, ts: i64) -> (String, String, i64) {
    (d.to_owned(), m.to_owned(), ts)
}

/// `n` readings of one series for injecting straight into the live feed.
pub fn batch(device: &str, metric: &str, first_ms: i64, n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            device_id: device.into(),
            metric: metric.into(),
            ts: Utc.timestamp_millis_opt(first_ms + i as i64).unwrap(),
            value: i as f64,
        })
        .collect()
}

/// Waits until the migrations created `readings` (`/readyz` does not wait for them).
pub async fn wait_schema(db: &str) {
    let db = db.to_owned();
    wait_for("the readings table", WAIT, move || {
        let db = db.clone();
        async move {
            let sql = "SELECT count(*) FROM pg_tables WHERE tablename = 'readings'";
            count_rows(&db, sql).await >= 1
        }
    })
    .await;
}
