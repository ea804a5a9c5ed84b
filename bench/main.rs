//! `vigil-bench`: vigil's ingest throughput against its binding limits, in one run.
//!
//! Needs a PostgreSQL and a Mosquitto (`scripts/bench.sh` starts private ones) and the
//! `vigil` binary built next to this one. Measures, on the same machine and in the same
//! run (so the ratios hold on a noisy machine):
//! - broker pass-through: publishers → Mosquitto → a plain QoS 1 subscriber (best of runs);
//! - vigil: the same publishers → Mosquitto → vigil → committed rows, zero loss checked;
//! - raw binary COPY of the same rows into a table with the same primary key;
//! - vigil with packed payloads (SenML, 100 readings per message).
//!
//! Prints a markdown table; `scripts/bench.sh` appends it to BENCHMARKS.md.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use sqlx::{Connection as _, PgConnection};
use vigil::ingest::reading::Reading;

#[derive(Parser, Debug)]
#[command(
    name = "vigil-bench",
    about = "vigil ingest throughput against its baselines"
)]
struct Args {
    #[arg(long, env = "VIGIL_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "VIGIL_MQTT_URL")]
    mqtt_url: String,
    /// Single-reading messages per run.
    #[arg(long, default_value_t = 300_000)]
    messages: u64,
    /// Packed messages (100 readings each) for the SenML run.
    #[arg(long, default_value_t = 5_000)]
    packed: u64,
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Broker pass-through measurements (the best counts).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Messages queued at the broker for a stopped vigil, then drained (0 skips).
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// Devices × 5 metrics.
    #[arg(long, default_value_t = 1000)]
    devices: u64,
}

const METRICS: u64 = 5;

fn port_of(url: &str) -> anyhow::Result<u16> {
    url::Url::parse(url)?
        .port()
        .context("the MQTT URL needs a port")
}

fn options(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_outgoing_inflight_upper_limit(1000)
        .set_max_packet_size(Some(4 * 1024 * 1024));
    o
}

/// Message `i` of a run: a distinct (device, metric, ts) for every i.
/// Devices are named `{prefix}-{n}`, so each scenario's rows can be counted apart.
fn single(prefix: &str, i: u64, devices: u64, base_ms: i64) -> (String, Vec<u8>) {
    let series = i % (devices * METRICS);
    let ts = base_ms + (i / (devices * METRICS)) as i64;
    let topic = format!(
        "sensors/{prefix}-{}/m{}",
        series / METRICS,
        series % METRICS
    );
    (
        topic,
        format!("{{\"ts\":{ts},\"value\":{}}}", i % 1000).into_bytes(),
    )
}

/// Packed message `i`: 100 readings of one device as a SenML pack.
fn packed(i: u64, devices: u64, base_ms: i64) -> (String, Vec<u8>) {
    let device = i % devices;
    let round = (i / devices) as i64;
    let records: Vec<String> = (0..100)
        .map(|k| {
            let t = (base_ms + round * 20 + k / METRICS as i64) as f64 / 1000.0;
            format!(
                "{{\"n\":\"m{}\",\"t\":{t:.3},\"v\":{k}}}",
                k % METRICS as i64
            )
        })
        .collect();
    (
        format!("sensors/pk-{device}"),
        format!("[{}]", records.join(",")).into_bytes(),
    )
}

/// Publishes `n` messages from `publishers` connections as fast as the broker takes them;
/// returns when every one is acknowledged by the broker.
async fn publish_all(
    port: u16,
    publishers: usize,
    n: u64,
    make: Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync>,
    tag: &str,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let per_publisher = rate.map(|r| r / publishers as f64);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (client, mut eventloop) =
            AsyncClient::new(options(port, &format!("bench-{tag}-pub-{p}")), 1000);
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
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<u64> = (p as u64..n).step_by(publishers).collect();
            let count = mine.len() as u64;
            let started = Instant::now();
            for (k, i) in mine.into_iter().enumerate() {
                if let Some(r) = per_publisher {
                    let due = started + Duration::from_secs_f64(k as f64 / r);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let (topic, payload) = make(i);
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

/// Broker pass-through: the same publishers to a plain QoS 1 subscriber.
async fn pass_through(args: &Args, port: u16, run: usize) -> anyhow::Result<f64> {
    let (sub, mut eventloop) = AsyncClient::new(options(port, &format!("bench-sub-{run}")), 100);
    sub.subscribe_many([Filter::new("bench/#", QoS::AtLeastOnce)])
        .await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let n = args.messages;
    let devices = args.devices;
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
    let make: Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync> = Arc::new(move |i| {
        let (t, p) = single("dev", i, devices, 0);
        (format!("bench/{t}"), p)
    });
    publish_all(port, args.publishers, n, make, &format!("pass{run}"), None).await?;
    tokio::time::timeout(Duration::from_secs(120), received)
        .await
        .context("subscriber stalled")???;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// vigil as a separate process, as a user runs it.
struct Vigil {
    child: Child,
    base: String,
}

impl Vigil {
    fn start(args: &Args, client_id: &str) -> anyhow::Result<Vigil> {
        let exe = std::env::current_exe()?.with_file_name("vigil");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&exe)
            .arg("serve")
            .env("VIGIL_DATABASE_URL", &args.database_url)
            .env("VIGIL_MQTT_URL", &args.mqtt_url)
            .env("VIGIL_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("VIGIL_MQTT__CLIENT_ID", client_id)
            .env("VIGIL_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        Ok(Vigil {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no metric {name}"))
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..300 {
            if reqwest::get(format!("{}/readyz", self.base))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("vigil did not become ready")
    }

    /// Polls until vigil has committed `rows` readings, printing progress every 2 s;
    /// returns the peak RSS seen meanwhile, in MiB.
    async fn wait_stored(&self, rows: f64) -> anyhow::Result<f64> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut last_report = Instant::now();
        let mut peak_rss = 0.0f64;
        loop {
            let stored = self
                .metric("vigil_readings_stored_total")
                .await
                .unwrap_or(0.0);
            peak_rss = peak_rss.max(self.resources().1);
            if stored >= rows {
                return Ok(peak_rss);
            }
            if last_report.elapsed() > Duration::from_secs(2) {
                eprintln!("  {stored:.0} of {rows:.0} committed, peak RSS {peak_rss:.0} MiB");
                last_report = Instant::now();
            }
            if Instant::now() > deadline {
                bail!("vigil did not commit {rows} rows in time");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU seconds used and peak RSS in MiB, from /proc.
    fn resources(&self) -> (f64, f64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields
            .get(11)
            .and_then(|u| u.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        (ticks / 100.0, hwm_kb / 1024.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

struct VigilRun {
    rate: f64,
    stored: i64,
    cpu_s: f64,
    rss_mib: f64,
}

/// Publishes `n` messages carrying `rows` readings to a fresh vigil and waits for the commits.
async fn vigil_run(
    args: &Args,
    port: u16,
    tag: &str,
    n: u64,
    rows: i64,
    make: Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync>,
    prefix: &str,
) -> anyhow::Result<VigilRun> {
    let vigil = Vigil::start(args, &format!("vigil-bench-{}-{tag}", std::process::id()))?;
    vigil.wait_ready().await?;
    let started = Instant::now();
    publish_all(port, args.publishers, n, make, tag, None).await?;
    measure(args, vigil, started, rows, prefix).await
}

/// Waits until vigil has committed `rows`, then takes the rate since `started`, vigil's
/// resources, and the rows of devices `{prefix}-…` actually in the table.
async fn measure(
    args: &Args,
    vigil: Vigil,
    started: Instant,
    rows: i64,
    prefix: &str,
) -> anyhow::Result<VigilRun> {
    let peak_rss = vigil.wait_stored(rows as f64).await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    let (cpu_s, rss_mib) = vigil.resources();
    vigil.stop();
    let mut conn = PgConnection::connect(&args.database_url).await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM readings WHERE device_id LIKE $1")
        .bind(format!("{prefix}-%"))
        .fetch_one(&mut conn)
        .await?;
    Ok(VigilRun {
        rate,
        stored,
        cpu_s,
        rss_mib: rss_mib.max(peak_rss),
    })
}

/// Commit latency at a steady half of the measured rate: p50 and p99 upper bounds from
/// vigil's histogram buckets, in milliseconds.
async fn half_rate(
    args: &Args,
    port: u16,
    rate: f64,
    base_ms: i64,
) -> anyhow::Result<(f64, f64, f64)> {
    let vigil = Vigil::start(args, &format!("vigil-bench-{}-half", std::process::id()))?;
    vigil.wait_ready().await?;
    let n = (rate * 10.0) as u64;
    let devices = args.devices;
    let make: Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync> =
        Arc::new(move |i| single("hr", i, devices, base_ms));
    publish_all(port, args.publishers, n, make, "half", Some(rate)).await?;
    vigil.wait_stored(n as f64).await?;
    let text = reqwest::get(format!("{}/metrics", vigil.base))
        .await?
        .text()
        .await?;
    vigil.stop();
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("vigil_commit_duration_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"} ")?;
            Some((le.parse().ok()?, rest.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|b| b.1 >= q * total)
            .map_or(f64::INFINITY, |b| b.0 * 1000.0)
    };
    Ok((rate, quantile(0.5), quantile(0.99)))
}

/// A backlog queued at the broker while vigil is away, then drained: vigil's memory must
/// stay bounded whatever the backlog (it reads only as fast as it commits).
async fn backlog_run(args: &Args, port: u16, base_ms: i64) -> anyhow::Result<VigilRun> {
    let id = format!("vigil-bench-{}-backlog", std::process::id());
    let first = Vigil::start(args, &id)?;
    first.wait_ready().await?;
    first.stop();
    let n = args.backlog;
    let devices = args.devices;
    eprintln!("queueing {n} messages at the broker while vigil is stopped ...");
    let make: Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync> =
        Arc::new(move |i| single("bl", i, devices, base_ms));
    publish_all(port, args.publishers, n, make, "backlog", None).await?;
    eprintln!("starting vigil against the backlog ...");
    let vigil = Vigil::start(args, &id)?;
    measure(args, vigil, Instant::now(), n as i64, "bl").await
}

/// Raw binary COPY of the rows of `make` into a copy of `readings` (same primary key).
async fn raw_copy(args: &Args, rows: Vec<Reading>) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect(&args.database_url).await?;
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

fn rows_of(n: u64, devices: u64, base_ms: i64) -> Vec<Reading> {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let port = port_of(&args.mqtt_url)?;
    let base_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;
    {
        // Schema first, so the runs measure ingest only.
        let mut conn = PgConnection::connect(&args.database_url).await?;
        vigil::store::MIGRATOR.run(&mut conn).await?;
        sqlx::query("TRUNCATE readings").execute(&mut conn).await?;
    }

    let mut best_pass = 0.0f64;
    for run in 0..args.passes {
        let r = pass_through(&args, port, run).await?;
        eprintln!("broker pass-through run {}: {r:.0} msg/s", run + 1);
        best_pass = best_pass.max(r);
    }
    let devices = args.devices;
    let n = args.messages;
    eprintln!("vigil: {n} single-reading QoS 1 messages ...");
    let single_run = vigil_run(
        &args,
        port,
        "single",
        n,
        n as i64,
        Arc::new(move |i| single("dev", i, devices, base_ms)),
        "dev",
    )
    .await?;
    eprintln!(
        "vigil: {:.0} readings/s, {} stored",
        single_run.rate, single_run.stored
    );
    let (half, p50, p99) = half_rate(&args, port, single_run.rate / 2.0, base_ms).await?;
    eprintln!("half rate {half:.0}/s: commit p50 <= {p50} ms, p99 <= {p99} ms");
    let pass_after = pass_through(&args, port, 99).await?;
    eprintln!("broker pass-through after: {pass_after:.0} msg/s");
    best_pass = best_pass.max(pass_after);

    let packed_rows = (args.packed * 100) as i64;
    eprintln!("raw binary COPY of {packed_rows} rows ...");
    let copy_rate = raw_copy(&args, rows_of(packed_rows as u64, devices, base_ms)).await?;
    eprintln!("raw COPY: {copy_rate:.0} rows/s");
    eprintln!("vigil: {} SenML packs of 100 readings ...", args.packed);
    let packed_run = vigil_run(
        &args,
        port,
        "packed",
        args.packed,
        packed_rows,
        Arc::new(move |i| packed(i, devices, base_ms)),
        "pk",
    )
    .await?;
    eprintln!(
        "vigil packed: {:.0} readings/s, {} stored",
        packed_run.rate, packed_run.stored
    );

    let backlog = if args.backlog > 0 {
        Some(backlog_run(&args, port, base_ms).await?)
    } else {
        None
    };

    let loss = |expected: i64, stored: i64| {
        if expected == stored {
            "0".to_owned()
        } else {
            format!("{}", expected - stored)
        }
    };
    println!("| measurement | rate | ratio | loss | vigil CPU | vigil peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| broker QoS 1 pass-through, best of {} | {best_pass:.0} msg/s | 1.00 | | | |",
        args.passes + 1
    );
    println!(
        "| vigil, 1 reading/message, {} devices × {METRICS} metrics | {:.0} readings/s | **{:.2}** of pass-through | {} of {n} | {:.1} s | {:.0} MiB |",
        devices,
        single_run.rate,
        single_run.rate / best_pass,
        loss(n as i64, single_run.stored),
        single_run.cpu_s,
        single_run.rss_mib
    );
    println!("| raw binary COPY, same table and key | {copy_rate:.0} rows/s | 1.00 | | | |");
    println!(
        "| vigil, SenML 100 readings/message | {:.0} readings/s | **{:.2}** of raw COPY | {} of {packed_rows} | {:.1} s | {:.0} MiB |",
        packed_run.rate,
        packed_run.rate / copy_rate,
        loss(packed_rows, packed_run.stored),
        packed_run.cpu_s,
        packed_run.rss_mib
    );
    println!(
        "| commit latency at half that rate ({half:.0} readings/s) | p50 ≤ {p50} ms, p99 ≤ {p99} ms (histogram bucket bounds) | | | | |"
    );
    if let Some(b) = backlog {
        println!(
            "| vigil draining a backlog of {} messages queued while it was away | {:.0} readings/s | | {} of {} | {:.1} s | {:.0} MiB |",
            args.backlog,
            b.rate,
            loss(args.backlog as i64, b.stored),
            args.backlog,
            b.cpu_s,
            b.rss_mib
        );
    }
    Ok(())
}
