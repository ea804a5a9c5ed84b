//! Payload formats: how samples become MQTT messages in vigil's default topic scheme.

use std::fmt::Write as _;

use clap::ValueEnum;

use crate::fleet::{Fleet, Sample};

/// How readings are encoded.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `sensors/{device}/{metric}` with `{"ts": ms, "value": v}`.
    Json,
    /// `sensors/{device}/{metric}` with a bare number (stamped by vigil on arrival).
    Bare,
    /// `sensors/{device}` with a SenML pack of all the device's metrics.
    Senml,
    /// `ingest/line` with InfluxDB line protocol, one line per reading.
    Line,
}

/// One MQTT message and the readings it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub readings: u64,
}

/// The next message of `fleet` in `format`, and the samples it used (readings sent plus
/// readings withheld by a dropout). `None` for the message when every sample was withheld.
pub fn next_message(
    fleet: &mut Fleet,
    format: PayloadFormat,
    now_ms: i64,
) -> (Option<Message>, u64) {
    if format == PayloadFormat::Senml {
        let Some((d, samples)) = fleet.next_device(now_ms) else {
            return (None, 0);
        };
        return (senml(fleet, d, &samples), samples.len() as u64);
    }
    let Some(s) = fleet.next_sample(now_ms) else {
        return (None, 0);
    };
    (single(fleet, format, &s), 1)
}

fn single(fleet: &Fleet, format: PayloadFormat, s: &Sample) -> Option<Message> {
    let v = s.value?;
    let mut payload = String::with_capacity(48);
    let topic = match format {
        PayloadFormat::Json | PayloadFormat::Senml => {
            let _ = write!(payload, "{{\"ts\":{},\"value\":{v}}}", s.ts_ms);
            fleet.topic(s.device, s.metric).to_owned()
        }
        PayloadFormat::Bare => {
            let _ = write!(payload, "{v}");
            fleet.topic(s.device, s.metric).to_owned()
        }
        PayloadFormat::Line => {
            let _ = write!(
                payload,
                "{},device={} value={v} {}",
                fleet.metric_name(s.device, s.metric),
                fleet.device_id(s.device),
                s.ts_ms * 1_000_000
            );
            "ingest/line".to_owned()
        }
    };
    Some(Message {
        topic,
        payload: payload.into_bytes(),
        readings: 1,
    })
}

fn senml(fleet: &Fleet, d: usize, samples: &[Sample]) -> Option<Message> {
    let mut payload = String::from("[");
    let mut readings = 0;
    for s in samples {
        let Some(v) = s.value else { continue };
        if readings > 0 {
            payload.push(',');
        }
        let _ = write!(
            payload,
            "{{\"n\":\"{}\",\"t\":{}.{:03},\"v\":{v}}}",
            fleet.metric_name(d, s.metric),
            s.ts_ms.div_euclid(1000),
            s.ts_ms.rem_euclid(1000)
        );
        readings += 1;
    }
    payload.push(']');
    (readings > 0).then(|| Message {
        topic: format!("sensors/{}", fleet.device_id(d)),
        payload: payload.into_bytes(),
        readings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Spec;
    use crate::vigil_parse;

    fn fleet() -> Fleet {
        let spec = Spec {
            prefix: "s".into(),
            devices: 3,
            metrics: 4,
            seed: 1,
            anomaly_rate: 0.0,
        };
        Fleet::new(&spec, 0, 1)
    }

    /// Every format is read by vigil's own parser as exactly the readings sent.
    #[test]
    fn vigil_reads_every_format_as_the_readings_sent() {
        let now = chrono::Utc::now().timestamp_millis();
        for format in PayloadFormat::value_variants() {
            let mut f = fleet();
            for _ in 0..20 {
                let (m, slots) = next_message(&mut f, *format, now);
                let m = m.unwrap();
                let parsed = vigil_parse(&m.topic, &m.payload);
                assert!(parsed.rejections.is_empty(), "{format:?} {m:?}: {parsed:?}");
                assert_eq!(parsed.readings.len() as u64, m.readings, "{format:?} {m:?}");
                assert_eq!(m.readings, slots);
                if *format != PayloadFormat::Bare {
                    assert!(parsed
                        .readings
                        .iter()
                        .all(|r| (r.ts.timestamp_millis() - now).abs() < 1000));
                }
            }
        }
    }

    #[test]
    fn a_senml_pack_carries_every_metric_of_a_device() {
        let mut f = fleet();
        let (m, slots) = next_message(&mut f, PayloadFormat::Senml, 1_000);
        let m = m.unwrap();
        assert_eq!(m.topic, "sensors/s-0000");
        assert_eq!((m.readings, slots), (4, 4));
    }
}
