//! The `[stream]` settings: WebSocket and SSE clients.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits and timings of live streaming to WebSocket and SSE clients.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// WebSocket plus SSE clients connected at once; one more is answered 503.
    pub max_connections: usize,
    /// Filters one client may hold; one more is answered with an error frame.
    pub max_subscriptions: usize,
    /// Deliveries (one per committed batch, device update or anomaly) queued for one
    /// client. When full the client skips ahead and is told how much it missed: the
    /// policy is drop newest for that client, never wait.
    pub queue_capacity: usize,
    /// Readings to one client are gathered and sent at most this often.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// A WebSocket ping is sent this often; a client that sent nothing (not even the
    /// pong) for a whole interval after a ping is disconnected. SSE sends a keep-alive
    /// comment at this interval.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A client that stays behind this long (its queue kept overflowing, or one write to
    /// it did not finish) is told why and disconnected.
    #[serde(with = "humantime_serde")]
    pub slow_client_timeout: Duration,
    /// Most stored readings one `since` backfill sends; when more match, the newest are
    /// sent and the `subscribed` message says `"truncated": true`.
    pub backfill_max_rows: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_subscriptions: 100,
            queue_capacity: 256,
            batch_interval: Duration::from_millis(20),
            ping_interval: Duration::from_secs(20),
            slow_client_timeout: Duration::from_secs(10),
            backfill_max_rows: 10_000,
        }
    }
}

impl StreamConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("stream.max_connections", self.max_connections),
            ("stream.max_subscriptions", self.max_subscriptions),
            ("stream.queue_capacity", self.queue_capacity),
            ("stream.backfill_max_rows", self.backfill_max_rows),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        let durations = [
            ("stream.batch_interval", self.batch_interval),
            ("stream.ping_interval", self.ping_interval),
            ("stream.slow_client_timeout", self.slow_client_timeout),
        ];
        for (key, value) in durations {
            if value.is_zero() {
                return Err((key, "must be longer than zero".into()));
            }
        }
        Ok(())
    }
}
