//! One batch's database work, done in one transaction.
//!
//! Fast path: binary COPY into a per-connection staging table, then one
//! `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING` (COPY itself has no ON CONFLICT).
//! If PostgreSQL refuses some row's data, the transaction is redone carefully: every
//! part under a savepoint, readings bisected until the bad row is alone, which then
//! becomes a dead letter while the good rows commit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use sqlx::{Connection as _, Postgres, Transaction};

use super::copy;
use super::dead_letter::DeadLetter;
use crate::ingest::envelope::Envelope;
use crate::ingest::reading::{DeviceUpdate, Reading, RejectReason, Rejection};

/// Created once per writer connection; emptied by every commit.
pub const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS vigil_staging \
     (device_id text, metric text, ts timestamptz, value float8) ON COMMIT DELETE ROWS";

const COPY_STAGING: &str = "COPY vigil_staging FROM STDIN (FORMAT binary)";

// Rows are COPY'd sorted by key and a fresh staging table is scanned in that order, which
// keeps the lock order stable between parallel writers (no deadlocks) without a sort here.
const INSERT_FROM_STAGING: &str = "INSERT INTO readings (device_id, metric, ts, value) \
     SELECT device_id, metric, ts, value FROM vigil_staging ON CONFLICT DO NOTHING";

/// The same, naming the rows actually inserted, for batches that hold duplicates.
const INSERT_FROM_STAGING_RETURNING: &str = "INSERT INTO readings (device_id, metric, ts, value) \
     SELECT device_id, metric, ts, value FROM vigil_staging \
     ON CONFLICT DO NOTHING RETURNING device_id, metric, ts, value";

const INSERT_DEAD_LETTERS: &str = "INSERT INTO dead_letters \
     (fingerprint, received_at, source, topic, payload, reason, detail, item_index) \
     SELECT * FROM UNNEST($1::bytea[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::int4[]) ON CONFLICT (fingerprint) DO NOTHING";

const UPSERT_LAST_SEEN: &str = "INSERT INTO devices (device_id, first_seen, last_seen) \
     SELECT d, t, t FROM UNNEST($1::text[], $2::timestamptz[]) AS u(d, t) \
     ON CONFLICT (device_id) DO UPDATE SET \
     last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen), updated_at = now()";

const UPSERT_META: &str = "INSERT INTO devices (device_id, meta) VALUES ($1, $2) \
     ON CONFLICT (device_id) DO UPDATE SET meta = EXCLUDED.meta, updated_at = now()";

const UPSERT_STATUS: &str = "INSERT INTO devices (device_id, status, status_changed_at) \
     VALUES ($1, $2, now()) ON CONFLICT (device_id) DO UPDATE SET \
     status = EXCLUDED.status, status_changed_at = now(), updated_at = now()";

/// Everything one batch writes, prepared from its envelopes.
pub struct BatchWrite<'a> {
    envelopes: &'a [Envelope],
    /// Readings with the index of their envelope, sorted by key.
    rows: Vec<(usize, &'a Reading)>,
    dead_letters: Vec<DeadLetter>,
    devices: Vec<(usize, &'a DeviceUpdate)>,
    /// Devices whose `last_seen` is due for a refresh, with their newest reading time.
    last_seen: Vec<(String, DateTime<Utc>)>,
}

/// What a committed batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Readings that were not stored before: broadcast to live consumers. `None` means
    /// all of the batch's readings (the common case, saving a copy).
    pub stored: Option<Vec<Reading>>,
    /// Readings already present (redeliveries, retries).
    pub duplicates: usize,
    pub dead_letters_stored: u64,
    /// Items PostgreSQL refused, by envelope index (they became dead letters).
    pub refused: Vec<(usize, Rejection)>,
}

/// Whether PostgreSQL refused the data itself (class 22 data exception, class 23
/// integrity violation other than a unique conflict): retrying cannot help.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("22") || (c.starts_with("23") && c != "23505")),
        _ => false,
    }
}

impl<'a> BatchWrite<'a> {
    /// Prepares the rows of `envelopes`. `due` decides which devices get their
    /// `last_seen` refreshed in this batch.
    pub fn new(envelopes: &'a [Envelope], mut due: impl FnMut(&str) -> bool) -> BatchWrite<'a> {
        let mut rows = Vec::new();
        let mut dead_letters = Vec::new();
        let mut devices = Vec::new();
        let mut newest: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for (i, env) in envelopes.iter().enumerate() {
            for r in &env.parsed.readings {
                rows.push((i, r));
                match newest.get_mut(r.device_id.as_str()) {
                    Some(t) => *t = (*t).max(r.ts),
                    None => {
                        newest.insert(&r.device_id, r.ts);
                    }
                }
            }
            for rej in &env.parsed.rejections {
                dead_letters.push(DeadLetter::new(env, rej));
            }
            if let Some(d) = &env.parsed.device {
                devices.push((i, d));
            }
        }
        rows.sort_unstable_by(|a, b| {
            (&a.1.device_id, &a.1.metric, a.1.ts).cmp(&(&b.1.device_id, &b.1.metric, b.1.ts))
        });
        let mut last_seen: Vec<(String, DateTime<Utc>)> = newest
            .into_iter()
            .filter(|(d, _)| due(d))
            .map(|(d, t)| (d.to_owned(), t))
            .collect();
        last_seen.sort_unstable();
        dead_letters.sort_unstable_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        BatchWrite {
            envelopes,
            rows,
            dead_letters,
            devices,
            last_seen,
        }
    }

    /// Commits the batch; on a data error, redoes it carefully so good rows still commit.
    pub async fn commit(mut self, conn: &mut PgConnection) -> Result<BatchOutcome, sqlx::Error> {
        let attempt = match self.attempt(conn, false).await {
            Ok(None) => self.attempt(conn, true).await,
            other => other,
        };
        match attempt {
            Ok(outcome) => Ok(outcome.expect("naming the new rows always completes")),
            Err(e) if is_data_error(&e) => {
                tracing::warn!(error = %e, "a row was refused; isolating it");
                self.careful(conn).await
            }
            Err(e) => Err(e),
        }
    }

    /// One transaction for the whole batch. Without `name_new_rows` (the common case) the
    /// insert has no RETURNING: if every row was new, the rows in memory are what was
    /// stored; if not, it rolls back and gives `None`, and the caller redoes the batch with
    /// `name_new_rows` so only new rows are broadcast.
    async fn attempt(
        &self,
        conn: &mut PgConnection,
        name_new_rows: bool,
    ) -> Result<Option<BatchOutcome>, sqlx::Error> {
        let mut tx = conn.begin().await?;
        let stored = if name_new_rows {
            Some(insert_readings(&mut tx, &self.rows).await?)
        } else {
            let inserted = copy_and_insert(&mut tx, &self.rows).await?;
            if inserted != self.rows.len() as u64 {
                tx.rollback().await?;
                return Ok(None);
            }
            None
        };
        let dead_letters_stored = insert_dead_letters(&mut tx, &self.dead_letters).await?;
        for (_, d) in &self.devices {
            update_device(&mut tx, d).await?;
        }
        upsert_last_seen(&mut tx, &self.last_seen).await?;
        tx.commit().await?;
        Ok(Some(BatchOutcome {
            duplicates: stored.as_ref().map_or(0, |s| self.rows.len() - s.len()),
            stored,
            dead_letters_stored,
            refused: Vec::new(),
        }))
    }

    async fn careful(&mut self, conn: &mut PgConnection) -> Result<BatchOutcome, sqlx::Error> {
        let mut tx = conn.begin().await?;
        let mut out = BatchOutcome {
            stored: Some(Vec::new()),
            ..BatchOutcome::default()
        };
        let mut stored = Vec::new();
        let mut refused_rows = Vec::new();
        let mut ranges = Vec::new();
        ranges.push(0..self.rows.len());
        while let Some(range) = ranges.pop() {
            let rows = &self.rows[range.clone()];
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            sqlx::query("TRUNCATE vigil_staging")
                .execute(&mut *sp)
                .await?;
            match insert_readings(&mut sp, rows).await {
                Ok(inserted) => {
                    sp.commit().await?;
                    stored.extend(inserted);
                }
                Err(e) if is_data_error(&e) => {
                    sp.rollback().await?;
                    if rows.len() == 1 {
                        refused_rows.push((rows[0], e.to_string()));
                    } else {
                        let mid = range.start + rows.len() / 2;
                        ranges.push(mid..range.end);
                        ranges.push(range.start..mid);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for (i, d) in &self.devices {
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            match update_device(&mut sp, d).await {
                Ok(()) => sp.commit().await?,
                Err(e) if is_data_error(&e) => {
                    sp.rollback().await?;
                    out.refused
                        .push((*i, Rejection::new(RejectReason::Database, e.to_string())));
                }
                Err(e) => return Err(e),
            }
        }
        let refused_readings = refused_rows.len();
        for ((i, r), error) in refused_rows {
            let detail = format!(
                "{}/{} at {}: {error}",
                r.device_id,
                r.metric,
                r.ts.to_rfc3339()
            );
            let index = self.envelopes[i]
                .parsed
                .readings
                .iter()
                .position(|x| std::ptr::eq(x, r));
            let rejection = Rejection {
                reason: RejectReason::Database,
                detail,
                index,
            };
            out.refused.push((i, rejection));
        }
        out.duplicates = self.rows.len() - stored.len() - refused_readings;
        out.stored = Some(stored);
        let mut letters = std::mem::take(&mut self.dead_letters);
        letters.extend(
            out.refused
                .iter()
                .map(|(i, r)| DeadLetter::new(&self.envelopes[*i], r)),
        );
        out.dead_letters_stored = insert_dead_letters(&mut tx, &letters).await?;
        upsert_last_seen(&mut tx, &self.last_seen).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// COPY into staging and insert what is new; returns how many rows were inserted.
async fn copy_and_insert(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(usize, &Reading)],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    stage(tx, rows).await?;
    Ok(sqlx::query(INSERT_FROM_STAGING)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

async fn stage(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(usize, &Reading)],
) -> Result<(), sqlx::Error> {
    let mut copy_in = tx.copy_in_raw(COPY_STAGING).await?;
    copy_in
        .send(copy::encode(rows.iter().map(|(_, r)| *r)))
        .await?;
    copy_in.finish().await?;
    Ok(())
}

/// COPY into staging and insert what is new; returns the inserted rows.
async fn insert_readings(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(usize, &Reading)],
) -> Result<Vec<Reading>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    stage(tx, rows).await?;
    let stored: Vec<(String, String, DateTime<Utc>, f64)> =
        sqlx::query_as(INSERT_FROM_STAGING_RETURNING)
            .fetch_all(&mut **tx)
            .await?;
    Ok(stored
        .into_iter()
        .map(|(device_id, metric, ts, value)| Reading {
            device_id,
            metric,
            ts,
            value,
        })
        .collect())
}

/// Writes dead letters; returns how many were new.
pub async fn insert_dead_letters(
    tx: &mut PgConnection,
    letters: &[DeadLetter],
) -> Result<u64, sqlx::Error> {
    if letters.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&DeadLetter) -> String| letters.iter().map(f).collect::<Vec<_>>();
    let result = sqlx::query(INSERT_DEAD_LETTERS)
        .bind(
            letters
                .iter()
                .map(|d| d.fingerprint.clone())
                .collect::<Vec<_>>(),
        )
        .bind(letters.iter().map(|d| d.received_at).collect::<Vec<_>>())
        .bind(col(|d| d.source.to_owned()))
        .bind(col(|d| d.topic.clone()))
        .bind(col(|d| d.payload.clone()))
        .bind(col(|d| d.reason.to_owned()))
        .bind(col(|d| d.detail.clone()))
        .bind(letters.iter().map(|d| d.item_index).collect::<Vec<_>>())
        .execute(tx)
        .await?;
    Ok(result.rows_affected())
}

async fn update_device(tx: &mut PgConnection, update: &DeviceUpdate) -> Result<(), sqlx::Error> {
    match update {
        DeviceUpdate::Meta { device_id, meta } => {
            sqlx::query(UPSERT_META)
                .bind(device_id)
                .bind(Json(meta))
                .execute(tx)
                .await?;
        }
        DeviceUpdate::Status { device_id, online } => {
            let status = if *online { "online" } else { "offline" };
            sqlx::query(UPSERT_STATUS)
                .bind(device_id)
                .bind(status)
                .execute(tx)
                .await?;
        }
    }
    Ok(())
}

async fn upsert_last_seen(
    tx: &mut PgConnection,
    devices: &[(String, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    if devices.is_empty() {
        return Ok(());
    }
    sqlx::query(UPSERT_LAST_SEEN)
        .bind(devices.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>())
        .bind(devices.iter().map(|(_, t)| *t).collect::<Vec<_>>())
        .execute(tx)
        .await?;
    Ok(())
}
