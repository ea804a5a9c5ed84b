//! `GET /api/v1/export`: readings streamed as CSV or an Arrow IPC stream.
//!
//! Constant memory: a task reads rows from a server-side stream (sqlx `fetch`), encodes
//! them a bounded batch at a time and hands each chunk to the response body through a
//! small channel; when the client reads slowly the channel fills, the task waits, and
//! PostgreSQL waits on its socket. A client that goes away ends the task and the query.
//!
//! `device` and `metric` are optional: both give one series (in time order), `device`
//! alone every metric of that device (by metric, then time), `metric` alone that metric
//! across the fleet, neither the whole fleet; fleet-wide exports come in storage order
//! (one pass over the time range, no sort). An unknown `device` is a 404; a `metric` is
//! checked only together with a `device` (checking it fleet-wide would mean a scan).

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt as _;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::readings::{bad_request, db_error};
use super::{AppError, AppState};
use crate::history::encode::{Encoder, Row};
use crate::history::params::{self, Format};
use crate::history::query::{self, Known};
use crate::metrics::Metrics;

const PARAMS: [&str; 5] = ["device", "metric", "from", "to", "format"];

const SERIES: &str = "SELECT device_id, metric, ts, value FROM readings \
     WHERE device_id = $1 AND metric = $2 AND ts >= $3 AND ts <= $4 ORDER BY ts";
const DEVICE: &str = "SELECT device_id, metric, ts, value FROM readings \
     WHERE device_id = $1 AND ts >= $3 AND ts <= $4 AND $2::text IS NULL ORDER BY metric, ts";
const METRIC: &str = "SELECT device_id, metric, ts, value FROM readings \
     WHERE metric = $2 AND ts >= $3 AND ts <= $4 AND $1::text IS NULL";
const FLEET: &str = "SELECT device_id, metric, ts, value FROM readings \
     WHERE ts >= $3 AND ts <= $4 AND $1::text IS NULL AND $2::text IS NULL";

/// Encoded chunks waiting for the client: a few, so memory stays bounded.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The query parameters (for the API document).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportParams {
    /// Device id (optional: without it, the whole fleet).
    device: Option<String>,
    /// Metric name (optional: without it, every metric).
    metric: Option<String>,
    /// Start, RFC 3339 or unix milliseconds (default: `to` − 1 h).
    from: Option<String>,
    /// End, inclusive (default: now).
    to: Option<String>,
    /// `csv` (default) or `arrow` (Arrow IPC stream).
    format: Option<String>,
}

/// Streams readings as CSV (`device_id,metric,ts,value`) or as an Arrow IPC stream.
#[utoipa::path(
    get,
    path = "/api/v1/export",
    params(ExportParams),
    responses(
        (status = 200, description = "text/csv or application/vnd.apache.arrow.stream, streamed"),
        (status = 400, description = "A bad parameter, named in `error`"),
        (status = 404, description = "Unknown device or metric"),
    ),
    tag = "history"
)]
pub async fn export(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let pairs = params::pairs(query.as_deref(), &PARAMS).map_err(bad_request)?;
    let get = |name| params::get(&pairs, name);
    let device = params::id("device", get("device")).map_err(bad_request)?;
    let metric = params::id("metric", get("metric")).map_err(bad_request)?;
    let (from, to) = params::range(get("from"), get("to"), Utc::now(), TimeDelta::hours(1))
        .map_err(bad_request)?;
    let format = params::format(get("format")).map_err(bad_request)?;
    check_known(&state.pool, device.as_deref(), metric.as_deref()).await?;

    let mut encoder = match format {
        Format::Csv => Encoder::csv(),
        Format::Arrow => Encoder::arrow().map_err(|e| AppError::Unavailable(e.to_string()))?,
    };
    let (content_type, ext, label) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", "csv"),
        Format::Arrow => ("application/vnd.apache.arrow.stream", "arrow", "arrow"),
    };
    let filename = format!(
        "vigil-{}{}.{ext}",
        device.as_deref().unwrap_or("fleet"),
        metric.as_deref().map(|m| format!("-{m}")).unwrap_or_default()
    );
    let first = encoder.take().map_err(|e| AppError::Unavailable(e.to_string()))?;
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let job = Job {
        pool: state.pool.clone(),
        device,
        metric,
        from,
        to,
        batch_rows: state.history.export_batch_rows,
        metrics: state.metrics.clone(),
        label,
    };
    // The header (CSV) or schema (Arrow) goes first, so even an empty range is valid.
    let _ = tx.try_send(Ok(Bytes::from(first)));
    tokio::spawn(job.run(encoder, tx));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

async fn check_known(
    pool: &PgPool,
    device: Option<&str>,
    metric: Option<&str>,
) -> Result<(), AppError> {
    let not_found = |m: String| Err(AppError::Client(StatusCode::NOT_FOUND, m));
    match (device, metric) {
        (Some(d), Some(m)) => match query::known(pool, d, m).await.map_err(db_error)? {
            Known::Series => Ok(()),
            Known::DeviceOnly => not_found(format!("unknown metric `{m}` for device `{d}`")),
            Known::Nothing => not_found(format!("unknown device `{d}`")),
        },
        (Some(d), None) => {
            if query::device_known(pool, d).await.map_err(db_error)? {
                Ok(())
            } else {
                not_found(format!("unknown device `{d}`"))
            }
        }
        _ => Ok(()),
    }
}

type Chunk = Result<Bytes, std::io::Error>;

/// One export's reading and encoding, off the request task.
struct Job {
    pool: PgPool,
    device: Option<String>,
    metric: Option<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    batch_rows: usize,
    metrics: Metrics,
    label: &'static str,
}

impl Job {
    async fn run(self, mut encoder: Encoder, tx: mpsc::Sender<Chunk>) {
        let sql = match (&self.device, &self.metric) {
            (Some(_), Some(_)) => SERIES,
            (Some(_), None) => DEVICE,
            (None, Some(_)) => METRIC,
            (None, None) => FLEET,
        };
        let rows_counter = self.metrics.export_rows.with_label_values(&[self.label]);
        let mut rows = sqlx::query_as::<_, Row>(sql)
            .bind(&self.device)
            .bind(&self.metric)
            .bind(self.from)
            .bind(self.to)
            .fetch(&self.pool);
        let mut since_flush = 0;
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    // The body ends in an error: the client sees a broken transfer, never
                    // a silently truncated file.
                    tracing::warn!(error = %e, "export failed midway");
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
            encoder.push(&row);
            since_flush += 1;
            if since_flush >= self.batch_rows {
                rows_counter.inc_by(since_flush as u64);
                since_flush = 0;
                if !send(&tx, encoder.take()).await {
                    return;
                }
            }
        }
        rows_counter.inc_by(since_flush as u64);
        let _ = send(&tx, encoder.finish()).await;
    }
}

/// Sends encoded bytes; false when the export must stop (client gone or encoding failed).
async fn send(tx: &mpsc::Sender<Chunk>, bytes: Result<Vec<u8>, arrow_schema::ArrowError>) -> bool {
    let chunk = bytes.map(Bytes::from).map_err(std::io::Error::other);
    let ok = chunk.is_ok();
    tx.send(chunk).await.is_ok() && ok
}
