//! The durable path's consumer: batches the intake queue and commits batches.
//!
//! The batcher flushes a batch when it holds `writer.batch_size` rows or
//! `writer.flush_interval` after its first message, whichever comes first, and hands it
//! to the first free writer. Each writer owns one connection (its staging table is
//! per connection) and retries a batch with back-off until it commits: a batch is never
//! dropped, and nothing in it is acknowledged before the commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection as _;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::batch::{BatchWrite, CREATE_STAGING};
use crate::config::WriterConfig;
use crate::health::Health;
use crate::ingest::acks::CommittedBatch;
use crate::ingest::envelope::{Ack, Committed, Envelope};
use crate::live::{LiveFeed, LiveMessage};
use crate::metrics::Metrics;

/// Messages committed together, numbered in receive order.
#[derive(Debug)]
pub struct Batch {
    pub seq: u64,
    pub envelopes: Vec<Envelope>,
}

/// Fills batches from the intake queue.
pub struct Batcher {
    pub cfg: WriterConfig,
    pub queue: mpsc::Receiver<Envelope>,
    pub batches: mpsc::Sender<Batch>,
    pub metrics: Metrics,
}

impl Batcher {
    /// Runs until the queue is closed and drained. When `stop_intake` fires the queue is
    /// closed to new messages; what is already in it still gets written.
    pub async fn run(mut self, stop_intake: CancellationToken) {
        let mut seq = 0;
        let mut closing = false;
        loop {
            let first = tokio::select! {
                e = self.queue.recv() => e,
                _ = stop_intake.cancelled(), if !closing => {
                    closing = true;
                    self.queue.close();
                    continue;
                }
            };
            let Some(first) = first else { break };
            let deadline = tokio::time::Instant::now() + self.cfg.flush_interval;
            let mut rows = first.rows();
            let mut envelopes = vec![first];
            while rows < self.cfg.batch_size {
                let next = match self.queue.try_recv() {
                    Ok(e) => Some(e),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                        e = self.queue.recv() => e,
                        _ = tokio::time::sleep_until(deadline) => None,
                    },
                };
                let Some(e) = next else { break };
                rows += e.rows();
                envelopes.push(e);
            }
            self.metrics.queue_depth.set(self.queue.len() as i64);
            if self.batches.send(Batch { seq, envelopes }).await.is_err() {
                tracing::error!("every writer has stopped; batcher stops");
                return;
            }
            seq += 1;
        }
        self.metrics.queue_depth.set(0);
    }
}

/// Commits batches on its own connection.
pub struct Writer {
    pub id: usize,
    pub cfg: WriterConfig,
    pub connect: PgConnectOptions,
    pub batches: Arc<Mutex<mpsc::Receiver<Batch>>>,
    pub acks: mpsc::UnboundedSender<CommittedBatch>,
    pub live: LiveFeed,
    pub health: Arc<Health>,
    pub metrics: Metrics,
}

impl Writer {
    /// Runs until the batch channel is closed and empty.
    pub async fn run(self) {
        let mut conn: Option<PgConnection> = None;
        // When each device's last_seen was last written by this writer.
        let mut refreshed: HashMap<String, Instant> = HashMap::new();
        loop {
            let batch = { self.batches.lock().await.recv().await };
            let Some(batch) = batch else { break };
            let mut delay = self.cfg.retry_min;
            let (outcome, elapsed) = loop {
                let started = Instant::now();
                match self.try_commit(&mut conn, &batch, &mut refreshed).await {
                    Ok(outcome) => break (outcome, started.elapsed()),
                    Err(e) => {
                        conn = None;
                        self.health.set_database(false);
                        self.metrics.write_retries.inc();
                        tracing::warn!(writer = self.id, seq = batch.seq, error = %e, retry_in = ?delay,
                            "batch not committed; will retry");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(self.cfg.retry_max);
                    }
                }
            };
            self.health.set_database(true);
            self.finish(batch, outcome, elapsed);
        }
        if let Some(c) = conn {
            if let Err(e) = c.close().await {
                tracing::debug!(error = %e, "closing writer connection");
            }
        }
    }

    async fn try_commit(
        &self,
        conn: &mut Option<PgConnection>,
        batch: &Batch,
        refreshed: &mut HashMap<String, Instant>,
    ) -> Result<super::batch::BatchOutcome, sqlx::Error> {
        if conn.is_none() {
            let mut c = PgConnection::connect_with(&self.connect).await?;
            sqlx::query(CREATE_STAGING).execute(&mut c).await?;
            *conn = Some(c);
        }
        let c = conn.as_mut().expect("connected just above");
        let now = Instant::now();
        let interval = self.cfg.registry_interval;
        let mut due = Vec::new();
        let write = BatchWrite::new(&batch.envelopes, |d| {
            let is_due = refreshed
                .get(d)
                .is_none_or(|t| now.duration_since(*t) >= interval);
            if is_due {
                due.push(d.to_owned());
            }
            is_due
        });
        let outcome = write.commit(c).await?;
        for d in due {
            refreshed.insert(d, now);
        }
        Ok(outcome)
    }

    /// After the commit: count, broadcast, answer HTTP clients, release MQTT acks.
    fn finish(&self, batch: Batch, outcome: super::batch::BatchOutcome, elapsed: Duration) {
        let m = &self.metrics;
        m.commit_seconds.observe(elapsed.as_secs_f64());
        m.batch_rows
            .observe(batch.envelopes.iter().map(Envelope::rows).sum::<usize>() as f64);
        let readings: usize = batch
            .envelopes
            .iter()
            .map(|e| e.parsed.readings.len())
            .sum();
        let stored_count = outcome.stored.as_ref().map_or(readings, Vec::len);
        m.readings_stored.inc_by(stored_count as u64);
        m.readings_duplicate.inc_by(outcome.duplicates as u64);
        m.dead_letters_stored.inc_by(outcome.dead_letters_stored);
        for (_, r) in &outcome.refused {
            m.reject(r.reason);
        }
        let mut all = Vec::new();
        let mut acks = Vec::new();
        let mut devices = Vec::new();
        for (i, mut env) in batch.envelopes.into_iter().enumerate() {
            if let Some(update) = env.parsed.device.take() {
                devices.push(update);
            }
            let readings = if outcome.stored.is_none() {
                let n = env.parsed.readings.len();
                all.append(&mut env.parsed.readings);
                n
            } else {
                env.parsed.readings.len()
            };
            match env.ack {
                Ack::None => {}
                Ack::Mqtt(a) => acks.push(a),
                Ack::Http(reply) => {
                    let refused: Vec<_> = outcome
                        .refused
                        .iter()
                        .filter(|(e, _)| *e == i)
                        .map(|(_, r)| r.clone())
                        .collect();
                    let accepted = readings.saturating_sub(refused.len());
                    // The client may have gone away; its readings are committed anyway.
                    let _ = reply.send(Ok(Committed { accepted, refused }));
                }
            }
        }
        self.live.publish(outcome.stored.unwrap_or(all));
        for update in devices {
            self.live.send(LiveMessage::Device(Arc::new(update)));
        }
        if self
            .acks
            .send(CommittedBatch {
                seq: batch.seq,
                acks,
            })
            .is_err()
        {
            tracing::error!("acker stopped; acks dropped (the broker will redeliver)");
        }
    }
}
