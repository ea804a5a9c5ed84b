//! Dead letters: refused input kept with its reason, once per distinct message.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::ingest::envelope::Envelope;
use crate::ingest::reading::Rejection;

/// How much of a refused payload is kept.
pub const PAYLOAD_PREFIX_BYTES: usize = 1024;

/// One row of the `dead_letters` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Hash of what identifies the refused item, so a redelivery adds no second row.
    pub fingerprint: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub source: &'static str,
    pub topic: String,
    pub payload: String,
    pub reason: &'static str,
    pub detail: String,
    pub item_index: Option<i32>,
}

impl DeadLetter {
    /// The dead letter for one rejection of `envelope`'s payload.
    pub fn new(envelope: &Envelope, rejection: &Rejection) -> DeadLetter {
        let index = rejection
            .index
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX));
        // The detail is left out: it may mention the arrival time, which a redelivery
        // changes.
        let mut h = Sha256::new();
        h.update(envelope.origin.label());
        h.update([0]);
        h.update(&envelope.topic);
        h.update([0]);
        h.update(&envelope.payload);
        h.update([0]);
        h.update(index.unwrap_or(-1).to_be_bytes());
        h.update(rejection.reason.label());
        let prefix = &envelope.payload[..envelope.payload.len().min(PAYLOAD_PREFIX_BYTES)];
        DeadLetter {
            fingerprint: h.finalize().to_vec(),
            received_at: envelope.received_at,
            source: envelope.origin.label(),
            topic: storable(&envelope.topic),
            payload: storable(&String::from_utf8_lossy(prefix)),
            reason: rejection.reason.label(),
            detail: storable(&rejection.detail),
            item_index: index,
        }
    }
}

/// PostgreSQL text cannot hold NUL.
fn storable(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::envelope::{Ack, Origin};
    use crate::ingest::reading::{Parsed, RejectReason};
    use bytes::Bytes;

    fn envelope(payload: &'static [u8], at: i64) -> Envelope {
        Envelope {
            origin: Origin::Mqtt,
            topic: "sensors/d/t".into(),
            payload: Bytes::from_static(payload),
            parsed: Parsed::default(),
            received_at: DateTime::from_timestamp(at, 0).expect("valid"),
            ack: Ack::None,
        }
    }

    #[test]
    fn a_redelivery_has_the_same_fingerprint_and_other_input_another() {
        let r = Rejection::new(RejectReason::Malformed, "broken");
        let first = DeadLetter::new(&envelope(b"{x", 1), &r);
        let again = DeadLetter::new(&envelope(b"{x", 99), &r);
        assert_eq!(first.fingerprint, again.fingerprint);
        let other = DeadLetter::new(&envelope(b"{y", 1), &r);
        assert_ne!(first.fingerprint, other.fingerprint);
        let item = DeadLetter::new(
            &envelope(b"{x", 1),
            &Rejection::at(3, RejectReason::Malformed, "broken"),
        );
        assert_ne!(first.fingerprint, item.fingerprint);
    }

    #[test]
    fn payloads_are_cut_and_made_storable() {
        let big = Box::leak(vec![b'a'; 5000].into_boxed_slice());
        let d = DeadLetter::new(
            &envelope(big, 1),
            &Rejection::new(RejectReason::PayloadTooLarge, "big"),
        );
        assert_eq!(d.payload.len(), PAYLOAD_PREFIX_BYTES);
        let d = DeadLetter::new(
            &envelope(b"a\0\xff", 1),
            &Rejection::new(RejectReason::InvalidUtf8, "x"),
        );
        assert_eq!(d.payload, "a\u{FFFD}\u{FFFD}");
    }
}
