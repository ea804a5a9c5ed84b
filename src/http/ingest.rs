//! `POST /api/v1/ingest`: readings over HTTP, answered only after their commit.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{AppError, AppState};
use crate::config::IngestAuth;
use crate::ingest::envelope::Ack;
use crate::ingest::parse::Format;
use crate::ingest::reading::{RejectReason, Rejection};

const ROUTE: &str = "/api/v1/ingest";

/// Optional query parameters.
#[derive(Debug, Deserialize)]
pub struct IngestQuery {
    /// `readings`, `senml` or `line`; by default taken from Content-Type.
    format: Option<String>,
}

/// The answer: how many readings are committed and which items were refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    /// `{"reason", "detail", "index"?}` per refused item.
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
}

/// Stores the body's readings and answers once they are committed, so a retry is safe.
#[utoipa::path(
    post,
    path = "/api/v1/ingest",
    tag = "ingest",
    params(("format" = Option<String>, Query,
        description = "`readings`, `senml` or `line`; by default from Content-Type")),
    request_body(
        description = "JSON readings `[{device_id, metric, ts, value}]` (application/json), \
                       a SenML pack (application/senml+json) or InfluxDB line protocol (text/plain)",
        content(
            (String = "application/json"),
            (String = "application/senml+json"),
            (String = "text/plain"),
        )
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed (some items may be refused)", body = IngestResponse),
        (status = 400, description = "Malformed body or bad parameter", body = IngestResponse),
        (status = 401, description = "Missing or wrong bearer token", body = super::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = IngestResponse),
        (status = 415, description = "Unsupported Content-Type", body = super::openapi::ErrorBody),
        (status = 422, description = "Every item refused", body = IngestResponse),
        (status = 503, description = "Shutting down or database unavailable; retry", body = super::openapi::ErrorBody),
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    Query(query): Query<IngestQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<IngestResponse>), AppError> {
    authorize(&state, &headers)?;
    let format = format_of(query.format.as_deref(), &headers)?;
    let (tx, rx) = oneshot::channel();
    let envelope = state
        .intake
        .from_http(ROUTE, format, body, Utc::now(), Ack::Http(tx));
    let readings = envelope.parsed.readings.len();
    let mut rejected = envelope.parsed.rejections.clone();
    state
        .intake
        .submit(envelope)
        .await
        .map_err(|_| AppError::Unavailable("intake closed (shutting down)".into()))?;
    let committed = rx
        .await
        .map_err(|_| AppError::Unavailable("writer stopped before the commit".into()))?
        .map_err(AppError::Unavailable)?;
    rejected.extend(committed.refused);
    let status = if readings > 0 || rejected.is_empty() {
        StatusCode::OK
    } else if rejected
        .iter()
        .any(|r| r.reason == RejectReason::PayloadTooLarge)
    {
        StatusCode::PAYLOAD_TOO_LARGE
    } else if rejected.iter().all(|r| r.index.is_none()) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(IngestResponse {
            accepted: committed.accepted,
            rejected,
        }),
    ))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let unauthorized = |m: &str| AppError::Client(StatusCode::UNAUTHORIZED, m.to_owned());
    if state.http.ingest_auth == IngestAuth::None {
        return Ok(());
    }
    if state.http.ingest_token.is_empty() {
        return Err(unauthorized(
            "ingest over HTTP is disabled: no http.ingest_token is configured",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    if constant_time_eq(given.as_bytes(), state.http.ingest_token.as_bytes()) {
        Ok(())
    } else {
        Err(unauthorized("invalid bearer token"))
    }
}

/// Compares without an early exit, so the time taken does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn format_of(param: Option<&str>, headers: &HeaderMap) -> Result<Format, AppError> {
    let named = match param {
        Some(p) => p.to_owned(),
        None => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json");
            let mime = ct
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match mime.as_str() {
                "application/json" | "" => "readings".into(),
                "application/senml+json" => "senml".into(),
                "text/plain" => "line".into(),
                other => {
                    return Err(AppError::Client(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!(
                            "Content-Type {other:?} is not accepted: use application/json, \
                             application/senml+json or text/plain (line protocol)"
                        ),
                    ))
                }
            }
        }
    };
    match named.as_str() {
        "readings" | "json" => Ok(Format::Readings),
        "senml" => Ok(Format::Senml),
        "line" => Ok(Format::Line),
        other => Err(AppError::Client(
            StatusCode::BAD_REQUEST,
            format!("parameter `format`: {other:?} is not one of readings, senml, line"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
    }

    #[test]
    fn content_types_pick_the_format() {
        let mut h = HeaderMap::new();
        assert_eq!(format_of(None, &h).ok(), Some(Format::Readings));
        h.insert(
            header::CONTENT_TYPE,
            "text/plain; charset=utf-8".parse().expect("valid"),
        );
        assert_eq!(format_of(None, &h).ok(), Some(Format::Line));
        h.insert(
            header::CONTENT_TYPE,
            "application/senml+json".parse().expect("valid"),
        );
        assert_eq!(format_of(None, &h).ok(), Some(Format::Senml));
        assert_eq!(format_of(Some("line"), &h).ok(), Some(Format::Line));
        h.insert(header::CONTENT_TYPE, "image/png".parse().expect("valid"));
        assert!(format_of(None, &h).is_err());
        assert!(format_of(Some("xml"), &HeaderMap::new()).is_err());
    }
}
