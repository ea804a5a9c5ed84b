//! SenML JSON packs (RFC 8428).
//!
//! Naming: when the topic gives the device, each record's `n` is the metric and `bn` is not
//! used for naming. Otherwise `bn` (one trailing `:`, `/` or `.` removed) is the device and
//! `n` the metric. `bn`, `bt` and `bv` carry over to later records until replaced (RFC 8428
//! §4.1). Times are `bt + t` seconds; a resolved time below 2^28 is relative to now.
//! `v` (plus `bv`) is stored as is, `vb` as 1/0; `vs` and `vd` are refused.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::time::secs_to_micros;
use super::{json, Collector, Fault, Source};
use crate::ingest::reading::RejectReason;

/// Resolved times below this many seconds are relative to now (RFC 8428 §4.5.3).
const RELATIVE_LIMIT_MICROS: i64 = (1 << 28) * 1_000_000;

/// Parses a payload that must be a SenML pack.
pub(crate) fn parse(out: &mut Collector, source: Source<'_>, text: &str) {
    match json::document(out, text, "a SenML pack") {
        Some(Value::Array(records)) => parse_records(out, source, &records),
        Some(other) => out.reject(
            None,
            json::wrong_type("payload", "a SenML pack (a JSON array of records)", &other),
        ),
        None => {}
    }
}

/// Turns the records of a pack into readings; rejections carry the record index.
pub(crate) fn parse_records(out: &mut Collector, source: Source<'_>, records: &[Value]) {
    let mut base = Base::default();
    for (i, rec) in records.iter().enumerate() {
        match record(&mut base, source, rec, out.now) {
            Ok(r) => out.reading(Some(i), r.device, r.metric, r.ts, r.value),
            Err(fault) => out.reject(Some(i), fault),
        }
    }
}

/// The base fields in force.
#[derive(Default)]
struct Base<'a> {
    /// `bn` with its trailing separator removed.
    device: Option<&'a str>,
    /// `bt`, seconds.
    time: f64,
    /// `bv`.
    value: f64,
}

struct Resolved<'a> {
    device: &'a str,
    metric: &'a str,
    ts: DateTime<Utc>,
    value: f64,
}

fn record<'a>(
    base: &mut Base<'a>,
    source: Source<'a>,
    rec: &'a Value,
    now: DateTime<Utc>,
) -> Result<Resolved<'a>, Fault> {
    let Value::Object(obj) = rec else {
        return Err(json::wrong_type(
            "record",
            "a SenML record (a JSON object)",
            rec,
        ));
    };
    if let Some(key) = obj.keys().find(|k| k.ends_with('_')) {
        return Err(Fault::malformed(format!(
            "field \"{key}\" must be understood (its name ends in \"_\") and vigil does not know it"
        )));
    }
    // Base fields take effect from this record on, even if the rest of it is refused.
    if let Some(bn) = obj.get("bn") {
        let bn = json::string("bn", bn)?;
        base.device = Some(bn.strip_suffix([':', '/', '.']).unwrap_or(bn));
    }
    if let Some(bt) = obj.get("bt") {
        base.time = json::number("bt", bt)?;
    }
    if let Some(bv) = obj.get("bv") {
        base.value = json::number("bv", bv)?;
    }

    let value = value(obj, base.value)?;
    let t = obj
        .get("t")
        .map(|t| json::number("t", t))
        .transpose()?
        .unwrap_or(0.0);
    let device = source.device.or(base.device).ok_or_else(|| {
        Fault::new(
            RejectReason::InvalidId,
            "no device: the topic names none and no record so far has a base name (bn)",
        )
    })?;
    let metric = match obj.get("n") {
        Some(n) => json::string("n", n)?,
        None => source.metric.ok_or_else(|| {
            Fault::new(
                RejectReason::InvalidId,
                "no metric: the record has no name (n)",
            )
        })?,
    };
    let ts = time(base.time, t, now)?;
    Ok(Resolved {
        device,
        metric,
        ts,
        value,
    })
}

/// The record's numeric value, with `bv` applied to `v`.
fn value(obj: &Map<String, Value>, base_value: f64) -> Result<f64, Fault> {
    for (key, kind) in [("vs", "a string"), ("vd", "a data")] {
        if obj.contains_key(key) {
            return Err(Fault::new(
                RejectReason::UnsupportedValue,
                format!("the record has {kind} value (\"{key}\"); vigil stores numbers only"),
            ));
        }
    }
    match (obj.get("v"), obj.get("vb")) {
        (Some(_), Some(_)) => Err(Fault::malformed("the record has both \"v\" and \"vb\"")),
        (Some(v), None) => Ok(base_value + json::number("v", v)?),
        (None, Some(Value::Bool(b))) => Ok(if *b { 1.0 } else { 0.0 }),
        (None, Some(other)) => Err(json::wrong_type("vb", "true or false", other)),
        (None, None) if obj.contains_key("s") => Err(Fault::new(
            RejectReason::UnsupportedValue,
            "the record has only a sum (\"s\"); vigil stores values (\"v\" or \"vb\")",
        )),
        (None, None) => Err(Fault::malformed(
            "the record has no value (\"v\" or \"vb\")",
        )),
    }
}

/// `bt + t`, absolute or relative to `now`.
fn time(bt: f64, t: f64, now: DateTime<Utc>) -> Result<DateTime<Utc>, Fault> {
    let out_of_range = || {
        Fault::new(
            RejectReason::TimestampOutOfWindow,
            format!("time bt + t = {bt} + {t} seconds is outside the representable range"),
        )
    };
    let micros = secs_to_micros(bt)
        .zip(secs_to_micros(t))
        .and_then(|(b, t)| b.checked_add(t))
        .ok_or_else(out_of_range)?;
    let ts = if micros < RELATIVE_LIMIT_MICROS {
        now.checked_add_signed(TimeDelta::microseconds(micros))
    } else {
        DateTime::from_timestamp_micros(micros)
    };
    ts.ok_or_else(out_of_range)
}

#[cfg(test)]
mod tests {
    use crate::ingest::parse::testing::*;
    use crate::ingest::parse::{Format, Source};
    use crate::ingest::reading::RejectReason;

    fn senml(source: Source<'_>, payload: &str) -> crate::ingest::reading::Parsed {
        run(Format::Senml, source, payload)
    }

    fn reasons(p: &crate::ingest::reading::Parsed) -> Vec<(Option<usize>, RejectReason)> {
        p.rejections.iter().map(|r| (r.index, r.reason)).collect()
    }

    #[test]
    fn rfc_example_with_base_name_as_device() {
        // RFC 8428 §5.1.2, with times moved into the accepted window.
        let bt = NOW_MS / 1000 - 60;
        let payload = format!(
            r#"[{{"bn":"urn:dev:ow:10e2073a01080063:","bt":{bt},"bu":"A","bver":5,
                 "n":"voltage","u":"V","v":120.1}},
                {{"n":"current","t":-5,"v":1.2}},
                {{"n":"current","t":-4,"v":1.3}}]"#
        );
        let p = senml(Source::default(), &payload);
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        let dev = "urn:dev:ow:10e2073a01080063";
        let ms = bt * 1000;
        assert_eq!(
            tuples(&p),
            vec![
                (dev, "voltage", ms, 120.1),
                (dev, "current", ms - 5000, 1.2),
                (dev, "current", ms - 4000, 1.3),
            ]
        );
    }

    #[test]
    fn topic_device_wins_over_base_name() {
        let p = senml(d("dev-1"), r#"[{"bn":"other/","n":"temp","v":1}]"#);
        assert_eq!(tuples(&p), vec![("dev-1", "temp", NOW_MS, 1.0)]);
    }

    #[test]
    fn one_trailing_separator_is_stripped_and_bn_carries_over() {
        let p = senml(
            Source::default(),
            r#"[{"bn":"a/","n":"x","v":1},{"n":"y","v":2},{"bn":"b.","n":"x","v":3},{"bn":"c::","n":"x","v":4}]"#,
        );
        let devs: Vec<_> = p.readings.iter().map(|r| r.device_id.as_str()).collect();
        assert_eq!(devs, vec!["a", "a", "b", "c:"]);
    }

    #[test]
    fn relative_and_absolute_times() {
        let p = senml(
            d("d"),
            r#"[{"n":"a","v":1},{"n":"b","t":-30,"v":1},{"n":"c","t":1.5,"v":1}]"#,
        );
        let times: Vec<_> = tuples(&p).into_iter().map(|t| t.2).collect();
        assert_eq!(times, vec![NOW_MS, NOW_MS - 30_000, NOW_MS + 1500]);

        let secs = NOW_MS as f64 / 1000.0 - 0.25;
        let p = senml(d("d"), &format!(r#"[{{"n":"a","t":{secs},"v":1}}]"#));
        assert_eq!(p.readings[0].ts.timestamp_micros(), NOW_MS * 1000 - 250_000);
    }

    #[test]
    fn base_value_and_booleans() {
        let p = senml(
            d("d"),
            r#"[{"bv":10,"n":"a","v":1.5},{"n":"b","vb":true},{"n":"c","vb":false},{"n":"d","v":-1}]"#,
        );
        let values: Vec<_> = p.readings.iter().map(|r| r.value).collect();
        assert_eq!(values, vec![11.5, 1.0, 0.0, 9.0]);
    }

    #[test]
    fn missing_name_falls_back_to_the_topic_metric() {
        let p = senml(dm("d", "temp"), r#"[{"v":1}]"#);
        assert_eq!(tuples(&p), vec![("d", "temp", NOW_MS, 1.0)]);
    }

    #[test]
    fn bad_records_are_refused_by_index() {
        let p = senml(
            d("d"),
            r#"[{"n":"ok","v":1},{"n":"s","vs":"on"},{"n":"d","vd":"AQI="},{"n":"none"},
                {"n":"str","v":"1"},{"n":"both","v":1,"vb":true},{"n":"sum","s":3},
                {"n":"vb","vb":1},{"n":1,"v":1},{"n":"t","t":"now","v":1},5,
                {"n":"mu","v":1,"foo_":1},{"n":"bad id","v":1},{"n":"old","t":1e9,"v":1},
                {"bt":"x","n":"bt","v":1},{"n":"tail","v":2}]"#,
        );
        assert_eq!(
            reasons(&p),
            vec![
                (Some(1), RejectReason::UnsupportedValue),
                (Some(2), RejectReason::UnsupportedValue),
                (Some(3), RejectReason::Malformed),
                (Some(4), RejectReason::WrongType),
                (Some(5), RejectReason::Malformed),
                (Some(6), RejectReason::UnsupportedValue),
                (Some(7), RejectReason::WrongType),
                (Some(8), RejectReason::WrongType),
                (Some(9), RejectReason::WrongType),
                (Some(10), RejectReason::WrongType),
                (Some(11), RejectReason::Malformed),
                (Some(12), RejectReason::InvalidId),
                (Some(13), RejectReason::TimestampOutOfWindow),
                (Some(14), RejectReason::WrongType),
            ]
        );
        assert_eq!(
            tuples(&p),
            vec![("d", "ok", NOW_MS, 1.0), ("d", "tail", NOW_MS, 2.0)]
        );
        assert_eq!(
            p.rejections[0].detail,
            r#"the record has a string value ("vs"); vigil stores numbers only"#
        );
        assert_eq!(
            p.rejections[3].detail,
            r#"field "v": expected a number, found string "1""#
        );
    }

    #[test]
    fn no_device_anywhere() {
        let p = senml(Source::default(), r#"[{"n":"a","v":1}]"#);
        let r = only_rejection(&p);
        assert_eq!((r.index, r.reason), (Some(0), RejectReason::InvalidId));
        assert!(r.detail.contains("base name (bn)"), "{}", r.detail);
        let p = senml(Source::default(), r#"[{"bn":"dev","v":1}]"#);
        assert_eq!(
            only_rejection(&p).detail,
            "no metric: the record has no name (n)"
        );
    }

    #[test]
    fn non_finite_and_out_of_range() {
        let p = senml(d("d"), r#"[{"n":"a","v":1e400}]"#);
        assert_eq!(only_rejection(&p).reason, RejectReason::NonFinite);
        let p = senml(d("d"), r#"[{"n":"a","v":NaN}]"#);
        assert_eq!(only_rejection(&p).reason, RejectReason::NonFinite);
        let p = senml(d("d"), r#"[{"n":"a","v":1e308,"bv":1e308}]"#);
        assert_eq!(only_rejection(&p).reason, RejectReason::NonFinite);
        let p = senml(d("d"), r#"[{"n":"a","v":1,"t":1e300}]"#);
        assert_eq!(
            only_rejection(&p).reason,
            RejectReason::TimestampOutOfWindow
        );
    }

    #[test]
    fn whole_payload_errors() {
        for (payload, reason) in [
            ("", RejectReason::Malformed),
            ("[", RejectReason::Malformed),
            (r#"{"n":"a","v":1}"#, RejectReason::WrongType),
        ] {
            let p = senml(d("d"), payload);
            let r = only_rejection(&p);
            assert_eq!((r.index, r.reason), (None, reason), "{payload:?}");
        }
        assert_eq!(senml(d("d"), "[]"), Default::default());
    }
}
