//! Intake: topic mapping, payload parsing and validation, the MQTT bridge, acks.
pub mod ack_lag;
pub mod acks;
pub mod bridge;
pub mod envelope;
pub mod intake;
pub mod parse;
pub mod reading;
pub mod series;
pub mod topics;
