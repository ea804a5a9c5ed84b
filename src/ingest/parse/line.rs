//! InfluxDB line protocol, parsed by the `influxdb-line-protocol` crate.
//!
//! Each field of a line is one reading: the device is the value of the configured tag (or
//! the topic's device when the line lacks the tag), the metric is `<measurement>.<field>`,
//! or just `<measurement>` for a field named `value`. Integers and floats are stored as
//! f64, booleans as 1/0; string fields are refused.
//!
//! Rejection index: the 0-based line number, counting every line (blank and comment lines
//! too) as split by the line-protocol rules, which differ from plain `\n` splitting only
//! when a quoted string field holds a newline.

use std::borrow::Cow;

use influxdb_line_protocol::{parse_lines, split_lines, FieldValue, ParsedLine};

use super::ids::show;
use super::time::from_precision;
use super::{Collector, Fault, LineOptions, Source};
use crate::ingest::reading::RejectReason;

/// Parses a line-protocol payload into `out`.
pub(crate) fn parse(out: &mut Collector, source: Source<'_>, text: &str, opts: &LineOptions) {
    // The crate splits on '\n' only; a CR would end up inside the timestamp.
    let text: Cow<'_, str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    let mut seen = false;
    for (i, raw) in split_lines(&text).enumerate() {
        // One logical line yields at most one item; None for blank and comment lines.
        match parse_lines(raw).next() {
            None => {}
            Some(Ok(line)) => {
                seen = true;
                one_line(out, source, &line, i, opts);
            }
            Some(Err(e)) => {
                seen = true;
                let detail = format!("cannot parse line {}: {e}", show(raw.trim_end()));
                out.reject(Some(i), Fault::malformed(detail));
            }
        }
    }
    if !seen {
        out.reject(
            None,
            Fault::malformed("the payload holds no line-protocol lines"),
        );
    }
}

fn one_line(
    out: &mut Collector,
    source: Source<'_>,
    line: &ParsedLine<'_>,
    i: usize,
    opts: &LineOptions,
) {
    let device = match line.tag_value(&opts.device_tag) {
        Some(tag) => tag.as_str(),
        None => match source.device {
            Some(device) => device,
            None => {
                let detail = format!(
                    "the line has no \"{}\" tag to name the device",
                    opts.device_tag
                );
                return out.reject(Some(i), Fault::new(RejectReason::InvalidId, detail));
            }
        },
    };
    let ts = match line.timestamp {
        None => out.now,
        Some(n) => match from_precision(n, opts.precision) {
            Some(ts) => ts,
            None => {
                let detail = format!(
                    "timestamp {n} ({:?}) is outside the representable time range",
                    opts.precision
                );
                let fault = Fault::new(RejectReason::TimestampOutOfWindow, detail);
                return out.reject(Some(i), fault);
            }
        },
    };
    let measurement = line.series.measurement.as_str();
    for (field, value) in &line.field_set {
        let value = match value {
            FieldValue::I64(n) => *n as f64,
            FieldValue::U64(n) => *n as f64,
            FieldValue::F64(x) => *x,
            FieldValue::Boolean(b) => f64::from(u8::from(*b)),
            FieldValue::String(_) => {
                let detail = format!(
                    "field \"{}\" is a string; vigil stores numbers only",
                    field.as_str()
                );
                out.reject(Some(i), Fault::new(RejectReason::UnsupportedValue, detail));
                continue;
            }
        };
        if field.as_str() == "value" {
            out.reading(Some(i), device, measurement, ts, value);
        } else {
            let metric = format!("{measurement}.{}", field.as_str());
            out.reading(Some(i), device, &metric, ts, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ingest::parse::testing::*;
    use crate::ingest::parse::{parse_payload, Format, Limits, LineOptions, Precision, Source};
    use crate::ingest::reading::{Parsed, RejectReason};

    const NS: i64 = NOW_MS * 1_000_000;

    fn lines(payload: &str) -> Parsed {
        run(Format::Line, Source::default(), payload)
    }

    fn with(opts: &LineOptions, source: Source<'_>, payload: &str) -> Parsed {
        parse_payload(
            Format::Line,
            source,
            payload.as_bytes(),
            now(),
            &Limits::default(),
            opts,
        )
    }

    fn reasons(p: &Parsed) -> Vec<(Option<usize>, RejectReason)> {
        p.rejections.iter().map(|r| (r.index, r.reason)).collect()
    }

    #[test]
    fn fields_become_metrics() {
        let p = lines(&format!(
            "env,device=dev-1,room=a temp=21.5,hum=40i,count=7u,door=true {NS}\n\
             power,device=dev-2 value=3.25 {}\n",
            NS - 1_000_000_000
        ));
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        assert_eq!(
            tuples(&p),
            vec![
                ("dev-1", "env.temp", NOW_MS, 21.5),
                ("dev-1", "env.hum", NOW_MS, 40.0),
                ("dev-1", "env.count", NOW_MS, 7.0),
                ("dev-1", "env.door", NOW_MS, 1.0),
                ("dev-2", "power", NOW_MS - 1000, 3.25),
            ]
        );
    }

    #[test]
    fn missing_timestamp_is_now_and_crlf_is_fine() {
        let p = lines("m,device=d value=1\r\nm,device=d value=f\r\n");
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        assert_eq!(
            tuples(&p),
            vec![("d", "m", NOW_MS, 1.0), ("d", "m", NOW_MS, 0.0)]
        );
    }

    #[test]
    fn sub_microsecond_digits_are_truncated() {
        let p = lines(&format!("m,device=d value=1 {}", NS + 123_456_789));
        assert_eq!(
            p.readings[0].ts.timestamp_nanos_opt(),
            Some(NS + 123_456_000)
        );
    }

    #[test]
    fn precisions() {
        let secs = NOW_MS / 1000;
        for (precision, ts) in [
            (Precision::S, secs),
            (Precision::Ms, NOW_MS),
            (Precision::Us, NOW_MS * 1000),
            (Precision::Ns, NS),
        ] {
            let opts = LineOptions {
                precision,
                ..LineOptions::default()
            };
            let p = with(
                &opts,
                Source::default(),
                &format!("m,device=d value=1 {ts}"),
            );
            assert_eq!(tuples(&p), vec![("d", "m", NOW_MS, 1.0)], "{precision:?}");
        }
        let opts = LineOptions {
            precision: Precision::S,
            ..LineOptions::default()
        };
        let p = with(
            &opts,
            Source::default(),
            &format!("m,device=d value=1 {}", i64::MAX),
        );
        let r = only_rejection(&p);
        assert_eq!(
            (r.index, r.reason),
            (Some(0), RejectReason::TimestampOutOfWindow)
        );
    }

    #[test]
    fn device_tag_is_configurable_and_topic_is_the_fallback() {
        let opts = LineOptions {
            device_tag: "host".into(),
            ..LineOptions::default()
        };
        let p = with(&opts, Source::default(), "cpu,host=h1 load=0.5");
        assert_eq!(tuples(&p), vec![("h1", "cpu.load", NOW_MS, 0.5)]);
        let p = with(&opts, Source::default(), "cpu,device=h1 load=0.5");
        let r = only_rejection(&p);
        assert_eq!((r.index, r.reason), (Some(0), RejectReason::InvalidId));
        assert_eq!(r.detail, "the line has no \"host\" tag to name the device");
        let p = with(&opts, d("from-topic"), "cpu load=0.5");
        assert_eq!(tuples(&p), vec![("from-topic", "cpu.load", NOW_MS, 0.5)]);
    }

    #[test]
    fn bad_lines_are_refused_by_line_number() {
        let p = lines(
            "# comment\n\
             m,device=d value=1\n\
             \n\
             m,device=d value=\"on\",other=2\n\
             m,device=d\n\
             m value=1\n\
             m,device=bad/id value=1\n\
             m,device=d value=1 12x\n\
             m,device=d value=1e400\n\
             m,device=d value=1 1\n\
             m,device=d value=9\n",
        );
        assert_eq!(
            reasons(&p),
            vec![
                (Some(3), RejectReason::UnsupportedValue),
                (Some(4), RejectReason::Malformed),
                (Some(5), RejectReason::InvalidId),
                (Some(6), RejectReason::InvalidId),
                (Some(7), RejectReason::Malformed),
                (Some(8), RejectReason::NonFinite),
                (Some(9), RejectReason::TimestampOutOfWindow),
            ]
        );
        assert_eq!(
            tuples(&p),
            vec![
                ("d", "m", NOW_MS, 1.0),
                ("d", "m.other", NOW_MS, 2.0),
                ("d", "m", NOW_MS, 9.0)
            ]
        );
        assert_eq!(
            p.rejections[0].detail,
            "field \"value\" is a string; vigil stores numbers only"
        );
        assert!(
            p.rejections[1]
                .detail
                .starts_with("cannot parse line \"m,device=d\""),
            "{}",
            p.rejections[1].detail
        );
    }

    #[test]
    fn empty_payloads() {
        for payload in ["", "\n\n", "# only a comment\n"] {
            let r = only_rejection(&lines(payload)).clone();
            assert_eq!(
                (r.index, r.reason),
                (None, RejectReason::Malformed),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn escaped_names_and_invalid_metric_ids() {
        let p = lines("my\\ m,device=d value=1\nm,device=d f\\=x=1");
        assert_eq!(
            reasons(&p),
            vec![
                (Some(0), RejectReason::InvalidId),
                (Some(1), RejectReason::InvalidId)
            ]
        );
        assert_eq!(
            p.rejections[0].detail,
            r#"metric "my m" has characters outside A-Z a-z 0-9 . _ : -"#
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for payload in [
            "\\",
            "m\\",
            "m,=",
            "m,a=\\",
            "m f=\"\n\"",
            "m f=\"unterminated",
            " , = \" \\ \n",
            "m,device=d f=1 -",
        ] {
            let _ = lines(payload);
        }
    }
}
