//! vigil as a separate process, as a user runs it: start, readiness, metrics, resources.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A running `vigil serve` next to this binary.
pub struct Vigil {
    child: Child,
    pub base: String,
    pub addr: String,
}

impl Vigil {
    pub fn start(database_url: &str, mqtt_url: &str, client_id: &str) -> anyhow::Result<Vigil> {
        Vigil::start_with_env(database_url, mqtt_url, client_id, &[])
    }

    /// Like [`Vigil::start`], with extra `VIGIL_...` settings.
    pub fn start_with_env(
        database_url: &str,
        mqtt_url: &str,
        client_id: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Vigil> {
        let exe = std::env::current_exe()?.with_file_name("vigil");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(&exe)
            .arg("serve")
            .env("VIGIL_DATABASE_URL", database_url)
            .env("VIGIL_MQTT_URL", mqtt_url)
            .env("VIGIL_HTTP_ADDR", &addr)
            .env("VIGIL_MQTT__CLIENT_ID", client_id)
            .env("VIGIL_LOG__LEVEL", "warn")
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        Ok(Vigil {
            child,
            base: format!("http://{addr}"),
            addr,
        })
    }

    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?)
    }

    /// The value of the first sample called `name` (labels included, as exposed).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.metrics_text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no metric {name}"))
    }

    pub async fn stored(&self) -> f64 {
        self.metric("vigil_readings_stored_total")
            .await
            .unwrap_or(0.0)
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

    /// Polls until vigil has committed `rows` readings in all, printing progress every
    /// 2 s; returns the peak RSS seen meanwhile, in MiB.
    pub async fn wait_stored(&self, rows: f64) -> anyhow::Result<f64> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut last_report = Instant::now();
        let mut peak_rss = 0.0f64;
        loop {
            let stored = self.stored().await;
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

    /// CPU seconds used so far and peak RSS in MiB, from /proc.
    pub fn resources(&self) -> (f64, f64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|u| u.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime, in clock ticks (100 per second on Linux).
        let ticks = field(11) + field(12);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        (ticks / 100.0, hwm_kb / 1024.0)
    }

    /// Waits until the sample `name` reaches `value`.
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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
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
