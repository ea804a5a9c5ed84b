//! CORS for `/api/*`: browsers on the configured origins may call the API; closed (no
//! CORS headers at all) when `api.cors_origins` is empty.

use std::time::Duration;

use axum::http::{header, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::fleet::ApiConfig;

/// `router` with the CORS layer of `cfg`, or unchanged when no origin is allowed.
pub fn apply(router: Router, cfg: &ApiConfig) -> Router {
    if cfg.cors_origins.is_empty() {
        return router;
    }
    let any = cfg.cors_origins.iter().any(|o| o == "*");
    // Checked by `ApiConfig::validate`; an origin that still fails to parse allows nothing.
    let allowed: Vec<HeaderValue> = cfg
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let origin = AllowOrigin::predicate(move |origin, parts| {
        parts.uri.path().starts_with("/api/") && (any || allowed.contains(origin))
    });
    router.layer(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::HEAD, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    )
}
