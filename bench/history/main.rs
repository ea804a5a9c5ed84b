//! `vigil-bench-history`: history query latency over a year of one series at 1 Hz.
//!
//! Needs an empty PostgreSQL (`scripts/bench-history.sh` starts a private one). Loads one
//! series (`--days` × 86,400 / `--every-s` readings, 31.5 M by default) with binary COPY,
//! builds the rollups with vigil's own rollup task, starts an in-process vigil (HTTP only)
//! and measures `GET /api/v1/readings` for 1 day / 30 days / 1 year at `max_points=1000`,
//! against the same min/max-per-bucket query on the raw table (no rollups) as the baseline.
//! Progress goes to stderr; a markdown table to stdout.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng as _, SeedableRng as _};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vigil::config::Settings;
use vigil::ingest::reading::Reading;

#[derive(Parser, Debug)]
#[command(name = "vigil-bench-history", about = "history query latency with and without rollups")]
struct Args {
    #[arg(long, env = "VIGIL_DATABASE_URL")]
    database_url: String,
    /// Days of data in the series.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 1)]
    every_s: i64,
    /// Timed queries per range through vigil (after 5 warm-up queries).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Timed raw-table baseline queries per range (1 year takes seconds each).
    #[arg(long, default_value_t = 5)]
    baseline_queries: usize,
    #[arg(long, default_value_t = 1000)]
    max_points: usize,
}

const DEVICE: &str = "bench-1";
const METRIC: &str = "temperature";

/// The baseline: min and max of each bucket straight from the raw table.
const RAW_BASELINE: &str = "SELECT count(*)::int8, \
     min(ARRAY[value, date_part('epoch', ts)]), max(ARRAY[value, date_part('epoch', ts)]) \
     FROM readings WHERE device_id = $1 AND metric = $2 AND ts >= $3 AND ts <= $4 \
     GROUP BY date_bin($5, ts, $3)";

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("valid template"),
    );
    b
}

/// A plausible temperature: daily cycle, slow drift, noise, rare spikes.
fn value(i: i64, rng: &mut rand::rngs::SmallRng) -> f64 {
    let t = i as f64;
    let mut v = 20.0 + 5.0 * (t / 13_751.0).sin() + 2.0 * (t / 5_000_000.0).cos();
    v += rng.random_range(-0.3..0.3);
    if rng.random_ratio(1, 200_000) {
        v += 40.0;
    }
    v
}

async fn load(pool: &PgPool, start: DateTime<Utc>, rows: i64, every_s: i64) -> anyhow::Result<()> {
    // The rollups start at the data: the rollup task's range pass builds them in order.
    sqlx::query("UPDATE rollup_state SET watermark = $1, rolled_up = $1")
        .bind(start)
        .execute(pool)
        .await?;
    let progress = bar(rows as u64, "loading with COPY");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let chunk = 100_000;
    let mut i = 0;
    while i < rows {
        let n = chunk.min(rows - i);
        let batch: Vec<Reading> = (i..i + n)
            .map(|k| Reading {
                device_id: DEVICE.into(),
                metric: METRIC.into(),
                ts: start + TimeDelta::seconds(k * every_s),
                value: value(k, &mut rng),
            })
            .collect();
        let mut conn = pool.acquire().await?;
        let mut copy = conn.copy_in_raw("COPY readings FROM STDIN (FORMAT binary)").await?;
        copy.send(vigil::store::copy::encode(batch.iter())).await?;
        copy.finish().await?;
        i += n;
        progress.set_position(i as u64);
    }
    progress.finish();
    Ok(())
}

async fn build_rollups(pool: &PgPool, start: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let total = (now - start).num_minutes().max(1) as u64;
    let progress = bar(total, "rolling up (minutes)");
    let watch = {
        let (pool, progress) = (pool.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(t) = sqlx::query_scalar::<_, DateTime<Utc>>("SELECT rolled_up FROM rollup_state")
                    .fetch_one(&pool)
                    .await
                {
                    progress.set_position((t - start).num_minutes().max(0) as u64);
                }
            }
        })
    };
    let cfg = vigil::history::HistoryConfig::default();
    vigil::history::rollup::catch_up(pool, &cfg, now, &CancellationToken::new(), &vigil::metrics::Metrics::new())
        .await?;
    watch.abort();
    progress.finish();
    Ok(began.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Latencies of `n` history requests over `span` ending at a random point of the last day.
async fn through_vigil(base: &str, span: TimeDelta, n: usize, max_points: usize, now: DateTime<Utc>) -> anyhow::Result<(Vec<Duration>, usize)> {
    let client = reqwest::Client::new();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let mut out = Vec::with_capacity(n);
    let mut points = 0;
    for k in 0..n + 5 {
        let to = now - TimeDelta::seconds(rng.random_range(0..86_400));
        let url = format!(
            "{base}/api/v1/readings?device={DEVICE}&metric={METRIC}&from={}&to={}&max_points={max_points}",
            (to - span).timestamp_millis(),
            to.timestamp_millis()
        );
        let began = Instant::now();
        let r = client.get(&url).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        let body: serde_json::Value = r.json().await?;
        let elapsed = began.elapsed();
        points = body["points"].as_array().map_or(0, |p| p.len());
        anyhow::ensure!(points <= max_points, "{points} points");
        if k >= 5 {
            out.push(elapsed);
        }
    }
    out.sort();
    Ok((out, points))
}

/// Latencies of the raw-table baseline (no rollups), same buckets count.
async fn raw_baseline(pool: &PgPool, span: TimeDelta, n: usize, max_points: usize, now: DateTime<Utc>) -> anyhow::Result<Vec<Duration>> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(13);
    let mut out = Vec::with_capacity(n);
    let width = span / (max_points as i32 / 2);
    for k in 0..n + 1 {
        let to = now - TimeDelta::seconds(rng.random_range(0..86_400));
        let began = Instant::now();
        let rows: Vec<(i64, Vec<f64>, Vec<f64>)> = sqlx::query_as(RAW_BASELINE)
            .bind(DEVICE)
            .bind(METRIC)
            .bind(to - span)
            .bind(to)
            .bind(width)
            .fetch_all(pool)
            .await?;
        anyhow::ensure!(!rows.is_empty());
        if k >= 1 {
            out.push(began.elapsed());
        }
    }
    out.sort();
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&args.database_url)
        .await
        .context("database")?;
    vigil::store::migrate(&pool).await.context("migrations")?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM readings").fetch_one(&pool).await?;
    anyhow::ensure!(existing == 0, "the database must start empty ({existing} readings found)");

    let now = Utc::now();
    let now = DateTime::from_timestamp(now.timestamp(), 0).context("now")?;
    let rows = args.days * 86_400 / args.every_s;
    let start = now - TimeDelta::seconds(rows * args.every_s);
    let began = Instant::now();
    load(&pool, start, rows, args.every_s).await?;
    let load_time = began.elapsed();
    let rollup_time = build_rollups(&pool, start, now).await?;
    eprintln!("==> VACUUM ANALYZE");
    for table in ["readings", "readings_1m", "readings_1h"] {
        sqlx::query(&format!("VACUUM ANALYZE {table}")).execute(&pool).await?;
    }

    let mut s = Settings::default();
    s.database.url = args.database_url.clone();
    s.mqtt.enabled = false;
    s.http.addr = "127.0.0.1:0".parse()?;
    s.history.rollups = false;
    let app = vigil::app::start(s).await?;
    let base = format!("http://{}", app.addr);

    let mut table = String::new();
    table.push_str(&format!(
        "One series, {rows} readings ({} days, one every {} s); load (binary COPY) {:.0} s ({:.0} rows/s); rollups built in {:.0} s.\n\n",
        args.days,
        args.every_s,
        load_time.as_secs_f64(),
        rows as f64 / load_time.as_secs_f64(),
        rollup_time.as_secs_f64()
    ));
    table.push_str(&format!(
        "| range | max_points | points | vigil p50 ms | vigil p99 ms | raw-table p50 ms | raw / vigil (p50) |\n|---|---|---|---|---|---|---|\n"
    ));
    for (label, days) in [("1 day", 1), ("30 days", 30), ("1 year", 365)] {
        let span = TimeDelta::days(days.min(args.days));
        eprintln!("==> {label}: {} queries through vigil", args.queries);
        let (lat, points) = through_vigil(&base, span, args.queries, args.max_points, now).await?;
        eprintln!("==> {label}: {} raw-table baseline queries", args.baseline_queries);
        let raw = raw_baseline(&pool, span, args.baseline_queries, args.max_points, now).await?;
        let (p50, p99, raw50) = (percentile(&lat, 0.5), percentile(&lat, 0.99), percentile(&raw, 0.5));
        table.push_str(&format!(
            "| {label} | {} | {points} | {} | {} | {} | {:.0}× |\n",
            args.max_points,
            ms(p50),
            ms(p99),
            ms(raw50),
            raw50.as_secs_f64() / p50.as_secs_f64()
        ));
    }
    app.shutdown();
    app.wait().await;
    println!("{table}");
    Ok(())
}
