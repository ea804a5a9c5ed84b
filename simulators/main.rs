//! `vigil-sim`: a simulated sensor fleet publishing to an MQTT broker in vigil's formats.
//!
//! Each device publishes its metrics at an even share of the total rate, with readable
//! signals (a daily temperature cycle with noise, humidity, pressure, power draw with load
//! steps), and its metadata retained on `devices/{device}/meta`. A progress line every
//! second shows what was sent and acknowledged; the summary states the rate achieved
//! against the rate asked for.

mod fleet;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

use fleet::Fleet;

/// Simulate a fleet of sensors publishing to an MQTT broker.
#[derive(Parser, Debug, Clone)]
#[command(name = "vigil-sim", version, about)]
struct Args {
    /// Broker URL.
    #[arg(long, env = "VIGIL_MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    url: String,
    /// Number of devices.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Metrics per device (temperature, humidity, pressure, power, vibration, battery, ...).
    #[arg(long, default_value_t = 3)]
    metrics: usize,
    /// Total readings per second across the fleet.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Stop after this many readings (default: run until Ctrl-C or --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long, e.g. 30s, 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// MQTT QoS for readings (0 or 1).
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Payload format.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Json)]
    format: PayloadFormat,
    /// Parallel MQTT connections (for high rates).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seed for the signals' noise: the same seed gives the same readings.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Device id prefix.
    #[arg(long, default_value = "sim")]
    prefix: String,
}

/// How readings are encoded.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `sensors/{device}/{metric}` with `{"ts": ms, "value": v}`.
    Json,
    /// `sensors/{device}/{metric}` with a bare number (stamped by vigil on arrival).
    Bare,
    /// `sensors/{device}` with a SenML pack of all metrics.
    Senml,
    /// `ingest/line` with InfluxDB line protocol, one line per reading.
    Line,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("vigil-sim: {e:#}");
        std::process::exit(1);
    }
}

fn options(url: &str, client_id: String) -> anyhow::Result<MqttOptions> {
    let u = url::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
    if u.scheme() != "mqtt" && u.scheme() != "tcp" {
        bail!("--url must be mqtt://host:port (got {url:?})");
    }
    let host = u.host_str().context("--url has no host")?;
    let mut o = MqttOptions::new(client_id, host, u.port().unwrap_or(1883));
    o.set_keep_alive(Duration::from_secs(30))
        .set_outgoing_inflight_upper_limit(1000);
    Ok(o)
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.devices == 0 || args.metrics == 0 || args.connections == 0 {
        bail!("--devices, --metrics and --connections must be at least 1");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of readings per second");
    }
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => bail!("--qos must be 0 or 1 (got {q})"),
    };
    let fleet = Fleet::new(&args.prefix, args.devices, args.metrics, args.seed);
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);

    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let id = format!("{}-{}-{c}", args.prefix, std::process::id());
        let (client, mut eventloop) = AsyncClient::new(options(&args.url, id)?, 1000);
        // Fail fast and clearly when the broker is not there.
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("cannot connect to the broker at {}: {e}", args.url),
            Err(_) => bail!("no answer from the broker at {} within 5s", args.url),
        }
        let (acked, errors) = (acked.clone(), errors.clone());
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("vigil-sim: connection error: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        if c == 0 {
            for (device, meta) in fleet.metadata() {
                client
                    .publish(
                        format!("devices/{device}/meta"),
                        QoS::AtLeastOnce,
                        true,
                        meta,
                    )
                    .await?;
            }
        }
        let shard = fleet.shard(c, args.connections);
        let per_conn_rate = args.rate / args.connections as f64;
        let count = args.count.map(|n| {
            n / args.connections as u64 + u64::from((c as u64) < n % args.connections as u64)
        });
        let sent = sent.clone();
        let format = args.format;
        tasks.push(tokio::spawn(async move {
            publish(
                client,
                shard,
                format,
                qos,
                per_conn_rate,
                count,
                deadline,
                sent,
            )
            .await
        }));
    }

    let progress = {
        let (sent, acked, errors) = (sent.clone(), acked.clone(), errors.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let s = sent.load(Ordering::Relaxed);
                eprintln!(
                    "vigil-sim: sent {s} readings ({}/s), acked {}, errors {}",
                    s - last,
                    acked.load(Ordering::Relaxed),
                    errors.load(Ordering::Relaxed)
                );
                last = s;
            }
        })
    };
    tokio::select! {
        _ = futures_all(tasks) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("vigil-sim: interrupted"),
    }
    if qos == QoS::AtLeastOnce {
        let until = Instant::now() + Duration::from_secs(10);
        while acked.load(Ordering::Relaxed) < messages(&sent, args.format, args.metrics)
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    progress.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let s = sent.load(Ordering::Relaxed);
    println!(
        "vigil-sim: {s} readings in {elapsed:.1}s: {:.0} readings/s achieved, {:.0} asked; \
         {} acknowledged by the broker, {} connection errors",
        s as f64 / elapsed,
        args.rate,
        acked.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Messages (not readings) sent: a SenML pack carries a device's metrics in one.
fn messages(sent: &AtomicU64, format: PayloadFormat, metrics: usize) -> u64 {
    let s = sent.load(Ordering::Relaxed);
    if format == PayloadFormat::Senml {
        s / metrics as u64
    } else {
        s
    }
}

async fn futures_all(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>) {
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("vigil-sim: {e:#}"),
            Err(e) => eprintln!("vigil-sim: publisher failed: {e}"),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    client: AsyncClient,
    mut shard: Fleet,
    format: PayloadFormat,
    qos: QoS,
    rate: f64,
    count: Option<u64>,
    deadline: Option<Instant>,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let metrics = shard.metrics_per_device() as u64;
    let mut done = 0u64;
    let started = Instant::now();
    loop {
        if count.is_some_and(|c| done >= c) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        // Pace against the start time so short stalls are caught up, not lost.
        let due = started + Duration::from_secs_f64(done as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        for (topic, payload, readings) in shard.next_messages(format, now_ms) {
            client.publish(topic, qos, false, payload).await?;
            done += readings;
            sent.fetch_add(readings, Ordering::Relaxed);
        }
        debug_assert!(metrics > 0);
    }
}
