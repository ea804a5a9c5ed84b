//! Live streaming to WebSocket (`GET /ws`) and SSE (`GET /api/v1/stream`) clients.
//!
//! - [`filter`]: `<device>/<metric>` filters with `+` and `#`.
//! - [`index`]: the subscription index the hub matches readings against.
//! - [`hub`]: the one task that reads the live feed and fills per-client bounded queues,
//!   never waiting for a client.
//! - [`session`]: one client's protocol as plain code: subscriptions, 20 ms batches, the
//!   backfill/live seam.
//! - [`shell`]: the async loop around a session, shared by both transports.
//! - [`backfill`]: the stored readings a `since` subscription starts with.
//! - [`protocol`]: the JSON messages.

pub mod backfill;
pub mod config;
pub mod filter;
pub mod hub;
pub mod index;
pub mod protocol;
pub mod session;
pub mod shell;

pub use config::StreamConfig;
pub use hub::{Hub, HubTask, Transport};
