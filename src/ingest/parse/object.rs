//! The `object` format: `{"ts": .., "temp": 21.5, "hum": 40}`, every key but `ts` a metric
//! of the topic's device; or, when the payload is a JSON array, a SenML pack.

use serde_json::{Map, Value};

use super::time::json_ts;
use super::{json, senml, Collector, Fault, Source};
use crate::ingest::reading::RejectReason;

const EXPECTED: &str = "a JSON object of metrics or a SenML array";

/// Parses one `object` payload into `out`.
pub(crate) fn parse(out: &mut Collector, source: Source<'_>, text: &str) {
    let Some(doc) = json::document(out, text, EXPECTED) else {
        return;
    };
    match &doc {
        Value::Array(records) => senml::parse_records(out, source, records),
        Value::Object(obj) => metrics(out, source, obj),
        other => out.reject(None, json::wrong_type("payload", EXPECTED, other)),
    }
}

fn metrics(out: &mut Collector, source: Source<'_>, obj: &Map<String, Value>) {
    let Some(device) = source.device else {
        let fault = Fault::new(
            RejectReason::InvalidId,
            "an object of metrics takes its device from the topic, and this topic gave none",
        );
        return out.reject(None, fault);
    };
    let ts = match obj.get("ts") {
        None | Some(Value::Null) => out.now,
        Some(v) => match json_ts("ts", v) {
            Ok(ts) => ts,
            // Every metric shares the time: without it none can be stored.
            Err(fault) => return out.reject(None, fault),
        },
    };
    let mut any = false;
    for (metric, v) in obj.iter().filter(|(k, _)| k.as_str() != "ts") {
        any = true;
        match json::number(metric, v) {
            Ok(value) => out.reading(None, device, metric, ts, value),
            Err(fault) => out.reject(None, fault),
        }
    }
    if !any {
        out.reject(
            None,
            Fault::malformed("the object holds no metrics, only \"ts\" or nothing"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::ingest::parse::testing::*;
    use crate::ingest::parse::Format;
    use crate::ingest::reading::RejectReason;

    #[test]
    fn metrics_share_the_timestamp() {
        let ts = NOW_MS - 5_000;
        let p = run(
            Format::Object,
            d("dev-1"),
            &format!(r#"{{"ts": {ts}, "temp": 21.5, "hum": 40}}"#),
        );
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        let mut got = tuples(&p);
        got.sort_by(|a, b| a.1.cmp(b.1));
        assert_eq!(
            got,
            vec![("dev-1", "hum", ts, 40.0), ("dev-1", "temp", ts, 21.5)]
        );
    }

    #[test]
    fn missing_ts_is_now_and_rfc3339_works() {
        let p = run(Format::Object, d("d"), r#"{"temp": 1}"#);
        assert_eq!(tuples(&p), vec![("d", "temp", NOW_MS, 1.0)]);
        let p = run(
            Format::Object,
            d("d"),
            r#"{"ts": "2024-05-01T12:00:00Z", "temp": 1}"#,
        );
        assert_eq!(tuples(&p), vec![("d", "temp", NOW_MS, 1.0)]);
    }

    #[test]
    fn a_bad_metric_does_not_sink_the_others() {
        let p = run(
            Format::Object,
            d("d"),
            r#"{"temp": "warm", "hum": 40, "bad/id": 1, "on": true}"#,
        );
        assert_eq!(tuples(&p), vec![("d", "hum", NOW_MS, 40.0)]);
        let mut reasons: Vec<_> = p
            .rejections
            .iter()
            .map(|r| (r.reason.label(), r.detail.as_str()))
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            vec![
                (
                    "invalid_id",
                    r#"metric "bad/id" has characters outside A-Z a-z 0-9 . _ : -"#
                ),
                ("wrong_type", r#"field "on": expected a number, found true"#),
                (
                    "wrong_type",
                    r#"field "temp": expected a number, found string "warm""#
                ),
            ]
        );
    }

    #[test]
    fn bad_ts_rejects_the_whole_object() {
        let p = run(Format::Object, d("d"), r#"{"ts": false, "temp": 1}"#);
        assert_eq!(only_rejection(&p).reason, RejectReason::WrongType);
        let p = run(
            Format::Object,
            d("d"),
            &format!(r#"{{"ts": {}, "temp": 1}}"#, NOW_MS + 86_400_000),
        );
        assert_eq!(
            only_rejection(&p).reason,
            RejectReason::TimestampOutOfWindow
        );
    }

    #[test]
    fn bad_payloads() {
        let cases = [
            ("", RejectReason::Malformed),
            ("{", RejectReason::Malformed),
            ("{}", RejectReason::Malformed),
            (r#"{"ts": 1}"#, RejectReason::Malformed),
            ("5", RejectReason::WrongType),
            ("\"x\"", RejectReason::WrongType),
            (r#"{"temp": NaN}"#, RejectReason::NonFinite),
            (r#"{"temp": 1e999}"#, RejectReason::NonFinite),
        ];
        for (payload, reason) in cases {
            let p = run(Format::Object, d("d"), payload);
            assert_eq!(only_rejection(&p).reason, reason, "{payload:?}");
        }
        let p = run(Format::Object, Default::default(), r#"{"temp": 1}"#);
        assert_eq!(only_rejection(&p).reason, RejectReason::InvalidId);
    }

    #[test]
    fn arrays_are_senml() {
        let p = run(
            Format::Object,
            d("dev-1"),
            r#"[{"n": "temp", "v": 20}, {"n": "hum", "v": 41}]"#,
        );
        assert_eq!(
            tuples(&p),
            vec![
                ("dev-1", "temp", NOW_MS, 20.0),
                ("dev-1", "hum", NOW_MS, 41.0)
            ]
        );
    }
}
