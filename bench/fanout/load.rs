//! MQTT publishers: paced (latency runs) or as fast as the broker takes them (bursts).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::publish::{publish_all, Make};

/// Microseconds since the epoch, the clock both publishers and clients read.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Message `i`: topic and payload. `series` series named `{prefix}-{n}/m{k}` (5 metrics
/// per device); `ts` in microseconds is written as fractional unix milliseconds.
pub fn message(prefix: &str, i: u64, series: u64, ts_us: i64) -> (String, Vec<u8>) {
    let s = i % series;
    let topic = format!("sensors/{prefix}-{}/m{}", s / 5, s % 5);
    let payload = format!(
        "{{\"ts\":{}.{:03},\"value\":{i}}}",
        ts_us / 1000,
        ts_us % 1000
    );
    (topic, payload.into_bytes())
}

/// Publishes `n` messages over `publishers` connections, at `rate` messages per second
/// in all (or as fast as possible), stamping each with the time it is handed to the
/// client library (`stamp`) or with a synthetic unique time. Returns when the broker
/// acknowledged them all.
pub async fn publish(
    port: u16,
    publishers: usize,
    n: u64,
    rate: Option<f64>,
    prefix: &str,
    series: u64,
    stamp: bool,
) -> anyhow::Result<()> {
    let base_us = now_us() - 3_600_000_000;
    let tag = format!("fanout-{prefix}");
    let prefix = prefix.to_owned();
    let make: Make = Arc::new(move |i| {
        // Synthetic times are unique per series: one step per round of series.
        let ts = if stamp {
            now_us()
        } else {
            base_us + (i / series) as i64 * 1000
        };
        message(&prefix, i, series, ts)
    });
    publish_all(port, publishers, n, make, &tag, rate).await
}
