//! The MQTT v5 bridge: a persistent QoS 1 session whose messages are acknowledged only
//! after their commit.
//!
//! The event loop is polled only while the intake queue has room: a full queue means the
//! writer is behind, and not reading from the socket is how that backpressure reaches the
//! broker (whose in-flight limit alone does not bound vigil's memory).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, Transport};
use tokio_util::sync::CancellationToken;

use super::ack_lag::AckLag;
use super::envelope::{Ack, MqttAck};
use super::intake::Intake;
use super::reading::{Parsed, RejectReason, Rejection};
use crate::config::MqttConfig;
use crate::health::Health;
use crate::metrics::Metrics;

/// Why the broker settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("invalid broker URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot read {what} {path:?}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// Builds the client options from the configuration. A `client_id` query parameter in the
/// URL wins over `mqtt.client_id`; user and password may come from the URL too.
pub fn broker_options(cfg: &MqttConfig) -> Result<MqttOptions, BridgeError> {
    let bad = |reason: &str| BridgeError::Url {
        url: cfg.url.clone(),
        reason: reason.into(),
    };
    let url = url::Url::parse(&cfg.url).map_err(|e| bad(&e.to_string()))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        _ => return Err(bad("scheme must be mqtt:// or mqtts://")),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = url
        .query_pairs()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| cfg.client_id.clone());
    if client_id.is_empty() {
        return Err(bad("the client id is empty (set mqtt.client_id)"));
    }
    let mut options = MqttOptions::new(client_id, host.trim_matches(['[', ']']), port);
    let (user, password) = if !url.username().is_empty() {
        (
            url.username().to_owned(),
            url.password().unwrap_or_default().to_owned(),
        )
    } else {
        (cfg.username.clone(), cfg.password.clone())
    };
    if !user.is_empty() {
        options.set_credentials(user, password);
    }
    if tls || !cfg.ca_file.is_empty() {
        let read = |what, path: &str| {
            std::fs::read(path).map_err(|source| BridgeError::File {
                what,
                path: path.to_owned(),
                source,
            })
        };
        if cfg.ca_file.is_empty() {
            return Err(bad("TLS needs mqtt.ca_file"));
        }
        let ca = read("mqtt.ca_file", &cfg.ca_file)?;
        let client_auth = match (
            cfg.client_cert_file.is_empty(),
            cfg.client_key_file.is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some((
                read("mqtt.client_cert_file", &cfg.client_cert_file)?,
                read("mqtt.client_key_file", &cfg.client_key_file)?,
            )),
            _ => {
                return Err(bad(
                    "set both mqtt.client_cert_file and mqtt.client_key_file",
                ))
            }
        };
        options.set_transport(Transport::tls(ca, client_auth, None));
    }
    options
        .set_keep_alive(cfg.keep_alive)
        .set_clean_start(false)
        .set_session_expiry_interval(Some(
            u32::try_from(cfg.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ))
        .set_receive_maximum(Some(cfg.receive_maximum))
        .set_max_packet_size(Some(cfg.max_packet_bytes))
        .set_manual_acks(true)
        // Acks of everything in flight must fit, so the acker never waits on the loop.
        .set_request_channel_capacity(usize::from(cfg.receive_maximum) * 2 + 1024);
    Ok(options)
}

/// The subscription filters, with the `$share/<group>/` prefix when configured.
pub fn subscription_filters(cfg: &MqttConfig) -> Vec<String> {
    cfg.subscriptions
        .iter()
        .map(|f| {
            if cfg.shared_group.is_empty() {
                f.clone()
            } else {
                format!("$share/{}/{f}", cfg.shared_group)
            }
        })
        .collect()
}

/// Connection state shared with the acker.
#[derive(Debug, Default)]
pub struct Connection {
    /// Bumped on every ConnAck; acks carry the generation they were received on.
    pub generation: AtomicU64,
}

/// The task that owns the MQTT event loop.
pub struct Bridge {
    pub cfg: MqttConfig,
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub connection: Arc<Connection>,
    pub intake: Arc<Intake>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
    /// Received-but-unacked messages, shown in metrics.
    pub ack_lag: Arc<AckLag>,
}

impl Bridge {
    /// Creates the client and its event loop.
    pub fn new(
        cfg: MqttConfig,
        intake: Arc<Intake>,
        health: Arc<Health>,
        metrics: Metrics,
        ack_lag: Arc<AckLag>,
    ) -> Result<Bridge, BridgeError> {
        let options = broker_options(&cfg)?;
        let capacity = options.request_channel_capacity();
        let (client, eventloop) = AsyncClient::new(options, capacity);
        Ok(Bridge {
            cfg,
            client,
            eventloop,
            connection: Arc::default(),
            intake,
            health,
            metrics,
            ack_lag,
        })
    }

    /// Runs until `stop_intake` fires, then keeps the connection polled (so the last acks
    /// go out) until `acks_done` fires, and disconnects cleanly within `deadline`.
    pub async fn run(
        mut self,
        stop_intake: CancellationToken,
        acks_done: CancellationToken,
        deadline: Duration,
    ) {
        let mut backoff = self.cfg.reconnect_min;
        loop {
            let permit = tokio::select! {
                _ = stop_intake.cancelled() => break,
                permit = self.intake.queue().reserve() => match permit {
                    Ok(p) => p,
                    Err(_) => { tracing::error!("intake queue closed; bridge stops"); break; }
                },
            };
            let event = tokio::select! {
                _ = stop_intake.cancelled() => break,
                e = self.eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    self.metrics.mqtt_messages_received.inc();
                    let ack = if p.qos == QoS::AtMostOnce {
                        Ack::None
                    } else {
                        self.ack_lag.received(Instant::now());
                        Ack::Mqtt(MqttAck {
                            generation: self.connection.generation.load(Ordering::Relaxed),
                            pkid: p.pkid,
                        })
                    };
                    permit.send(self.envelope(p, ack));
                }
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    let generation = self.connection.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    // Messages of the previous connection are redelivered by the broker.
                    self.ack_lag.reset();
                    backoff = self.cfg.reconnect_min;
                    self.health.set_broker(true);
                    self.metrics.mqtt_connects.inc();
                    tracing::info!(
                        generation,
                        session_present = c.session_present,
                        "connected to the MQTT broker"
                    );
                    self.subscribe();
                }
                Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                    self.ack_lag.acked();
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    tracing::info!(codes = ?s.return_codes, "subscribed");
                }
                Ok(Event::Incoming(Packet::Disconnect(d))) => {
                    tracing::warn!(reason = ?d.reason_code, "broker sent DISCONNECT");
                }
                Ok(_) => {}
                Err(e) => {
                    self.health.set_broker(false);
                    self.metrics.mqtt_connection_errors.inc();
                    self.ack_lag.reset();
                    tracing::warn!(error = %e, retry_in = ?backoff, "MQTT connection failed");
                    tokio::select! {
                        _ = stop_intake.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.cfg.reconnect_max);
                }
            }
        }
        self.drain(acks_done, deadline).await;
    }

    /// Keeps polling so acks are written, then sends DISCONNECT and waits for the broker
    /// to close: exiting at once drops acks the broker has not read yet.
    async fn drain(mut self, acks_done: CancellationToken, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        let mut disconnecting = false;
        loop {
            if !disconnecting && acks_done.is_cancelled() {
                disconnecting = true;
                let client = self.client.clone();
                tokio::spawn(async move { client.disconnect().await });
            }
            let event = tokio::select! {
                _ = tokio::time::sleep_until(until) => {
                    tracing::warn!("shutdown deadline reached before the broker closed the connection");
                    break;
                }
                _ = acks_done.cancelled(), if !disconnecting => continue,
                e = self.eventloop.poll() => e,
            };
            match event {
                Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                    self.ack_lag.acked();
                }
                // Arrived after intake stopped: not acked, so the broker keeps it for later.
                Ok(Event::Incoming(Packet::Publish(_))) => {}
                Ok(_) => {}
                Err(e) => {
                    if !disconnecting {
                        tracing::warn!(error = %e, "MQTT connection lost while draining");
                    }
                    break;
                }
            }
        }
        self.health.set_broker(false);
        self.ack_lag.reset();
    }

    /// Subscribes from a separate task: the event loop must keep being polled meanwhile.
    fn subscribe(&self) {
        let filters: Vec<Filter> = subscription_filters(&self.cfg)
            .into_iter()
            .map(|f| Filter::new(f, QoS::AtLeastOnce))
            .collect();
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.subscribe_many(filters).await {
                tracing::error!(error = %e, "could not queue the subscription request");
            }
        });
    }

    fn envelope(&self, p: Publish, ack: Ack) -> super::envelope::Envelope {
        let now = Utc::now();
        match std::str::from_utf8(&p.topic) {
            Ok(topic) => self.intake.from_mqtt(topic, p.payload, now, ack),
            Err(_) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let parsed = Parsed::rejected(Rejection::new(
                    RejectReason::InvalidUtf8,
                    "the topic is not valid UTF-8",
                ));
                self.intake
                    .rejected_mqtt(topic, p.payload, parsed, now, ack)
            }
        }
    }
}

/// A PUBACK request for `ack`, in the form rumqttc takes.
pub fn puback(ack: MqttAck) -> Publish {
    let mut p = Publish::new("", QoS::AtLeastOnce, Bytes::new(), None);
    p.pkid = ack.pkid;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            ..MqttConfig::default()
        }
    }

    #[test]
    fn a_url_without_client_id_gets_the_configured_one() {
        let o = broker_options(&cfg("mqtt://127.0.0.1:1884")).expect("valid");
        assert_eq!(o.client_id(), "vigil");
        assert_eq!(o.broker_address(), ("127.0.0.1".to_string(), 1884));
        assert!(!o.clean_start());
        assert!(o.manual_acks());
        assert_eq!(o.session_expiry_interval(), Some(7 * 24 * 3600));
    }

    #[test]
    fn url_parts_override_the_settings() {
        let o = broker_options(&cfg("mqtt://u:p@broker:1883?client_id=edge-1")).expect("valid");
        assert_eq!(o.client_id(), "edge-1");
        let login = o.credentials().expect("credentials from the URL");
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "p")
        );
    }

    #[test]
    fn bad_urls_are_explained() {
        for url in ["http://x", "mqtt://", "not a url"] {
            let e = broker_options(&cfg(url)).expect_err(url).to_string();
            assert!(e.contains("invalid broker URL"), "{e}");
        }
        let e = broker_options(&cfg("mqtts://broker"))
            .expect_err("no CA")
            .to_string();
        assert!(e.contains("mqtt.ca_file"), "{e}");
    }

    #[test]
    fn shared_group_prefixes_every_filter() {
        let mut c = cfg("mqtt://h");
        c.shared_group = "vigil".into();
        assert_eq!(subscription_filters(&c)[0], "$share/vigil/sensors/#");
    }
}
