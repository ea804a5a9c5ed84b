//! Shared harness for vigil's integration tests: private PostgreSQL and Mosquitto
//! instances (own data directory, own free port on 127.0.0.1, removed on drop) and the
//! waiting helpers every test uses instead of sleeps.
//!
//! - [`Postgres`]: `Postgres::start().await`, `url()`, `stop()`, `start_again()`.
//! - [`Mosquitto`]: `Mosquitto::start()`, `url()`, `stop()`, `start_again()`, `kill()`.
//! - [`wait_for`]: poll a condition under a timeout; [`count_rows`]; [`free_port`].
//! - [`vigil`]: running vigil itself (in-process or as the binary) and an MQTT publisher.
//!
//! Server logs are kept in each instance's tempdir and their tail is printed when a
//! start fails. Missing binaries panic with a pointer to `scripts/setup.sh`.
//!
//! `stop` / `start_again` block the calling thread for a fraction of a second; in a
//! `current_thread` test runtime other tasks pause meanwhile (use
//! `#[tokio::test(flavor = "multi_thread")]` when that matters).

// Each test file uses part of the harness.
#![allow(dead_code)]
#![allow(unused_imports)]

mod mosquitto;
mod postgres;
mod proc;
pub mod vigil;
pub mod ws;

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

pub use mosquitto::Mosquitto;
pub use postgres::Postgres;

/// How often [`wait_for`] re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). Another process
/// may take it before we bind it again; the server harnesses retry on a new port then.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// Polls `check` every 50 ms until it returns true; panics naming `what` if that takes
/// longer than `timeout` (a `check` that hangs is cut off by the same timeout).
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polling = async {
        loop {
            if check().await {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    if tokio::time::timeout(timeout, polling).await.is_err() {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Runs `sql`, which must return one `bigint` (e.g. `select count(*) from readings`), on
/// a fresh connection to `url`. Panics on any error, with the query in the message.
pub async fn count_rows(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let count = sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
    count
}
