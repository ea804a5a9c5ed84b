//! The values that flow through the pipeline: readings, rejections and device updates.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One measurement of one metric of one device: the unit vigil stores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// Device identifier, already checked against the id rules.
    pub device_id: String,
    /// Metric name, already checked against the id rules.
    pub metric: String,
    /// When the reading was taken (or when it arrived, for readings without a time).
    pub ts: DateTime<Utc>,
    /// The measured value; always finite.
    pub value: f64,
}

/// Why a piece of input was refused. Each variant is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not parseable in the expected format (broken JSON, bad line protocol, ...).
    Malformed,
    /// Parseable, but a field has the wrong type (a string where a number belongs, ...).
    WrongType,
    /// NaN or an infinity.
    NonFinite,
    /// A timestamp outside the accepted window around the arrival time.
    TimestampOutOfWindow,
    /// The payload is larger than the configured limit.
    PayloadTooLarge,
    /// The topic matches no mapping rule.
    UnmappedTopic,
    /// The payload is not valid UTF-8.
    InvalidUtf8,
    /// A device or metric id outside `[A-Za-z0-9._:-]{1,128}`.
    InvalidId,
    /// A value kind vigil does not store (SenML strings and data, line-protocol strings).
    UnsupportedValue,
    /// The reading would create a new series past the configured cap.
    SeriesLimit,
    /// PostgreSQL refused the row itself (not a transient failure).
    Database,
}

impl RejectReason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [RejectReason; 11] = [
        Self::Malformed,
        Self::WrongType,
        Self::NonFinite,
        Self::TimestampOutOfWindow,
        Self::PayloadTooLarge,
        Self::UnmappedTopic,
        Self::InvalidUtf8,
        Self::InvalidId,
        Self::UnsupportedValue,
        Self::SeriesLimit,
        Self::Database,
    ];

    /// The stable label used in metrics and the dead-letter table.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongType => "wrong_type",
            Self::NonFinite => "non_finite",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnmappedTopic => "unmapped_topic",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidId => "invalid_id",
            Self::UnsupportedValue => "unsupported_value",
            Self::SeriesLimit => "series_limit",
            Self::Database => "database",
        }
    }
}

/// A refused piece of input with a reason a person can read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Bounded classification, used as the metric label.
    #[serde(serialize_with = "serialize_reason")]
    pub reason: RejectReason,
    /// Human explanation naming the offending field or value.
    pub detail: String,
    /// Position of the refused item inside the payload (array element, SenML record,
    /// line number starting at 0), when the payload holds several items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl Rejection {
    /// A rejection of the whole payload.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            index: None,
        }
    }

    /// A rejection of one item of a multi-item payload.
    pub fn at(index: usize, reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            index: Some(index),
        }
    }
}

fn serialize_reason<S: serde::Serializer>(r: &RejectReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.label())
}

/// Device-level information carried on the `devices/{device}/...` topics.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceUpdate {
    /// Retained metadata: model, location, units per metric (a JSON object).
    Meta {
        device_id: String,
        meta: serde_json::Value,
    },
    /// Presence, usually the Last Will of the device's connection.
    Status { device_id: String, online: bool },
}

/// Everything one payload turned into: the good readings, the refused items, and at most
/// one device update. A mixed payload yields both readings and rejections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub readings: Vec<Reading>,
    pub rejections: Vec<Rejection>,
    pub device: Option<DeviceUpdate>,
}

impl Parsed {
    /// A payload refused as a whole.
    pub fn rejected(rejection: Rejection) -> Self {
        Self {
            rejections: vec![rejection],
            ..Self::default()
        }
    }
}
