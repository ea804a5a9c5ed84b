//! MQTT publishers: paced (latency runs) or as fast as the broker takes them (bursts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

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
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let mut o = MqttOptions::new(format!("fanout-{prefix}-{p}"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_outgoing_inflight_upper_limit(1000);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
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
        let prefix = prefix.to_owned();
        let per = rate.map(|r| r / publishers as f64);
        tasks.push(tokio::spawn(async move {
            let mine: Vec<u64> = (p as u64..n).step_by(publishers).collect();
            let count = mine.len() as u64;
            let started = Instant::now();
            for (k, i) in mine.into_iter().enumerate() {
                if let Some(r) = per {
                    let due = started + Duration::from_secs_f64(k as f64 / r);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                // Synthetic times are unique per series: one step per round of series.
                let ts = if stamp {
                    now_us()
                } else {
                    base_us + (i / series) as i64 * 1000
                };
                let (topic, payload) = message(&prefix, i, series, ts);
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await?;
            }
            while acked.load(Ordering::Relaxed) < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            poller.abort();
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
