//! `vigil-bench`: vigil's ingest throughput, latency and resources against its binding
//! limits, in one run.
//!
//! Needs a PostgreSQL and a Mosquitto (`scripts/bench.sh` starts private ones) and the
//! `vigil` binary built next to this one. Measures, on the same machine and in the same
//! run (so the ratios hold on a noisy machine):
//! - the baselines: broker pass-through (publishers → Mosquitto → a plain QoS 1
//!   subscriber) and raw binary COPY into the same schema (`baselines.rs`);
//! - the highest QoS 1 rate vigil sustains with zero loss and a bounded backlog, stepping
//!   the offered rate up, 1,000 devices × 5 metrics (`throughput.rs`);
//! - latency publish → committed and publish → WebSocket client at half that rate, with
//!   vigil's CPU and peak RSS, loss and duplicates (`latency.rs`);
//! - packed payloads (SenML, 100 readings per message) and a backlog drained after an
//!   absence (`scenarios.rs`).
//!
//! Progress goes to stderr; the markdown table to stdout (`scripts/bench.sh` appends it
//! to BENCHMARKS.md).

mod baselines;
mod latency;
mod publish;
mod scenarios;
// Shared with `vigil-bench-fanout`, which uses other parts of it.
#[allow(dead_code)]
mod service;
mod throughput;

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use sqlx::{Connection as _, PgConnection};

use publish::METRICS;
use scenarios::{rows_of_prefix, Env};

#[derive(Parser, Debug)]
#[command(
    name = "vigil-bench",
    about = "vigil ingest throughput, latency and resources against its baselines"
)]
struct Args {
    #[arg(long, env = "VIGIL_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "VIGIL_MQTT_URL")]
    mqtt_url: String,
    /// Devices × 5 metrics.
    #[arg(long, default_value_t = 1000)]
    devices: u64,
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Messages per broker pass-through measurement.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Broker pass-through measurements (the best counts; one more runs at the end).
    #[arg(long, default_value_t = 2)]
    passes: usize,
    /// Rows for the raw COPY baseline.
    #[arg(long, default_value_t = 500_000)]
    copy_rows: u64,
    /// First offered rate of the throughput search (readings/s).
    #[arg(long, default_value_t = 10_000.0)]
    start_rate: f64,
    /// Each step offers this many times the previous rate.
    #[arg(long, default_value_t = 1.25)]
    factor: f64,
    /// How long each offered rate is held.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    step: Duration,
    /// At most this many steps.
    #[arg(long, default_value_t = 12)]
    max_steps: usize,
    /// How long the half-rate latency run lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    latency_for: Duration,
    /// Packed messages (100 readings each) for the SenML run (0 skips).
    #[arg(long, default_value_t = 5_000)]
    packed: u64,
    /// Messages queued at the broker for a stopped vigil, then drained (0 skips).
    #[arg(long, default_value_t = 500_000)]
    backlog: u64,
}

fn loss(expected: i64, stored: i64) -> String {
    format!("{} of {expected}", expected - stored)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let port = url::Url::parse(&args.mqtt_url)?
        .port()
        .context("the MQTT URL needs a port")?;
    let base_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;
    {
        // Schema first, so the runs measure ingest only.
        let mut conn = PgConnection::connect(&args.database_url).await?;
        vigil::store::MIGRATOR.run(&mut conn).await?;
        sqlx::query("TRUNCATE readings").execute(&mut conn).await?;
    }
    let env = Env {
        database_url: &args.database_url,
        mqtt_url: &args.mqtt_url,
        port,
        publishers: args.publishers,
        devices: args.devices,
        base_ms,
    };

    eprintln!("== baselines");
    let mut best_pass = 0.0f64;
    for run in 0..args.passes {
        let r = baselines::pass_through(port, args.publishers, args.messages, args.devices, run)
            .await?;
        eprintln!("broker pass-through run {}: {r:.0} msg/s", run + 1);
        best_pass = best_pass.max(r);
    }
    eprintln!("raw binary COPY of {} rows ...", args.copy_rows);
    let copy_rate = baselines::raw_copy(
        &args.database_url,
        baselines::rows_of(args.copy_rows, args.devices, base_ms),
    )
    .await?;
    eprintln!("raw COPY: {copy_rate:.0} rows/s");

    eprintln!("== throughput: stepping the offered QoS 1 rate up");
    let v = service::Vigil::start(
        &args.database_url,
        &args.mqtt_url,
        &format!("vigil-bench-{}-tp", std::process::id()),
    )?;
    v.wait_ready().await?;
    let plan = throughput::Plan {
        devices: args.devices,
        publishers: args.publishers,
        start_rate: args.start_rate,
        factor: args.factor,
        step: args.step,
        max_steps: args.max_steps,
        base_ms,
    };
    let search = throughput::search(&v, port, &plan).await?;
    v.stop();
    let tp_stored = rows_of_prefix(&args.database_url, "tp").await?;
    eprintln!("max sustained: {:.0} readings/s", search.max);

    let half = (search.max / 2.0).max(1000.0);
    eprintln!("== latency at {half:.0} readings/s");
    let v = service::Vigil::start(
        &args.database_url,
        &args.mqtt_url,
        &format!("vigil-bench-{}-lt", std::process::id()),
    )?;
    v.wait_ready().await?;
    let lat = latency::at_rate(
        &v,
        &args.database_url,
        port,
        args.publishers,
        args.devices,
        half,
        args.latency_for.as_secs_f64(),
    )
    .await?;
    v.stop();

    let packed = if args.packed > 0 {
        eprintln!("== vigil: {} SenML packs of 100 readings", args.packed);
        Some(scenarios::packed_run(&env, args.packed).await?)
    } else {
        None
    };
    let backlog = if args.backlog > 0 {
        eprintln!("== backlog of {} messages", args.backlog);
        Some(scenarios::backlog_run(&env, args.backlog).await?)
    } else {
        None
    };
    let after =
        baselines::pass_through(port, args.publishers, args.messages, args.devices, 99).await?;
    eprintln!("broker pass-through after: {after:.0} msg/s");
    best_pass = best_pass.max(after);

    let binding = best_pass.min(copy_rate);
    let binding_name = if best_pass <= copy_rate {
        "broker pass-through"
    } else {
        "raw COPY"
    };
    println!("| measurement | result | ratio | loss | vigil CPU | vigil peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| broker QoS 1 pass-through, best of {} | {best_pass:.0} msg/s | | | | |",
        args.passes + 1
    );
    println!("| raw binary COPY, same table and key | {copy_rate:.0} rows/s | | | | |");
    let steps: Vec<String> = search
        .steps
        .iter()
        .map(|s| format!("{:.0}{}", s.offered, s.verdict.mark()))
        .collect();
    // When the publishers ran out before vigil fell behind, the maximum is a lower bound.
    let generator_bound = search
        .steps
        .iter()
        .any(|s| s.verdict == throughput::Verdict::NotOffered)
        && !search
            .steps
            .iter()
            .any(|s| s.verdict == throughput::Verdict::FellBehind);
    println!(
        "| vigil max sustained QoS 1, 1 reading/message, {} devices × {METRICS} metrics (steps of {:?}: {}) | **{}{:.0} readings/s** | **{:.2}** of {binding_name} | {} | {:.1} s | {:.0} MiB |",
        args.devices,
        args.step,
        steps.join(" "),
        if generator_bound { "≥ " } else { "" },
        search.max,
        search.max / binding,
        loss(search.published as i64, tp_stored),
        search.cpu_s,
        search.rss_mib
    );
    if let Some(q) = lat.committed {
        println!(
            "| latency publish → committed at {:.0} readings/s | {} | | {}, {} duplicates | {:.0}% of a core | {:.0} MiB |",
            lat.rate,
            q.cell(),
            loss(lat.published as i64, lat.stored),
            lat.duplicates,
            lat.cpu_pct,
            lat.rss_mib
        );
    }
    match &lat.ws {
        Ok(q) => println!(
            "| latency publish → WebSocket client at {:.0} readings/s | {} | | | | |",
            lat.rate,
            q.cell()
        ),
        Err(note) => println!("| latency publish → WebSocket client | {note} | | | | |"),
    }
    if let Some(p) = packed {
        let rows = (args.packed * 100) as i64;
        println!(
            "| vigil, SenML 100 readings/message | {:.0} readings/s | **{:.2}** of raw COPY | {} | {:.1} s | {:.0} MiB |",
            p.rate,
            p.rate / copy_rate,
            loss(rows, p.stored),
            p.cpu_s,
            p.rss_mib
        );
    }
    if let Some(b) = backlog {
        println!(
            "| vigil draining a backlog of {} messages queued while it was away | {:.0} readings/s | | {} | {:.1} s | {:.0} MiB |",
            args.backlog,
            b.rate,
            loss(args.backlog as i64, b.stored),
            b.cpu_s,
            b.rss_mib
        );
    }
    Ok(())
}
