//! The HTTP API: health, metrics, ingest, the devices API and its OpenAPI document.

pub mod anomalies;
mod cors;
mod devices;
mod error;
pub mod export;
mod ingest;
pub mod openapi;
mod page;
pub mod params;
mod probes;
pub mod readings;
mod sse;
mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;
use tower_http::timeout::TimeoutLayer;

pub use error::AppError;

use crate::config::HttpConfig;
use crate::fleet::{ApiConfig, Registry};
use crate::health::Health;
use crate::ingest::ack_lag::AckLag;
use crate::ingest::intake::Intake;
use crate::live::LiveFeed;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub intake: Arc<Intake>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
    pub http: Arc<HttpConfig>,
    /// Read at every scrape so the oldest-unacked age is current.
    pub ack_lag: Arc<AckLag>,
    /// Committed readings, device updates and anomalies, for live clients.
    pub live: LiveFeed,
    /// Queries for the read API (history, export, registry).
    pub pool: PgPool,
    /// History and export settings.
    pub history: Arc<crate::history::HistoryConfig>,
    /// The device registry, served from memory.
    pub fleet: Arc<Registry>,
    /// `[api]`: page sizes, CORS origins.
    pub api: Arc<ApiConfig>,
    /// Fan-out of the live feed to WebSocket and SSE clients.
    pub stream: crate::stream::Hub,
}

/// The whole HTTP surface, ready to serve (tests drive it with `oneshot`).
pub fn router(state: AppState) -> Router {
    let body_limit = state.http.max_body_bytes;
    let timeout = state.http.request_timeout;
    let api = state.api.clone();
    let router = Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route("/api/v1/ingest", post(ingest::ingest))
        .route("/", get(page::index))
        .route("/static/{*path}", get(page::asset))
        .route("/api/v1/readings", get(readings::readings))
        .route("/api/v1/export", get(export::export))
        .route("/api/v1/devices", get(devices::list))
        .route("/api/v1/devices/{device}", get(devices::get_one))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/ws", get(ws::ws))
        .route("/api/v1/stream", get(sse::stream))
        .route("/api/v1/anomalies", get(anomalies::list))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state);
    cors::apply(router, &api)
}

/// Counts requests and their latency by matched route (never the raw URI: unbounded).
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.http_request_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}
