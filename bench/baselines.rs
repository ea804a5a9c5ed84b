//! The raw limits vigil is measured against, in the same run: the broker passing QoS 1
//! messages to a subscriber that does nothing, and binary COPY into the same schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use sqlx::{Connection as _, PgConnection};
use vigil::ingest::reading::Reading;

use crate::publish::{options, publish_all, single, Make, METRICS};

/// Broker pass-through: `publishers` connections to a plain QoS 1 subscriber, in msg/s.
pub async fn pass_through(
    port: u16,
    publishers: usize,
    n: u64,
    devices: u64,
    run: usize,
) -> anyhow::Result<f64> {
    let (sub, mut eventloop) = AsyncClient::new(options(port, &format!("bench-sub-{run}")), 100);
    sub.subscribe_many([Filter::new("bench/#", QoS::AtLeastOnce)])
        .await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let received = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n {
            if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await? {
                got += 1;
            }
        }
        anyhow::Ok(())
    });
    let started = Instant::now();
    let make: Make = Arc::new(move |i| {
        let (t, p) = single("dev", i, devices, 0);
        (format!("bench/{t}"), p)
    });
    publish_all(port, publishers, n, make, &format!("pass{run}"), None).await?;
    tokio::time::timeout(Duration::from_secs(120), received)
        .await
        .context("subscriber stalled")???;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Raw binary COPY of `rows` into a copy of `readings` (same primary key), in 5,000-row
/// transactions on one connection, in rows/s.
pub async fn raw_copy(database_url: &str, rows: Vec<Reading>) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect(database_url).await?;
    sqlx::query("DROP TABLE IF EXISTS bench_copy")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE TABLE bench_copy (LIKE readings INCLUDING ALL)")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    for chunk in rows.chunks(5000) {
        let mut tx = conn.begin().await?;
        let mut copy = tx
            .copy_in_raw("COPY bench_copy FROM STDIN (FORMAT binary)")
            .await?;
        copy.send(vigil::store::copy::encode(chunk.iter())).await?;
        copy.finish().await?;
        tx.commit().await?;
    }
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_copy")
        .execute(&mut conn)
        .await?;
    Ok(rate)
}

/// `n` rows shaped like the benchmark's messages (devices `cp-…`).
pub fn rows_of(n: u64, devices: u64, base_ms: i64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            let series = i % (devices * METRICS);
            Reading {
                device_id: format!("cp-{}", series / METRICS),
                metric: format!("m{}", series % METRICS),
                ts: chrono::DateTime::from_timestamp_millis(
                    base_ms + (i / (devices * METRICS)) as i64,
                )
                .expect("valid time"),
                value: (i % 1000) as f64,
            }
        })
        .collect()
}
