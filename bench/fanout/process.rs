//! vigil as a child process, its metrics and its memory.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

pub struct Vigil {
    child: Child,
    pub base: String,
    pub addr: std::net::SocketAddr,
}

impl Vigil {
    /// Starts `vigil serve` (the binary next to this one) with room for `max_clients`.
    pub fn start(db: &str, mqtt: &str, max_clients: usize) -> anyhow::Result<Vigil> {
        let exe = std::env::current_exe()?.with_file_name("vigil");
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(&exe)
            .arg("serve")
            .env("VIGIL_DATABASE_URL", db)
            .env("VIGIL_MQTT_URL", mqtt)
            .env("VIGIL_HTTP_ADDR", addr.to_string())
            .env("VIGIL_MQTT__CLIENT_ID", "vigil-bench-fanout")
            .env("VIGIL_LOG__LEVEL", "warn")
            .env("VIGIL_STREAM__MAX_CONNECTIONS", max_clients.to_string())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        Ok(Vigil {
            child,
            base: format!("http://{addr}"),
            addr,
        })
    }

    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no metric {name}"))
    }

    pub async fn wait_ready(&self) -> anyhow::Result<()> {
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

    /// Waits until `vigil_readings_stored_total` reaches `rows`; returns when it did.
    pub async fn wait_stored(&self, rows: f64, limit: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        let mut report = Instant::now();
        loop {
            let stored = self.metric("vigil_readings_stored_total").await.unwrap_or(0.0);
            if stored >= rows {
                return Ok(Instant::now());
            }
            if report.elapsed() > Duration::from_secs(2) {
                eprintln!("    {stored:.0} of {rows:.0} committed");
                report = Instant::now();
            }
            if Instant::now() > deadline {
                bail!("vigil committed {stored} of {rows} rows in {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until a gauge reaches `value`.
    pub async fn wait_metric(&self, name: &str, value: f64, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.metric(name).await.unwrap_or(-1.0);
            if v >= value {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name} is {v}, expected {value}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The soft open-files limit of this process (vigil inherits it).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
