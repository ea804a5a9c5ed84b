//! The `value` format: one reading per message, ids from the topic.
//!
//! Payload: `{"ts": <unix ms | RFC 3339>, "value": <number>}` (ts optional) or a bare number.
//! This is the hot path, so a well-formed object is read by a typed deserializer that
//! allocates nothing; only a payload it refuses is parsed again into a `serde_json::Value`
//! to explain what is wrong.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::ids::show;
use super::time::{from_unix_ms_f64, json_ts, parse_timestamp_str};
use super::{json, Collector, Fault, Source};
use crate::ingest::reading::RejectReason;

const EXPECTED: &str = r#"a number or a JSON object {"ts": .., "value": <number>}"#;

/// Parses one `value` payload into `out`.
pub(crate) fn parse(out: &mut Collector, source: Source<'_>, text: &str) {
    let (Some(device), Some(metric)) = (source.device, source.metric) else {
        let fault = Fault::new(
            RejectReason::InvalidId,
            "the value format takes device and metric from the topic, and this topic gave none",
        );
        return out.reject(None, fault);
    };
    match read(text, out.now) {
        Ok((ts, value)) => out.reading(None, device, metric, ts, value),
        Err(fault) => out.reject(None, fault),
    }
}

/// The reading's time and value.
fn read(text: &str, now: DateTime<Utc>) -> Result<(DateTime<Utc>, f64), Fault> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Fault::malformed(
            "empty payload; expected ".to_owned() + EXPECTED,
        ));
    }
    if trimmed.starts_with('{') {
        if let Ok(fast) = serde_json::from_str::<Fast>(trimmed) {
            return Ok((fast.ts.map_or(now, |t| t.0), fast.value));
        }
        return explain(trimmed, now);
    }
    // Rust's float syntax also accepts "NaN", "inf" and "Infinity": those then fail the
    // finiteness check with a clear reason instead of a parse error.
    if let Ok(v) = trimmed.parse::<f64>() {
        return Ok((now, v));
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(other) => Err(Fault::new(
            RejectReason::WrongType,
            format!("expected {EXPECTED}, found {}", json::describe(&other)),
        )),
        Err(_) => Err(Fault::malformed(format!(
            "payload {} is not {EXPECTED}",
            show(trimmed)
        ))),
    }
}

/// The slow path: find out why the typed parse failed.
fn explain(text: &str, now: DateTime<Utc>) -> Result<(DateTime<Utc>, f64), Fault> {
    let doc = json::parse(text)?;
    let Value::Object(obj) = &doc else {
        return Err(json::wrong_type("payload", EXPECTED, &doc));
    };
    let value = match obj.get("value") {
        Some(v) => json::number("value", v)?,
        None => return Err(json::missing("value")),
    };
    let ts = match obj.get("ts") {
        None | Some(Value::Null) => now,
        Some(v) => json_ts("ts", v)?,
    };
    Ok((ts, value))
}

/// The well-formed shape; unknown fields are ignored.
#[derive(Deserialize)]
struct Fast {
    #[serde(default)]
    ts: Option<FastTs>,
    value: f64,
}

/// A timestamp read straight from the token, without an intermediate `Value`.
struct FastTs(DateTime<Utc>);

impl<'de> Deserialize<'de> for FastTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TsVisitor)
    }
}

struct TsVisitor;

impl Visitor<'_> for TsVisitor {
    type Value = FastTs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unix milliseconds or an RFC 3339 string")
    }

    fn visit_i64<E: de::Error>(self, ms: i64) -> Result<FastTs, E> {
        DateTime::from_timestamp_millis(ms)
            .map(FastTs)
            .ok_or_else(|| E::custom("out of range"))
    }

    fn visit_u64<E: de::Error>(self, ms: u64) -> Result<FastTs, E> {
        let ms = i64::try_from(ms).map_err(|_| E::custom("out of range"))?;
        self.visit_i64(ms)
    }

    fn visit_f64<E: de::Error>(self, ms: f64) -> Result<FastTs, E> {
        from_unix_ms_f64(ms)
            .map(FastTs)
            .ok_or_else(|| E::custom("out of range"))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<FastTs, E> {
        parse_timestamp_str(s)
            .map(FastTs)
            .ok_or_else(|| E::custom("bad time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse::testing::*;
    use crate::ingest::parse::Format;

    fn one(payload: &str) -> Vec<(&'static str, &'static str, i64, f64)> {
        let p = run(Format::Value, dm("dev-1", "temp"), payload);
        assert!(p.rejections.is_empty(), "{payload}: {:?}", p.rejections);
        tuples(&p)
            .into_iter()
            .map(|(_, _, ts, v)| ("dev-1", "temp", ts, v))
            .collect()
    }

    fn rejected(payload: &str) -> (RejectReason, String) {
        let p = run(Format::Value, dm("dev-1", "temp"), payload);
        let r = only_rejection(&p);
        (r.reason, r.detail.clone())
    }

    #[test]
    fn object_with_ms_timestamp() {
        let ts = NOW_MS - 1000;
        assert_eq!(
            one(&format!("{{\"ts\": {ts}, \"value\": 21.5}}")),
            vec![("dev-1", "temp", ts, 21.5)]
        );
    }

    #[test]
    fn object_with_rfc3339_and_fractional_timestamps() {
        assert_eq!(
            one(r#"{"value": 3, "ts": "2024-05-01T11:59:00Z"}"#),
            vec![("dev-1", "temp", NOW_MS - 60_000, 3.0)]
        );
        let p = run(
            Format::Value,
            dm("d", "m"),
            r#"{"ts": 1714564800000.25, "value": 1}"#,
        );
        assert_eq!(p.readings[0].ts.timestamp_micros(), NOW_MS * 1000 + 250);
        let p = run(
            Format::Value,
            dm("d", "m"),
            r#"{"ts": "1714564800000.25", "value": 1}"#,
        );
        assert_eq!(p.readings[0].ts.timestamp_micros(), NOW_MS * 1000 + 250);
    }

    #[test]
    fn missing_or_null_ts_is_stamped_now() {
        assert_eq!(
            one(r#"{"value": -4}"#),
            vec![("dev-1", "temp", NOW_MS, -4.0)]
        );
        assert_eq!(
            one(r#"{"ts": null, "value": 1e3, "unit": "C"}"#),
            vec![("dev-1", "temp", NOW_MS, 1000.0)]
        );
    }

    #[test]
    fn bare_numbers() {
        assert_eq!(one("21.5"), vec![("dev-1", "temp", NOW_MS, 21.5)]);
        assert_eq!(one(" -3\n"), vec![("dev-1", "temp", NOW_MS, -3.0)]);
        assert_eq!(one("1e-3"), vec![("dev-1", "temp", NOW_MS, 0.001)]);
    }

    #[test]
    fn non_finite_values() {
        for payload in [
            "NaN",
            "inf",
            "-Infinity",
            "1e400",
            r#"{"value": NaN}"#,
            r#"{"value": 1e400}"#,
        ] {
            let (reason, detail) = rejected(payload);
            assert_eq!(reason, RejectReason::NonFinite, "{payload}: {detail}");
        }
        assert_eq!(
            rejected("NaN").1,
            "value of dev-1/temp is NaN; only finite numbers are stored"
        );
    }

    #[test]
    fn wrong_types() {
        let (reason, detail) = rejected(r#"{"value": "abc"}"#);
        assert_eq!(reason, RejectReason::WrongType);
        assert_eq!(
            detail,
            r#"field "value": expected a number, found string "abc""#
        );
        for payload in [
            r#"{"value": true}"#,
            r#"{"value": null}"#,
            r#"{"value": {}}"#,
            r#"{"value": 1, "ts": []}"#,
            "[1]",
            "\"21.5\"",
            "true",
            "null",
        ] {
            assert_eq!(rejected(payload).0, RejectReason::WrongType, "{payload}");
        }
        assert_eq!(
            rejected("true").1,
            r#"expected a number or a JSON object {"ts": .., "value": <number>}, found true"#
        );
    }

    #[test]
    fn malformed_payloads() {
        for payload in [
            "",
            "  ",
            "abc",
            "21.5.1",
            "{\"value\": 1",
            r#"{"ts": 1}"#,
            r#"{"value": 1, "ts": "noon"}"#,
        ] {
            assert_eq!(rejected(payload).0, RejectReason::Malformed, "{payload:?}");
        }
        assert_eq!(rejected(r#"{"ts": 1}"#).1, r#"field "value" is missing"#);
        assert!(rejected("{\"value\": 1").1.contains("line 1 column"));
        assert!(rejected("abc").1.starts_with("payload \"abc\" is not"));
    }

    #[test]
    fn time_window() {
        let (reason, detail) =
            rejected(&format!("{{\"ts\": {}, \"value\": 1}}", NOW_MS + 3_600_000));
        assert_eq!(reason, RejectReason::TimestampOutOfWindow);
        assert!(
            detail.starts_with("timestamp 2024-05-01T13:00:00Z is outside"),
            "{detail}"
        );
        assert_eq!(
            rejected(r#"{"ts": 0, "value": 1}"#).0,
            RejectReason::TimestampOutOfWindow
        );
        assert_eq!(
            rejected(r#"{"ts": 1e300, "value": 1}"#).0,
            RejectReason::TimestampOutOfWindow
        );
    }

    #[test]
    fn ids_from_the_topic_are_checked() {
        let p = run(Format::Value, dm("bad device", "temp"), "1");
        let r = only_rejection(&p);
        assert_eq!(r.reason, RejectReason::InvalidId);
        assert_eq!(
            r.detail,
            r#"device "bad device" has characters outside A-Z a-z 0-9 . _ : -"#
        );
        let p = run(Format::Value, dm("d", ""), "1");
        assert_eq!(only_rejection(&p).detail, r#"metric "" is empty"#);
        let p = run(Format::Value, d("d"), "1");
        assert_eq!(only_rejection(&p).reason, RejectReason::InvalidId);
    }
}
