//! `GET /api/openapi.json`: the OpenAPI document, generated from the handlers'
//! `#[utoipa::path]` annotations (their response types derive `ToSchema`).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error body of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, naming the parameter when one was.
    pub error: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vigil",
        description = "Real-time IoT ingestion and monitoring. Times are RFC 3339 (UTC) \
                       on output, RFC 3339 or unix milliseconds on input. Every error body \
                       is `{\"error\": \"...\"}` naming the bad parameter."
    ),
    paths(
        super::probes::healthz,
        super::probes::readyz,
        super::probes::metrics,
        super::ingest::ingest,
        super::devices::list,
        super::devices::get_one,
        openapi_json,
        super::sse::stream,
        super::readings::readings,
        super::export::export,
        super::anomalies::list,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "ingest", description = "Readings over HTTP"),
        (name = "devices", description = "The fleet: status, metadata, latest values"),
        (name = "stream", description = "Live readings, device updates and anomalies"),
        (name = "history", description = "Downsampled history and streamed export"),
        (name = "anomalies", description = "Anomaly events raised by the detector"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer token that `POST /api/v1/ingest` takes.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The document as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document is plain data and always serialises")
});

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
