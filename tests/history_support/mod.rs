//! Helpers shared by the history, export and retention tests: an in-process vigil
//! (HTTP only, no broker) on a migrated private database, JSON GETs and rollup waits.

#![allow(dead_code)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use vigil::config::Settings;

use crate::common::vigil::{settings, wait_ready};
use crate::common::{wait_for, Postgres};

/// A running vigil and its database.
pub struct Running {
    pub app: vigil::app::App,
    pub base: String,
    pub pool: PgPool,
    pub db: String,
}

/// Migrates `pg`, then starts vigil over HTTP only with fast rollup passes; `tweak`
/// adjusts the settings first.
pub async fn start(pg: &Postgres, tweak: impl FnOnce(&mut Settings)) -> Running {
    let db = pg.url();
    let pool = PgPool::connect(&db).await.expect("database reachable");
    vigil::store::migrate(&pool).await.expect("migrations apply");
    let mut s = settings(&db, "mqtt://127.0.0.1:1", "vigil-history");
    s.mqtt.enabled = false;
    s.history.rollup_interval = Duration::from_millis(100);
    tweak(&mut s);
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    Running {
        app,
        base,
        pool,
        db,
    }
}

/// GETs `path` (with its query) and returns the status and JSON body.
pub async fn get_json(base: &str, path: &str) -> (StatusCode, Value) {
    let r = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status();
    let body = r.text().await.expect("body");
    let mut json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
    exact_values(&mut json, &body);
    (status, json)
}

/// serde_json's default float parsing can be one ULP off; points are compared exactly
/// with stored values, so their numbers are parsed again from the text with `str::parse`.
fn exact_values(json: &mut Value, text: &str) {
    let Some(points) = json.get_mut("points").and_then(Value::as_array_mut) else {
        return;
    };
    let tokens = text.split("\"value\":").skip(1).map(|rest| {
        let end = rest.find([',', '}']).expect("number ends");
        rest[..end].parse::<f64>().expect("a number")
    });
    for (p, v) in points.iter_mut().zip(tokens) {
        p["value"] = serde_json::Number::from_f64(v).expect("finite").into();
    }
}

/// Asserts a 400 (or other error status) whose message names `param`.
pub async fn assert_error(base: &str, path: &str, status: StatusCode, param: &str) {
    let (got, body) = get_json(base, path).await;
    assert_eq!(got, status, "{path}: {body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("{path}: {body}"));
    assert!(message.contains(param), "{path}: {message:?} should name {param}");
}

/// Waits until every late-reading mark has been rolled up and the rollups reach `until`.
pub async fn wait_rolled_up(pool: &PgPool, until: chrono::DateTime<chrono::Utc>) {
    wait_for("rollups to catch up", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move {
            let (dirty, rolled): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM rollup_dirty), (SELECT rolled_up FROM rollup_state)",
            )
            .fetch_one(&pool)
            .await
            .expect("rollup state");
            dirty == 0 && rolled >= until
        }
    })
    .await;
}

/// Inserts one reading per `step_s` seconds of `[start, start + count * step_s)` with
/// `value = f(i)` computed in SQL from `i` (the reading's index), e.g. `sin(i / 50.0)`.
pub async fn insert_series(
    pool: &PgPool,
    device: &str,
    metric: &str,
    start: chrono::DateTime<chrono::Utc>,
    count: i64,
    step_s: f64,
) {
    sqlx::query(
        "INSERT INTO readings (device_id, metric, ts, value) \
         SELECT $1, $2, $3 + make_interval(secs => i * $5), 20 + 10 * sin(i / 97.0) \
         FROM generate_series(0, $4 - 1) AS i",
    )
    .bind(device)
    .bind(metric)
    .bind(start)
    .bind(count)
    .bind(step_s)
    .execute(pool)
    .await
    .expect("insert series");
}

/// Inserts one reading.
pub async fn insert_one(
    pool: &PgPool,
    device: &str,
    metric: &str,
    ts: chrono::DateTime<chrono::Utc>,
    value: f64,
) {
    sqlx::query("INSERT INTO readings (device_id, metric, ts, value) VALUES ($1, $2, $3, $4)")
        .bind(device)
        .bind(metric)
        .bind(ts)
        .bind(value)
        .execute(pool)
        .await
        .expect("insert reading");
}

/// The (ts, value) points of a history answer.
pub fn points(body: &Value) -> Vec<(chrono::DateTime<chrono::Utc>, f64)> {
    body["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points in {body}"))
        .iter()
        .map(|p| {
            let ts = p["ts"].as_str().expect("ts").parse().expect("RFC 3339 ts");
            (ts, p["value"].as_f64().expect("value"))
        })
        .collect()
}

/// A time as a query value.
pub fn q(t: chrono::DateTime<chrono::Utc>) -> String {
    t.timestamp_millis().to_string()
}
