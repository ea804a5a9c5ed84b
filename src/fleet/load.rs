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

const DEVICES: &str = "SELECT device_id, first_seen, last_seen, meta, status, status_changed_at \
     FROM devices WHERE device_id > $1 ORDER BY device_id LIMIT $2";

/// The next `$3` series after (`$1`, `$2`) with the newest reading of each. A loose index
/// scan on the primary key (device_id, metric, ts): each step jumps to the next series and
/// reads one row of it, so the cost follows the number of series, not of readings (a
/// `DISTINCT ON` would read the whole table).
const LATEST: &str = "WITH RECURSIVE series(device_id, metric, n) AS ( \
       (SELECT device_id, metric, 1 FROM readings \
         WHERE (device_id, metric) > ($1::text, $2::text) \
         ORDER BY device_id, metric LIMIT 1) \
       UNION ALL \
       SELECT nxt.device_id, nxt.metric, s.n + 1 FROM series s \
       CROSS JOIN LATERAL (SELECT r.device_id, r.metric FROM readings r \
         WHERE (r.device_id, r.metric) > (s.device_id, s.metric) \
         ORDER BY r.device_id, r.metric LIMIT 1) nxt \
       WHERE s.n < $3 \
     ) \
     SELECT s.device_id, s.metric, l.ts, l.value FROM series s \
     CROSS JOIN LATERAL (SELECT ts, value FROM readings r \
       WHERE r.device_id = s.device_id AND r.metric = s.metric \
       ORDER BY ts DESC LIMIT 1) l \
     ORDER BY s.device_id, s.metric";

/// What one load found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub devices: usize,
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
    let (mut device, mut metric) = (String::new(), String::new());
    while loaded.series < max_series {
        let want = PAGE.min((max_series - loaded.series) as i64);
        let rows: Vec<(String, String, DateTime<Utc>, f64)> = sqlx::query_as(LATEST)
            .bind(&device)
            .bind(&metric)
            .bind(want)
            .fetch_all(pool)
            .await?;
        let Some(last) = rows.last() else { break };
        (device, metric) = (last.0.clone(), last.1.clone());
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
