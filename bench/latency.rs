//! Latency at a steady rate: publish → committed (from a statement trigger that records
//! each inserted row's commit-side clock), and publish → WebSocket client (`GET /ws`,
//! skipped with a note when vigil has no such endpoint). Also vigil's CPU and memory, loss
//! and duplicates at that load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{SecondsFormat, Utc};
use futures_util::{SinkExt as _, StreamExt as _};
use sqlx::{Connection as _, PgConnection};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::publish::{Make, Publishers, METRICS};
use crate::service::Vigil;

/// Percentiles in milliseconds, and how many samples they come from.
#[derive(Debug, Clone, Copy)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub n: usize,
}

impl Quantiles {
    pub fn of(mut ms: Vec<f64>) -> Option<Quantiles> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
        Some(Quantiles {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            n: ms.len(),
        })
    }

    pub fn cell(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms ({} readings)",
            self.p50, self.p99, self.p999, self.n
        )
    }
}

pub struct Latency {
    pub rate: f64,
    pub committed: Option<Quantiles>,
    /// The WebSocket figure, or why there is none.
    pub ws: Result<Quantiles, String>,
    pub cpu_pct: f64,
    pub rss_mib: f64,
    pub published: u64,
    pub stored: i64,
    pub duplicates: i64,
}

const TRIGGER: &[&str] = &[
    "DROP TABLE IF EXISTS bench_commit_times",
    "CREATE TABLE bench_commit_times (device_id text, metric text, ts timestamptz, committed timestamptz)",
    "CREATE OR REPLACE FUNCTION bench_commit_time() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN INSERT INTO bench_commit_times SELECT device_id, metric, ts, clock_timestamp() \
     FROM new_rows WHERE device_id LIKE 'lt-%'; RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS bench_commit_time ON readings",
    "CREATE TRIGGER bench_commit_time AFTER INSERT ON readings REFERENCING NEW TABLE AS new_rows \
     FOR EACH STATEMENT EXECUTE FUNCTION bench_commit_time()",
];

const UNTRIGGER: &[&str] = &[
    "DROP TRIGGER IF EXISTS bench_commit_time ON readings",
    "DROP FUNCTION IF EXISTS bench_commit_time()",
    "DROP TABLE IF EXISTS bench_commit_times",
];

async fn exec(db: &str, sql: &[&str]) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(db).await?;
    for s in sql {
        sqlx::query(s)
            .execute(&mut conn)
            .await
            .with_context(|| s.to_string())?;
    }
    Ok(())
}

/// Message `i` stamped with the wall clock at publish time (microseconds), devices `lt-…`.
fn make(devices: u64) -> Make {
    Arc::new(move |i| {
        let series = i % (devices * METRICS);
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        (
            format!("sensors/lt-{}/m{}", series / METRICS, series % METRICS),
            format!("{{\"ts\":\"{ts}\",\"value\":{}}}", i % 1000).into_bytes(),
        )
    })
}

/// Runs `secs` seconds of QoS 1 load at `rate` into `vigil` (a fresh one) and measures.
pub async fn at_rate(
    vigil: &Vigil,
    db: &str,
    port: u16,
    publishers: usize,
    devices: u64,
    rate: f64,
    secs: f64,
) -> anyhow::Result<Latency> {
    exec(db, TRIGGER).await?;
    let ws = ws_listener(&vigil.addr).await;
    let mut pubs = Publishers::connect(port, publishers, "lt").await?;
    let n = (rate * secs) as u64;
    let (cpu0, _) = vigil.resources();
    let started = Instant::now();
    pubs.send(0..n, make(devices), Some(rate)).await?;
    let peak = vigil.wait_stored(n as f64).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, rss) = vigil.resources();
    pubs.close();
    // The live feed trails the commit slightly: give the last frames a moment.
    let ws = match ws {
        Ok(w) => {
            let until = Instant::now() + Duration::from_secs(10);
            while w.count() < n as usize && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            w.finish()
        }
        Err(note) => Err(note),
    };
    let mut conn = PgConnection::connect(db).await?;
    let lat: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM committed - ts) * 1000)::float8 FROM bench_commit_times",
    )
    .fetch_all(&mut conn)
    .await?;
    let (stored, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (device_id, metric, ts)) FROM readings WHERE device_id LIKE 'lt-%'",
    )
    .fetch_one(&mut conn)
    .await?;
    exec(db, UNTRIGGER).await?;
    Ok(Latency {
        rate,
        committed: Quantiles::of(lat),
        ws,
        cpu_pct: 100.0 * (cpu1 - cpu0) / elapsed,
        rss_mib: rss.max(peak),
        published: n,
        stored,
        duplicates: stored - distinct,
    })
}

/// A WebSocket client subscribed to everything, recording each reading's delay.
struct WsListener {
    delays: Arc<Mutex<Vec<f64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WsListener {
    fn count(&self) -> usize {
        self.delays.lock().map_or(0, |d| d.len())
    }

    fn finish(self) -> Result<Quantiles, String> {
        self.task.abort();
        let errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        if let Some(e) = errors.first() {
            return Err(format!("WebSocket: {e}"));
        }
        let delays = self.delays.lock().map(|d| d.clone()).unwrap_or_default();
        Quantiles::of(delays).ok_or_else(|| "WebSocket: no readings received".to_owned())
    }
}

/// Connects to `/ws` and subscribes to `#`; `Err` with a note when there is no `/ws`.
async fn ws_listener(addr: &str) -> Result<WsListener, String> {
    use tokio_tungstenite::tungstenite::Error;
    let url = format!("ws://{addr}/ws");
    let (mut ws, _) = match tokio_tungstenite::connect_async(&url).await {
        Ok(c) => c,
        Err(Error::Http(r)) if r.status() == 404 => {
            return Err("skipped: this vigil has no /ws endpoint (404)".to_owned())
        }
        Err(e) => return Err(format!("skipped: cannot open {url}: {e}")),
    };
    let sub = r##"{"op":"subscribe","filter":"#"}"##;
    ws.send(WsMessage::Text(sub.into()))
        .await
        .map_err(|e| format!("WebSocket send: {e}"))?;
    // Wait for the confirmation so no reading is published before the subscription.
    let confirmed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let WsMessage::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "subscribed" {
                    return true;
                }
            }
        }
        false
    })
    .await;
    if confirmed != Ok(true) {
        return Err("WebSocket: no \"subscribed\" answer within 10 s".to_owned());
    }
    let delays = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (d, e) = (delays.clone(), errors.clone());
    let task = tokio::spawn(async move {
        while let Some(m) = ws.next().await {
            let now = Utc::now();
            let Ok(WsMessage::Text(t)) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            match v["type"].as_str() {
                Some("readings") => {
                    let mut d = d.lock().expect("not poisoned");
                    for r in v["readings"].as_array().into_iter().flatten() {
                        let ts = r["ts"]
                            .as_str()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
                        if let Some(ts) = ts {
                            d.push(
                                (now - ts.with_timezone(&Utc))
                                    .num_microseconds()
                                    .unwrap_or(0) as f64
                                    / 1000.0,
                            );
                        }
                    }
                }
                Some("lagged") => e.lock().expect("not poisoned").push(format!("lagged: {t}")),
                _ => {}
            }
        }
    });
    Ok(WsListener {
        delays,
        errors,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let q = Quantiles::of((1..=1000).map(f64::from).collect()).unwrap();
        assert_eq!((q.p50, q.p99, q.p999, q.n), (500.0, 990.0, 999.0, 1000));
        assert!(Quantiles::of(Vec::new()).is_none());
    }
}
