//! Bad-input mode: malformed messages of every kind vigil must reject, each built so that
//! vigil refuses it with exactly one known reason, and counted so the expected number of
//! rejections per reason is exact.

use std::fmt::Write as _;

use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::Rng;
use vigil::ingest::reading::RejectReason;

use crate::encode::Message;
use crate::fleet::Fleet;

/// A kind of bad message, named after the reason vigil gives when it refuses it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// Broken JSON: an object that never closes.
    Malformed,
    /// A string where the value belongs.
    WrongType,
    /// A value that overflows to infinity.
    NonFinite,
    /// A timestamp in 1970.
    TimestampOutOfWindow,
    /// A payload larger than vigil's limit (see --oversize-bytes).
    PayloadTooLarge,
    /// A topic no rule maps (`sensors/{device}/{metric}/extra`).
    UnmappedTopic,
    /// A payload that is not UTF-8.
    InvalidUtf8,
    /// A device id with a character outside `[A-Za-z0-9._:-]`.
    InvalidId,
    /// A line-protocol string field.
    UnsupportedValue,
}

impl BadKind {
    /// The reason vigil gives when it refuses this kind; its label names the metric and
    /// dead letters (`vigil_rejections_total{reason=...}`).
    pub fn reason(self) -> RejectReason {
        match self {
            Self::Malformed => RejectReason::Malformed,
            Self::WrongType => RejectReason::WrongType,
            Self::NonFinite => RejectReason::NonFinite,
            Self::TimestampOutOfWindow => RejectReason::TimestampOutOfWindow,
            Self::PayloadTooLarge => RejectReason::PayloadTooLarge,
            Self::UnmappedTopic => RejectReason::UnmappedTopic,
            Self::InvalidUtf8 => RejectReason::InvalidUtf8,
            Self::InvalidId => RejectReason::InvalidId,
            Self::UnsupportedValue => RejectReason::UnsupportedValue,
        }
    }
}

/// Replaces a fraction of the messages with bad ones, cycling through the kinds.
#[derive(Debug, Clone)]
pub struct BadInput {
    fraction: f64,
    kinds: Vec<BadKind>,
    rng: SmallRng,
    /// Made part of every payload (with the shard) so that no two bad messages are equal:
    /// vigil stores one dead letter per distinct message, a redelivery adds none.
    serial: u64,
    part: u64,
    parts: u64,
    oversize_bytes: usize,
    /// Bad messages made so far, per kind (same order as `kinds`).
    counts: Vec<u64>,
}

impl BadInput {
    pub fn new(
        fraction: f64,
        kinds: Vec<BadKind>,
        rng: SmallRng,
        (part, parts): (usize, usize),
        oversize_bytes: usize,
    ) -> BadInput {
        let counts = vec![0; kinds.len()];
        BadInput {
            fraction,
            kinds,
            rng,
            serial: 0,
            part: part as u64,
            parts: parts.max(1) as u64,
            oversize_bytes,
            counts,
        }
    }

    /// A bad message in place of the next good one, with probability `fraction`.
    pub fn next(&mut self, fleet: &Fleet, now_ms: i64) -> Option<Message> {
        if self.fraction <= 0.0 || self.kinds.is_empty() || fleet.device_count() == 0 {
            return None;
        }
        if self.rng.random::<f64>() >= self.fraction {
            return None;
        }
        let i = (self.serial % self.kinds.len() as u64) as usize;
        let kind = self.kinds[i];
        self.counts[i] += 1;
        let n = self.serial * self.parts + self.part;
        self.serial += 1;
        let d = (n as usize / self.parts as usize) % fleet.device_count();
        Some(self.build(kind, fleet, d, n, now_ms))
    }

    /// Expected rejections per reason so far.
    pub fn expected(&self) -> Vec<(&'static str, u64)> {
        self.kinds
            .iter()
            .zip(&self.counts)
            .map(|(k, c)| (k.reason().label(), *c))
            .collect()
    }

    fn build(&self, kind: BadKind, fleet: &Fleet, d: usize, n: u64, now_ms: i64) -> Message {
        let device = fleet.device_id(d);
        let metric = fleet.metric_name(d, 0);
        let topic = fleet.topic(d, 0).to_owned();
        let mut p = String::new();
        let (topic, payload) = match kind {
            BadKind::Malformed => {
                let _ = write!(p, "{{\"ts\":{now_ms},\"value\":{n}");
                (topic, p.into_bytes())
            }
            BadKind::WrongType => {
                let _ = write!(p, "{{\"ts\":{now_ms},\"value\":\"hot-{n}\"}}");
                (topic, p.into_bytes())
            }
            BadKind::NonFinite => {
                let _ = write!(p, "{{\"ts\":{now_ms},\"value\":{}e999}}", n + 1);
                (topic, p.into_bytes())
            }
            BadKind::TimestampOutOfWindow => {
                let _ = write!(p, "{{\"ts\":{},\"value\":1}}", 1000 + n);
                (topic, p.into_bytes())
            }
            BadKind::PayloadTooLarge => {
                let mut bytes = format!("{n}").into_bytes();
                bytes.resize(self.oversize_bytes.max(bytes.len()), b' ');
                (topic, bytes)
            }
            BadKind::UnmappedTopic => (format!("{topic}/extra"), n.to_string().into_bytes()),
            BadKind::InvalidUtf8 => {
                let mut bytes = n.to_string().into_bytes();
                bytes.extend_from_slice(&[0xff, 0xfe]);
                (topic, bytes)
            }
            BadKind::InvalidId => (
                format!("sensors/{device}$bad/{metric}"),
                n.to_string().into_bytes(),
            ),
            BadKind::UnsupportedValue => {
                let _ = write!(
                    p,
                    "{metric},device={device} value=\"text-{n}\" {}",
                    now_ms * 1_000_000
                );
                ("ingest/line".to_owned(), p.into_bytes())
            }
        };
        Message {
            topic,
            payload,
            readings: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Spec;
    use crate::vigil_parse;
    use rand::SeedableRng;

    fn fleet() -> Fleet {
        let spec = Spec {
            prefix: "s".into(),
            devices: 5,
            metrics: 2,
            seed: 1,
            anomaly_rate: 0.0,
        };
        Fleet::new(&spec, 0, 1)
    }

    fn all() -> Vec<BadKind> {
        BadKind::value_variants().to_vec()
    }

    /// vigil's own parser refuses each bad message with exactly the reason counted for it.
    #[test]
    fn each_bad_message_is_refused_by_vigil_with_its_reason() {
        let f = fleet();
        let mut bad = BadInput::new(1.0, all(), SmallRng::seed_from_u64(1), (0, 1), 300 * 1024);
        let now = chrono::Utc::now().timestamp_millis();
        let mut seen = std::collections::HashMap::<&str, u64>::new();
        let mut payloads = std::collections::HashSet::new();
        for _ in 0..90 {
            let m = bad.next(&f, now).unwrap();
            assert!(
                payloads.insert((m.topic.clone(), m.payload.clone())),
                "repeated {m:?}"
            );
            let parsed = vigil_parse(&m.topic, &m.payload);
            assert!(parsed.readings.is_empty(), "{m:?}: {parsed:?}");
            assert_eq!(parsed.rejections.len(), 1, "{m:?}: {parsed:?}");
            *seen.entry(parsed.rejections[0].reason.label()).or_default() += 1;
        }
        let expected: std::collections::HashMap<&str, u64> = bad.expected().into_iter().collect();
        assert_eq!(seen, expected);
        assert_eq!(expected.len(), 9);
        assert!(expected.values().all(|&c| c == 10));
    }

    #[test]
    fn the_fraction_is_respected_and_counts_are_exact() {
        let f = fleet();
        let mut bad = BadInput::new(0.1, all(), SmallRng::seed_from_u64(3), (1, 2), 300_000);
        let made = (0..20_000).filter(|_| bad.next(&f, 0).is_some()).count() as u64;
        assert!((1_700..2_300).contains(&made), "{made}");
        assert_eq!(bad.expected().iter().map(|e| e.1).sum::<u64>(), made);
        let mut none = BadInput::new(0.0, all(), SmallRng::seed_from_u64(3), (0, 1), 300_000);
        assert!((0..1000).all(|_| none.next(&f, 0).is_none()));
    }
}
