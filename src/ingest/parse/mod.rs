//! Payload parsers.
