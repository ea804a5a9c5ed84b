//! Backfill: the stored readings a `since` subscription starts with.
//!
//! Each filter shape has its own fixed SQL text; every value is bound. The newest
//! `limit` readings are kept when more match, so the history handed over ends right at
//! the live tail and nothing is missing at the seam.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::filter::Filter;
use crate::ingest::reading::Reading;

/// Stored readings for one subscription, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backfilled {
    pub readings: Vec<Reading>,
    /// More readings matched than the cap allows; the oldest were left out.
    pub truncated: bool,
}

const COLUMNS: &str = "SELECT device_id, metric, ts, value FROM readings";

/// The parameterised query for `filter`: `$1` is `since`, `$2` the row limit, then the
/// filter's ids.
fn sql(filter: &Filter) -> String {
    let filter_clause = match filter {
        Filter::All => "",
        Filter::Device(_) => " AND device_id = $3",
        Filter::Metric(_) => " AND metric = $3",
        Filter::Series(..) => " AND device_id = $3 AND metric = $4",
    };
    format!("{COLUMNS} WHERE ts >= $1{filter_clause} ORDER BY ts DESC LIMIT $2")
}

/// Reads at most `limit` readings matching `filter` stored with `ts >= since`.
pub async fn load(
    pool: &PgPool,
    filter: &Filter,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Backfilled, sqlx::Error> {
    let text = sql(filter);
    // One more than the cap tells whether the cap cut anything off.
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
    let query = sqlx::query_as::<_, (String, String, DateTime<Utc>, f64)>(&text)
        .bind(since)
        .bind(fetch);
    let query = match filter {
        Filter::All => query,
        Filter::Device(id) | Filter::Metric(id) => query.bind(id),
        Filter::Series(d, m) => query.bind(d).bind(m),
    };
    let mut rows = query.fetch_all(pool).await?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    rows.reverse();
    let readings = rows
        .into_iter()
        .map(|(device_id, metric, ts, value)| Reading {
            device_id,
            metric,
            ts,
            value,
        })
        .collect();
    Ok(Backfilled {
        readings,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_binds_its_ids() {
        let f = |s: &str| sql(&Filter::parse(s).unwrap());
        assert!(f("#").ends_with("WHERE ts >= $1 ORDER BY ts DESC LIMIT $2"));
        assert!(f("d/+").contains("AND device_id = $3 ORDER"));
        assert!(f("+/m").contains("AND metric = $3 ORDER"));
        assert!(f("d/m").contains("AND device_id = $3 AND metric = $4 ORDER"));
        assert!(!f("d/m").contains("'d'"));
    }
}
