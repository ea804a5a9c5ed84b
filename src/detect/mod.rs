//! Anomaly detection: per-series streaming detectors fed by the live feed.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One anomaly event: a reading that a detector found out of character for its series.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
