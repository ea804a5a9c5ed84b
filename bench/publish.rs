//! Load for the benchmark: numbered messages, each a distinct (device, metric, ts), sent
//! over several QoS 1 connections at a given rate (or as fast as the broker takes them).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

/// Metrics per device in every scenario.
pub const METRICS: u64 = 5;

/// Builds message `i` of a scenario: (topic, payload).
pub type Make = Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync>;

pub fn options(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_outgoing_inflight_upper_limit(1000)
        .set_max_packet_size(Some(4 * 1024 * 1024));
    o
}

/// Message `i`: series `i mod (devices × 5)` of devices `{prefix}-{n}`, timestamp
/// `base_ms + i / (devices × 5)`, so every i is a distinct row.
pub fn single(prefix: &str, i: u64, devices: u64, base_ms: i64) -> (String, Vec<u8>) {
    let series = i % (devices * METRICS);
    let ts = base_ms + (i / (devices * METRICS)) as i64;
    let topic = format!(
        "sensors/{prefix}-{}/m{}",
        series / METRICS,
        series % METRICS
    );
    (
        topic,
        format!("{{\"ts\":{ts},\"value\":{}}}", i % 1000).into_bytes(),
    )
}

/// Packed message `i`: 100 readings of one device as a SenML pack.
pub fn packed(i: u64, devices: u64, base_ms: i64) -> (String, Vec<u8>) {
    let device = i % devices;
    let round = (i / devices) as i64;
    let records: Vec<String> = (0..100)
        .map(|k| {
            let t = (base_ms + round * 20 + k / METRICS as i64) as f64 / 1000.0;
            format!(
                "{{\"n\":\"m{}\",\"t\":{t:.3},\"v\":{k}}}",
                k % METRICS as i64
            )
        })
        .collect();
    (
        format!("sensors/pk-{device}"),
        format!("[{}]", records.join(",")).into_bytes(),
    )
}

/// Publishing connections kept open across several sends.
pub struct Publishers {
    clients: Vec<(AsyncClient, Arc<AtomicU64>, tokio::task::JoinHandle<()>)>,
    /// Messages sent per connection so far (for the ack wait).
    sent: Vec<u64>,
    /// Messages handed to the connections so far, all together.
    progress: Arc<AtomicU64>,
}

impl Publishers {
    pub async fn connect(port: u16, n: usize, tag: &str) -> anyhow::Result<Publishers> {
        let mut clients = Vec::new();
        for p in 0..n {
            let id = format!("bench-{tag}-{}-{p}", std::process::id());
            let (client, mut eventloop) = AsyncClient::new(options(port, &id), 1000);
            loop {
                let e = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
                    .await
                    .context("no CONNACK from the broker")?
                    .context("cannot connect to the broker")?;
                if let Event::Incoming(Packet::ConnAck(_)) = e {
                    break;
                }
            }
            let acked = Arc::new(AtomicU64::new(0));
            let counter = acked.clone();
            let poller = tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("publisher: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            clients.push((client, acked, poller));
        }
        Ok(Publishers {
            sent: vec![0; n],
            clients,
            progress: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sends messages `range` (message i on connection i mod n), paced at `rate` messages
    /// per second when given; returns when the broker has acknowledged all of them.
    pub async fn send(
        &mut self,
        range: Range<u64>,
        make: Make,
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let n = self.clients.len() as u64;
        let per = rate.map(|r| r / n as f64);
        let mut tasks = Vec::new();
        for (p, (client, acked, _)) in self.clients.iter().enumerate() {
            let mine: Vec<u64> = range.clone().filter(|i| i % n == p as u64).collect();
            self.sent[p] += mine.len() as u64;
            let target = self.sent[p];
            let (client, acked, make) = (client.clone(), acked.clone(), make.clone());
            let progress = self.progress.clone();
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                for (k, i) in mine.into_iter().enumerate() {
                    if let Some(r) = per {
                        let due = started + Duration::from_secs_f64(k as f64 / r);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    let (topic, payload) = make(i);
                    client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await?;
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                let until = Instant::now() + Duration::from_secs(120);
                while acked.load(Ordering::Relaxed) < target {
                    anyhow::ensure!(Instant::now() < until, "the broker stopped acknowledging");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }

    /// Counts every message handed to a connection.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    pub fn close(self) {
        for (_, _, poller) in self.clients {
            poller.abort();
        }
    }
}

/// Publishes `n` messages from `publishers` fresh connections; returns when every one is
/// acknowledged by the broker.
pub async fn publish_all(
    port: u16,
    publishers: usize,
    n: u64,
    make: Make,
    tag: &str,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let mut p = Publishers::connect(port, publishers, tag).await?;
    p.send(0..n, make, rate).await?;
    p.close();
    Ok(())
}
