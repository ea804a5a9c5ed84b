//! `GET /api/v1/devices` and `GET /api/v1/devices/{device}`: the fleet, from memory.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use super::openapi::ErrorBody;
use super::params::{self, bad, ApiQuery};
use super::{AppError, AppState};
use crate::fleet::{Device, DeviceList, Filter, Status};

/// Query parameters of the device list; any other parameter is a 400.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DevicesQuery {
    /// Only devices whose id contains this (ASCII case-insensitive).
    q: Option<String>,
    /// Only devices with this status.
    status: Option<Status>,
    /// Page size: 1 to `api.max_page_size` (10000 by default); default `api.page_size` (100).
    #[param(minimum = 1)]
    limit: Option<usize>,
    /// Matching devices to skip, in id order (default 0).
    offset: Option<usize>,
}

/// Devices sorted by id, with status, metadata and latest values; paginated.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    operation_id = "list_devices",
    tag = "devices",
    params(DevicesQuery),
    responses(
        (status = 200, description = "One page of devices", body = DeviceList),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 503, description = "The registry is still loading at start-up", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DevicesQuery>,
) -> Result<Json<DeviceList>, AppError> {
    let limit = params::bounded(
        "limit",
        query.limit,
        state.api.page_size,
        state.api.max_page_size,
    )?;
    if query.q.as_ref().is_some_and(|q| q.len() > 1024) {
        return Err(bad("q", "is longer than 1024 bytes"));
    }
    let filter = Filter {
        q: query.q,
        status: query.status,
        limit,
        offset: query.offset.unwrap_or(0),
    };
    loaded(&state)?;
    let page = state.fleet.read().list(&filter, Utc::now());
    Ok(Json(page))
}

/// One device; 404 when vigil has never heard of it.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{device}",
    operation_id = "get_device",
    tag = "devices",
    params(("device" = String, Path, description = "Device id, `[A-Za-z0-9._:-]{1,128}`")),
    responses(
        (status = 200, description = "The device", body = Device),
        (status = 400, description = "Not a valid device id", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 503, description = "The registry is still loading at start-up", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    device: Result<Path<String>, PathRejection>,
) -> Result<Json<Device>, AppError> {
    let Path(device) = device.map_err(|e| {
        AppError::Client(
            StatusCode::BAD_REQUEST,
            format!("path parameter `device`: {}", e.body_text()),
        )
    })?;
    params::check_id(&device).map_err(|problem| {
        AppError::Client(
            StatusCode::BAD_REQUEST,
            format!("path parameter `device`: {problem}"),
        )
    })?;
    loaded(&state)?;
    let found = state.fleet.read().get(&device, Utc::now());
    found.map(Json).ok_or_else(|| {
        AppError::Client(
            StatusCode::NOT_FOUND,
            format!("device {device:?} is not known"),
        )
    })
}

fn loaded(state: &AppState) -> Result<(), AppError> {
    if state.fleet.is_loaded() {
        Ok(())
    } else {
        Err(AppError::Unavailable(
            "the device registry is still loading".into(),
        ))
    }
}
