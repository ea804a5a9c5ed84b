//! What the fan-out benchmark needs beyond the shared `Vigil` process handle.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::service::Vigil;

/// Waits until `vigil_readings_stored_total` reaches `rows`; returns when it did.
pub async fn wait_stored(vigil: &Vigil, rows: f64, limit: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    let mut report = Instant::now();
    loop {
        let stored = vigil.stored().await;
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

/// The soft open-files limit of this process (vigil inherits it).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
