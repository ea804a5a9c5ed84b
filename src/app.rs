//! Wiring: builds every stage from the settings, runs them, and stops them in order.
//!
//! Shutdown order: stop intake (the bridge stops taking messages, HTTP stops accepting),
//! drain the queue, commit the last batches, hand over the last acks, send DISCONNECT and
//! wait for the broker to close, close the pool — all under `shutdown.timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::fleet::{self, Registry};
use crate::health::Health;
use crate::http::{router, AppState};
use crate::ingest::ack_lag::AckLag;
use crate::ingest::acks::Acker;
use crate::ingest::bridge::Bridge;
use crate::ingest::intake::Intake;
use crate::ingest::topics::TopicMap;
use crate::live::LiveFeed;
use crate::metrics::Metrics;
use crate::store::{self, writer::Batcher, writer::Writer};

/// A running vigil.
pub struct App {
    /// The address the HTTP server listens on (useful with port 0).
    pub addr: SocketAddr,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub live: LiveFeed,
    pub pool: PgPool,
    stop: CancellationToken,
    done: JoinHandle<()>,
}

impl App {
    /// Asks every stage to stop; [`App::wait`] returns when they have.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits for the end of a shutdown.
    pub async fn wait(self) {
        if let Err(e) = self.done.await {
            tracing::error!(error = %e, "shutdown supervisor failed");
        }
    }
}

/// Starts vigil: migrations (when configured), writers, bridge, HTTP.
pub async fn start(settings: Settings) -> anyhow::Result<App> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::new(settings.mqtt.enabled));
    let pool = store::pool(&settings.database).context("database.url")?;
    let connect = store::connect_options(&settings.database).context("database.url")?;
    let stop = CancellationToken::new();
    let acks_done = CancellationToken::new();
    let tracker = TaskTracker::new();

    if settings.database.migrate_on_start {
        tracker.spawn(migrate_until_done(pool.clone(), stop.clone()));
    }
    tracker.spawn(watch_database(pool.clone(), health.clone(), stop.clone()));

    let (queue_tx, queue_rx) = mpsc::channel(settings.ingest.queue_capacity);
    metrics
        .queue_capacity
        .set(settings.ingest.queue_capacity as i64);
    let topics = TopicMap::new(&settings.ingest.topics).context("ingest.topics")?;
    let intake = Arc::new(Intake::new(
        topics,
        settings.ingest.limits.clone(),
        settings.ingest.line.clone(),
        settings.ingest.max_series,
        settings.http.max_body_bytes,
        metrics.clone(),
        queue_tx,
    ));
    let live = LiveFeed::new(settings.live.capacity, metrics.clone());
    // Subscribed before the writers start, so the registry misses nothing committed.
    let fleet = Arc::new(Registry::new(&settings.api));
    let fleet_tracker = fleet::Tracker {
        registry: fleet.clone(),
        feed: live.subscribe(),
        live: live.clone(),
        pool: pool.clone(),
        metrics: metrics.clone(),
        offline_after: settings.api.offline_after,
        max_series: settings.ingest.max_series,
    };
    tracker.spawn(fleet::track(fleet_tracker, stop.clone()));
    let (stream_hub, hub_task) =
        crate::stream::Hub::new(settings.stream.clone(), &live, metrics.clone());
    tracker.spawn(hub_task.run(stop.clone()));

    let (batch_tx, batch_rx) = mpsc::channel(settings.writer.writers);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let ack_lag = Arc::new(AckLag::default());
    let bridge = if settings.mqtt.enabled {
        Some(Bridge::new(
            settings.mqtt.clone(),
            intake.clone(),
            health.clone(),
            metrics.clone(),
            ack_lag.clone(),
        )?)
    } else {
        None
    };
    let acker = Acker {
        rx: ack_rx,
        client: bridge
            .as_ref()
            .map(|b| (b.client.clone(), b.connection.clone())),
    };
    let done = acks_done.clone();
    tracker.spawn(async move {
        acker.run().await;
        done.cancel();
    });

    let batches = Arc::new(Mutex::new(batch_rx));
    for id in 0..settings.writer.writers {
        let writer = Writer {
            id,
            cfg: settings.writer.clone(),
            connect: connect.clone(),
            batches: batches.clone(),
            acks: ack_tx.clone(),
            live: live.clone(),
            health: health.clone(),
            metrics: metrics.clone(),
        };
        tracker.spawn(writer.run());
    }
    drop(ack_tx);
    let batcher = Batcher {
        cfg: settings.writer.clone(),
        queue: queue_rx,
        batches: batch_tx,
        metrics: metrics.clone(),
    };
    tracker.spawn(batcher.run(stop.clone()));

    if let Some(bridge) = bridge {
        let deadline = settings.shutdown.timeout;
        tracker.spawn(bridge.run(stop.clone(), acks_done.clone(), deadline));
    }

    if settings.history.rollups {
        let rollups = crate::history::rollup::Rollups {
            pool: pool.clone(),
            cfg: settings.history.clone(),
            metrics: metrics.clone(),
        };
        tracker.spawn(rollups.run(stop.clone()));
    }
    let retention = crate::store::retention::Retention {
        pool: pool.clone(),
        cfg: settings.retention.clone(),
        metrics: metrics.clone(),
    };
    tracker.spawn(retention.run(stop.clone()));
    if settings.detect.enabled {
        crate::detect::task::DetectorTask {
            cfg: settings.detect.clone(),
            live: live.clone(),
            pool: pool.clone(),
            metrics: metrics.clone(),
        }
        .spawn(&tracker, stop.clone());
    }

    let state = AppState {
        intake,
        health: health.clone(),
        metrics: metrics.clone(),
        http: Arc::new(settings.http.clone()),
        ack_lag,
        live: live.clone(),
        pool: pool.clone(),
        fleet,
        api: Arc::new(settings.api.clone()),
        stream: stream_hub,
        history: Arc::new(settings.history.clone()),
    };
    let listener = tokio::net::TcpListener::bind(settings.http.addr)
        .await
        .with_context(|| format!("http.addr: cannot listen on {}", settings.http.addr))?;
    let addr = listener.local_addr()?;
    let http_stop = stop.clone();
    tracker.spawn(async move {
        let served = axum::serve(listener, router(state))
            .with_graceful_shutdown(http_stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, "vigil is running");
    tracker.close();

    let timeout = settings.shutdown.timeout;
    let supervisor_pool = pool.clone();
    let supervisor_stop = stop.clone();
    let done = tokio::spawn(async move {
        supervisor_stop.cancelled().await;
        tracing::info!("shutting down: intake stopped, draining");
        if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
            tracing::warn!(
                ?timeout,
                "shutdown.timeout reached; exiting with work pending \
                (un-acked messages will be redelivered)"
            );
        }
        supervisor_pool.close().await;
        tracing::info!("vigil stopped");
    });
    Ok(App {
        addr,
        metrics,
        health,
        live,
        pool,
        stop,
        done,
    })
}

/// Applies migrations, retrying while the database is unreachable.
async fn migrate_until_done(pool: PgPool, stop: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        match store::migrate(&pool).await {
            Ok(()) => {
                tracing::info!("database schema is up to date");
                return;
            }
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "migrations not applied yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Probes the database once a second for `/readyz` (and `vigil_database_up`).
async fn watch_database(pool: PgPool, health: Arc<Health>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = sqlx::query("SELECT 1").execute(&pool);
        let up = matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(_))
        );
        if up != health.database() {
            if up {
                tracing::info!("database reachable");
            } else {
                tracing::warn!("database unreachable");
            }
        }
        health.set_database(up);
    }
}
