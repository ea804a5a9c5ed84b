//! vigil: real-time IoT ingestion and monitoring.
//!
//! Map of the crate, in pipeline order:
//! - [`config`]: the typed settings (defaults → TOML file → environment).
//! - [`ingest`]: topic mapping and payload parsing ([`ingest::parse`]), the MQTT bridge
//!   ([`ingest::bridge`]), the shared front door ([`ingest::intake`]) with its series cap,
//!   and the acker that acknowledges QoS 1 messages after their commit ([`ingest::acks`]).
//! - [`store`]: migrations, the batcher and writers, binary COPY, dead letters.
//! - [`live`]: the broadcast of committed readings, device updates and anomalies.
//! - [`detect`]: per-series anomaly detection.
//! - [`fleet`]: the in-memory device registry (status, metadata, latest values).
//! - [`stream`]: live readings, device updates and anomalies to WebSocket and SSE clients.
//! - [`history`]: downsampled history over rollups, export encoding; retention is in
//!   [`store::retention`].
//! - [`http`]: health, readiness, metrics, HTTP ingest, the devices API, OpenAPI.
//! - [`metrics`], [`health`]: what operators see.
//! - [`app`]: wiring and the shutdown order.

pub mod app;
pub mod config;
pub mod detect;
pub mod fleet;
pub mod health;
pub mod history;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod store;
pub mod stream;
