//! The live path: every newly stored reading, once, after its commit.
//!
//! A bounded broadcast: a consumer that falls behind skips ahead (counted) and never
//! slows storage down.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::ingest::reading::Reading;
use crate::metrics::Metrics;

/// A batch of readings committed together, shared by every consumer.
pub type StoredBatch = Arc<Vec<Reading>>;

/// The sending side, held by the writers.
#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<StoredBatch>,
    metrics: Metrics,
}

/// What a consumer gets from [`LiveReceiver::recv`].
#[derive(Debug)]
pub enum LiveEvent {
    Batch(StoredBatch),
    /// The consumer fell behind and this many batches were skipped.
    Lagged(u64),
}

/// One consumer's view of the feed.
pub struct LiveReceiver {
    rx: broadcast::Receiver<StoredBatch>,
    metrics: Metrics,
}

impl LiveFeed {
    /// `capacity` batches are retained for slow consumers.
    pub fn new(capacity: usize, metrics: Metrics) -> LiveFeed {
        let (tx, _) = broadcast::channel(capacity);
        LiveFeed { tx, metrics }
    }

    /// Publishes a committed batch. Having no consumer at all is normal.
    pub fn publish(&self, batch: Vec<Reading>) {
        if batch.is_empty() {
            return;
        }
        // `send` fails only when nobody listens; the readings are stored either way.
        let _ = self.tx.send(Arc::new(batch));
    }

    pub fn subscribe(&self) -> LiveReceiver {
        LiveReceiver {
            rx: self.tx.subscribe(),
            metrics: self.metrics.clone(),
        }
    }
}

impl LiveReceiver {
    /// The next batch, a lag notice, or `None` once the feed is closed.
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        match self.rx.recv().await {
            Ok(batch) => Some(LiveEvent::Batch(batch)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // The receiver is still valid and resumes at the oldest retained batch.
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
        assert!(matches!(rx.recv().await, Some(LiveEvent::Batch(_))));
        assert!(matches!(rx.recv().await, Some(LiveEvent::Batch(_))));
        assert_eq!(metrics.live_lagged.get(), 3);
    }
}
