//! `GET /api/v1/readings`: one series' history, downsampled on the server.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{AppError, AppState};
use crate::history::downsample::Point;
use crate::history::params::{self, ParamError};
use crate::history::query::{self, Known, Request};

/// `max_points` when not given.
pub const DEFAULT_MAX_POINTS: usize = 1000;
/// The largest `max_points` accepted.
pub const MAX_POINTS_CAP: usize = 10_000;

const PARAMS: [&str; 5] = ["device", "metric", "from", "to", "max_points"];

/// A series' history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryResponse {
    pub device_id: String,
    pub metric: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// True when some readings of the range are summarised by the points (each bucket
    /// keeps its min and its max at their real timestamps).
    pub downsampled: bool,
    /// Time-ordered, at most `max_points`.
    pub points: Vec<Point>,
}

/// The query parameters (for the API document; parsing is done by hand for clear errors).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReadingsParams {
    /// Device id.
    device: String,
    /// Metric name.
    metric: String,
    /// Start, RFC 3339 or unix milliseconds (default: `to` − 1 h).
    from: Option<String>,
    /// End, inclusive, RFC 3339 or unix milliseconds (default: now).
    to: Option<String>,
    /// 1..=10000, default 1000.
    max_points: Option<usize>,
}

pub(super) fn bad_request(e: ParamError) -> AppError {
    AppError::Client(StatusCode::BAD_REQUEST, e.0)
}

pub(super) fn db_error(e: sqlx::Error) -> AppError {
    AppError::Unavailable(e.to_string())
}

/// One series' history, at most `max_points` points, min and max of each bucket kept.
#[utoipa::path(
    get,
    path = "/api/v1/readings",
    params(ReadingsParams),
    responses(
        (status = 200, description = "The series' points", body = HistoryResponse),
        (status = 400, description = "A bad parameter, named in `error`"),
        (status = 404, description = "Unknown device or metric"),
    ),
    tag = "history"
)]
pub async fn readings(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryResponse>, AppError> {
    let pairs = params::pairs(query.as_deref(), &PARAMS).map_err(bad_request)?;
    let get = |name| params::get(&pairs, name);
    let device = params::id("device", get("device"))
        .map_err(bad_request)?
        .ok_or_else(|| bad_request(ParamError("`device` is required".into())))?;
    let metric = params::id("metric", get("metric"))
        .map_err(bad_request)?
        .ok_or_else(|| bad_request(ParamError("`metric` is required".into())))?;
    let (from, to) = params::range(get("from"), get("to"), Utc::now(), TimeDelta::hours(1))
        .map_err(bad_request)?;
    let max_points = params::max_points(get("max_points"), DEFAULT_MAX_POINTS, MAX_POINTS_CAP)
        .map_err(bad_request)?;
    let req = Request {
        device: &device,
        metric: &metric,
        from,
        to,
        max_points,
    };
    let answer = query::history(&state.pool, req).await.map_err(db_error)?;
    state
        .metrics
        .history_queries
        .with_label_values(&[answer.source.label()])
        .inc();
    if answer.points.is_empty() {
        // Only an empty answer pays for telling "unknown" from "nothing in range".
        match query::known(&state.pool, &device, &metric).await.map_err(db_error)? {
            Known::Series => {}
            Known::DeviceOnly => {
                return Err(AppError::Client(
                    StatusCode::NOT_FOUND,
                    format!("unknown metric `{metric}` for device `{device}`"),
                ))
            }
            Known::Nothing => {
                return Err(AppError::Client(
                    StatusCode::NOT_FOUND,
                    format!("unknown device `{device}`"),
                ))
            }
        }
    }
    Ok(Json(HistoryResponse {
        device_id: device,
        metric,
        from,
        to,
        downsampled: answer.downsampled,
        points: answer.points,
    }))
}
