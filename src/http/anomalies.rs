//! `GET /api/v1/anomalies`: stored anomaly events, newest first.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{AppError, AppState};
use crate::detect::store::{self, AnomalyFilter};
use crate::detect::Anomaly;
use crate::ingest::parse::parse_timestamp_str;

/// Events returned when `limit` is not given.
const DEFAULT_LIMIT: i64 = 100;
/// The most events one request returns.
const MAX_LIMIT: i64 = 10_000;

/// Filters; every one optional.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyQuery {
    /// Only this device.
    pub device: Option<String>,
    /// Only this metric.
    pub metric: Option<String>,
    /// Oldest reading time, RFC 3339 or unix milliseconds.
    pub from: Option<String>,
    /// Newest reading time (inclusive), RFC 3339 or unix milliseconds.
    pub to: Option<String>,
    /// At most this many events (default 100, at most 10000).
    pub limit: Option<String>,
}

/// The answer: events newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnomaliesResponse {
    pub anomalies: Vec<Anomaly>,
}

/// Lists stored anomaly events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/anomalies",
    params(AnomalyQuery),
    responses(
        (status = 200, description = "Anomaly events, newest first", body = AnomaliesResponse),
        (status = 400, description = "A parameter is malformed; the message names it"),
        (status = 503, description = "The database is unavailable"),
    ),
    tag = "anomalies"
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AnomalyQuery>,
) -> Result<Json<AnomaliesResponse>, AppError> {
    let filter = filter_of(q)?;
    let anomalies = store::query(&state.pool, &filter)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok(Json(AnomaliesResponse { anomalies }))
}

fn bad(message: String) -> AppError {
    AppError::Client(StatusCode::BAD_REQUEST, message)
}

/// Checks the parameters; an error names the one at fault.
fn filter_of(q: AnomalyQuery) -> Result<AnomalyFilter, AppError> {
    let time = |name: &str, v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .map(|s| {
                parse_timestamp_str(&s).ok_or_else(|| {
                    bad(format!(
                        "`{name}` must be RFC 3339 or unix milliseconds, not {s:?}"
                    ))
                })
            })
            .transpose()
    };
    let from = time("from", q.from)?;
    let to = time("to", q.to)?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(bad("`from` must not be after `to`".into()));
        }
    }
    let limit = match q.limit.filter(|s| !s.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "`limit` must be an integer from 1 to {MAX_LIMIT}, not {s:?}"
                )))
            }
        },
    };
    let id = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(AnomalyFilter {
        device: id(q.device),
        metric: id(q.metric),
        from,
        to,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(q: AnomalyQuery) -> String {
        match filter_of(q) {
            Err(AppError::Client(status, m)) => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                m
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let q = |from: &str, to: &str, limit: &str| AnomalyQuery {
            from: Some(from.into()),
            to: Some(to.into()),
            limit: Some(limit.into()),
            ..AnomalyQuery::default()
        };
        assert!(message(q("soon", "", "")).contains("`from`"));
        assert!(message(q("", "later", "")).contains("`to`"));
        assert!(message(q("", "", "0")).contains("`limit`"));
        assert!(message(q("", "", "ten")).contains("`limit`"));
        assert!(message(q("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "")).contains("after"));
        let ok = filter_of(q("1767225600000", "2026-01-02T00:00:00Z", "5")).expect("valid");
        assert_eq!(ok.limit, 5);
        assert!(ok.from.is_some() && ok.to.is_some());
        assert_eq!(
            filter_of(AnomalyQuery::default()).expect("valid").limit,
            100
        );
    }
}
