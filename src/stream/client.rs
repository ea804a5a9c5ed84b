//! What the hub hands each client: its deliveries, its out-of-band signals, and the
//! rule that decides when a client has been behind for too long.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::detect::Anomaly;
use crate::ingest::reading::DeviceUpdate;
use crate::live::StoredBatch;

/// How a client is connected (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ws,
    Sse,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Ws, Transport::Sse];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// Which readings of a committed batch a client wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Picks {
    All,
    /// Indices into the batch, in order.
    Some(Vec<u32>),
}

/// One item of a client's queue.
#[derive(Debug, Clone)]
pub enum Delivery {
    Readings { batch: StoredBatch, picks: Picks },
    Device(Arc<DeviceUpdate>),
    Anomaly(Arc<Anomaly>),
}

/// What the hub tells a client outside its queue (the queue may be full).
#[derive(Debug, Default)]
pub struct ClientSignals {
    /// Readings or messages skipped since the client last reported them.
    pub(super) skipped: AtomicU64,
    /// Set once the hub dropped the client for being too slow.
    pub(super) evicted: AtomicBool,
    /// Woken when either of the above changes.
    pub wake: Notify,
}

impl ClientSignals {
    /// Takes the skipped count, resetting it.
    pub fn take_skipped(&self) -> u64 {
        self.skipped.swap(0, Ordering::Relaxed)
    }

    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// How long a client has been behind: the pure rule for evicting slow clients.
#[derive(Debug, Default)]
pub struct Behind {
    since: Option<Instant>,
}

impl Behind {
    /// A delivery found the queue full at `now`: true once the client has been behind
    /// for longer than `limit`.
    pub fn overflowed(&mut self, now: Instant, limit: Duration) -> bool {
        let since = *self.since.get_or_insert(now);
        now.saturating_duration_since(since) > limit
    }

    /// A delivery was queued, leaving `free` of `capacity` slots. The client counts as
    /// caught up only once half its queue is free: one that drains a slot now and then
    /// while staying full is still behind.
    pub fn queued(&mut self, free: usize, capacity: usize) {
        if free * 2 >= capacity {
            self.since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_behind_until_half_its_queue_is_free() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(10);
        let mut b = Behind::default();
        assert!(!b.overflowed(t0, limit));
        b.queued(1, 8); // drained one slot: still behind
        assert!(!b.overflowed(t0 + Duration::from_secs(5), limit));
        assert!(b.overflowed(t0 + Duration::from_secs(11), limit));
        b.queued(4, 8); // half free: caught up, the clock restarts
        assert!(!b.overflowed(t0 + Duration::from_secs(12), limit));
        assert!(!b.overflowed(t0 + Duration::from_secs(22), limit));
        assert!(b.overflowed(t0 + Duration::from_secs(23), limit));
    }
}
