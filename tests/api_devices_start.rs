//! Start-up without a database: the devices API says it is not ready (503 with a JSON
//! error) instead of showing an empty fleet, and loads once the database is there.

mod common;

use std::time::Duration;

use common::vigil::settings;
use common::{wait_for, Postgres};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devices_api_answers_503_until_the_registry_is_loaded() {
    let mut pg = Postgres::start().await;
    let db = pg.url();
    // A first vigil creates the schema and stores one device.
    let mut s = settings(&db, "mqtt://127.0.0.1:1", "vigil-start");
    s.mqtt.enabled = false;
    s.http.ingest_auth = vigil::config::IngestAuth::None;
    let app = vigil::app::start(s.clone()).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    wait_for("HTTP ingest", Duration::from_secs(60), || async {
        http.post(format!("{base}/api/v1/ingest"))
            .json(&serde_json::json!([{"device_id": "early", "metric": "v",
                "ts": chrono::Utc::now().timestamp_millis(), "value": 1}]))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");

    pg.stop();
    let app = vigil::app::start(s)
        .await
        .expect("vigil starts without its database");
    let base = format!("http://{}", app.addr);
    for path in ["/api/v1/devices", "/api/v1/devices/early"] {
        let r = reqwest::get(format!("{base}{path}"))
            .await
            .expect("request");
        assert_eq!(r.status(), 503, "{path}");
        let body: Value = r.json().await.expect("a JSON error");
        assert!(body["error"].is_string(), "{body}");
    }
    // Bad parameters are still named, loaded or not.
    let r = reqwest::get(format!("{base}/api/v1/devices?limit=0"))
        .await
        .expect("request");
    assert_eq!(r.status(), 400);

    pg.start_again();
    let url = format!("{base}/api/v1/devices/early");
    wait_for("the registry to load", Duration::from_secs(60), || async {
        reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let d: Value = reqwest::get(&url)
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(d["latest"]["v"]["value"], 1.0);

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
