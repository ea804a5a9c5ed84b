//! Errors as HTTP answers: readable 4xx, generic 5xx (the cause is logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The client's fault; the message is shown to it.
    #[error("{1}")]
    Client(StatusCode, String),
    /// vigil cannot serve now (shutting down, database unavailable); safe to retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Client(status, message) => {
                (status, Json(json!({ "error": message }))).into_response()
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "request not served");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "temporarily unavailable; retry later" })),
                )
                    .into_response()
            }
        }
    }
}
