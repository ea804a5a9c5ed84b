//! CORS on `/api/*`: closed by default; an allowed origin gets the headers (preflight
//! too), another origin does not; paths outside `/api/` never do.

mod common;

use std::time::Duration;

use common::vigil::settings;
use common::{wait_for, Postgres};
use reqwest::header::HeaderMap;
use reqwest::Method;

const OPS: &str = "https://ops.example.com";
const EVIL: &str = "https://evil.example.net";

async fn start(db: &str, origins: &[&str]) -> vigil::app::App {
    let mut s = settings(db, "mqtt://127.0.0.1:1", "vigil-cors");
    s.mqtt.enabled = false;
    s.api.cors_origins = origins.iter().map(|o| o.to_string()).collect();
    let app = vigil::app::start(s).await.expect("vigil starts");
    let url = format!("http://{}/api/v1/devices", app.addr);
    wait_for("the devices API", Duration::from_secs(60), || async {
        reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    app
}

async fn get(app: &vigil::app::App, path: &str, origin: &str) -> HeaderMap {
    let r = reqwest::Client::new()
        .get(format!("http://{}{path}", app.addr))
        .header("origin", origin)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.headers().clone()
}

async fn preflight(app: &vigil::app::App, path: &str, origin: &str) -> (u16, HeaderMap) {
    let r = reqwest::Client::new()
        .request(Method::OPTIONS, format!("http://{}{path}", app.addr))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.headers().clone())
}

fn allowed_origin(h: &HeaderMap) -> Option<&str> {
    h.get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ASCII"))
}

fn cors_headers(h: &HeaderMap) -> Vec<String> {
    h.keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

async fn stop(app: vigil::app::App) {
    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_origins_get_cors_headers_on_the_api() {
    let pg = Postgres::start().await;

    // Closed by default: no CORS header at all, whatever the origin.
    let app = start(&pg.url(), &[]).await;
    for origin in [OPS, EVIL] {
        let h = get(&app, "/api/v1/devices", origin).await;
        assert!(cors_headers(&h).is_empty(), "{h:?}");
        let (_, h) = preflight(&app, "/api/v1/devices", origin).await;
        assert!(cors_headers(&h).is_empty(), "{h:?}");
    }
    stop(app).await;

    let app = start(&pg.url(), &[OPS]).await;
    let h = get(&app, "/api/v1/devices", OPS).await;
    assert_eq!(allowed_origin(&h), Some(OPS));
    let h = get(&app, "/api/openapi.json", OPS).await;
    assert_eq!(allowed_origin(&h), Some(OPS));
    let (status, h) = preflight(&app, "/api/v1/devices", OPS).await;
    assert_eq!(status, 200);
    assert_eq!(allowed_origin(&h), Some(OPS));
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("GET"), "{methods}");
    let headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    // Another origin is refused: no allow-origin header, so the browser blocks it.
    assert_eq!(
        allowed_origin(&get(&app, "/api/v1/devices", EVIL).await),
        None
    );
    assert_eq!(
        allowed_origin(&preflight(&app, "/api/v1/devices", EVIL).await.1),
        None
    );
    // Outside /api/ there is no CORS even for an allowed origin.
    assert_eq!(allowed_origin(&get(&app, "/healthz", OPS).await), None);
    stop(app).await;

    let app = start(&pg.url(), &["*"]).await;
    for origin in [OPS, EVIL] {
        let h = get(&app, "/api/v1/devices", origin).await;
        assert_eq!(allowed_origin(&h), Some(origin));
    }
    stop(app).await;
}
