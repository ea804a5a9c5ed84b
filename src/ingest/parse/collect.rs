//! The checks every reading shares, and the accumulation of one payload's outcome.

use chrono::{DateTime, Utc};

use super::ids::check_id;
use super::time::{self, Window};
use super::Limits;
use crate::ingest::reading::{Parsed, Reading, RejectReason, Rejection};

/// A refusal before its position in the payload is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fault {
    pub(crate) reason: RejectReason,
    pub(crate) detail: String,
}

impl Fault {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(RejectReason::Malformed, detail)
    }

    fn at(self, index: Option<usize>) -> Rejection {
        Rejection {
            reason: self.reason,
            detail: self.detail,
            index,
        }
    }
}

/// Accumulates one payload's outcome and applies the checks every reading shares.
pub(crate) struct Collector {
    /// The arrival time: stamps readings without a time, anchors relative SenML times.
    pub(crate) now: DateTime<Utc>,
    window: Window,
    pub(crate) parsed: Parsed,
}

impl Collector {
    pub(crate) fn new(now: DateTime<Utc>, limits: &Limits) -> Self {
        Self {
            now,
            window: Window::new(now, limits),
            parsed: Parsed::default(),
        }
    }

    /// Validates one reading and keeps it, or records why not.
    pub(crate) fn reading(
        &mut self,
        index: Option<usize>,
        device: &str,
        metric: &str,
        ts: DateTime<Utc>,
        value: f64,
    ) {
        match self.check(device, metric, ts, value) {
            Ok(ts) => self.parsed.readings.push(Reading {
                device_id: device.to_owned(),
                metric: metric.to_owned(),
                ts,
                value,
            }),
            Err(fault) => self.reject(index, fault),
        }
    }

    /// Records a refused item.
    pub(crate) fn reject(&mut self, index: Option<usize>, fault: Fault) {
        self.parsed.rejections.push(fault.at(index));
    }

    fn check(
        &self,
        device: &str,
        metric: &str,
        ts: DateTime<Utc>,
        value: f64,
    ) -> Result<DateTime<Utc>, Fault> {
        check_id("device", device)?;
        check_id("metric", metric)?;
        if !value.is_finite() {
            return Err(Fault::new(
                RejectReason::NonFinite,
                format!("value of {device}/{metric} is {value}; only finite numbers are stored"),
            ));
        }
        let ts = time::truncate_to_micros(ts);
        self.window.check(ts)?;
        Ok(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse::testing::now;

    #[test]
    fn reading_checks_run_ids_then_value_then_time() {
        let mut c = Collector::new(now(), &Limits::default());
        c.reading(Some(0), "bad id", "m", now(), f64::NAN);
        c.reading(Some(1), "d", "m", now(), f64::NAN);
        c.reading(Some(2), "d", "m", now() - chrono::TimeDelta::days(400), 1.0);
        c.reading(Some(3), "d", "m", now(), 1.0);
        let reasons: Vec<_> = c
            .parsed
            .rejections
            .iter()
            .map(|r| (r.index, r.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (Some(0), RejectReason::InvalidId),
                (Some(1), RejectReason::NonFinite),
                (Some(2), RejectReason::TimestampOutOfWindow),
            ]
        );
        assert_eq!(c.parsed.readings.len(), 1);
    }
}
