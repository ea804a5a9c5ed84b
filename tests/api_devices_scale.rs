//! The device registry at 100,000 devices: start-up load time and API latency.
//!
//! Not part of the regular run (it fills a database with 3 million readings first):
//! `cargo test --test api_devices_scale -- --ignored --nocapture`. It prints what it
//! measured and asserts only what must hold whatever the machine's speed.

mod common;

use std::time::{Duration, Instant};

use common::vigil::settings;
use common::{wait_for, Postgres};
use serde_json::Value;

const DEVICES: i64 = 100_000;
const METRICS: i64 = 3;
const PER_SERIES: i64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills a database with 3 million readings; run by hand"]
async fn the_registry_loads_and_answers_at_100k_devices() {
    let pg = Postgres::start().await;
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("db");
    vigil::store::migrate(&pool).await.expect("migrations");
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO readings (device_id, metric, ts, value) \
         SELECT 'dev-' || lpad(d::text, 6, '0'), 'm' || m, \
                now() - make_interval(secs => s), d + m + s \
         FROM generate_series(1, $1) d, generate_series(1, $2) m, generate_series(0, $3 - 1) s",
    )
    .bind(DEVICES)
    .bind(METRICS)
    .bind(PER_SERIES)
    .execute(&pool)
    .await
    .expect("readings");
    sqlx::query(
        "INSERT INTO devices (device_id, first_seen, last_seen) \
         SELECT 'dev-' || lpad(d::text, 6, '0'), now() - interval '1 hour', now() \
         FROM generate_series(1, $1) d",
    )
    .bind(DEVICES)
    .execute(&pool)
    .await
    .expect("devices");
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    println!(
        "filled {} readings in {:?}",
        DEVICES * METRICS * PER_SERIES,
        started.elapsed()
    );

    // One page of the start-up load, as the planner runs it.
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, COSTS OFF) {}",
        vigil::fleet::load::LATEST_NEXT
    ))
    .bind("dev-050000")
    .bind("m1")
    .bind(5000i64)
    .fetch_all(&pool)
    .await
    .expect("explain");
    println!("{}", plan.join("\n"));
    assert!(
        !plan.iter().any(|l| l.contains("Seq Scan on readings")),
        "the latest values are found through the index"
    );

    let mut s = settings(&pg.url(), "mqtt://127.0.0.1:1", "vigil-scale");
    s.mqtt.enabled = false;
    let started = Instant::now();
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    let list = format!("{base}/api/v1/devices");
    wait_for("the registry to load", Duration::from_secs(600), || async {
        reqwest::get(&list).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    println!(
        "registry of {DEVICES} devices loaded in {:?}",
        started.elapsed()
    );

    let http = reqwest::Client::new();
    for query in [
        "",
        "?limit=1000",
        "?offset=99900",
        "?q=dev-0999",
        "?status=offline",
        "?status=online&limit=1000",
    ] {
        let mut times = Vec::new();
        let mut body = Value::Null;
        for _ in 0..20 {
            let t = Instant::now();
            body = http
                .get(format!("{list}{query}"))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "GET /api/v1/devices{query}: p50 {:?}, max {:?} (total {})",
            times[times.len() / 2],
            times[times.len() - 1],
            body["total"]
        );
        if query.is_empty() {
            assert_eq!(body["total"], DEVICES);
            let latest = &body["devices"][0]["latest"];
            assert_eq!(latest.as_object().expect("latest").len(), METRICS as usize);
        }
    }
    let t = Instant::now();
    let one: Value = http
        .get(format!("{list}/dev-050000"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    println!("GET /api/v1/devices/dev-050000: {:?}", t.elapsed());
    assert_eq!(one["latest"]["m1"]["value"], 50_001.0, "the newest reading");

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
