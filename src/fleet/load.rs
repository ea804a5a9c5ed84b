//! Start-up load of the registry: the `devices` table and the newest reading of every
//! series, in bounded pages so neither query nor lock grows with the fleet.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::registry::{Fleet, StoredDevice};
use super::view::{Latest, Status};
use super::write;

/// Rows per query (and per hold of the registry's lock).
const PAGE: i64 = 5_000;

/// One page of the `devices` table after the id `$1`, `$2` rows.
pub const DEVICES: &str =
    "SELECT device_id, first_seen, last_seen, meta, status, status_changed_at \
     FROM devices WHERE device_id > $1 ORDER BY device_id LIMIT $2";

/// The newest reading of up to `$3` series, walking the primary key (device_id, metric,
/// ts) backwards from (`$1`, `$2`): the first row a backward scan meets below a series is
/// the newest reading of the series before it, so each step is one index probe and the
/// cost follows the number of series, not of readings (a `DISTINCT ON` would read the
/// whole table).
macro_rules! latest_before {
    ($bound:literal, $limit:literal) => {
        concat!(
            "WITH RECURSIVE latest(device_id, metric, ts, value, n) AS ( \
               (SELECT device_id, metric, ts, value, 1 FROM readings ",
            $bound,
            " ORDER BY device_id DESC, metric DESC, ts DESC LIMIT 1) \
               UNION ALL \
               SELECT r.device_id, r.metric, r.ts, r.value, l.n + 1 FROM latest l \
               CROSS JOIN LATERAL (SELECT device_id, metric, ts, value FROM readings \
                 WHERE (device_id, metric) < (l.device_id, l.metric) \
                 ORDER BY device_id DESC, metric DESC, ts DESC LIMIT 1) r \
               WHERE l.n < ",
            $limit,
            ") SELECT device_id, metric, ts, value FROM latest"
        )
    };
}

/// The first page: from the end of the table. `$1`: series wanted.
pub const LATEST_FIRST: &str = latest_before!("", "$1");

/// The next pages: below the series (`$1`, `$2`). `$3`: series wanted.
pub const LATEST_NEXT: &str =
    latest_before!("WHERE (device_id, metric) < ($1::text, $2::text)", "$3");

/// What one load found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    /// Rows of the `devices` table.
    pub devices: usize,
    /// Series whose newest reading was loaded.
    pub series: usize,
}

type DeviceRow = (
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    serde_json::Value,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// Loads every stored device and at most `max_series` latest values into `fleet`.
pub async fn load(
    pool: &PgPool,
    fleet: &RwLock<Fleet>,
    max_series: usize,
) -> Result<Loaded, sqlx::Error> {
    let mut loaded = Loaded::default();
    let mut after = String::new();
    loop {
        let rows: Vec<DeviceRow> = sqlx::query_as(DEVICES)
            .bind(&after)
            .bind(PAGE)
            .fetch_all(pool)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.0.clone();
        let full = rows.len() as i64 == PAGE;
        loaded.devices += rows.len();
        let now = Utc::now();
        let mut f = write(fleet);
        for (device_id, first_seen, last_seen, meta, status, status_changed_at) in rows {
            let meta = (!meta.as_object().is_some_and(|m| m.is_empty())).then_some(meta);
            let status = match status.as_deref() {
                Some("online") => Some(Status::Online),
                Some("offline") => Some(Status::Offline),
                _ => None,
            };
            f.merge_stored(
                StoredDevice {
                    device_id,
                    first_seen,
                    last_seen,
                    meta,
                    status,
                    status_changed_at,
                },
                now,
            );
        }
        drop(f);
        if !full {
            break;
        }
    }
    let mut cursor: Option<(String, String)> = None;
    while loaded.series < max_series {
        let want = PAGE.min((max_series - loaded.series) as i64);
        let query = match &cursor {
            None => sqlx::query_as(LATEST_FIRST).bind(want),
            Some((device, metric)) => sqlx::query_as(LATEST_NEXT)
                .bind(device)
                .bind(metric)
                .bind(want),
        };
        let rows: Vec<(String, String, DateTime<Utc>, f64)> = query.fetch_all(pool).await?;
        let Some(last) = rows.last() else { break };
        cursor = Some((last.0.clone(), last.1.clone()));
        let full = rows.len() as i64 == want;
        loaded.series += rows.len();
        let mut f = write(fleet);
        for (d, m, ts, value) in &rows {
            f.merge_latest(
                d,
                m,
                Latest {
                    ts: *ts,
                    value: *value,
                },
            );
        }
        drop(f);
        if !full {
            break;
        }
    }
    Ok(loaded)
}
