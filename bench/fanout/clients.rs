//! WebSocket clients: connected in waves, then either measuring latency, idling (reading
//! only to answer pings) or stalled (never reading).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures_util::stream::{self, StreamExt as _};
use futures_util::SinkExt as _;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::load::now_us;

pub type Ws = WebSocketStream<TcpStream>;

/// Connects and subscribes to `filters`; returns once every subscription is confirmed.
pub async fn connect(addr: SocketAddr, filters: &[String], small: bool) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if small {
        socket.set_recv_buffer_size(4096)?;
    }
    let tcp = socket.connect(addr).await.context("TCP connect")?;
    // Small buffers on our side too: ten thousand clients live in this process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{addr}/ws"), tcp, Some(config))
            .await
            .context("WebSocket handshake")?;
    for f in filters {
        let m = serde_json::json!({"op": "subscribe", "filter": f}).to_string();
        ws.send(Message::text(m)).await?;
    }
    let mut confirmed = 0;
    while confirmed < filters.len() {
        let m = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .context("no reply to subscribe")?;
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                match v["type"].as_str() {
                    Some("subscribed") => confirmed += 1,
                    _ => bail!("unexpected reply {v}"),
                }
            }
            Some(Ok(_)) => {}
            other => bail!("connection ended while subscribing: {other:?}"),
        }
    }
    Ok(ws)
}

/// Connects `n` clients, `concurrency` at a time, client `i` with `filters(i)`.
pub async fn connect_many(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    filters: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<Ws>> {
    let mut out = Vec::with_capacity(n);
    let mut connecting = stream::iter(0..n)
        .map(|i| {
            let f = filters(i);
            async move { connect(addr, &f, false).await }
        })
        .buffer_unordered(concurrency);
    while let Some(ws) = connecting.next().await {
        out.push(ws?);
        if out.len() % 1000 == 0 {
            eprintln!("    {} clients connected", out.len());
        }
    }
    Ok(out)
}

/// What the measuring clients saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Publish-to-receipt delay of every reading, in microseconds.
    pub latencies_us: Vec<i64>,
    pub frames: u64,
    pub lagged: u64,
    pub errors: u64,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.latencies_us.extend(other.latencies_us);
        self.frames += other.frames;
        self.lagged += other.lagged;
        self.errors += other.errors;
    }
}

/// Reads every client until `stop`, timing each reading against its payload time.
pub fn measure(clients: Vec<Ws>, stop: CancellationToken) -> JoinHandle<Seen> {
    let tasks: Vec<JoinHandle<Seen>> = clients
        .into_iter()
        .map(|mut ws| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Seen::default();
                loop {
                    let m = tokio::select! {
                        _ = stop.cancelled() => break,
                        m = ws.next() => m,
                    };
                    let text = match m {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(_)) => continue,
                        _ => {
                            seen.errors += 1;
                            break;
                        }
                    };
                    let received = now_us();
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        seen.errors += 1;
                        continue;
                    };
                    match v["type"].as_str() {
                        Some("readings") => {
                            seen.frames += 1;
                            for r in v["readings"].as_array().into_iter().flatten() {
                                if let Some(ts) = r["ts"].as_str().and_then(micros) {
                                    seen.latencies_us.push(received - ts);
                                }
                            }
                        }
                        Some("lagged") => seen.lagged += v["skipped"].as_u64().unwrap_or(0),
                        _ => seen.errors += 1,
                    }
                }
                let _ = ws.close(None).await;
                seen
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = Seen::default();
        for t in tasks {
            if let Ok(s) = t.await {
                all.merge(s);
            }
        }
        all
    })
}

/// Reads (so pings are answered) and discards, until `stop`; returns the clients that
/// were still connected.
pub fn idle(clients: Vec<Ws>, stop: CancellationToken) -> JoinHandle<usize> {
    let tasks: Vec<JoinHandle<bool>> = clients
        .into_iter()
        .map(|mut ws| {
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return true,
                        m = ws.next() => match m {
                            Some(Ok(_)) => {}
                            _ => return false,
                        },
                    }
                }
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut alive = 0;
        for t in tasks {
            if t.await.unwrap_or(false) {
                alive += 1;
            }
        }
        alive
    })
}

fn micros(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_micros())
}
