//! `vigil-bench-fanout`: WebSocket fan-out under load, against the same vigil without
//! clients.
//!
//! Needs a PostgreSQL and a Mosquitto (`scripts/bench-fanout.sh` starts private ones and
//! raises the open-files limit) and the `vigil` binary built next to this one. One vigil
//! process serves every step, in order:
//! 1. paced ingest (`--rate` readings/s for `--seconds`) with no client: the ingest rate;
//! 2. the same with `--clients` WebSocket clients, each subscribed to 5 series of its
//!    own: broker → client latency (the publish time is the payload's `ts`, compared
//!    with the clock on receipt, so it includes the commit), lagged count, ingest rate;
//! 3. a burst as fast as the broker takes it, no client;
//! 4. the same burst with `--idle-clients` connected clients (subscribed to series that
//!    get no data, reading only to answer pings) and one stalled client subscribed to
//!    everything that never reads: RSS per idle client, `/healthz` latency meanwhile,
//!    ingest rate, and whether the stalled client was dropped.
//!
//! Progress goes to stderr; a markdown table to stdout.

mod clients;
mod load;
mod process;
// The publishing connections shared with `vigil-bench`; this benchmark uses part of them.
#[allow(dead_code)]
#[path = "../publish.rs"]
mod publish;
// The process handle shared with `vigil-bench`; this benchmark uses part of it.
#[allow(dead_code)]
#[path = "../service.rs"]
mod service;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use tokio_util::sync::CancellationToken;

use service::Vigil;

#[derive(Parser, Debug)]
#[command(
    name = "vigil-bench-fanout",
    about = "vigil WebSocket fan-out benchmark"
)]
struct Args {
    #[arg(long, env = "VIGIL_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "VIGIL_MQTT_URL")]
    mqtt_url: String,
    /// Measuring clients, 5 series each.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Paced ingest rate, readings per second.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Length of each paced run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Mostly idle clients connected during the burst.
    #[arg(long, default_value_t = 10_000)]
    idle_clients: usize,
    /// Messages in each burst.
    #[arg(long, default_value_t = 100_000)]
    burst: u64,
    /// Publishing connections.
    #[arg(long, default_value_t = 2)]
    publishers: usize,
}

const SERIES_PER_CLIENT: usize = 5;
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn port_of(url: &str) -> anyhow::Result<u16> {
    url::Url::parse(url)?
        .port()
        .context("the MQTT URL needs a port")
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at] as f64 / 1000.0
}

/// Publishes `n` messages and returns the ingest rate: readings per second from the
/// first publish to the commit of the last one.
async fn ingest(
    args: &Args,
    vigil: &Vigil,
    n: u64,
    rate: Option<f64>,
    prefix: &str,
    series: u64,
) -> anyhow::Result<f64> {
    let port = port_of(&args.mqtt_url)?;
    let before = vigil.metric("vigil_readings_stored_total").await?;
    let started = Instant::now();
    let stamp = rate.is_some();
    load::publish(port, args.publishers, n, rate, prefix, series, stamp).await?;
    let done = process::wait_stored(vigil, before + n as f64, RUN_LIMIT).await?;
    Ok(n as f64 / done.duration_since(started).as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let needed = (args.idle_clients + args.clients + 1000) as u64;
    match process::open_files_limit() {
        Some(limit) if limit < needed => bail!(
            "the open-files limit is {limit}; {needed} are needed: raise it first \
             (`ulimit -n 65536`, as scripts/bench-fanout.sh does)"
        ),
        _ => {}
    }
    let max_clients = args.idle_clients + args.clients + 10;
    let vigil = Vigil::start_with_env(
        &args.database_url,
        &args.mqtt_url,
        "vigil-bench-fanout",
        &[("VIGIL_STREAM__MAX_CONNECTIONS", max_clients.to_string())],
    )?;
    let addr: std::net::SocketAddr = vigil.addr.parse()?;
    vigil.wait_ready().await?;
    let rss_start = vigil.rss_kib();
    let n = (args.rate * args.seconds as f64) as u64;
    let series = (args.clients * SERIES_PER_CLIENT) as u64;
    let ws_gauge = "vigil_stream_clients{transport=\"ws\"}";

    eprintln!("==> 1. {n} readings at {} /s, no client", args.rate);
    let rate_alone = ingest(&args, &vigil, n, Some(args.rate), "fo", series).await?;

    eprintln!(
        "==> 2. the same with {} clients × {SERIES_PER_CLIENT} series",
        args.clients
    );
    let ws = clients::connect_many(addr, args.clients, 100, |i| {
        (0..SERIES_PER_CLIENT)
            .map(|k| format!("fo-{i}/m{k}"))
            .collect()
    })
    .await?;
    vigil
        .wait_metric(ws_gauge, args.clients as f64, RUN_LIMIT)
        .await?;
    let rss_active = vigil.rss_kib();
    let lagged_before = vigil.metric("vigil_stream_lagged_total").await?;
    let sent_before = vigil.metric("vigil_stream_readings_sent_total").await?;
    let stop = CancellationToken::new();
    let measuring = clients::measure(ws, stop.clone());
    let rate_clients = ingest(&args, &vigil, n, Some(args.rate), "fo", series).await?;
    vigil
        .wait_metric(
            "vigil_stream_readings_sent_total",
            sent_before + n as f64,
            RUN_LIMIT,
        )
        .await
        .ok();
    // The last frames are on the wire; give them a moment to be read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let seen = measuring.await?;
    let lagged = vigil.metric("vigil_stream_lagged_total").await? - lagged_before;
    let mut lat = seen.latencies_us.clone();
    lat.sort_unstable();
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );
    eprintln!(
        "    received {} of {n} readings in {} frames; p50 {p50:.1} ms, p99 {p99:.1} ms; \
         lagged {lagged} (client-side notices {}), errors {}",
        lat.len(),
        seen.frames,
        seen.lagged,
        seen.errors
    );
    wait_gauge_zero(&vigil, ws_gauge).await?;

    eprintln!("==> 3. burst of {} messages, no client", args.burst);
    let burst_alone = ingest(&args, &vigil, args.burst, None, "ba", 5000).await?;

    eprintln!(
        "==> 4. the burst with {} idle clients and one stalled client",
        args.idle_clients
    );
    let rss_before_idle = vigil.rss_kib();
    let idle_ws = clients::connect_many(addr, args.idle_clients, 200, |i| {
        vec![format!("idle-{i}/m0")]
    })
    .await?;
    let stalled = clients::connect(addr, &["#".to_owned()], true).await?;
    vigil
        .wait_metric(ws_gauge, (args.idle_clients + 1) as f64, RUN_LIMIT)
        .await?;
    let rss_idle = vigil.rss_kib();
    let per_idle_kib = (rss_idle - rss_before_idle) / (args.idle_clients + 1) as f64;
    let idle_stop = CancellationToken::new();
    let idling = clients::idle(idle_ws, idle_stop.clone());
    let probe_stop = CancellationToken::new();
    let probing = tokio::spawn(probe_health(vigil.base.clone(), probe_stop.clone()));
    let burst_clients = ingest(&args, &vigil, args.burst, None, "bc", 5000).await?;
    probe_stop.cancel();
    let mut health = probing.await?;
    health.sort_unstable();
    let slow_before = vigil
        .metric("vigil_stream_disconnects_total{reason=\"slow\"}")
        .await?;
    let stalled_dropped = vigil
        .wait_metric(
            "vigil_stream_disconnects_total{reason=\"slow\"}",
            slow_before.max(1.0),
            Duration::from_secs(30),
        )
        .await
        .is_ok();
    idle_stop.cancel();
    let idle_alive = idling.await?;
    drop(stalled);
    let rss_peak_kib = vigil.rss_kib();
    vigil.stop();

    let ratio_paced = rate_clients / rate_alone;
    let ratio_burst = burst_clients / burst_alone;
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    println!(
        "| {} clients × {SERIES_PER_CLIENT} series at {} readings/s: broker → client latency | p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} of {n} readings received, {} frames) | p99 ≤ 150 ms |",
        args.clients, args.rate, lat.len(), seen.frames
    );
    println!("| lagged (skipped for clients) | {lagged} | 0 |");
    println!(
        "| paced ingest rate, with / without clients | {rate_clients:.0} / {rate_alone:.0} readings/s = **{ratio_paced:.3}** | ≥ 0.90 |"
    );
    println!(
        "| vigil RSS with {} active clients | {:.1} MiB ({:.1} KiB per client over the {:.1} MiB start) | |",
        args.clients,
        rss_active / 1024.0,
        (rss_active - rss_start) / args.clients as f64,
        rss_start / 1024.0
    );
    println!(
        "| {} idle clients + 1 stalled: RSS per connected client | {per_idle_kib:.1} KiB ({:.1} → {:.1} MiB) | ≤ 64 KiB |",
        args.idle_clients,
        rss_before_idle / 1024.0,
        rss_idle / 1024.0
    );
    println!(
        "| burst ingest rate, with / without those clients | {burst_clients:.0} / {burst_alone:.0} readings/s = **{ratio_burst:.3}** | stalled client never slows ingest |"
    );
    println!(
        "| `/healthz` during that burst | p50 {:.1} ms, p99 {:.1} ms ({} probes) | responsive |",
        percentile(&health, 0.5),
        percentile(&health, 0.99),
        health.len()
    );
    println!(
        "| stalled client dropped as too slow | {} ; idle clients still connected at the end: {idle_alive} of {} ; vigil RSS at the end {:.1} MiB | |",
        if stalled_dropped { "yes" } else { "no" },
        args.idle_clients,
        rss_peak_kib / 1024.0
    );
    Ok(())
}

async fn wait_gauge_zero(vigil: &Vigil, gauge: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + RUN_LIMIT;
    while vigil.metric(gauge).await? > 0.0 {
        if Instant::now() > deadline {
            bail!("clients did not disconnect");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `GET /healthz` every 50 ms until `stop`; the latencies in microseconds.
async fn probe_health(base: String, stop: CancellationToken) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return out,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            out.push(started.elapsed().as_micros() as i64);
        }
    }
}
