//! How far acknowledgements trail behind receipt: the QoS 1 messages received whose
//! PUBACK has not been written to the broker yet.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use crate::metrics::Metrics;

/// Receive times of un-acked messages, oldest first (acks go out in receive order).
#[derive(Debug, Default)]
pub struct AckLag(Mutex<VecDeque<Instant>>);

impl AckLag {
    fn with<T>(&self, f: impl FnOnce(&mut VecDeque<Instant>) -> T) -> T {
        f(&mut self.0.lock().expect("ack lag lock is never poisoned"))
    }

    /// A QoS 1 message arrived.
    pub fn received(&self, at: Instant) {
        self.with(|q| q.push_back(at));
    }

    /// A PUBACK was written: the oldest message is acknowledged.
    pub fn acked(&self) {
        self.with(|q| q.pop_front());
    }

    /// The connection is gone: the broker redelivers everything un-acked.
    pub fn reset(&self) {
        self.with(VecDeque::clear);
    }

    /// Sets the un-acked count and the oldest one's age, as of now.
    pub fn observe(&self, metrics: &Metrics) {
        let (len, oldest) = self.with(|q| (q.len(), q.front().copied()));
        metrics.mqtt_unacked.set(len as i64);
        let age = oldest.map_or(0.0, |t| t.elapsed().as_secs_f64());
        metrics.mqtt_oldest_unacked_age_seconds.set(age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tracks_count_and_oldest_age() {
        let lag = AckLag::default();
        let m = Metrics::new();
        lag.received(Instant::now() - Duration::from_secs(3));
        lag.received(Instant::now());
        lag.observe(&m);
        assert_eq!(m.mqtt_unacked.get(), 2);
        assert!(m.mqtt_oldest_unacked_age_seconds.get() >= 3.0);
        lag.acked();
        lag.observe(&m);
        assert_eq!(m.mqtt_unacked.get(), 1);
        assert!(m.mqtt_oldest_unacked_age_seconds.get() < 3.0);
        lag.reset();
        lag.observe(&m);
        assert_eq!(
            (
                m.mqtt_unacked.get(),
                m.mqtt_oldest_unacked_age_seconds.get()
            ),
            (0, 0.0)
        );
    }
}
