//! The async shell around a [`Session`]: one loop per client that reads its hub queue,
//! its socket, its backfill queries and its timers, and writes frames.
//!
//! The same loop serves WebSocket and SSE clients through [`Outlet`].

use std::future::Future;
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, Stream, StreamExt as _};
use sqlx::PgPool;

use super::backfill::{self, Backfilled};
use super::hub::{Delivery, Hub, Member, Transport};
use super::protocol::Frame;
use super::session::{Action, Session};

/// Where a client's frames go.
pub trait Outlet: Send {
    /// Sends one frame; an error means the client is gone.
    fn send(&mut self, frame: Frame) -> impl Future<Output = Result<(), ()>> + Send;
    /// Sends a keep-alive; `Ok(true)` when the client must answer it (WebSocket pong).
    fn ping(&mut self) -> impl Future<Output = Result<bool, ()>> + Send;
    /// Resolves when the client went away without a message saying so.
    fn closed(&self) -> impl Future<Output = ()> + Send;
    /// Ends the connection, with a reason when the transport has a place for one.
    fn close(&mut self, end: End) -> impl Future<Output = ()> + Send;
}

/// What a client sent.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Binary,
    /// A ping or pong: the client is alive.
    Heard,
    Closed,
}

/// Why a session ended (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client closed the connection or it broke.
    Closed,
    /// The client stayed behind too long.
    Slow,
    /// No answer to a ping.
    PingTimeout,
    /// vigil is stopping.
    Shutdown,
}

impl End {
    pub const ALL: [End; 4] = [End::Closed, End::Slow, End::PingTimeout, End::Shutdown];

    pub fn label(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Slow => "slow",
            End::PingTimeout => "ping_timeout",
            End::Shutdown => "shutdown",
        }
    }
}

/// The message types counted in `vigil_stream_messages_sent_total`.
pub const MESSAGE_TYPES: [&str; 7] = [
    "readings",
    "device",
    "anomaly",
    "lagged",
    "error",
    "subscribed",
    "unsubscribed",
];

type Pending = BoxFuture<'static, (u64, Result<Backfilled, String>)>;

enum Event {
    Wake,
    Delivery(Option<Delivery>),
    Flush,
    Backfilled(u64, Result<Backfilled, String>),
    Incoming(Option<Incoming>),
    Ping,
    Gone,
}

/// One client's loop.
pub struct Shell<O> {
    pub hub: Hub,
    pub member: Member,
    pub session: Session,
    pub outlet: O,
    pub pool: PgPool,
    pub transport: Transport,
}

impl<O: Outlet> Shell<O> {
    /// Runs `first` (the subscriptions an SSE client asked for in its URL), then serves
    /// the client until it leaves, is too slow, stops answering or vigil stops.
    pub async fn run<I>(mut self, first: Vec<Action>, mut incoming: I)
    where
        I: Stream<Item = Incoming> + Unpin + Send,
    {
        let cfg = self.hub.config().clone();
        let mut backfills: FuturesUnordered<Pending> = FuturesUnordered::new();
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + cfg.ping_interval,
            cfg.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting_pong = false;
        let end = match self.act(first, &mut backfills).await {
            Err(end) => end,
            Ok(()) => loop {
                let flush_at = self.session.next_flush(Instant::now());
                let event = tokio::select! {
                    _ = self.member.signals.wake.notified() => Event::Wake,
                    d = self.member.queue.recv() => Event::Delivery(d),
                    _ = sleep_until(flush_at), if flush_at.is_some() => Event::Flush,
                    Some((t, r)) = backfills.next(), if !backfills.is_empty() => {
                        Event::Backfilled(t, r)
                    }
                    m = incoming.next() => Event::Incoming(m),
                    _ = ping.tick() => Event::Ping,
                    _ = self.outlet.closed() => Event::Gone,
                };
                let handled = match event {
                    Event::Wake => self.woken().await,
                    Event::Delivery(Some(d)) => match self.session.on_delivery(d, Instant::now()) {
                        Some(frame) => self.send(frame).await,
                        None => Ok(()),
                    },
                    Event::Delivery(None) if self.member.signals.evicted() => Err(End::Slow),
                    Event::Delivery(None) => Err(End::Shutdown),
                    Event::Flush => self.flush().await,
                    Event::Backfilled(ticket, result) => {
                        let frames = self.session.on_backfill(ticket, result, Instant::now());
                        self.send_all(frames).await
                    }
                    Event::Incoming(Some(Incoming::Text(text))) => {
                        awaiting_pong = false;
                        let actions = self.session.on_text(&text);
                        self.act(actions, &mut backfills).await
                    }
                    Event::Incoming(Some(Incoming::Heard)) => {
                        awaiting_pong = false;
                        Ok(())
                    }
                    Event::Incoming(Some(Incoming::Binary)) => {
                        awaiting_pong = false;
                        let e = "binary frames are not understood: send JSON text frames";
                        self.send(Frame::error(e)).await
                    }
                    Event::Incoming(None | Some(Incoming::Closed)) | Event::Gone => {
                        Err(End::Closed)
                    }
                    Event::Ping if awaiting_pong => Err(End::PingTimeout),
                    Event::Ping => match self.outlet.ping().await {
                        Ok(expects_pong) => {
                            awaiting_pong = expects_pong;
                            Ok(())
                        }
                        Err(()) => Err(End::Closed),
                    },
                };
                if let Err(end) = handled {
                    break end;
                }
            },
        };
        self.finish(end).await;
    }

    async fn woken(&mut self) -> Result<(), End> {
        if self.member.signals.evicted() {
            return Err(End::Slow);
        }
        let skipped = self.member.signals.take_skipped();
        if skipped > 0 {
            // What was already gathered goes first, so the notice sits where the gap is.
            self.flush_now().await?;
            self.send(Frame::lagged(skipped)).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), End> {
        match self.session.flush(Instant::now()) {
            Some(frame) => self.send(frame).await,
            None => Ok(()),
        }
    }

    /// Sends pending readings now, ahead of their batch time.
    async fn flush_now(&mut self) -> Result<(), End> {
        let far = Instant::now() + self.hub.config().batch_interval;
        if let Some(frame) = self.session.flush(far) {
            self.send(frame).await?;
        }
        Ok(())
    }

    async fn act(
        &mut self,
        actions: Vec<Action>,
        backfills: &mut FuturesUnordered<Pending>,
    ) -> Result<(), End> {
        for action in actions {
            match action {
                Action::Send(frame) => self.send(frame).await?,
                Action::Register(filter) => self.hub.subscribe(self.member.id, filter).await,
                Action::Unregister(filter) => self.hub.unsubscribe(self.member.id, filter).await,
                Action::Backfill {
                    ticket,
                    filter,
                    since,
                } => {
                    let pool = self.pool.clone();
                    let cap = self.hub.config().backfill_max_rows;
                    backfills.push(Box::pin(async move {
                        let loaded =
                            backfill::load(&pool, &filter, since, cap)
                                .await
                                .map_err(|e| {
                                    tracing::warn!(error = %e, %filter, "stream backfill failed");
                                    "stored readings could not be read".to_owned()
                                });
                        (ticket, loaded)
                    }));
                }
            }
        }
        Ok(())
    }

    async fn send_all(&mut self, frames: Vec<Frame>) -> Result<(), End> {
        for f in frames {
            self.send(f).await?;
        }
        Ok(())
    }

    /// Sends under the slow-client deadline: a write that cannot finish in time means
    /// the client stopped reading.
    async fn send(&mut self, frame: Frame) -> Result<(), End> {
        let (kind, readings) = (frame.kind, frame.readings as u64);
        let limit = self.hub.config().slow_client_timeout;
        match tokio::time::timeout(limit, self.outlet.send(frame)).await {
            Ok(Ok(())) => {
                self.hub
                    .metrics()
                    .stream_messages_sent
                    .with_label_values(&[kind])
                    .inc();
                self.hub.metrics().stream_readings_sent.inc_by(readings);
                Ok(())
            }
            Ok(Err(())) => Err(End::Closed),
            Err(_) => Err(End::Slow),
        }
    }

    async fn finish(mut self, end: End) {
        let m = self.hub.metrics().clone();
        m.stream_disconnects.with_label_values(&[end.label()]).inc();
        tracing::debug!(
            client = self.member.id,
            transport = self.transport.label(),
            reason = end.label(),
            "stream client disconnected"
        );
        if end == End::Slow {
            let why = format!(
                "disconnected: this client stayed behind the live feed for longer than {:?} \
                 (stream.slow_client_timeout)",
                self.hub.config().slow_client_timeout
            );
            // Best effort: a client that stopped reading will not see it.
            let short = std::time::Duration::from_secs(1);
            let _ = tokio::time::timeout(short, self.outlet.send(Frame::error(&why))).await;
        }
        let short = std::time::Duration::from_secs(1);
        let _ = tokio::time::timeout(short, self.outlet.close(end)).await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
