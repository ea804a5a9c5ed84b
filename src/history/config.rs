//! The `[history]` settings: how rollups are maintained and exports are cut.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Rollup maintenance and export batching.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Off: no rollup task runs here (another vigil sharing the database may run it);
    /// queries still answer, from raw readings past the last rolled-up minute.
    pub rollups: bool,
    /// How often the rollup task looks for work when it has none.
    #[serde(with = "humantime_serde")]
    pub rollup_interval: Duration,
    /// How far behind the clock the rollups close minutes. Readings arriving later than
    /// this are still counted (as late data, recomputed), just at a little more cost.
    #[serde(with = "humantime_serde")]
    pub rollup_delay: Duration,
    /// The longest time range rolled up in one transaction (bounds catch-up work).
    #[serde(with = "humantime_serde")]
    pub rollup_chunk: Duration,
    /// Late-data minutes recomputed per transaction.
    pub late_batch: usize,
    /// Rows per Arrow record batch (and per CSV chunk) in exports.
    pub export_batch_rows: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            rollups: true,
            rollup_interval: Duration::from_secs(5),
            rollup_delay: Duration::from_secs(60),
            rollup_chunk: Duration::from_secs(3600),
            late_batch: 10_000,
            export_batch_rows: 8192,
        }
    }
}

impl HistoryConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.rollup_interval.is_zero() {
            return Err(("history.rollup_interval", "must be above zero".into()));
        }
        if self.rollup_chunk < Duration::from_secs(60) {
            return Err(("history.rollup_chunk", "must be at least 1m".into()));
        }
        if self.late_batch == 0 {
            return Err(("history.late_batch", "must be at least 1".into()));
        }
        if self.export_batch_rows == 0 {
            return Err(("history.export_batch_rows", "must be at least 1".into()));
        }
        Ok(())
    }
}
