//! One MQTT connection of the simulator: connect with a bounded wait and a readable error,
//! count acks and errors, close gracefully or be killed (so the broker sends the will).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

use crate::stats::Stats;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// How long to wait for the broker's CONNACK before giving up.
    pub timeout: Duration,
}

impl Target {
    /// Parses `mqtt://host:port` (or `tcp://`), naming the flag in the error.
    pub fn parse(url: &str, timeout: Duration) -> anyhow::Result<Target> {
        let u = url::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
        if u.scheme() != "mqtt" && u.scheme() != "tcp" {
            bail!("--url must be mqtt://host:port (got {url:?})");
        }
        let host = u.host_str().context("--url has no host")?.to_owned();
        Ok(Target {
            host,
            port: u.port().unwrap_or(1883),
            timeout,
        })
    }

    fn url(&self) -> String {
        format!("mqtt://{}:{}", self.host, self.port)
    }
}

/// A connected client and the task polling its event loop.
pub struct Conn {
    pub client: AsyncClient,
    poller: tokio::task::JoinHandle<()>,
    /// QoS 1 messages this connection published, and PUBACKs it received.
    published_qos1: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
}

impl Conn {
    /// Connects and waits for the CONNACK, failing with a readable message after
    /// `target.timeout` when the broker is unreachable or refuses.
    pub async fn open(
        target: &Target,
        client_id: &str,
        will: Option<LastWill>,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Conn> {
        let mut o = MqttOptions::new(client_id, target.host.clone(), target.port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_outgoing_inflight_upper_limit(5000)
            .set_max_packet_size(Some(4 * 1024 * 1024));
        if let Some(will) = will {
            o.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(o, 10_000);
        let deadline = Instant::now() + target.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("cannot connect to the broker at {}: {e}", target.url()),
                Err(_) => bail!(
                    "no answer from the broker at {} within {:?}",
                    target.url(),
                    target.timeout
                ),
            }
        }
        let acked = Arc::new(AtomicU64::new(0));
        let poller = tokio::spawn(poll(eventloop, acked.clone(), stats));
        Ok(Conn {
            client,
            poller,
            published_qos1: Arc::new(AtomicU64::new(0)),
            acked,
        })
    }

    /// Publishes one message (waiting only for room in the client's queue).
    pub async fn publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> anyhow::Result<()> {
        if qos != QoS::AtMostOnce {
            self.published_qos1.fetch_add(1, Ordering::Relaxed);
        }
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .context("the connection's event loop stopped")
    }

    /// QoS 1 messages published but not acknowledged by the broker yet.
    pub fn unacked(&self) -> u64 {
        self.published_qos1
            .load(Ordering::Relaxed)
            .saturating_sub(self.acked.load(Ordering::Relaxed))
    }

    /// Waits until the broker has acknowledged every QoS 1 message, at most `limit`.
    pub async fn wait_acked(&self, limit: Duration) -> u64 {
        let until = Instant::now() + limit;
        while self.unacked() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.unacked()
    }

    /// Sends DISCONNECT (no will) and waits briefly for the event loop to flush it.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.poller).await;
    }

    /// Drops the TCP connection without DISCONNECT: the broker publishes the will.
    pub fn kill(self) {
        self.poller.abort();
    }
}

async fn poll(mut eventloop: EventLoop, acked: Arc<AtomicU64>, stats: Arc<Stats>) {
    let mut last_report = None::<Instant>;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, Ordering::Relaxed);
                stats.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                // One line per few seconds, not one per retry.
                if last_report.is_none_or(|t: Instant| t.elapsed() > Duration::from_secs(5)) {
                    eprintln!("vigil-sim: connection error: {e}; retrying");
                    last_report = Some(Instant::now());
                }
                // rumqttc retries at once: back off so a dead broker is not spun on.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The Last Will of a device's own connection: `offline`, retained, on its status topic.
pub fn offline_will(device: &str) -> LastWill {
    LastWill::new(
        format!("devices/{device}/status"),
        "offline",
        QoS::AtLeastOnce,
        true,
        None,
    )
}
