//! What travels through the intake queue: one message's parsed content and how to
//! acknowledge it once it is committed.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::reading::{Parsed, Rejection};

/// Where a message came from; also the `source` column of dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Mqtt,
    Http,
}

impl Origin {
    /// Stable lowercase name, used as a metric label and in the database.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Mqtt => "mqtt",
            Origin::Http => "http",
        }
    }
}

/// A QoS 1 message to acknowledge to the broker after its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttAck {
    /// The broker connection it arrived on: acks from an earlier connection are dropped
    /// (the broker redelivers those messages, and their packet ids may be reused).
    pub generation: u64,
    pub pkid: u16,
}

/// What an HTTP client is told once its readings are committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// Valid readings now in the database (newly stored or already there).
    pub accepted: usize,
    /// Readings PostgreSQL itself refused (dead-lettered), rare.
    pub refused: Vec<Rejection>,
}

/// How to acknowledge a message once everything it carries is committed.
#[derive(Debug)]
pub enum Ack {
    /// QoS 0, or nothing to tell anyone.
    None,
    Mqtt(MqttAck),
    /// The HTTP handler waiting for the commit. `Err` carries why it could not happen.
    Http(oneshot::Sender<Result<Committed, String>>),
}

/// One message on its way to the database.
#[derive(Debug)]
pub struct Envelope {
    pub origin: Origin,
    /// The MQTT topic, or the HTTP route, for dead letters.
    pub topic: String,
    /// The raw payload, kept only when something in it was rejected (for the dead letter).
    pub payload: Bytes,
    pub parsed: Parsed,
    pub received_at: DateTime<Utc>,
    pub ack: Ack,
}

impl Envelope {
    /// Rows this message adds to a batch (readings, dead letters, device updates).
    pub fn rows(&self) -> usize {
        self.parsed.readings.len()
            + self.parsed.rejections.len()
            + usize::from(self.parsed.device.is_some())
    }
}
