//! The cap on distinct series, so one runaway device cannot grow memory without bound.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::reading::{Parsed, RejectReason, Rejection};

/// Remembers the (device, metric) pairs this vigil has accepted, up to a limit.
#[derive(Debug)]
pub struct SeriesGuard {
    max: usize,
    inner: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    count: usize,
    by_device: HashMap<String, HashSet<String>>,
}

impl SeriesGuard {
    pub fn new(max: usize) -> SeriesGuard {
        SeriesGuard {
            max,
            inner: Mutex::new(Known::default()),
        }
    }

    /// Moves readings of new series past the cap from `parsed.readings` to its rejections.
    pub fn admit(&self, parsed: &mut Parsed) {
        if parsed.readings.is_empty() {
            return;
        }
        let mut known = self
            .inner
            .lock()
            .expect("series guard lock is never poisoned");
        let max = self.max;
        let mut refused = Vec::new();
        parsed.readings.retain(|r| {
            if known
                .by_device
                .get(&r.device_id)
                .is_some_and(|m| m.contains(&r.metric))
            {
                return true;
            }
            if known.count >= max {
                refused.push(Rejection::new(
                    RejectReason::SeriesLimit,
                    format!(
                        "series {}/{} is new and the limit of {max} series is reached \
                         (ingest.max_series)",
                        r.device_id, r.metric
                    ),
                ));
                return false;
            }
            known.count += 1;
            known
                .by_device
                .entry(r.device_id.clone())
                .or_default()
                .insert(r.metric.clone());
            true
        });
        parsed.rejections.extend(refused);
    }

    /// Series known so far.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("series guard lock is never poisoned")
            .count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::reading::Reading;
    use chrono::Utc;

    fn reading(d: &str, m: &str) -> Reading {
        Reading {
            device_id: d.into(),
            metric: m.into(),
            ts: Utc::now(),
            value: 1.0,
        }
    }

    #[test]
    fn known_series_pass_and_new_ones_past_the_cap_are_refused() {
        let guard = SeriesGuard::new(2);
        let mut p = Parsed {
            readings: vec![
                reading("a", "t"),
                reading("a", "h"),
                reading("a", "t"),
                reading("b", "t"),
            ],
            ..Parsed::default()
        };
        guard.admit(&mut p);
        assert_eq!(p.readings.len(), 3);
        assert_eq!(p.rejections.len(), 1);
        assert_eq!(p.rejections[0].reason, RejectReason::SeriesLimit);
        assert!(p.rejections[0].detail.contains("b/t"));
        assert_eq!(guard.len(), 2);
        let mut again = Parsed {
            readings: vec![reading("a", "h")],
            ..Parsed::default()
        };
        guard.admit(&mut again);
        assert_eq!(again.readings.len(), 1);
    }
}
