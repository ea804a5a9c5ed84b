//! One client's session, as plain synchronous code: its subscriptions, the batching of
//! readings, and the seam between a backfill and the live tail.
//!
//! The async shell ([`super::shell`]) feeds it client messages, hub deliveries, backfill
//! results and the time, and carries out the [`Action`]s it returns.
//!
//! The seam: a subscription with `since` is registered with the hub *before* its backfill
//! query runs, and live readings matching it are held meanwhile. When the stored
//! readings arrive they are sent, then the held ones except those the backfill already
//! contained. Readings may be committed out of time order, so duplicates are recognised
//! by their key (device, metric, ts), never by a time cut-off; the keys are kept a while
//! after the backfill, for a reading committed before the query but broadcast after it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::backfill::Backfilled;
use super::filter::Filter;
use super::hub::{Delivery, Picks};
use super::protocol::{parse_client, ClientMsg, Frame};
use crate::ingest::reading::Reading;
use crate::live::StoredBatch;

/// How long backfilled keys are kept to drop late live duplicates.
const SEAM_WINDOW: Duration = Duration::from_secs(10);

/// What the shell must do for the session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this to the client.
    Send(Frame),
    /// Add this subscription in the hub (and wait until it applies).
    Register(Filter),
    /// Remove this subscription from the hub.
    Unregister(Filter),
    /// Load stored readings and hand them to [`Session::on_backfill`] with `ticket`.
    Backfill {
        ticket: u64,
        filter: Filter,
        since: DateTime<Utc>,
    },
}

/// A stored reading's identity (ts in microseconds, the stored precision).
type Key = (String, String, i64);

fn key(r: &Reading) -> Key {
    (
        r.device_id.clone(),
        r.metric.clone(),
        r.ts.timestamp_micros(),
    )
}

/// A reading inside a shared batch.
type Slot = (StoredBatch, u32);

struct Subscription {
    /// The filter as the client wrote it, echoed in replies.
    text: String,
    filter: Filter,
    /// The backfill still running for it.
    backfill: Option<u64>,
}

/// One client's protocol state.
pub struct Session {
    max_subscriptions: usize,
    batch_interval: Duration,
    subs: Vec<Subscription>,
    /// Live readings waiting for the next batch.
    pending: Vec<Slot>,
    /// Live readings waiting for a backfill to finish.
    held: Vec<Slot>,
    /// Keys sent by recent backfills, and when to forget them.
    seams: Vec<(Instant, HashSet<Key>)>,
    last_flush: Option<Instant>,
    next_ticket: u64,
}

impl Session {
    pub fn new(max_subscriptions: usize, batch_interval: Duration) -> Session {
        Session {
            max_subscriptions,
            batch_interval,
            subs: Vec::new(),
            pending: Vec::new(),
            held: Vec::new(),
            seams: Vec::new(),
            last_flush: None,
            next_ticket: 0,
        }
    }

    /// A text frame from the client.
    pub fn on_text(&mut self, text: &str) -> Vec<Action> {
        match parse_client(text) {
            Ok(ClientMsg::Subscribe { filter, since }) => self.subscribe(&filter, since),
            Ok(ClientMsg::Unsubscribe { filter }) => self.unsubscribe(&filter),
            Err(e) => vec![Action::Send(Frame::error(&e))],
        }
    }

    /// Subscribes to `text`, with a backfill from `since` when given.
    pub fn subscribe(&mut self, text: &str, since: Option<DateTime<Utc>>) -> Vec<Action> {
        let filter = match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => return vec![Action::Send(Frame::error(&e))],
        };
        let existing = self.subs.iter().position(|s| s.filter == filter);
        if existing.is_none() && self.subs.len() >= self.max_subscriptions {
            let e = format!(
                "too many subscriptions: the limit is {} per client (stream.max_subscriptions); \
                 unsubscribe first or use a wildcard",
                self.max_subscriptions
            );
            return vec![Action::Send(Frame::error(&e))];
        }
        let mut actions = Vec::new();
        let at = match existing {
            Some(at) => at,
            None => {
                self.subs.push(Subscription {
                    text: text.to_owned(),
                    filter: filter.clone(),
                    backfill: None,
                });
                actions.push(Action::Register(filter.clone()));
                self.subs.len() - 1
            }
        };
        match since {
            Some(since) if self.subs[at].backfill.is_none() => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.subs[at].backfill = Some(ticket);
                actions.push(Action::Backfill {
                    ticket,
                    filter,
                    since,
                });
            }
            // Already backfilling: its `subscribed` reply comes when that backfill ends.
            Some(_) => {}
            None => actions.push(Action::Send(Frame::subscribed(&self.subs[at].text, None))),
        }
        actions
    }

    pub fn unsubscribe(&mut self, text: &str) -> Vec<Action> {
        let filter = match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => return vec![Action::Send(Frame::error(&e))],
        };
        let Some(at) = self.subs.iter().position(|s| s.filter == filter) else {
            return vec![Action::Send(Frame::error(&format!(
                "not subscribed to {text:?}"
            )))];
        };
        self.subs.remove(at);
        self.release_held();
        vec![
            Action::Unregister(filter),
            Action::Send(Frame::unsubscribed(text)),
        ]
    }

    /// How many filters the client holds.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// A delivery from the hub; device and anomaly messages are returned at once,
    /// readings wait for [`Session::flush`].
    pub fn on_delivery(&mut self, delivery: Delivery, now: Instant) -> Option<Frame> {
        match delivery {
            Delivery::Readings { batch, picks } => {
                self.seams.retain(|(until, _)| *until > now);
                match picks {
                    Picks::All => {
                        for i in 0..batch.len() {
                            self.take(&batch, i as u32);
                        }
                    }
                    Picks::Some(picks) => {
                        for i in picks {
                            self.take(&batch, i);
                        }
                    }
                }
                None
            }
            Delivery::Device(update) => {
                let device = match &*update {
                    crate::ingest::reading::DeviceUpdate::Meta { device_id, .. }
                    | crate::ingest::reading::DeviceUpdate::Status { device_id, .. } => device_id,
                };
                let wanted = self.subs.iter().any(|s| s.filter.matches_device(device));
                wanted.then(|| Frame::device(&update))
            }
            Delivery::Anomaly(a) => {
                let wanted = self
                    .subs
                    .iter()
                    .any(|s| s.filter.matches(&a.device_id, &a.metric));
                wanted.then(|| Frame::anomaly(&a))
            }
        }
    }

    /// Routes one live reading: dropped (no longer subscribed, or already backfilled),
    /// held (a backfill it belongs to is running) or pending.
    fn take(&mut self, batch: &StoredBatch, i: u32) {
        let Some(r) = batch.get(i as usize) else {
            return;
        };
        let mut wanted = false;
        let mut hold = false;
        for s in &self.subs {
            if s.filter.matches(&r.device_id, &r.metric) {
                wanted = true;
                hold |= s.backfill.is_some();
            }
        }
        if !wanted {
            return;
        }
        if hold {
            self.held.push((batch.clone(), i));
        } else if !self.already_sent(r) {
            self.pending.push((batch.clone(), i));
        }
    }

    fn already_sent(&self, r: &Reading) -> bool {
        if self.seams.is_empty() {
            return false;
        }
        let k = key(r);
        self.seams.iter().any(|(_, keys)| keys.contains(&k))
    }

    /// Moves held readings no running backfill wants to wait for anymore to pending.
    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (batch, i) in held {
            self.take(&batch, i);
        }
    }

    /// The result of the backfill `ticket`: the stored readings (or why they could not
    /// be read), then the `subscribed` reply; held live readings follow in later batches.
    pub fn on_backfill(
        &mut self,
        ticket: u64,
        result: Result<Backfilled, String>,
        now: Instant,
    ) -> Vec<Frame> {
        let Some(sub) = self.subs.iter_mut().find(|s| s.backfill == Some(ticket)) else {
            // Unsubscribed meanwhile.
            return Vec::new();
        };
        sub.backfill = None;
        let text = sub.text.clone();
        let mut frames = Vec::new();
        match result {
            Ok(b) => {
                if !b.readings.is_empty() {
                    frames.push(Frame::readings(&b.readings));
                }
                frames.push(Frame::subscribed(
                    &text,
                    Some((b.readings.len(), b.truncated)),
                ));
                let keys = b.readings.iter().map(key).collect();
                self.seams.push((now + SEAM_WINDOW, keys));
            }
            Err(e) => {
                frames.push(Frame::error(&format!(
                    "backfill of {text:?} failed ({e}); live readings follow"
                )));
                frames.push(Frame::subscribed(&text, Some((0, false))));
            }
        }
        self.release_held();
        frames
    }

    /// When the pending readings may be sent, if there are any.
    pub fn next_flush(&self, now: Instant) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.last_flush.map_or(now, |t| t + self.batch_interval))
    }

    /// The pending readings as one `readings` frame, if it is time.
    pub fn flush(&mut self, now: Instant) -> Option<Frame> {
        if self.next_flush(now)? > now {
            return None;
        }
        let frame = Frame::readings(self.pending.iter().map(|(b, i)| &b[*i as usize]));
        self.pending.clear();
        self.last_flush = Some(now);
        Some(frame)
    }
}

/// Wraps owned readings the way the hub shares them (for tests and backfills).
pub fn shared(readings: Vec<Reading>) -> StoredBatch {
    Arc::new(readings)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
