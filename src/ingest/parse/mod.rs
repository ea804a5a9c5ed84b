//! Payload parsers: turn the bytes of one MQTT message or HTTP body into validated readings.
//!
//! [`parse_payload`] is the single entry point. It is pure: no I/O, the arrival time is an
//! argument, and no input can make it panic. Each format lives in its own file; the checks
//! every reading goes through (ids, finiteness, time window) live in `collect.rs`.

mod collect;
mod device;
mod http;
mod ids;
mod json;
mod line;
mod object;
mod senml;
#[cfg(test)]
pub(crate) mod testing;
mod time;
mod value;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ingest::reading::{Parsed, RejectReason, Rejection};

pub use ids::{valid_id, MAX_ID_LEN};
pub use time::parse_timestamp_str;

use collect::{Collector, Fault};

/// How a payload is encoded; chosen per topic rule (or fixed, for HTTP ingest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One reading: `{"ts": .., "value": ..}` or a bare number; ids from the topic.
    Value,
    /// A JSON object of metrics `{"ts": .., "temp": 21.5}`, or a SenML pack (a JSON array).
    Object,
    /// An RFC 8428 SenML JSON pack.
    Senml,
    /// InfluxDB line protocol, one or many lines.
    Line,
    /// Retained device metadata (a JSON object).
    Meta,
    /// Device presence: `online` or `offline`.
    Status,
    /// HTTP ingest: an array of `{"device_id", "metric", "ts", "value"}` objects (or SenML).
    Readings,
}

impl Format {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Object => "object",
            Self::Senml => "senml",
            Self::Line => "line",
            Self::Meta => "meta",
            Self::Status => "status",
            Self::Readings => "readings",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds on what one payload may contain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Larger payloads are refused whole, before any parsing.
    pub max_payload_bytes: usize,
    /// Readings older than this (relative to arrival) are refused: usually a device clock
    /// that never got set.
    #[serde(with = "humantime_serde")]
    pub max_past: Duration,
    /// Readings further ahead than this are refused: clock skew beyond it is a broken clock.
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 256 * 1024,
            max_past: Duration::from_secs(365 * 24 * 3600),
            max_future: Duration::from_secs(10 * 60),
        }
    }
}

/// The unit of line-protocol timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Nanoseconds, InfluxDB's default.
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

/// Settings of the line-protocol format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineOptions {
    /// The tag whose value is the device id.
    pub device_tag: String,
    /// The unit of the timestamps.
    pub precision: Precision,
}

impl Default for LineOptions {
    fn default() -> Self {
        Self {
            device_tag: "device".to_owned(),
            precision: Precision::Ns,
        }
    }
}

/// Where the payload came from: ids taken from the topic (or none for HTTP).
#[derive(Debug, Clone, Copy, Default)]
pub struct Source<'a> {
    /// The device captured by the topic rule's `{device}`.
    pub device: Option<&'a str>,
    /// The metric captured by the topic rule's `{metric}`.
    pub metric: Option<&'a str>,
}

/// Parses and validates one payload. Never panics.
///
/// Checks run in this order: size, UTF-8, the format itself, then per reading the ids, the
/// value's finiteness and the time window. Valid readings of a mixed payload are returned
/// alongside the rejections of the others.
pub fn parse_payload(
    format: Format,
    source: Source<'_>,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
    line: &LineOptions,
) -> Parsed {
    if payload.len() > limits.max_payload_bytes {
        return Parsed::rejected(Rejection::new(
            RejectReason::PayloadTooLarge,
            format!(
                "payload is {} bytes, limit is {}",
                payload.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(e) => return Parsed::rejected(utf8_rejection(&e)),
    };
    // A byte order mark is legal in UTF-8 text but not in JSON; editors add it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut out = Collector::new(now, limits);
    match format {
        Format::Value => value::parse(&mut out, source, text),
        Format::Object => object::parse(&mut out, source, text),
        Format::Senml => senml::parse(&mut out, source, text),
        Format::Line => line::parse(&mut out, source, text, line),
        Format::Meta => device::parse_meta(&mut out, source, text),
        Format::Status => device::parse_status(&mut out, source, text),
        Format::Readings => http::parse(&mut out, source, text),
    }
    out.parsed
}

fn utf8_rejection(e: &std::str::Utf8Error) -> Rejection {
    let at = e.valid_up_to();
    let detail = match e.error_len() {
        Some(n) => {
            format!("payload is not valid UTF-8: invalid {n}-byte sequence at byte offset {at}")
        }
        None => format!("payload is not valid UTF-8: truncated sequence at byte offset {at}"),
    };
    Rejection::new(RejectReason::InvalidUtf8, detail)
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn oversize_payload_is_refused_before_parsing() {
        let limits = Limits {
            max_payload_bytes: 10,
            ..Limits::default()
        };
        let p = parse_payload(
            Format::Value,
            dm("d", "m"),
            b"{\"value\": 1.0}",
            now(),
            &limits,
            &LineOptions::default(),
        );
        let r = only_rejection(&p);
        assert_eq!(r.reason, RejectReason::PayloadTooLarge);
        assert_eq!(r.detail, "payload is 14 bytes, limit is 10");
    }

    #[test]
    fn default_limit_message() {
        let big = vec![b' '; 300_000];
        let p = parse_payload(
            Format::Line,
            Source::default(),
            &big,
            now(),
            &Limits::default(),
            &LineOptions::default(),
        );
        assert_eq!(
            only_rejection(&p).detail,
            "payload is 300000 bytes, limit is 262144"
        );
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        let p = parse_payload(
            Format::Value,
            dm("d", "m"),
            b"21.\xff5",
            now(),
            &Limits::default(),
            &LineOptions::default(),
        );
        let r = only_rejection(&p);
        assert_eq!(r.reason, RejectReason::InvalidUtf8);
        assert!(r.detail.contains("byte offset 3"), "{}", r.detail);

        let p = parse_payload(
            Format::Value,
            dm("d", "m"),
            b"21\xe2\x82",
            now(),
            &Limits::default(),
            &LineOptions::default(),
        );
        let r = only_rejection(&p);
        assert!(
            r.detail.contains("truncated sequence at byte offset 2"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let p = run(Format::Value, dm("d", "m"), "\u{feff}{\"value\": 2}");
        assert_eq!(tuples(&p), vec![("d", "m", NOW_MS, 2.0)]);
    }

    #[test]
    fn config_types_deserialize_with_defaults() {
        let limits: Limits =
            serde_json::from_str(r#"{"max_past": "30days", "max_future": "1m"}"#).unwrap();
        assert_eq!(limits.max_payload_bytes, 262_144);
        assert_eq!(limits.max_past, Duration::from_secs(30 * 86_400));
        assert_eq!(limits.max_future, Duration::from_secs(60));
        assert!(serde_json::from_str::<Limits>(r#"{"max_pas": "1s"}"#).is_err());

        let opts: LineOptions = serde_json::from_str(r#"{"precision": "ms"}"#).unwrap();
        assert_eq!(opts.device_tag, "device");
        assert_eq!(opts.precision, Precision::Ms);
        assert!(serde_json::from_str::<LineOptions>(r#"{"tag": "x"}"#).is_err());

        let f: Format = serde_json::from_str(r#""senml""#).unwrap();
        assert_eq!(f, Format::Senml);
        for f in [
            Format::Value,
            Format::Object,
            Format::Senml,
            Format::Line,
            Format::Meta,
            Format::Status,
            Format::Readings,
        ] {
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{f}\""));
        }
    }

    /// Mutated and random payloads through every format: nothing may panic, and every
    /// rejection must explain itself.
    #[test]
    fn no_input_panics() {
        let seeds = [
            r#"{"ts": 1714564800000, "value": 21.5}"#,
            r#"{"ts": "2024-05-01T12:00:00Z", "temp": 1, "hum": 2}"#,
            r#"[{"bn":"d:","bt":1714564800,"n":"a","v":1,"t":-1},{"n":"b","vb":true}]"#,
            "m,device=d a=1i,b=2u,c=t,d=\"s\" 1714564800000000000\nx y=1",
            r#"{"model":"x","location":{"lat":1,"lon":2},"units":{"a":"b"}}"#,
            r#"[{"device_id":"d","metric":"m","value":1,"ts":1714564800000}]"#,
            "online",
        ];
        let alphabet = b"{}[]\":,.-+eE0123456789 \n\\tnaNIfy#=_/\xc3\xa9";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let formats = [
            Format::Value,
            Format::Object,
            Format::Senml,
            Format::Line,
            Format::Meta,
            Format::Status,
            Format::Readings,
        ];
        let sources = [Source::default(), dm("d", "m"), dm("", "a/b")];
        for round in 0..3000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..(next() % 6) {
                let at = (next() as usize) % (bytes.len() + 1);
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => bytes.insert(at, c),
                    1 if at < bytes.len() => bytes[at] = c,
                    _ => bytes.truncate(at),
                }
            }
            for format in formats {
                let source = sources[round % sources.len()];
                let p = parse_payload(
                    format,
                    source,
                    &bytes,
                    now(),
                    &Limits::default(),
                    &LineOptions::default(),
                );
                assert!(p.rejections.iter().all(|r| !r.detail.is_empty()));
                assert!(p
                    .readings
                    .iter()
                    .all(|r| r.value.is_finite() && valid_id(&r.device_id) && valid_id(&r.metric)));
            }
        }
    }
}
