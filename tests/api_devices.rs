//! The devices API: the registry follows MQTT readings, metadata and status, notices
//! silence, survives a restart, paginates, searches, and names every bad parameter.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::vigil::{metric, settings, wait_ready, Publisher, TOKEN};
use common::{wait_for, Mosquitto, Postgres};
use serde_json::{json, Value};
use vigil::ingest::reading::DeviceUpdate;
use vigil::live::{LiveEvent, LiveReceiver};

const WAIT: Duration = Duration::from_secs(30);

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("request");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits until `GET url` answers 200 with a body satisfying `check`; returns that body.
async fn wait_json(what: &str, url: &str, check: impl Fn(&Value) -> bool) -> Value {
    let found = std::sync::Mutex::new(Value::Null);
    wait_for(what, WAIT, || async {
        let (status, body) = get(url).await;
        let ok = status == 200 && check(&body);
        if ok {
            *found.lock().unwrap() = body;
        }
        ok
    })
    .await;
    found.into_inner().unwrap()
}

/// Waits for the live feed to carry a status message for `device`.
async fn wait_status(live: &mut LiveReceiver, device: &str, online: bool) {
    let wanted = DeviceUpdate::Status {
        device_id: device.into(),
        online,
    };
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            match live.recv().await {
                Some(LiveEvent::Device(d)) if *d == wanted => return,
                Some(_) => {}
                None => panic!("live feed closed"),
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "no {wanted:?} announced within {WAIT:?}");
}

fn reading(ts_ms: i64, value: f64) -> String {
    json!({"ts": ts_ms, "value": value}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_follow_readings_metadata_and_status_over_mqtt() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let app = vigil::app::start(settings(&pg.url(), &broker.url(), "vigil-api-1"))
        .await
        .expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let now = Utc::now().timestamp_millis();
    let p = Publisher::connect(broker.port(), "api-publisher-1");
    p.send("sensors/pump-1/temp", reading(now - 2000, 20.0))
        .await;
    p.send("sensors/pump-1/temp", reading(now - 1000, 21.5))
        .await;
    p.send("sensors/pump-1/hum", reading(now - 1500, 40.0))
        .await;
    p.send("sensors/pump-2/temp", reading(now - 500, 7.0)).await;
    let meta = json!({"model": "P-200", "location": {"lat": 52.5, "lon": 13.4},
                      "units": {"temp": "°C"}});
    p.send("devices/pump-1/meta", meta.to_string()).await;

    let one = format!("{base}/api/v1/devices/pump-1");
    let d = wait_json("pump-1 with its latest values and metadata", &one, |d| {
        d["latest"]["temp"]["value"] == 21.5
            && d["latest"]["hum"]["value"] == 40.0
            && d["meta"].is_object()
    })
    .await;
    assert_eq!(d["device_id"], "pump-1");
    assert_eq!(d["status"], "online");
    assert_eq!(d["meta"], meta);
    let last_seen =
        chrono::DateTime::parse_from_rfc3339(d["last_seen"].as_str().unwrap()).expect("RFC 3339");
    assert_eq!(last_seen.timestamp_millis(), now - 1000);
    let ts = d["latest"]["temp"]["ts"].as_str().unwrap();
    assert!(ts.ends_with('Z'), "UTC on output: {ts}");
    assert!(d["first_seen"].is_string());

    let list = wait_json(
        "both devices listed",
        &format!("{base}/api/v1/devices"),
        |l| l["total"] == 2,
    )
    .await;
    assert_eq!(list["limit"], 100);
    assert_eq!(list["offset"], 0);
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pump-1", "pump-2"]);
    assert_eq!(list["devices"][1]["latest"]["temp"]["value"], 7.0);
    assert_eq!(list["devices"][1]["meta"], Value::Null);

    // A Last Will makes it offline; the next reading brings it back, announced live.
    let mut live = app.live.subscribe();
    p.send("devices/pump-1/status", "offline").await;
    wait_json("pump-1 offline", &one, |d| d["status"] == "offline").await;
    let offline = wait_json(
        "pump-1 listed as offline",
        &format!("{base}/api/v1/devices?status=offline"),
        |l| l["total"] == 1,
    )
    .await;
    assert_eq!(offline["devices"][0]["device_id"], "pump-1");
    p.send(
        "sensors/pump-1/temp",
        reading(Utc::now().timestamp_millis(), 22.0),
    )
    .await;
    wait_status(&mut live, "pump-1", true).await;
    let d = wait_json("pump-1 online again", &one, |d| d["status"] == "online").await;
    assert_eq!(d["latest"]["temp"]["value"], 22.0);

    wait_for("the device gauges", WAIT, || async {
        metric(&base, "vigil_devices_known").await == 2.0
            && metric(&base, "vigil_devices_online").await == 2.0
    })
    .await;

    app.shutdown();
    tokio::time::timeout(WAIT, app.wait())
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_makes_a_device_offline_and_live_clients_are_told() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let mut s = settings(&pg.url(), &broker.url(), "vigil-api-2");
    s.api.offline_after = Duration::from_secs(1);
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;
    let mut live = app.live.subscribe();

    let p = Publisher::connect(broker.port(), "api-publisher-2");
    p.send("sensors/quiet-1/v", "1").await;
    // Silent for a second: offline, and live clients are told.
    wait_status(&mut live, "quiet-1", false).await;
    let one = format!("{base}/api/v1/devices/quiet-1");
    let (status, d) = get(&one).await;
    assert_eq!(status, 200);
    assert_eq!(d["status"], "offline");
    assert_eq!(d["latest"]["v"]["value"], 1.0);

    // Heard from again: back online, and told so too.
    p.send("sensors/quiet-1/v", "2").await;
    wait_status(&mut live, "quiet-1", true).await;
    wait_status(&mut live, "quiet-1", false).await;
    let (_, d) = get(&one).await;
    assert_eq!(d["latest"]["v"]["value"], 2.0);

    app.shutdown();
    tokio::time::timeout(WAIT, app.wait())
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_is_reloaded_from_the_database_after_a_restart() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let app = vigil::app::start(settings(&pg.url(), &broker.url(), "vigil-api-3"))
        .await
        .expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let now = Utc::now().timestamp_millis();
    let p = Publisher::connect(broker.port(), "api-publisher-3");
    for i in 0..20 {
        // Many readings per series: the newest must be the one reloaded.
        p.send(
            "sensors/r-1/temp",
            reading(now - 20_000 + i * 1000, i as f64),
        )
        .await;
        p.send(
            "sensors/r-2/temp",
            reading(now - 40_000 + i * 1000, 100.0 + i as f64),
        )
        .await;
    }
    p.send("sensors/r-2/hum", reading(now - 100_000, 55.0))
        .await;
    p.send("devices/r-1/meta", json!({"model": "R"}).to_string())
        .await;
    p.send(
        "devices/r-3/meta",
        json!({"model": "no readings"}).to_string(),
    )
    .await;
    let list_url = format!("{base}/api/v1/devices");
    // Parallel writers may commit batches out of order: the Last Will goes out only once
    // the readings it follows are in.
    wait_json("r-2's readings", &list_url, |l| {
        l["devices"][1]["latest"]["temp"]["value"] == 119.0
            && l["devices"][1]["latest"]["hum"]["value"] == 55.0
    })
    .await;
    p.send("devices/r-2/status", "offline").await;
    let before = wait_json("everything in the registry", &list_url, |l| {
        l["total"] == 3
            && l["devices"][0]["latest"]["temp"]["value"] == 19.0
            && l["devices"][0]["meta"]["model"] == "R"
            && l["devices"][1]["latest"]["temp"]["value"] == 119.0
            && l["devices"][1]["latest"]["hum"]["value"] == 55.0
            && l["devices"][1]["status"] == "offline"
            && l["devices"][2]["meta"]["model"] == "no readings"
    })
    .await;
    app.shutdown();
    tokio::time::timeout(WAIT, app.wait())
        .await
        .expect("clean shutdown");

    // No broker this time: whatever the new vigil shows comes from the database.
    let mut s = settings(&pg.url(), &broker.url(), "vigil-api-3b");
    s.mqtt.enabled = false;
    let app = vigil::app::start(s).await.expect("vigil starts again");
    let base = format!("http://{}", app.addr);
    let after = wait_json(
        "the reloaded registry",
        &format!("{base}/api/v1/devices"),
        |l| l["total"] == 3,
    )
    .await;
    for (b, a) in before["devices"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["devices"].as_array().unwrap())
    {
        for key in ["device_id", "status", "last_seen", "meta", "latest"] {
            assert_eq!(
                a[key], b[key],
                "{key} of {} after the restart",
                b["device_id"]
            );
        }
        let (first, last) = (a["first_seen"].as_str().unwrap(), a["last_seen"].as_str());
        if let Some(last) = last {
            assert!(first <= last, "first_seen {first} after last_seen {last}");
        }
    }
    assert_eq!(after["devices"][0]["status"], "online");
    assert_eq!(
        after["devices"][2]["status"], "offline",
        "never sent a reading"
    );
    assert_eq!(after["devices"][2]["last_seen"], Value::Null);

    app.shutdown();
    tokio::time::timeout(WAIT, app.wait())
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_search_and_every_bad_parameter() {
    let pg = Postgres::start().await;
    let mut s = settings(&pg.url(), "mqtt://127.0.0.1:1", "vigil-api-4");
    s.mqtt.enabled = false;
    s.api.max_page_size = 50;
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let now = Utc::now().timestamp_millis();
    let mut body: Vec<Value> = (0..30)
        .map(|i| json!({"device_id": format!("node-{i:02}"), "metric": "v", "ts": now, "value": i}))
        .collect();
    body.push(json!({"device_id": "Gateway-A", "metric": "v", "ts": now, "value": 99}));
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/ingest"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let devices = format!("{base}/api/v1/devices");
    wait_json("31 devices", &devices, |l| l["total"] == 31).await;

    let ids = |l: &Value| -> Vec<String> {
        l["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, p) = get(&format!("{devices}?limit=10&offset=25")).await;
    assert_eq!(
        (
            p["total"].as_u64(),
            p["limit"].as_u64(),
            p["offset"].as_u64()
        ),
        (Some(31), Some(10), Some(25))
    );
    assert_eq!(
        ids(&p),
        ["node-24", "node-25", "node-26", "node-27", "node-28", "node-29"]
    );
    assert_eq!(
        ids(&get(&format!("{devices}?limit=2")).await.1),
        ["Gateway-A", "node-00"]
    );
    let (_, p) = get(&format!("{devices}?offset=100")).await;
    assert_eq!((p["total"].as_u64(), ids(&p).len()), (Some(31), 0));

    let (_, p) = get(&format!("{devices}?q=ODE-1&limit=3&offset=1")).await;
    assert_eq!(p["total"], 10);
    assert_eq!(ids(&p), ["node-11", "node-12", "node-13"]);
    let (_, p) = get(&format!("{devices}?q=gateway&status=online")).await;
    assert_eq!(ids(&p), ["Gateway-A"]);
    let (_, p) = get(&format!("{devices}?status=offline")).await;
    assert_eq!(p["total"], 0);
    let (_, p) = get(&format!("{devices}?q=&limit=50")).await;
    assert_eq!((p["total"].as_u64(), ids(&p).len()), (Some(31), 31));

    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=51", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("limit=-1", "limit"),
        ("limit=5&limit=6", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("status=sideways", "status"),
        ("status=", "status"),
        ("q=x&colour=red", "colour"),
        (&format!("q={}", "a".repeat(1025)), "q"),
    ] {
        let (status, body) = get(&format!("{devices}?{query}")).await;
        assert_eq!(status, 400, "?{query} → {body}");
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("?{query}: {body}"));
        assert!(
            message.contains(name),
            "?{query}: {message:?} does not name {name}"
        );
    }

    let (status, body) = get(&format!("{devices}/node-99")).await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("node-99"),
        "{body}"
    );
    for bad in ["bad%20id", "a%2Fb", &"x".repeat(129)] {
        let (status, body) = get(&format!("{devices}/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains("device"), "{body}");
    }
    let (status, body) = get(&format!("{devices}/Gateway-A")).await;
    assert_eq!(status, 200);
    assert_eq!(body["latest"]["v"]["value"], 99.0);

    app.shutdown();
    tokio::time::timeout(WAIT, app.wait())
        .await
        .expect("clean shutdown");
}
