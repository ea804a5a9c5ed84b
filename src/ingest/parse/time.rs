//! Timestamps: the accepted spellings, conversion to microseconds, and the time window.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use serde_json::Value;

use super::json::describe;
use super::{Fault, Limits, Precision};
use crate::ingest::reading::RejectReason;

/// Parses a time given as RFC 3339 or as unix milliseconds (integer or fractional).
///
/// The result is truncated to microseconds, the precision vigil stores. Used for payload
/// timestamps given as strings and for the `from`/`to` parameters of the HTTP API.
pub fn parse_timestamp_str(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(truncate_to_micros(t.with_timezone(&Utc)));
    }
    decimal_ms(s).or_else(|| {
        // Exponent forms such as "1.7e12"; non-finite spellings fall out here.
        let ms = s.parse::<f64>().ok()?;
        from_unix_ms_f64(ms)
    })
}

/// Exact parse of `[-]digits[.digits]` milliseconds, truncating below a microsecond.
fn decimal_ms(s: &str) -> Option<DateTime<Utc>> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = int.parse().ok()?;
    // The first three fraction digits are microseconds; the rest is truncated.
    let (mut sub, mut scale) = (0i64, 100);
    for b in frac.bytes().take(3) {
        sub += i64::from(b - b'0') * scale;
        scale /= 10;
    }
    let micros = ms.checked_mul(1000)?.checked_add(sub)?;
    DateTime::from_timestamp_micros(if negative { -micros } else { micros })
}

/// Unix milliseconds as a float, rounded to the nearest microsecond.
///
/// Rounded, not truncated: at today's epoch an f64 holds milliseconds only to about a
/// quarter of a microsecond, so `1714564800123.456` may arrive as `...123.45599`.
pub(crate) fn from_unix_ms_f64(ms: f64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(round_to_i64(ms * 1000.0)?)
}

/// Seconds as a float to whole microseconds (rounded, for the reason above).
pub(crate) fn secs_to_micros(secs: f64) -> Option<i64> {
    round_to_i64(secs * 1_000_000.0)
}

fn round_to_i64(x: f64) -> Option<i64> {
    let x = x.round();
    // The range test also refuses NaN.
    (x.abs() < 9.0e18).then_some(x as i64)
}

/// A line-protocol timestamp in the given unit.
pub(crate) fn from_precision(n: i64, precision: Precision) -> Option<DateTime<Utc>> {
    match precision {
        Precision::Ns => Some(DateTime::from_timestamp_nanos(n)),
        Precision::Us => DateTime::from_timestamp_micros(n),
        Precision::Ms => DateTime::from_timestamp_millis(n),
        Precision::S => DateTime::from_timestamp(n, 0),
    }
}

/// Drops the sub-microsecond part: PostgreSQL stores microseconds.
pub(crate) fn truncate_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    // Always Some: the result is below the original nanosecond value.
    ts.with_nanosecond(ts.nanosecond() / 1000 * 1000)
        .unwrap_or(ts)
}

/// A JSON timestamp field: unix milliseconds as a number, or a string
/// [`parse_timestamp_str`] accepts.
pub(crate) fn json_ts(field: &str, v: &Value) -> Result<DateTime<Utc>, Fault> {
    match v {
        Value::Number(n) => {
            let ts = match n.as_i64() {
                Some(ms) => DateTime::from_timestamp_millis(ms),
                None => n.as_f64().and_then(from_unix_ms_f64),
            };
            ts.ok_or_else(|| {
                Fault::new(
                    RejectReason::TimestampOutOfWindow,
                    format!("field \"{field}\": {n} ms is outside the representable time range"),
                )
            })
        }
        Value::String(s) => parse_timestamp_str(s).ok_or_else(|| {
            Fault::malformed(format!(
                "field \"{field}\": {} is neither an RFC 3339 time nor unix milliseconds",
                super::ids::show(s)
            ))
        }),
        other => Err(Fault::new(
            RejectReason::WrongType,
            format!(
                "field \"{field}\": expected unix milliseconds (a number) or an RFC 3339 \
                 string, found {}",
                describe(other)
            ),
        )),
    }
}

/// Formats a time for messages.
pub(crate) fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The accepted span of reading times around the arrival time.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    max_past: Duration,
    max_future: Duration,
}

impl Window {
    pub(crate) fn new(now: DateTime<Utc>, limits: &Limits) -> Self {
        // Limits too large for chrono's range mean "unbounded" on that side.
        let lo = TimeDelta::from_std(limits.max_past)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let hi = TimeDelta::from_std(limits.max_future)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Self {
            lo,
            hi,
            max_past: limits.max_past,
            max_future: limits.max_future,
        }
    }

    pub(crate) fn check(&self, ts: DateTime<Utc>) -> Result<(), Fault> {
        if ts >= self.lo && ts <= self.hi {
            return Ok(());
        }
        Err(Fault::new(
            RejectReason::TimestampOutOfWindow,
            format!(
                "timestamp {} is outside the accepted window {} to {} (max_past {}, max_future {})",
                rfc3339(ts),
                rfc3339(self.lo),
                rfc3339(self.hi),
                short_duration(self.max_past),
                short_duration(self.max_future),
            ),
        ))
    }
}

/// `365d`, `1h 30m`, `10m`, `1.5s`: humantime's own output turns 365 days into months.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
    ];
    let mut out: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    let (s, ms) = (secs % 60, d.subsec_millis());
    if ms > 0 {
        let frac = format!("{ms:03}");
        out.push(format!("{s}.{}s", frac.trim_end_matches('0')));
    } else if s > 0 || out.is_empty() {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse::testing::{now, NOW_MS};
    use serde_json::json;

    fn ms(ts: Option<DateTime<Utc>>) -> Option<i64> {
        ts.map(|t| t.timestamp_micros())
    }

    #[test]
    fn strings_rfc3339_and_unix_ms() {
        assert_eq!(parse_timestamp_str("2024-05-01T12:00:00Z"), Some(now()));
        assert_eq!(
            parse_timestamp_str(" 2024-05-01T14:00:00+02:00 "),
            Some(now())
        );
        assert_eq!(parse_timestamp_str("1714564800000"), Some(now()));
        assert_eq!(
            ms(parse_timestamp_str("1714564800000.5")),
            Some(NOW_MS * 1000 + 500)
        );
        // Sub-microsecond digits are truncated, not rounded.
        assert_eq!(
            ms(parse_timestamp_str("1714564800000.4569")),
            Some(NOW_MS * 1000 + 456)
        );
        assert_eq!(ms(parse_timestamp_str("-1.5")), Some(-1500));
        assert_eq!(ms(parse_timestamp_str("1.7145648e12")), Some(NOW_MS * 1000));
        let nanos = parse_timestamp_str("2024-05-01T12:00:00.123456789Z").unwrap();
        assert_eq!(nanos.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn bad_strings() {
        for s in [
            "",
            "yesterday",
            "NaN",
            "inf",
            "1.2.3",
            "12a",
            "-",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timestamp_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn float_ms_round_to_the_nearest_microsecond() {
        let t = from_unix_ms_f64(1_714_564_800_123.456).unwrap();
        assert_eq!(t.timestamp_micros(), 1_714_564_800_123_456);
        assert_eq!(from_unix_ms_f64(f64::NAN), None);
        assert_eq!(from_unix_ms_f64(1e300), None);
    }

    #[test]
    fn json_timestamps() {
        assert_eq!(json_ts("ts", &json!(NOW_MS)), Ok(now()));
        assert_eq!(json_ts("ts", &json!("2024-05-01T12:00:00Z")), Ok(now()));
        assert_eq!(
            json_ts("ts", &json!(1_714_564_800_000.25)).map(|t| t.timestamp_micros()),
            Ok(1_714_564_800_000_250)
        );

        let f = json_ts("ts", &json!(true)).unwrap_err();
        assert_eq!(f.reason, RejectReason::WrongType);
        assert_eq!(
            f.detail,
            "field \"ts\": expected unix milliseconds (a number) or an RFC 3339 string, found true"
        );
        let f = json_ts("ts", &json!("soon")).unwrap_err();
        assert_eq!(f.reason, RejectReason::Malformed);
        assert!(f.detail.contains("\"soon\" is neither"), "{}", f.detail);
        let f = json_ts("ts", &json!(u64::MAX)).unwrap_err();
        assert_eq!(f.reason, RejectReason::TimestampOutOfWindow);
        let f = json_ts("ts", &json!(1e300)).unwrap_err();
        assert_eq!(f.reason, RejectReason::TimestampOutOfWindow);
    }

    #[test]
    fn precisions() {
        let n = 1_714_564_800;
        assert_eq!(from_precision(n, Precision::S), Some(now()));
        assert_eq!(from_precision(n * 1000, Precision::Ms), Some(now()));
        assert_eq!(from_precision(n * 1_000_000, Precision::Us), Some(now()));
        assert_eq!(
            from_precision(n * 1_000_000_000, Precision::Ns),
            Some(now())
        );
        assert_eq!(from_precision(i64::MAX, Precision::S), None);
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let w = Window::new(now(), &Limits::default());
        assert!(w.check(now() - TimeDelta::days(365)).is_ok());
        assert!(w.check(now() + TimeDelta::minutes(10)).is_ok());
        let f = w.check(now() + TimeDelta::minutes(11)).unwrap_err();
        assert_eq!(f.reason, RejectReason::TimestampOutOfWindow);
        assert_eq!(
            f.detail,
            "timestamp 2024-05-01T12:11:00Z is outside the accepted window \
             2023-05-02T12:00:00Z to 2024-05-01T12:10:00Z (max_past 365d, max_future 10m)"
        );
        assert!(w.check(now() - TimeDelta::days(366)).is_err());
    }

    #[test]
    fn huge_limits_mean_unbounded() {
        let limits = Limits {
            max_past: Duration::from_secs(u64::MAX),
            max_future: Duration::from_secs(u64::MAX),
            ..Limits::default()
        };
        let w = Window::new(now(), &limits);
        assert!(w.check(DateTime::<Utc>::MIN_UTC).is_ok());
        assert!(w.check(DateTime::<Utc>::MAX_UTC).is_ok());
    }

    #[test]
    fn short_durations() {
        let cases = [
            (Duration::from_secs(365 * 86_400), "365d"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(90_061), "1d 1h 1m 1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(61_050), "1m 1.05s"),
            (Duration::ZERO, "0s"),
        ];
        for (d, s) in cases {
            assert_eq!(short_duration(d), s);
        }
    }

    #[test]
    fn truncation_keeps_microseconds() {
        let t = DateTime::from_timestamp_nanos(1_714_564_800_123_456_789);
        assert_eq!(
            truncate_to_micros(t).timestamp_nanos_opt(),
            Some(1_714_564_800_123_456_000)
        );
    }
}
