//! `vigil-sim`: a simulated sensor fleet publishing to an MQTT broker in vigil's formats,
//! and vigil's load generator.
//!
//! Devices publish their metrics with realistic signals (`signals.rs`), anomalies injected
//! with ground-truth labels (`anomaly.rs`), optionally malformed messages vigil must reject
//! (`bad.rs`), paced by a rate schedule (`schedule.rs`) over one or more connections
//! (`publish.rs`, `conn.rs`); in presence mode each device has its own connection with an
//! `offline` Last Will. `--to-csv` writes the same fleet in simulated time (`offline.rs`).
//! A progress line goes to stderr every second; the summary states the rate achieved
//! against the rate asked for, and the rejections vigil should report.

mod anomaly;
mod args;
mod bad;
mod conn;
mod encode;
mod fleet;
mod offline;
mod publish;
mod schedule;
mod signals;
mod stats;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use args::Args;
use bad::BadInput;
use conn::Target;
use fleet::{Fleet, Spec};
use publish::{Ctx, Lane};
use stats::{Stats, Summary};

#[tokio::main]
async fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let result = match args.validate() {
        Ok(()) if args.to_csv.is_some() => run_offline(&args),
        Ok(()) => run_live(&args).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(summary) => {
            // Offline runs have said what they wrote; rates mean nothing in simulated time.
            if args.to_csv.is_none() {
                println!("{}", summary.text());
            }
            if let Some(path) = &args.summary {
                let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("vigil-sim: cannot write --summary {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("vigil-sim: {e:#}");
            std::process::exit(1);
        }
    }
}

fn spec(args: &Args) -> Spec {
    Spec {
        prefix: args.prefix.clone(),
        devices: args.devices,
        metrics: args.metrics,
        seed: args.seed,
        anomaly_rate: args.anomaly_rate,
    }
}

fn run_offline(args: &Args) -> anyhow::Result<Summary> {
    let dir = args.to_csv.as_deref().context("--to-csv")?;
    let schedule = args.schedule();
    let count = match (args.count, args.duration) {
        (Some(n), _) => n,
        (None, Some(d)) => schedule.due(d.as_secs_f64()).round() as u64,
        (None, None) => anyhow::bail!("--to-csv needs --count or --duration"),
    };
    let started = Instant::now();
    let mut fleet = Fleet::new(&spec(args), 0, 1);
    let w = offline::write(dir, &mut fleet, &schedule, args.start_ms()?, count)?;
    println!(
        "vigil-sim: wrote {} series ({} readings, {} withheld by dropouts) and {} labels to {} in {:.1}s",
        w.series,
        w.readings,
        w.withheld,
        w.labels,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(Summary {
        samples: count,
        readings: w.readings,
        withheld_readings: w.withheld,
        anomalies: w.labels as u64,
        ..Summary::default()
    })
}

async fn run_live(args: &Args) -> anyhow::Result<Summary> {
    let target = Target::parse(&args.url, args.connect_timeout)?;
    let stats = Arc::new(Stats::default());
    let labels = match &args.labels {
        Some(p) => Some(Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("--labels: cannot create {}", p.display()))?,
        ))),
        None => None,
    };
    let parts = if args.presence {
        args.devices
    } else {
        args.connections()
    };
    let spec = spec(args);
    let mut lanes = Vec::with_capacity(parts);
    let mut drop_txs = Vec::new();
    let pid = std::process::id();
    for part in 0..parts {
        let fleet = Fleet::new(&spec, part, parts);
        let bad = BadInput::new(
            args.bad_fraction,
            args.bad_kinds(),
            SmallRng::seed_from_u64(args.seed ^ 0xBAD0_0000 ^ part as u64),
            (part, parts),
            args.oversize_bytes,
        );
        let client_id = if args.presence {
            fleet.device_id(0).to_owned()
        } else {
            format!("{}-{pid}-{part}", args.prefix)
        };
        let drops = args.drop_every.map(|_| {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            drop_txs.push(tx);
            rx
        });
        let count = args
            .count
            .map(|n| n / parts as u64 + u64::from((part as u64) < n % parts as u64));
        lanes.push(Lane {
            client_id,
            fleet,
            bad,
            share: 1.0 / parts as f64,
            count,
            drops,
        });
    }
    let ctx = Arc::new(Ctx {
        target,
        schedule: args.schedule(),
        started: Instant::now(),
        deadline: None,
        qos: args.qos(),
        format: args.format,
        stats: stats.clone(),
        labels,
        stop: CancellationToken::new(),
        presence: args.presence,
    });
    // Connect everything first: an unreachable broker fails the run before it starts.
    let conns =
        futures_util::future::try_join_all(lanes.iter().map(|l| publish::open(&ctx, l))).await?;
    let ctx = Arc::new(Ctx {
        started: Instant::now(),
        deadline: args.duration.map(|d| Instant::now() + d),
        ..Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("context still shared"))?
    });
    let tasks: Vec<_> = lanes
        .into_iter()
        .zip(conns)
        .map(|(lane, conn)| tokio::spawn(publish::run(ctx.clone(), lane, conn)))
        .collect();
    let progress = tokio::spawn(progress(ctx.clone()));
    let dropper = args
        .drop_every
        .map(|every| tokio::spawn(dropper(every, args.drop_for, args.seed, drop_txs)));
    let stop = ctx.stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("vigil-sim: interrupted, finishing");
            stop.cancel();
        }
    });

    let mut summary = Summary::default();
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok(end)) => {
                for (reason, n) in end.expected {
                    *summary
                        .expected_rejections
                        .entry(reason.to_owned())
                        .or_default() += n;
                }
                summary.anomalies += end.anomalies;
                summary.unacked += end.unacked;
                summary.offline_devices.extend(end.offline);
            }
            Ok(Err(e)) => {
                ctx.stop.cancel();
                failure.get_or_insert(e);
            }
            Err(e) => {
                ctx.stop.cancel();
                failure.get_or_insert(anyhow::anyhow!("a publisher failed: {e}"));
            }
        }
    }
    progress.abort();
    if let Some(d) = dropper {
        d.abort();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(file) = &ctx.labels {
        use std::io::Write as _;
        let mut f = file.lock().map_err(|_| anyhow::anyhow!("labels lock"))?;
        f.flush().context("--labels: write failed")?;
    }
    let elapsed = ctx.started.elapsed().as_secs_f64();
    summary.elapsed_s = elapsed;
    summary.samples = Stats::get(&stats.slots);
    summary.asked_rate = ctx.schedule.mean_rate(elapsed);
    summary.achieved_rate = summary.samples as f64 / elapsed.max(1e-9);
    summary.readings = Stats::get(&stats.readings);
    summary.messages = Stats::get(&stats.messages);
    summary.bad_messages = Stats::get(&stats.bad);
    summary.withheld_readings = Stats::get(&stats.withheld);
    summary.control_messages = Stats::get(&stats.control);
    summary.acked = Stats::get(&stats.acked);
    summary.errors = Stats::get(&stats.errors);
    summary.drops = Stats::get(&stats.drops);
    summary.expected_rejections.retain(|_, n| *n > 0);
    summary.offline_devices.sort();
    Ok(summary)
}

async fn progress(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let t = ctx.started.elapsed();
        let asked = ctx.schedule.rate_at(t.as_secs_f64());
        eprintln!("{}", ctx.stats.progress(t, last, asked));
        last = Stats::get(&ctx.stats.slots);
    }
}

/// Presence mode: every `every`, tells one device (chosen by the seed) to drop off.
async fn dropper(
    every: Duration,
    away: Duration,
    seed: u64,
    lanes: Vec<tokio::sync::mpsc::Sender<Duration>>,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xD50F);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if lanes.is_empty() {
            return;
        }
        let _ = lanes[rng.random_range(0..lanes.len())].try_send(away);
    }
}

/// vigil's own verdict on one message: topic mapping and parsing as the service does it.
#[cfg(test)]
pub(crate) fn vigil_parse(topic: &str, payload: &[u8]) -> vigil::ingest::reading::Parsed {
    use vigil::ingest::parse::{parse_payload, Limits, LineOptions};
    use vigil::ingest::reading::{Parsed, RejectReason, Rejection};
    use vigil::ingest::topics::{default_rules, TopicMap};
    let map = TopicMap::new(&default_rules()).expect("default rules");
    match map.resolve(topic) {
        Some((format, source)) => parse_payload(
            format,
            source,
            payload,
            chrono::Utc::now(),
            &Limits::default(),
            &LineOptions::default(),
        ),
        None => Parsed::rejected(Rejection::new(RejectReason::UnmappedTopic, topic)),
    }
}
