//! The `readings` format of HTTP ingest: `[{"device_id", "metric", "ts", "value"}, ...]`
//! (or one such object). `ts` is optional, as unix milliseconds or RFC 3339. An array whose
//! records look like SenML (`n`, `bn` or `v`, and no `device_id`) is parsed as SenML.

use serde_json::{Map, Value};

use super::time::json_ts;
use super::{json, senml, Collector, Fault, Source};

const EXPECTED: &str = "an array of readings or one reading object";

/// Parses one `readings` payload into `out`. Rejections carry the array index.
pub(crate) fn parse(out: &mut Collector, source: Source<'_>, text: &str) {
    let Some(doc) = json::document(out, text, EXPECTED) else {
        return;
    };
    match &doc {
        Value::Array(items) if looks_like_senml(items) => senml::parse_records(out, source, items),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                one(out, Some(i), item);
            }
        }
        Value::Object(_) => one(out, None, &doc),
        other => out.reject(None, json::wrong_type("payload", EXPECTED, other)),
    }
}

fn looks_like_senml(items: &[Value]) -> bool {
    let objects = || items.iter().filter_map(Value::as_object);
    objects().all(|o| !o.contains_key("device_id"))
        && objects().any(|o| ["n", "bn", "v"].iter().any(|k| o.contains_key(*k)))
}

fn one(out: &mut Collector, index: Option<usize>, item: &Value) {
    let Value::Object(obj) = item else {
        let fault = json::wrong_type(
            "reading",
            r#"an object {"device_id", "metric", "ts", "value"}"#,
            item,
        );
        return out.reject(index, fault);
    };
    match fields(obj, out) {
        Ok((device, metric, ts, value)) => out.reading(index, device, metric, ts, value),
        Err(fault) => out.reject(index, fault),
    }
}

type Fields<'a> = (&'a str, &'a str, chrono::DateTime<chrono::Utc>, f64);

fn fields<'a>(obj: &'a Map<String, Value>, out: &Collector) -> Result<Fields<'a>, Fault> {
    let get = |key: &str| obj.get(key).ok_or_else(|| json::missing(key));
    let device = json::string("device_id", get("device_id")?)?;
    let metric = json::string("metric", get("metric")?)?;
    let value = json::number("value", get("value")?)?;
    let ts = match obj.get("ts") {
        None | Some(Value::Null) => out.now,
        Some(v) => json_ts("ts", v)?,
    };
    Ok((device, metric, ts, value))
}

#[cfg(test)]
mod tests {
    use crate::ingest::parse::testing::*;
    use crate::ingest::parse::{Format, Source};
    use crate::ingest::reading::{Parsed, RejectReason};

    fn readings(payload: &str) -> Parsed {
        run(Format::Readings, Source::default(), payload)
    }

    fn reasons(p: &Parsed) -> Vec<(Option<usize>, RejectReason)> {
        p.rejections.iter().map(|r| (r.index, r.reason)).collect()
    }

    #[test]
    fn array_round_trip() {
        let p = readings(&format!(
            r#"[{{"device_id": "d1", "metric": "temp", "ts": {NOW_MS}, "value": 21.5}},
                {{"device_id": "d2", "metric": "hum", "ts": "2024-05-01T11:00:00Z", "value": 40}},
                {{"device_id": "d3", "metric": "x", "value": -1}}]"#
        ));
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        assert_eq!(
            tuples(&p),
            vec![
                ("d1", "temp", NOW_MS, 21.5),
                ("d2", "hum", NOW_MS - 3_600_000, 40.0),
                ("d3", "x", NOW_MS, -1.0),
            ]
        );
    }

    #[test]
    fn single_object() {
        let p = readings(r#"{"device_id": "d", "metric": "m", "value": 1}"#);
        assert_eq!(tuples(&p), vec![("d", "m", NOW_MS, 1.0)]);
        let p = readings(r#"{"device_id": "d", "metric": "m", "value": "1"}"#);
        let r = only_rejection(&p);
        assert_eq!((r.index, r.reason), (None, RejectReason::WrongType));
    }

    #[test]
    fn mixed_array_keeps_the_good_ones() {
        let p = readings(&format!(
            r#"[{{"device_id": "d", "metric": "m", "value": 1}},
                {{"device_id": "d", "metric": "m", "value": "1"}},
                {{"device_id": "d", "metric": "m"}},
                {{"device_id": 7, "metric": "m", "value": 1}},
                {{"device_id": "d/x", "metric": "m", "value": 1}},
                {{"device_id": "d", "metric": "m", "value": 1, "ts": {}}},
                {{"device_id": "d", "metric": "m", "value": 1, "ts": {{}}}},
                {{"device_id": "d", "metric": "m", "value": 1, "ts": "later"}},
                "nope",
                {{"device_id": "d", "metric": "n", "value": 2}}]"#,
            NOW_MS - 400 * 86_400_000
        ));
        assert_eq!(
            reasons(&p),
            vec![
                (Some(1), RejectReason::WrongType),
                (Some(2), RejectReason::Malformed),
                (Some(3), RejectReason::WrongType),
                (Some(4), RejectReason::InvalidId),
                (Some(5), RejectReason::TimestampOutOfWindow),
                (Some(6), RejectReason::WrongType),
                (Some(7), RejectReason::Malformed),
                (Some(8), RejectReason::WrongType),
            ]
        );
        assert_eq!(
            tuples(&p),
            vec![("d", "m", NOW_MS, 1.0), ("d", "n", NOW_MS, 2.0)]
        );
        assert_eq!(p.rejections[1].detail, "field \"value\" is missing");
        assert_eq!(
            p.rejections[2].detail,
            "field \"device_id\": expected a string, found number 7"
        );
    }

    #[test]
    fn senml_arrays_are_detected() {
        let p = readings(r#"[{"bn": "dev:", "n": "temp", "v": 20}, {"n": "hum", "v": 50}]"#);
        assert_eq!(
            tuples(&p),
            vec![("dev", "temp", NOW_MS, 20.0), ("dev", "hum", NOW_MS, 50.0)]
        );
        // One device_id makes it a readings array, refusing the SenML-looking element.
        let p =
            readings(r#"[{"n": "temp", "v": 20}, {"device_id": "d", "metric": "m", "value": 1}]"#);
        assert_eq!(reasons(&p), vec![(Some(0), RejectReason::Malformed)]);
    }

    #[test]
    fn whole_payload_errors() {
        for (payload, reason) in [
            ("", RejectReason::Malformed),
            ("[{", RejectReason::Malformed),
            ("5", RejectReason::WrongType),
            (
                r#"[{"device_id": "d", "metric": "m", "value": NaN}]"#,
                RejectReason::NonFinite,
            ),
        ] {
            let p = readings(payload);
            let r = only_rejection(&p);
            assert_eq!((r.index, r.reason), (None, reason), "{payload}");
        }
        assert_eq!(readings("[]"), Parsed::default());
    }
}
