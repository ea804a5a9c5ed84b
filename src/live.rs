//! The live path: every newly stored reading, once, after its commit.
//!
//! A bounded broadcast: a consumer that falls behind skips ahead (counted) and never
//! slows storage down.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::detect::Anomaly;
use crate::ingest::reading::{DeviceUpdate, Reading};
use crate::metrics::Metrics;

/// A batch of readings committed together, shared by every consumer.
pub type StoredBatch = Arc<Vec<Reading>>;

/// What travels on the feed: everything a live consumer may show, after its commit.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    /// Readings newly stored by one commit.
    Readings(StoredBatch),
    /// A device's metadata or presence, stored.
    Device(Arc<DeviceUpdate>),
    /// An anomaly event raised by the detector.
    Anomaly(Arc<Anomaly>),
}

/// The sending side, held by the writers (and the detector, for its events).
#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<LiveMessage>,
    metrics: Metrics,
}

/// What a consumer gets from [`LiveReceiver::recv`].
#[derive(Debug)]
pub enum LiveEvent {
    Readings(StoredBatch),
    Device(Arc<DeviceUpdate>),
    Anomaly(Arc<Anomaly>),
    /// The consumer fell behind and this many messages were skipped.
    Lagged(u64),
}

impl From<LiveMessage> for LiveEvent {
    fn from(m: LiveMessage) -> Self {
        match m {
            LiveMessage::Readings(b) => LiveEvent::Readings(b),
            LiveMessage::Device(d) => LiveEvent::Device(d),
            LiveMessage::Anomaly(a) => LiveEvent::Anomaly(a),
        }
    }
}

/// One consumer's view of the feed.
pub struct LiveReceiver {
    rx: broadcast::Receiver<LiveMessage>,
    metrics: Metrics,
}

impl LiveFeed {
    /// `capacity` messages are retained for slow consumers.
    pub fn new(capacity: usize, metrics: Metrics) -> LiveFeed {
        let (tx, _) = broadcast::channel(capacity);
        LiveFeed { tx, metrics }
    }

    /// Publishes a committed batch. Having no consumer at all is normal.
    pub fn publish(&self, batch: Vec<Reading>) {
        if batch.is_empty() {
            return;
        }
        self.send(LiveMessage::Readings(Arc::new(batch)));
    }

    /// Publishes any other message (device update, anomaly).
    pub fn send(&self, message: LiveMessage) {
        // `send` fails only when nobody listens; what it reports is stored either way.
        let _ = self.tx.send(message);
    }

    pub fn subscribe(&self) -> LiveReceiver {
        LiveReceiver {
            rx: self.tx.subscribe(),
            metrics: self.metrics.clone(),
        }
    }

    /// Consumers currently subscribed.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl LiveReceiver {
    /// The next message, a lag notice, or `None` once the feed is closed.
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        match self.rx.recv().await {
            Ok(message) => Some(message.into()),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // The receiver is still valid and resumes at the oldest retained message.
                self.metrics.live_lagged.inc_by(n);
                Some(LiveEvent::Lagged(n))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn batch(n: usize) -> Vec<Reading> {
        (0..n)
            .map(|i| Reading {
                device_id: "d".into(),
                metric: "m".into(),
                ts: Utc::now(),
                value: i as f64,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_slow_consumer_is_told_it_lagged_and_keeps_receiving() {
        let metrics = Metrics::new();
        let feed = LiveFeed::new(2, metrics.clone());
        let mut rx = feed.subscribe();
        for _ in 0..5 {
            feed.publish(batch(1));
        }
        assert!(matches!(rx.recv().await, Some(LiveEvent::Lagged(3))));
        assert!(matches!(rx.recv().await, Some(LiveEvent::Readings(_))));
        assert!(matches!(rx.recv().await, Some(LiveEvent::Readings(_))));
        assert_eq!(metrics.live_lagged.get(), 3);
    }
}
