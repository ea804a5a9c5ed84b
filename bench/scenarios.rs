//! Fixed-size runs: a batch of messages into a fresh vigil as fast as the broker takes
//! them (packed SenML), and a backlog queued while vigil was away, then drained.

use std::sync::Arc;
use std::time::Instant;

use sqlx::{Connection as _, PgConnection};

use crate::publish::{packed, publish_all, single, Make};
use crate::service::Vigil;

pub struct Run {
    pub rate: f64,
    pub stored: i64,
    pub cpu_s: f64,
    pub rss_mib: f64,
}

/// Where the runs go.
pub struct Env<'a> {
    pub database_url: &'a str,
    pub mqtt_url: &'a str,
    pub port: u16,
    pub publishers: usize,
    pub devices: u64,
    pub base_ms: i64,
}

/// Rows of devices `{prefix}-…` in `readings`.
pub async fn rows_of_prefix(database_url: &str, prefix: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(database_url).await?;
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM readings WHERE device_id LIKE $1")
            .bind(format!("{prefix}-%"))
            .fetch_one(&mut conn)
            .await?,
    )
}

/// `n` SenML packs of 100 readings into a fresh vigil, as fast as they go.
pub async fn packed_run(env: &Env<'_>, n: u64) -> anyhow::Result<Run> {
    let vigil = Vigil::start(
        env.database_url,
        env.mqtt_url,
        &format!("vigil-bench-{}-packed", std::process::id()),
    )?;
    vigil.wait_ready().await?;
    let (devices, base_ms) = (env.devices, env.base_ms);
    let make: Make = Arc::new(move |i| packed(i, devices, base_ms));
    let started = Instant::now();
    publish_all(env.port, env.publishers, n, make, "packed", None).await?;
    measure(env, vigil, started, (n * 100) as i64, "pk").await
}

/// A backlog queued at the broker while vigil is away, then drained: vigil's memory must
/// stay bounded whatever the backlog (it reads only as fast as it commits).
pub async fn backlog_run(env: &Env<'_>, n: u64) -> anyhow::Result<Run> {
    let id = format!("vigil-bench-{}-backlog", std::process::id());
    let first = Vigil::start(env.database_url, env.mqtt_url, &id)?;
    first.wait_ready().await?;
    first.stop();
    eprintln!("queueing {n} messages at the broker while vigil is stopped ...");
    let (devices, base_ms) = (env.devices, env.base_ms);
    let make: Make = Arc::new(move |i| single("bl", i, devices, base_ms));
    publish_all(env.port, env.publishers, n, make, "backlog", None).await?;
    eprintln!("starting vigil against the backlog ...");
    let vigil = Vigil::start(env.database_url, env.mqtt_url, &id)?;
    measure(env, vigil, Instant::now(), n as i64, "bl").await
}

/// Waits until vigil has committed `rows` (its own count), then takes the rate since
/// `started`, its resources, and the rows of devices `{prefix}-…` actually stored.
async fn measure(
    env: &Env<'_>,
    vigil: Vigil,
    started: Instant,
    rows: i64,
    prefix: &str,
) -> anyhow::Result<Run> {
    let peak_rss = vigil.wait_stored(rows as f64).await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    let (cpu_s, rss_mib) = vigil.resources();
    vigil.stop();
    Ok(Run {
        rate,
        stored: rows_of_prefix(env.database_url, prefix).await?,
        cpu_s,
        rss_mib: rss_mib.max(peak_rss),
    })
}
