//! Device-level payloads: retained metadata and presence.
//!
//! An empty payload on these topics is how MQTT clears a retained message; it yields
//! nothing (no update, no rejection).

use serde_json::{Map, Value};

use super::ids::{check_id, show};
use super::{json, Collector, Fault, Source};
use crate::ingest::reading::{DeviceUpdate, RejectReason};

/// Parses `devices/{device}/meta`: a JSON object with optional `model` (string),
/// `location` (`{"lat", "lon"}` in degrees) and `units` (metric id -> unit string). Other
/// keys are kept as they are.
pub(crate) fn parse_meta(out: &mut Collector, source: Source<'_>, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    let result = device(source).and_then(|device| {
        let meta = json::parse(text)?;
        match &meta {
            Value::Object(obj) => check_meta(obj)?,
            other => {
                return Err(json::wrong_type(
                    "payload",
                    "a JSON object of metadata",
                    other,
                ))
            }
        }
        Ok(DeviceUpdate::Meta {
            device_id: device.to_owned(),
            meta,
        })
    });
    settle(out, result);
}

/// Parses `devices/{device}/status`: `online` or `offline`, bare or as a JSON string.
pub(crate) fn parse_status(out: &mut Collector, source: Source<'_>, text: &str) {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return;
    }
    let result = device(source).and_then(|device| {
        let word = trimmed
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(trimmed);
        let online = if word.eq_ignore_ascii_case("online") {
            true
        } else if word.eq_ignore_ascii_case("offline") {
            false
        } else {
            return Err(Fault::malformed(format!(
                "status must be \"online\" or \"offline\", found {}",
                show(trimmed)
            )));
        };
        Ok(DeviceUpdate::Status {
            device_id: device.to_owned(),
            online,
        })
    });
    settle(out, result);
}

fn settle(out: &mut Collector, result: Result<DeviceUpdate, Fault>) {
    match result {
        Ok(update) => out.parsed.device = Some(update),
        Err(fault) => out.reject(None, fault),
    }
}

fn device<'a>(source: Source<'a>) -> Result<&'a str, Fault> {
    let device = source.device.ok_or_else(|| {
        Fault::new(
            RejectReason::InvalidId,
            "device updates take the device from the topic, and this topic gave none",
        )
    })?;
    check_id("device", device)?;
    Ok(device)
}

fn check_meta(obj: &Map<String, Value>) -> Result<(), Fault> {
    if let Some(model) = obj.get("model") {
        json::string("model", model)?;
    }
    if let Some(location) = obj.get("location") {
        let Value::Object(loc) = location else {
            return Err(json::wrong_type(
                "location",
                r#"an object {"lat", "lon"}"#,
                location,
            ));
        };
        coordinate(loc, "lat", 90.0)?;
        coordinate(loc, "lon", 180.0)?;
    }
    if let Some(units) = obj.get("units") {
        let Value::Object(units) = units else {
            return Err(json::wrong_type(
                "units",
                "an object of metric -> unit",
                units,
            ));
        };
        for (metric, unit) in units {
            check_id("metric", metric)?;
            json::string(&format!("units.{metric}"), unit)?;
        }
    }
    Ok(())
}

fn coordinate(loc: &Map<String, Value>, key: &str, limit: f64) -> Result<(), Fault> {
    let field = format!("location.{key}");
    let v = loc.get(key).ok_or_else(|| json::missing(&field))?;
    let x = json::number(&field, v)?;
    if !(-limit..=limit).contains(&x) {
        return Err(Fault::malformed(format!(
            "field \"{field}\": {x} is outside [-{limit}, {limit}]"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ingest::parse::testing::*;
    use crate::ingest::parse::{Format, Source};
    use crate::ingest::reading::{DeviceUpdate, Parsed, RejectReason};
    use serde_json::json;

    fn meta(payload: &str) -> Parsed {
        run(Format::Meta, d("dev-1"), payload)
    }

    fn status(payload: &str) -> Parsed {
        run(Format::Status, d("dev-1"), payload)
    }

    #[test]
    fn metadata_round_trip() {
        let doc = json!({
            "model": "TH-10",
            "location": {"lat": 52.5, "lon": -13.4},
            "units": {"temp": "°C", "hum": "%"},
            "firmware": {"version": "1.2"}
        });
        let p = meta(&doc.to_string());
        assert!(p.rejections.is_empty() && p.readings.is_empty(), "{p:?}");
        assert_eq!(
            p.device,
            Some(DeviceUpdate::Meta {
                device_id: "dev-1".into(),
                meta: doc
            })
        );
        let p = meta("{}");
        assert!(matches!(p.device, Some(DeviceUpdate::Meta { .. })));
    }

    #[test]
    fn bad_metadata() {
        let cases = [
            (
                "[1]",
                RejectReason::WrongType,
                "field \"payload\": expected a JSON object of metadata, found an array of 1 items",
            ),
            ("{", RejectReason::Malformed, ""),
            (
                r#"{"model": 5}"#,
                RejectReason::WrongType,
                "field \"model\": expected a string, found number 5",
            ),
            (r#"{"location": [1, 2]}"#, RejectReason::WrongType, ""),
            (
                r#"{"location": {"lat": 91, "lon": 0}}"#,
                RejectReason::Malformed,
                "field \"location.lat\": 91 is outside [-90, 90]",
            ),
            (
                r#"{"location": {"lat": 0, "lon": -180.5}}"#,
                RejectReason::Malformed,
                "",
            ),
            (
                r#"{"location": {"lat": "0", "lon": 0}}"#,
                RejectReason::WrongType,
                "",
            ),
            (
                r#"{"location": {"lat": 0}}"#,
                RejectReason::Malformed,
                "field \"location.lon\" is missing",
            ),
            (r#"{"units": "C"}"#, RejectReason::WrongType, ""),
            (r#"{"units": {"te mp": "C"}}"#, RejectReason::InvalidId, ""),
            (
                r#"{"units": {"temp": 1}}"#,
                RejectReason::WrongType,
                "field \"units.temp\": expected a string, found number 1",
            ),
        ];
        for (payload, reason, detail) in cases {
            let p = meta(payload);
            let r = only_rejection(&p);
            assert_eq!(r.reason, reason, "{payload}: {}", r.detail);
            assert!(r.detail.contains(detail), "{payload}: {}", r.detail);
            assert_eq!(p.device, None);
        }
    }

    #[test]
    fn statuses() {
        for (payload, online) in [
            ("online", true),
            (" offline\n", false),
            ("\"online\"", true),
            ("OFFLINE", false),
        ] {
            let p = status(payload);
            assert_eq!(
                p.device,
                Some(DeviceUpdate::Status {
                    device_id: "dev-1".into(),
                    online
                }),
                "{payload:?}"
            );
            assert!(p.rejections.is_empty());
        }
        for payload in ["on", "1", "\"online", "{\"status\": \"online\"}"] {
            let p = status(payload);
            assert_eq!(
                only_rejection(&p).reason,
                RejectReason::Malformed,
                "{payload}"
            );
        }
        assert_eq!(
            only_rejection(&status("up")).detail,
            "status must be \"online\" or \"offline\", found \"up\""
        );
    }

    #[test]
    fn cleared_retained_messages_yield_nothing() {
        assert_eq!(meta(""), Parsed::default());
        assert_eq!(status("  "), Parsed::default());
    }

    #[test]
    fn device_from_the_topic_is_checked() {
        let p = run(Format::Status, d("a b"), "online");
        assert_eq!(only_rejection(&p).reason, RejectReason::InvalidId);
        let p = run(Format::Meta, Source::default(), "{}");
        assert_eq!(only_rejection(&p).reason, RejectReason::InvalidId);
    }
}
