//! The device registry behind `/api/v1/devices`: every device with its status, metadata
//! and latest values, held in memory so the API answers without a database round trip.
//!
//! [`registry::Fleet`] is the pure core (time passed in). [`track`] is its async shell:
//! it loads the stored registry at start-up while following the live feed, and sweeps
//! (at least once a second) for status changes nobody announced — a device gone silent,
//! a device heard from again after silence or an `offline` — publishing each on the feed
//! as a `DeviceUpdate::Status`, so live clients learn it as they learn a Last Will. At
//! most [`ANNOUNCE_PER_SWEEP`] per sweep, so a mass outage cannot flood the feed. These
//! messages are not stored: silence is derived from time, again, after a restart.

pub mod config;
pub mod load;
pub mod registry;
pub mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use config::ApiConfig;
pub use registry::{Fleet, Transition};
pub use view::{Device, DeviceList, Filter, Latest, Status};

use crate::ingest::reading::DeviceUpdate;
use crate::live::{LiveEvent, LiveFeed, LiveMessage, LiveReceiver};
use crate::metrics::Metrics;

/// Status messages published per sweep at most (a sweep runs at least once a second).
const ANNOUNCE_PER_SWEEP: usize = 256;

/// The shared registry: read by the API, written by [`track`].
pub struct Registry {
    fleet: RwLock<Fleet>,
    /// Set once the stored registry is loaded; until then answers would be partial.
    loaded: AtomicBool,
}

impl Registry {
    /// An empty registry, not loaded yet.
    pub fn new(cfg: &ApiConfig) -> Registry {
        Registry {
            fleet: RwLock::new(Fleet::new(cfg.offline_after)),
            loaded: AtomicBool::new(false),
        }
    }

    /// Whether the start-up load has finished.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Read access; hold it briefly (never across an await).
    pub fn read(&self) -> RwLockReadGuard<'_, Fleet> {
        // Nothing panics while holding the lock, and the data stays consistent if it did.
        self.fleet.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn write(fleet: &RwLock<Fleet>) -> RwLockWriteGuard<'_, Fleet> {
    fleet.write().unwrap_or_else(PoisonError::into_inner)
}

/// What [`track`] needs.
pub struct Tracker {
    /// The registry to fill and keep current.
    pub registry: Arc<Registry>,
    /// Subscribed before the writers start, so nothing committed is missed.
    pub feed: LiveReceiver,
    /// To announce the status changes the registry decides.
    pub live: LiveFeed,
    /// For the start-up load.
    pub pool: PgPool,
    /// Device gauges and the lag counter.
    pub metrics: Metrics,
    /// `api.offline_after`, which sets how often the registry sweeps.
    pub offline_after: Duration,
    /// At most this many latest values are loaded (the ingest series cap).
    pub max_series: usize,
}

/// Loads the stored registry and follows the feed until `stop`.
pub async fn track(t: Tracker, stop: CancellationToken) {
    let loading = load_until_done(&t.pool, &t.registry, t.max_series, &stop);
    let following = follow(
        &t.registry,
        t.feed,
        &t.live,
        &t.metrics,
        sweep_interval(t.offline_after),
        &stop,
    );
    tokio::join!(loading, following);
}

/// Sweeps often enough that a status is at most a tenth of the timeout late.
fn sweep_interval(offline_after: Duration) -> Duration {
    (offline_after / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

async fn load_until_done(
    pool: &PgPool,
    registry: &Registry,
    max_series: usize,
    stop: &CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        // Retried until the database is up and migrated; merging twice is harmless.
        match load::load(pool, &registry.fleet, max_series).await {
            Ok(loaded) => {
                registry.loaded.store(true, Ordering::Release);
                tracing::info!(
                    devices = loaded.devices,
                    series = loaded.series,
                    "device registry loaded"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "device registry not loaded yet")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn follow(
    registry: &Registry,
    mut feed: LiveReceiver,
    live: &LiveFeed,
    metrics: &Metrics,
    every: Duration,
    stop: &CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            event = feed.recv() => match event {
                Some(LiveEvent::Readings(batch)) => {
                    write(&registry.fleet).apply_readings(&batch, Utc::now());
                }
                Some(LiveEvent::Device(update)) => {
                    // The registry's own announcements come back here too; applying them
                    // changes no status (offline for a silent device, online for one just
                    // heard from).
                    write(&registry.fleet).apply_update(&update, Utc::now());
                }
                Some(LiveEvent::Anomaly(_)) => {}
                Some(LiveEvent::Lagged(n)) => {
                    // Skipped readings leave latest values stale until the next reading of
                    // each series; a skipped Last Will leaves the status to the silence
                    // timeout. Nothing else depends on seeing every message.
                    metrics.fleet_lagged.inc_by(n);
                    tracing::warn!(skipped = n, "device registry fell behind the live feed");
                }
                None => return,
            },
            _ = tick.tick() => {
                let swept = write(&registry.fleet).sweep(Utc::now(), ANNOUNCE_PER_SWEEP);
                metrics.devices_known.set(swept.known as i64);
                metrics.devices_online.set(swept.online as i64);
                announce(live, swept.changed);
            }
        }
    }
}

/// Tells live clients what the registry decided, as a device status message.
fn announce(live: &LiveFeed, transitions: Vec<Transition>) {
    for t in transitions {
        tracing::debug!(device = %t.device_id, status = ?t.status, "device status changed");
        live.send(LiveMessage::Device(Arc::new(DeviceUpdate::Status {
            device_id: t.device_id,
            online: t.status == Status::Online,
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::reading::Reading;

    fn batch(device: &str) -> Vec<Reading> {
        vec![Reading {
            device_id: device.into(),
            metric: "m".into(),
            ts: Utc::now(),
            value: 1.0,
        }]
    }

    #[tokio::test]
    async fn a_lagging_registry_counts_what_it_skipped_and_goes_on() {
        let metrics = Metrics::new();
        let live = LiveFeed::new(2, metrics.clone());
        let registry = Registry::new(&ApiConfig::default());
        let feed = live.subscribe();
        for device in ["a", "b", "c", "d"] {
            live.publish(batch(device));
        }
        let stop = CancellationToken::new();
        let follower = follow(
            &registry,
            feed,
            &live,
            &metrics,
            Duration::from_secs(1),
            &stop,
        );
        let check = async {
            while registry.read().get("d", Utc::now()).is_none() {
                tokio::task::yield_now().await;
            }
            stop.cancel();
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(follower, check)
        })
        .await
        .expect("the registry catches up");
        assert_eq!(metrics.fleet_lagged.get(), 2);
        let fleet = registry.read();
        assert!(fleet.get("a", Utc::now()).is_none(), "skipped");
        assert!(fleet.get("c", Utc::now()).is_some());
    }
}
