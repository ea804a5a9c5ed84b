//! Helpers shared by the format tests.

use super::{parse_payload, Format, Limits, LineOptions, Source};
use crate::ingest::reading::{Parsed, Rejection};
use chrono::TimeZone;
use chrono::{DateTime, Utc};

/// A fixed arrival time: 2024-05-01T12:00:00Z.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

/// Unix milliseconds of [`now`].
pub(crate) const NOW_MS: i64 = 1_714_564_800_000;

/// Parses with default limits and options at [`now`].
pub(crate) fn run(format: Format, source: Source<'_>, payload: &str) -> Parsed {
    parse_payload(
        format,
        source,
        payload.as_bytes(),
        now(),
        &Limits::default(),
        &LineOptions::default(),
    )
}

/// A source with both ids.
pub(crate) fn dm<'a>(device: &'a str, metric: &'a str) -> Source<'a> {
    Source {
        device: Some(device),
        metric: Some(metric),
    }
}

/// A source with a device only.
pub(crate) fn d(device: &str) -> Source<'_> {
    Source {
        device: Some(device),
        metric: None,
    }
}

/// The single rejection of a payload, which must have no readings.
pub(crate) fn only_rejection(p: &Parsed) -> &Rejection {
    assert!(p.readings.is_empty(), "unexpected readings: {p:?}");
    assert_eq!(p.rejections.len(), 1, "expected one rejection: {p:?}");
    &p.rejections[0]
}

/// Readings as (device, metric, unix ms, value).
pub(crate) fn tuples(p: &Parsed) -> Vec<(&str, &str, i64, f64)> {
    p.readings
        .iter()
        .map(|r| {
            (
                r.device_id.as_str(),
                r.metric.as_str(),
                r.ts.timestamp_millis(),
                r.value,
            )
        })
        .collect()
}
