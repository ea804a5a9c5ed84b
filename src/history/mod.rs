//! History: downsampled queries over rollups, their maintenance, and export encoding.
//!
//! - [`downsample`]: the pure min/max core (points at their real timestamps).
//! - [`plan`]: which rollup level or raw range answers each part of a query.
//! - [`query`]: the database side of `GET /api/v1/readings`.
//! - [`rollup`]: the task keeping `readings_1m` / `readings_1h` current, late data included.
//! - [`encode`]: CSV and Arrow IPC encoders for `GET /api/v1/export`, a batch at a time.
//! - [`params`]: query-string parsing shared by both endpoints.
//! - [`config`]: the `[history]` settings.

pub mod config;
pub mod downsample;
pub mod encode;
pub mod params;
pub mod plan;
pub mod query;
pub mod rollup;

pub use config::HistoryConfig;
