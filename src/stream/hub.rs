//! The hub: one task reads the live feed once and fans it out to every client.
//!
//! Each reading is matched against the [`SubscriptionIndex`] and pushed, with `try_send`,
//! into the bounded queue of each client that wants it. The hub never waits for a client:
//! a full queue means that client skips this delivery (counted, and the client is told
//! with a `lagged` message); a client that stays behind longer than
//! `stream.slow_client_timeout` is evicted and told why. Storage never waits for viewers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::config::StreamConfig;
use super::filter::Filter;
use super::index::{ClientId, SubscriptionIndex};
use crate::detect::Anomaly;
use crate::ingest::reading::DeviceUpdate;
use crate::live::{LiveEvent, LiveFeed, LiveReceiver, StoredBatch};
use crate::metrics::Metrics;

/// How a client is connected (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ws,
    Sse,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Ws, Transport::Sse];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// Which readings of a committed batch a client wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Picks {
    All,
    /// Indices into the batch, in order.
    Some(Vec<u32>),
}

/// One item of a client's queue.
#[derive(Debug, Clone)]
pub enum Delivery {
    Readings { batch: StoredBatch, picks: Picks },
    Device(Arc<DeviceUpdate>),
    Anomaly(Arc<Anomaly>),
}

/// What the hub tells a client outside its queue (the queue may be full).
#[derive(Debug, Default)]
pub struct ClientSignals {
    /// Readings or messages skipped since the client last reported them.
    skipped: AtomicU64,
    /// Set once the hub dropped the client for being too slow.
    evicted: AtomicBool,
    /// Woken when either of the above changes.
    pub wake: Notify,
}

impl ClientSignals {
    /// Takes the skipped count, resetting it.
    pub fn take_skipped(&self) -> u64 {
        self.skipped.swap(0, Ordering::Relaxed)
    }

    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// How long a client has been behind: the pure rule for evicting slow clients.
#[derive(Debug, Default)]
pub struct Behind {
    since: Option<Instant>,
}

impl Behind {
    /// A delivery found the queue full at `now`: true once the client has been behind
    /// for longer than `limit`.
    pub fn overflowed(&mut self, now: Instant, limit: Duration) -> bool {
        let since = *self.since.get_or_insert(now);
        now.saturating_duration_since(since) > limit
    }

    /// A delivery was queued, leaving `free` of `capacity` slots. The client counts as
    /// caught up only once half its queue is free: one that drains a slot now and then
    /// while staying full is still behind.
    pub fn queued(&mut self, free: usize, capacity: usize) {
        if free * 2 >= capacity {
            self.since = None;
        }
    }
}

enum Command {
    Join {
        id: ClientId,
        queue: mpsc::Sender<Delivery>,
        signals: Arc<ClientSignals>,
    },
    Leave {
        id: ClientId,
    },
    Subscribe {
        id: ClientId,
        filter: Filter,
        done: oneshot::Sender<()>,
    },
    Unsubscribe {
        id: ClientId,
        filter: Filter,
        done: oneshot::Sender<()>,
    },
}

/// The handle sessions use to join the hub and change their subscriptions.
#[derive(Clone)]
pub struct Hub {
    // Unbounded, yet bounded in practice: each session awaits its own command before
    // sending the next, so at most one per connection (plus its `Leave`) is queued.
    commands: mpsc::UnboundedSender<Command>,
    connected: Arc<AtomicUsize>,
    next_id: Arc<AtomicU64>,
    config: Arc<StreamConfig>,
    metrics: Metrics,
}

/// A reserved connection; releasing it (drop) frees the place.
pub struct Slot {
    connected: Arc<AtomicUsize>,
    transport: Transport,
    metrics: Metrics,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .stream_clients
            .with_label_values(&[self.transport.label()])
            .dec();
    }
}

/// A client's membership: its queue and signals. Dropping it leaves the hub.
pub struct Member {
    pub id: ClientId,
    pub queue: mpsc::Receiver<Delivery>,
    pub signals: Arc<ClientSignals>,
    hub: Hub,
    _slot: Slot,
}

impl Drop for Member {
    fn drop(&mut self) {
        // Fails only when the hub has stopped, and then there is nothing to leave.
        let _ = self.hub.commands.send(Command::Leave { id: self.id });
    }
}

impl Hub {
    /// The hub handle and its task (to be run with [`HubTask::run`]). The feed is
    /// subscribed here, so nothing committed after this call is missed.
    pub fn new(config: StreamConfig, live: &LiveFeed, metrics: Metrics) -> (Hub, HubTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = Arc::new(config);
        let hub = Hub {
            commands: tx,
            connected: Arc::new(AtomicUsize::new(0)),
            next_id: Arc::new(AtomicU64::new(1)),
            config: config.clone(),
            metrics: metrics.clone(),
        };
        let task = HubTask {
            commands: rx,
            feed: live.subscribe(),
            config,
            metrics,
            clients: HashMap::new(),
            index: SubscriptionIndex::default(),
            hits: Vec::new(),
            picks: HashMap::new(),
        };
        (hub, task)
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Takes a connection place, or says why not (the cap is reached).
    pub fn reserve(&self, transport: Transport) -> Result<Slot, String> {
        let max = self.config.max_connections;
        let taken = self
            .connected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_err() {
            self.metrics.stream_refused.inc();
            return Err(format!(
                "too many streaming clients: the limit is {max} (stream.max_connections)"
            ));
        }
        self.metrics
            .stream_clients
            .with_label_values(&[transport.label()])
            .inc();
        Ok(Slot {
            connected: self.connected.clone(),
            transport,
            metrics: self.metrics.clone(),
        })
    }

    /// Joins the hub with a reserved place; deliveries start with the first subscription.
    pub fn join(&self, slot: Slot) -> Member {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.queue_capacity);
        let signals = Arc::new(ClientSignals::default());
        let _ = self.commands.send(Command::Join {
            id,
            queue: tx,
            signals: signals.clone(),
        });
        Member {
            id,
            queue: rx,
            signals,
            hub: self.clone(),
            _slot: slot,
        }
    }

    /// Adds a subscription; returns once the hub applies it to every later delivery.
    pub async fn subscribe(&self, id: ClientId, filter: Filter) {
        let (done, applied) = oneshot::channel();
        if self
            .commands
            .send(Command::Subscribe { id, filter, done })
            .is_ok()
        {
            // An error means the hub stopped: the session ends when its queue closes.
            let _ = applied.await;
        }
    }

    /// Removes a subscription; returns once the hub applied it.
    pub async fn unsubscribe(&self, id: ClientId, filter: Filter) {
        let (done, applied) = oneshot::channel();
        if self
            .commands
            .send(Command::Unsubscribe { id, filter, done })
            .is_ok()
        {
            let _ = applied.await;
        }
    }
}

/// What the hub knows of one client.
struct Entry {
    queue: mpsc::Sender<Delivery>,
    signals: Arc<ClientSignals>,
    filters: Vec<Filter>,
    /// Subscriptions to `#`: such a client gets whole batches and is skipped by the index.
    everything: usize,
    behind: Behind,
}

/// The fan-out task.
pub struct HubTask {
    commands: mpsc::UnboundedReceiver<Command>,
    feed: LiveReceiver,
    config: Arc<StreamConfig>,
    metrics: Metrics,
    clients: HashMap<ClientId, Entry>,
    index: SubscriptionIndex,
    /// Scratch space reused for every reading.
    hits: Vec<ClientId>,
    picks: HashMap<ClientId, Vec<u32>>,
}

impl HubTask {
    /// Runs until `stop`; then every client queue closes and the sessions end.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(command) = self.commands.recv() => self.apply(command),
                event = self.feed.recv() => match event {
                    Some(event) => self.dispatch(event, Instant::now()),
                    None => break,
                },
            }
        }
        tracing::debug!(clients = self.clients.len(), "stream hub stopped");
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Join { id, queue, signals } => {
                let entry = Entry {
                    queue,
                    signals,
                    filters: Vec::new(),
                    everything: 0,
                    behind: Behind::default(),
                };
                self.clients.insert(id, entry);
            }
            Command::Leave { id } => self.drop_client(id),
            Command::Subscribe { id, filter, done } => {
                if let Some(e) = self.clients.get_mut(&id) {
                    if filter == Filter::All {
                        e.everything += 1;
                    }
                    self.index.add(id, &filter);
                    e.filters.push(filter);
                }
                let _ = done.send(());
            }
            Command::Unsubscribe { id, filter, done } => {
                if let Some(e) = self.clients.get_mut(&id) {
                    if let Some(at) = e.filters.iter().position(|f| *f == filter) {
                        e.filters.swap_remove(at);
                        if filter == Filter::All {
                            e.everything -= 1;
                        }
                        self.index.remove(id, &filter);
                    }
                }
                let _ = done.send(());
            }
        }
    }

    fn drop_client(&mut self, id: ClientId) {
        if let Some(e) = self.clients.remove(&id) {
            for f in &e.filters {
                self.index.remove(id, f);
            }
        }
    }

    fn dispatch(&mut self, event: LiveEvent, now: Instant) {
        match event {
            LiveEvent::Readings(batch) => self.dispatch_readings(batch, now),
            LiveEvent::Device(update) => {
                let device = match &*update {
                    DeviceUpdate::Meta { device_id, .. }
                    | DeviceUpdate::Status { device_id, .. } => device_id,
                };
                let mut hits = std::mem::take(&mut self.hits);
                hits.clear();
                self.index.device_matches(device, &mut hits);
                hits.sort_unstable();
                hits.dedup();
                for &id in &hits {
                    self.deliver(id, Delivery::Device(update.clone()), 1, now);
                }
                self.hits = hits;
            }
            LiveEvent::Anomaly(anomaly) => {
                let mut hits = std::mem::take(&mut self.hits);
                hits.clear();
                hits.extend_from_slice(self.index.everything());
                self.index
                    .narrow_matches(&anomaly.device_id, &anomaly.metric, &mut hits);
                hits.sort_unstable();
                hits.dedup();
                for &id in &hits {
                    self.deliver(id, Delivery::Anomaly(anomaly.clone()), 1, now);
                }
                self.hits = hits;
            }
            LiveEvent::Lagged(skipped) => {
                // The hub itself fell behind the feed: it cannot know whose messages were
                // lost, so every client is told.
                tracing::warn!(skipped, "stream hub lagged behind the live feed");
                for e in self.clients.values() {
                    e.signals.skipped.fetch_add(skipped, Ordering::Relaxed);
                    e.signals.wake.notify_one();
                }
                self.metrics
                    .stream_lagged
                    .inc_by(skipped * self.clients.len() as u64);
            }
        }
    }

    fn dispatch_readings(&mut self, batch: StoredBatch, now: Instant) {
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        hits.extend_from_slice(self.index.everything());
        hits.sort_unstable();
        hits.dedup();
        for &id in &hits {
            let d = Delivery::Readings {
                batch: batch.clone(),
                picks: Picks::All,
            };
            self.deliver(id, d, batch.len() as u64, now);
        }
        let mut picks = std::mem::take(&mut self.picks);
        for (i, r) in batch.iter().enumerate() {
            hits.clear();
            self.index
                .narrow_matches(&r.device_id, &r.metric, &mut hits);
            if hits.len() > 1 {
                hits.sort_unstable();
                hits.dedup();
            }
            for &id in &hits {
                let whole_batch = self.clients.get(&id).is_none_or(|e| e.everything > 0);
                if !whole_batch {
                    picks.entry(id).or_default().push(i as u32);
                }
            }
        }
        for (id, p) in picks.drain() {
            let n = p.len() as u64;
            let d = Delivery::Readings {
                batch: batch.clone(),
                picks: Picks::Some(p),
            };
            self.deliver(id, d, n, now);
        }
        self.picks = picks;
        self.hits = hits;
    }

    /// Queues `delivery` (worth `weight` readings or messages) for `id`, never waiting.
    fn deliver(&mut self, id: ClientId, delivery: Delivery, weight: u64, now: Instant) {
        let Some(e) = self.clients.get_mut(&id) else {
            return;
        };
        match e.queue.try_send(delivery) {
            Ok(()) => e
                .behind
                .queued(e.queue.capacity(), self.config.queue_capacity),
            Err(TrySendError::Full(_)) => {
                e.signals.skipped.fetch_add(weight, Ordering::Relaxed);
                self.metrics.stream_lagged.inc_by(weight);
                if e.behind.overflowed(now, self.config.slow_client_timeout) {
                    e.signals.evicted.store(true, Ordering::Relaxed);
                    e.signals.wake.notify_one();
                    self.drop_client(id);
                } else {
                    e.signals.wake.notify_one();
                }
            }
            // The session ended; its `Leave` is on the way.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_behind_until_half_its_queue_is_free() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(10);
        let mut b = Behind::default();
        assert!(!b.overflowed(t0, limit));
        b.queued(1, 8); // drained one slot: still behind
        assert!(!b.overflowed(t0 + Duration::from_secs(5), limit));
        assert!(b.overflowed(t0 + Duration::from_secs(11), limit));
        b.queued(4, 8); // half free: caught up, the clock restarts
        assert!(!b.overflowed(t0 + Duration::from_secs(12), limit));
        assert!(!b.overflowed(t0 + Duration::from_secs(22), limit));
        assert!(b.overflowed(t0 + Duration::from_secs(23), limit));
    }
}
