//! Anomaly detection: per-series streaming detectors fed by the live feed.
//!
//! - [`series`]: one series' detector, pure and synchronous (baseline, level shift,
//!   stuck sensor, learned model, combination), built on [`window`], [`learned`],
//!   [`finding`] and [`episode`] (one event per anomalous stretch).
//! - [`config`]: the `[detect]` settings and their per-series resolution.
//! - [`replay`]: `vigil detect`, the same detector over a CSV file.
//! - [`task`], [`store`]: the live detector task and the `anomalies` table.

pub mod baseline;
pub mod calibrate;
pub mod config;
pub mod episode;
pub mod finding;
pub mod learned;
pub mod replay;
pub mod series;
pub mod store;
pub mod task;
#[cfg(test)]
mod tests;
pub mod window;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::DetectConfig;
pub use finding::{Detector, Finding};
pub use series::{Params, Score, SeriesDetector};

/// One anomaly event: a reading that a detector found out of character for its series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Anomaly {
    pub device_id: String,
    pub metric: String,
    /// The reading's time.
    pub ts: DateTime<Utc>,
    pub value: f64,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// Which detector fired (a bounded label).
    pub detector: String,
    /// A short explanation a person can read.
    pub explanation: String,
}
