//! `GET /api/v1/stream`: the same live stream as Server-Sent Events, for clients that
//! cannot use WebSockets. Filters and `since` come from the query string.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{AppError, AppState};
use crate::stream::filter::Filter;
use crate::stream::hub::Transport;
use crate::stream::protocol::{parse_since, Frame};
use crate::stream::session::Session;
use crate::stream::shell::{End, Outlet, Shell};

/// Events waiting between the session and the response body.
const EVENT_BUFFER: usize = 16;

fn bad(message: String) -> AppError {
    AppError::Client(StatusCode::BAD_REQUEST, message)
}

/// Live readings, device updates and anomalies as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "stream",
    params(
        ("filter" = Vec<String>, Query,
         description = "`<device>/<metric>` with MQTT wildcards (`#`, `pump-7/+`, \
                        `+/temperature`); repeat for several"),
        ("since" = Option<String>, Query,
         description = "RFC 3339 time or unix milliseconds: first replay stored readings \
                        from then, then the live tail (no gap, no duplicate)"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "Events `readings`, `device`, `anomaly`, `lagged`, `error`, \
                        `subscribed`; `data` is the same JSON as on `GET /ws`; \
                        keep-alive comments every `stream.ping_interval`"),
        (status = 400, description = "A bad `filter` or `since`; the message names it"),
        (status = 503, description = "`stream.max_connections` reached"),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let mut filters = Vec::new();
    let mut since = None;
    for (key, value) in params {
        match key.as_str() {
            "filter" => {
                Filter::parse(&value).map_err(|e| bad(format!("filter: {e}")))?;
                filters.push(value);
            }
            "since" => {
                let t =
                    parse_since(&Value::String(value)).map_err(|e| bad(format!("since: {e}")))?;
                since = Some(t);
            }
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(bad(format!(
                    "unknown parameter {shown:?}: expected filter and since"
                )));
            }
        }
    }
    if filters.is_empty() {
        return Err(bad(
            "filter: at least one is required, e.g. filter=%23 for everything".into(),
        ));
    }
    let hub = state.stream.clone();
    let cfg = hub.config().clone();
    if filters.len() > cfg.max_subscriptions {
        return Err(bad(format!(
            "filter: {} given, the limit is {} (stream.max_subscriptions)",
            filters.len(),
            cfg.max_subscriptions
        )));
    }
    let slot = hub
        .reserve(Transport::Sse)
        .map_err(|why| AppError::Client(StatusCode::SERVICE_UNAVAILABLE, why))?;
    let member = hub.join(slot);
    let mut session = Session::new(cfg.max_subscriptions, cfg.batch_interval);
    let first = filters
        .iter()
        .flat_map(|f| session.subscribe(f, since))
        .collect();
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let shell = Shell {
        hub: hub.clone(),
        member,
        session,
        outlet: SseOutlet { tx },
        pool: state.pool.clone(),
        transport: Transport::Sse,
    };
    tokio::spawn(shell.run(first, futures_util::stream::pending()));
    let keep_alive = KeepAlive::new().interval(cfg.ping_interval);
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(keep_alive)
        .into_response())
}

struct SseOutlet {
    tx: mpsc::Sender<Result<Event, Infallible>>,
}

impl Outlet for SseOutlet {
    async fn send(&mut self, frame: Frame) -> Result<(), ()> {
        let event = Event::default().event(frame.kind).data(frame.json);
        self.tx.send(Ok(event)).await.map_err(|_| ())
    }

    async fn ping(&mut self) -> Result<bool, ()> {
        // Keep-alive comments are written by the response itself.
        Ok(false)
    }

    async fn closed(&self) {
        self.tx.closed().await
    }

    async fn close(&mut self, _end: End) {
        // Dropping the sender ends the response body.
    }
}
