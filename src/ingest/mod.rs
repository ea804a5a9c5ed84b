//! Intake: topic mapping, payload parsing and validation, the MQTT bridge.
pub mod parse;
pub mod reading;
pub mod topics;
