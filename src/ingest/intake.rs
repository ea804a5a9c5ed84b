//! The front door shared by the MQTT bridge and HTTP ingest: parse, validate, cap the
//! series, count, and hand the result to the bounded queue.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::envelope::{Ack, Envelope, Origin};
use super::parse::{parse_payload, Format, Limits, LineOptions, Source};
use super::reading::{Parsed, RejectReason, Rejection};
use super::series::SeriesGuard;
use super::topics::TopicMap;
use crate::metrics::Metrics;
use prometheus::IntCounter;

/// Parses messages into envelopes; cheap to share behind an `Arc`.
pub struct Intake {
    topics: TopicMap,
    limits: Limits,
    /// The same limits with the HTTP body limit as the payload limit.
    http_limits: Limits,
    line: LineOptions,
    series: SeriesGuard,
    metrics: Metrics,
    /// `vigil_readings_received_total` per origin, looked up once rather than per message.
    received_mqtt: IntCounter,
    received_http: IntCounter,
    /// The bounded queue to the writer. Full means block: the bridge stops reading from
    /// the broker and HTTP requests wait, nothing is dropped.
    queue: mpsc::Sender<Envelope>,
}

impl Intake {
    pub fn new(
        topics: TopicMap,
        limits: Limits,
        line: LineOptions,
        max_series: usize,
        max_body_bytes: usize,
        metrics: Metrics,
        queue: mpsc::Sender<Envelope>,
    ) -> Intake {
        let http_limits = Limits {
            max_payload_bytes: max_body_bytes,
            ..limits.clone()
        };
        let received = |o: Origin| metrics.readings_received.with_label_values(&[o.label()]);
        Intake {
            received_mqtt: received(Origin::Mqtt),
            received_http: received(Origin::Http),
            topics,
            limits,
            http_limits,
            line,
            series: SeriesGuard::new(max_series),
            metrics,
            queue,
        }
    }

    /// The queue, for the bridge's reserve-then-poll loop.
    pub fn queue(&self) -> &mpsc::Sender<Envelope> {
        &self.queue
    }

    /// Turns one MQTT message into an envelope (not yet queued).
    pub fn from_mqtt(&self, topic: &str, payload: Bytes, now: DateTime<Utc>, ack: Ack) -> Envelope {
        let parsed = match self.topics.resolve(topic) {
            Some((format, source)) => {
                parse_payload(format, source, &payload, now, &self.limits, &self.line)
            }
            None => Parsed::rejected(Rejection::new(
                RejectReason::UnmappedTopic,
                format!("topic {topic:?} matches no rule in ingest.topics"),
            )),
        };
        self.envelope(Origin::Mqtt, topic.to_owned(), payload, parsed, now, ack)
    }

    /// An MQTT message refused before parsing (e.g. a topic that is not UTF-8).
    pub fn rejected_mqtt(
        &self,
        topic: String,
        payload: Bytes,
        parsed: Parsed,
        now: DateTime<Utc>,
        ack: Ack,
    ) -> Envelope {
        self.envelope(Origin::Mqtt, topic, payload, parsed, now, ack)
    }

    /// Parses an HTTP request body; the caller queues the envelope with [`Intake::submit`].
    pub fn from_http(
        &self,
        route: &str,
        format: Format,
        body: Bytes,
        now: DateTime<Utc>,
        ack: Ack,
    ) -> Envelope {
        let parsed = parse_payload(
            format,
            Source::default(),
            &body,
            now,
            &self.http_limits,
            &self.line,
        );
        self.envelope(Origin::Http, route.to_owned(), body, parsed, now, ack)
    }

    /// Queues an envelope, waiting while the queue is full.
    pub async fn submit(&self, envelope: Envelope) -> Result<(), mpsc::error::SendError<Envelope>> {
        self.queue.send(envelope).await
    }

    fn envelope(
        &self,
        origin: Origin,
        topic: String,
        payload: Bytes,
        mut parsed: Parsed,
        now: DateTime<Utc>,
        ack: Ack,
    ) -> Envelope {
        self.series.admit(&mut parsed);
        let received = match origin {
            Origin::Mqtt => &self.received_mqtt,
            Origin::Http => &self.received_http,
        };
        received.inc_by(parsed.readings.len() as u64);
        for r in &parsed.rejections {
            self.metrics.reject(r.reason);
        }
        if !parsed.rejections.is_empty() {
            tracing::debug!(
                source = origin.label(),
                %topic,
                rejected = parsed.rejections.len(),
                first = %parsed.rejections[0].detail,
                "input rejected"
            );
        }
        // The payload is only needed to write a dead letter.
        let payload = if parsed.rejections.is_empty() {
            Bytes::new()
        } else {
            payload
        };
        Envelope {
            origin,
            topic,
            payload,
            parsed,
            received_at: now,
            ack,
        }
    }
}
