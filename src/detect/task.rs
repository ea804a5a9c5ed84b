//! The live detector: every committed reading is scored, off the async workers.
//!
//! Three parts, started by [`DetectorTask::spawn`]:
//! - the forwarder takes reading batches from the live feed into the detector's own
//!   bounded queue (`detect.queue_capacity` batches, on top of the feed's buffer). It
//!   never waits: a full queue skips the batch and counts it (`vigil_detect_lagged_total`),
//!   as does a broadcast lag.
//! - the scorer, on a blocking thread, first rebuilds each series from its recent history
//!   in the database, then scores each batch. When a series' model is due, its training
//!   data is copied and fitted on the blocking pool (at most `detect.training_workers`
//!   at once); the scorer installs the result when it comes back and never waits for it.
//! - the event writer stores anomaly events in batches and then publishes them on the
//!   live feed (so a client told of one can already query it).

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::DetectConfig;
use super::learned::{fit, Model};
use super::series::SeriesDetector;
use super::{store, Anomaly};
use crate::ingest::reading::Reading;
use crate::live::{LiveEvent, LiveFeed, LiveMessage, LiveReceiver, StoredBatch};
use crate::metrics::Metrics;

/// Anomaly events waiting to be stored; past it they are dropped and counted.
const EVENT_QUEUE: usize = 10_000;
/// Events stored per statement, at most ...
const EVENT_BATCH: usize = 500;
/// ... gathered for at most this long after the first.
const EVENT_LINGER: Duration = Duration::from_millis(100);

/// The live anomaly detector.
pub struct DetectorTask {
    pub cfg: DetectConfig,
    pub live: LiveFeed,
    pub pool: PgPool,
    pub metrics: Metrics,
}

impl DetectorTask {
    /// Starts the detector's parts under `tracker`; they stop when `stop` is cancelled.
    pub fn spawn(self, tracker: &TaskTracker, stop: CancellationToken) {
        // Subscribe before loading history, so every reading committed from now on is
        // either in the history or on this receiver (the seam is deduplicated by time).
        let feed = self.live.subscribe();
        let (batch_tx, batch_rx) = mpsc::channel(self.cfg.queue_capacity);
        tracker.spawn(forward(feed, batch_tx, self.metrics.clone(), stop.clone()));
        let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
        tracker.spawn(write_events(
            event_rx,
            self.pool.clone(),
            self.live.clone(),
            self.metrics.clone(),
            stop.clone(),
        ));
        let (history_tx, history_rx) = mpsc::channel(4);
        if self.cfg.history > 0 {
            let (pool, cfg) = (self.pool.clone(), self.cfg.clone());
            tracker.spawn(async move {
                let window = chrono::Duration::from_std(cfg.history_window)
                    .unwrap_or(chrono::Duration::days(1));
                match store::load_recent(&pool, Utc::now() - window, cfg.history, &history_tx).await
                {
                    Ok(n) => tracing::info!(readings = n, "detector state rebuilt from history"),
                    Err(e) => {
                        tracing::warn!(error = %e, "detector history not loaded; starting fresh")
                    }
                }
            });
        } else {
            drop(history_tx);
        }
        let (fit_tx, fit_rx) = std_mpsc::channel();
        let scorer = Scorer {
            series: HashMap::new(),
            trainer: Trainer {
                in_flight: 0,
                limit: self.cfg.training_workers,
                results_tx: fit_tx,
                results: fit_rx,
                runtime: Handle::current(),
            },
            events: event_tx,
            metrics: self.metrics,
            cfg: self.cfg,
            stop,
        };
        tracker.spawn_blocking(move || scorer.run(history_rx, batch_rx));
    }
}

/// Live feed → the detector's queue, never waiting.
async fn forward(
    mut feed: LiveReceiver,
    queue: mpsc::Sender<(Instant, StoredBatch)>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = feed.recv() => e,
        };
        match event {
            Some(LiveEvent::Readings(batch)) => {
                if queue.try_send((Instant::now(), batch)).is_err() {
                    metrics.detect_lagged.inc();
                }
                metrics
                    .detect_queue_depth
                    .set((queue.max_capacity() - queue.capacity()) as i64);
            }
            Some(LiveEvent::Lagged(n)) => metrics.detect_lagged.inc_by(n),
            Some(LiveEvent::Device(_) | LiveEvent::Anomaly(_)) => {}
            None => return,
        }
    }
}

/// One series' slot: its detector (none when disabled by pattern) and, for a series
/// rebuilt from history, the last time already learned.
struct Slot {
    detector: Option<Box<SeriesDetector>>,
    loaded_until: i64,
}

/// Fits models on the blocking pool, a bounded number at once.
struct Trainer {
    in_flight: usize,
    limit: usize,
    results_tx: std_mpsc::Sender<((String, String), Option<Model>)>,
    results: std_mpsc::Receiver<((String, String), Option<Model>)>,
    runtime: Handle,
}

impl Trainer {
    /// Starts a fit for the series when one is due and a worker is free (else it is
    /// offered again at the series' next reading).
    fn offer(&mut self, device: &str, metric: &str, d: &mut SeriesDetector) {
        if self.in_flight >= self.limit || !d.training_due() {
            return;
        }
        let set = d.training_set();
        let key = (device.to_owned(), metric.to_owned());
        let tx = self.results_tx.clone();
        self.in_flight += 1;
        self.runtime.spawn_blocking(move || {
            // The scorer may be gone at shutdown; the fit is then simply dropped.
            let _ = tx.send((key, fit(&set)));
        });
    }
}

/// The scoring loop's state: every series' detector.
struct Scorer {
    series: HashMap<String, HashMap<String, Slot>>,
    trainer: Trainer,
    events: mpsc::Sender<Arc<Anomaly>>,
    metrics: Metrics,
    cfg: DetectConfig,
    stop: CancellationToken,
}

impl Scorer {
    fn run(
        mut self,
        mut history: mpsc::Receiver<Vec<Reading>>,
        mut batches: mpsc::Receiver<(Instant, StoredBatch)>,
    ) {
        while let Some(chunk) = history.blocking_recv() {
            for r in &chunk {
                self.observe(r, false);
            }
        }
        while let Some((arrived, batch)) = batches.blocking_recv() {
            if self.stop.is_cancelled() {
                break;
            }
            self.install_fits();
            for r in batch.iter() {
                self.observe(r, true);
            }
            self.metrics.detect_points_scored.inc_by(batch.len() as u64);
            self.metrics.detect_queue_depth.set(batches.len() as i64);
            self.metrics
                .detect_lag_seconds
                .set(arrived.elapsed().as_secs_f64());
        }
        tracing::info!("anomaly detector stopped");
    }

    fn install_fits(&mut self) {
        while let Ok(((device, metric), model)) = self.trainer.results.try_recv() {
            self.trainer.in_flight -= 1;
            self.metrics.detect_model_fits.inc();
            let slot = self
                .series
                .get_mut(&device)
                .and_then(|m| m.get_mut(&metric));
            if let Some(d) = slot.and_then(|s| s.detector.as_mut()) {
                d.install(model);
            }
        }
    }

    /// Scores one reading; `live` readings raise events, history only teaches.
    fn observe(&mut self, r: &Reading, live: bool) {
        let known = self
            .series
            .get(&r.device_id)
            .is_some_and(|m| m.contains_key(&r.metric));
        if !known {
            let detector = self
                .cfg
                .params_for(&r.device_id, &r.metric)
                .map(|p| Box::new(SeriesDetector::new(p)));
            self.series.entry(r.device_id.clone()).or_default().insert(
                r.metric.clone(),
                Slot {
                    detector,
                    loaded_until: i64::MIN,
                },
            );
            self.metrics.detect_series.inc();
        }
        let slot = self
            .series
            .get_mut(&r.device_id)
            .and_then(|m| m.get_mut(&r.metric))
            .expect("inserted above");
        let Some(d) = slot.detector.as_mut() else {
            return;
        };
        let ts = r.ts.timestamp_millis();
        if live && ts <= slot.loaded_until {
            return; // Already learned from the history load.
        }
        if !live {
            slot.loaded_until = ts;
        }
        let score = d.score(ts, r.value);
        self.trainer.offer(&r.device_id, &r.metric, d);
        let Some(finding) = score.event.filter(|_| live) else {
            return;
        };
        let detector = finding.detector().label();
        self.metrics.anomalies.with_label_values(&[detector]).inc();
        let event = Arc::new(Anomaly {
            device_id: r.device_id.clone(),
            metric: r.metric.clone(),
            ts: r.ts,
            value: r.value,
            score: score.score,
            detector: detector.to_owned(),
            explanation: finding.explanation(),
        });
        if self.events.try_send(event).is_err() {
            self.metrics.detect_events_dropped.inc();
        }
    }
}

/// Stores events in batches, then publishes them on the live feed.
async fn write_events(
    mut rx: mpsc::Receiver<Arc<Anomaly>>,
    pool: PgPool,
    live: LiveFeed,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut pending: Vec<Arc<Anomaly>> = Vec::new();
    while let Some(first) = rx.recv().await {
        pending.push(first);
        let linger = tokio::time::sleep(EVENT_LINGER);
        tokio::pin!(linger);
        while pending.len() < EVENT_BATCH {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(a) => pending.push(a),
                    None => break,
                },
                _ = &mut linger => break,
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match store::insert(&pool, &pending).await {
                Ok(_) => {
                    for a in pending.drain(..) {
                        live.send(LiveMessage::Anomaly(a));
                    }
                    break;
                }
                Err(e) if stop.is_cancelled() => {
                    tracing::warn!(error = %e, dropped = pending.len(), "anomaly events not stored at shutdown");
                    metrics.detect_events_dropped.inc_by(pending.len() as u64);
                    pending.clear();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "anomaly events not stored yet");
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
