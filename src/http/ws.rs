//! `GET /ws`: the WebSocket live stream (protocol in [`crate::stream::protocol`]).

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, StreamExt as _};
use futures_util::SinkExt as _;

use super::{AppError, AppState};
use crate::stream::hub::Transport;
use crate::stream::protocol::Frame;
use crate::stream::session::Session;
use crate::stream::shell::{End, Incoming, Outlet, Shell};

/// tungstenite buffers: 4 KiB each instead of 128 KiB, so 10,000 mostly idle clients stay
/// small; clients only send short JSON requests, hence the small message cap.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Upgrades to a WebSocket, or answers 503 when `stream.max_connections` is reached.
pub async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let slot = match state.stream.reserve(Transport::Ws) {
        Ok(slot) => slot,
        Err(why) => return AppError::Client(StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    };
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let hub = state.stream.clone();
            let member = hub.join(slot);
            let cfg = hub.config();
            let session = Session::new(cfg.max_subscriptions, cfg.batch_interval);
            let (sink, stream) = socket.split();
            let incoming = stream.map(|m| match m {
                Ok(Message::Text(text)) => Incoming::Text(text.as_str().to_owned()),
                Ok(Message::Binary(_)) => Incoming::Binary,
                Ok(Message::Ping(_) | Message::Pong(_)) => Incoming::Heard,
                Ok(Message::Close(_)) | Err(_) => Incoming::Closed,
            });
            let shell = Shell {
                hub: hub.clone(),
                member,
                session,
                outlet: WsOutlet { sink },
                pool: state.pool.clone(),
                transport: Transport::Ws,
            };
            shell.run(Vec::new(), incoming).await;
        })
}

struct WsOutlet {
    sink: SplitSink<WebSocket, Message>,
}

impl Outlet for WsOutlet {
    async fn send(&mut self, frame: Frame) -> Result<(), ()> {
        self.sink
            .send(Message::Text(frame.json.into()))
            .await
            .map_err(|_| ())
    }

    async fn ping(&mut self) -> Result<bool, ()> {
        self.sink
            .send(Message::Ping(Bytes::new()))
            .await
            .map_err(|_| ())?;
        Ok(true)
    }

    async fn closed(&self) {
        // A WebSocket's end shows up on its incoming side.
        std::future::pending().await
    }

    async fn close(&mut self, end: End) {
        let (code, reason) = match end {
            End::Slow => (1008, "too slow"),
            End::Shutdown => (1001, "vigil is stopping"),
            End::PingTimeout => (1011, "no pong"),
            End::Closed => (1000, ""),
        };
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
    }
}
