//! `/api/openapi.json` parses, documents every route of the router, and documents only
//! routes that exist.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::vigil::{settings, wait_ready};
use common::Postgres;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// (path, method) of every `.route("...", method(...))` in the sources.
///
/// Axum cannot list a router's routes, so they are read from the code that builds it.
/// Only literal paths are found: a route added any other way (`nest`, a constant) must
/// be added here.
fn router_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("readable dir") {
                files.push(entry.expect("entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let code = std::fs::read_to_string(&path).expect("readable source");
        for (i, _) in code.match_indices(".route(") {
            let rest = code[i + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                panic!("{}: a .route( without a literal path", path.display());
            };
            let end = rest.find('"').expect("closed literal");
            let route = &rest[..end];
            // The handler part: up to the next route or the end of the chain.
            let tail = &rest[end..];
            let tail = &tail[..tail
                .find(".route(")
                .unwrap_or(tail.len())
                .min(tail.find(';').unwrap_or(tail.len()))];
            let mut found = false;
            for m in METHODS {
                if tail.contains(&format!("{m}(")) {
                    routes.insert((route.to_owned(), m.to_owned()));
                    found = true;
                }
            }
            assert!(
                found,
                "{}: no method found for route {route}",
                path.display()
            );
        }
    }
    routes
}

/// Routes outside the HTTP API proper: the page and the WebSocket, which OpenAPI (a
/// request/response description) does not cover.
fn needs_documenting(path: &str) -> bool {
    path.starts_with("/api/") || ["/healthz", "/readyz", "/metrics"].contains(&path)
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_owned()));
            }
        }
    }
    out
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_parses_and_matches_the_router() {
    let pg = Postgres::start().await;
    let mut s = settings(&pg.url(), "mqtt://127.0.0.1:1", "vigil-openapi");
    s.mqtt.enabled = false;
    let app = vigil::app::start(s).await.expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let r = reqwest::get(format!("{base}/api/openapi.json"))
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "vigil");

    let documented = documented(&doc);
    for route in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/v1/ingest", "post"),
        ("/api/v1/devices", "get"),
        ("/api/v1/devices/{device}", "get"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(
            documented.contains(&(route.0.to_owned(), route.1.to_owned())),
            "{route:?} is not documented"
        );
    }
    let list = &doc["paths"]["/api/v1/devices"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["q", "status", "limit", "offset"]);
    for status in ["200", "400"] {
        assert!(
            list["responses"].get(status).is_some(),
            "devices list {status}"
        );
    }

    // Every schema referenced is defined.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Device",
        "DeviceList",
        "Status",
        "Latest",
        "ErrorBody",
        "IngestResponse",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }

    // Every route of the router is documented ...
    let routes = router_routes();
    assert!(
        routes.contains(&("/api/v1/devices".into(), "get".into())),
        "{routes:?}"
    );
    for (path, method) in &routes {
        if needs_documenting(path) {
            assert!(
                documented.contains(&(path.clone(), method.clone())),
                "{method} {path} is routed but not in /api/openapi.json"
            );
        }
    }

    // ... and every documented operation is routed: axum's answer to an unknown path is
    // an empty 404 and to a wrong method a 405; vigil's own 404s have a JSON body.
    let http = reqwest::Client::new();
    for (path, method) in &documented {
        let concrete = path.replace("{device}", "no-such-device");
        assert!(!concrete.contains('{'), "add a sample value for {path}");
        let url = format!("{base}{concrete}");
        let request = match method.as_str() {
            "get" => http.get(&url),
            "post" => http.post(&url),
            other => panic!("no probe for {other}"),
        };
        // Only the head is read: streaming routes keep their body open.
        let response = tokio::time::timeout(Duration::from_secs(30), request.send())
            .await
            .expect("answered")
            .expect("request");
        let status = response.status().as_u16();
        let has_body = response.content_length().is_none_or(|n| n > 0);
        assert!(
            status != 405 && (status != 404 || has_body),
            "{method} {path} is documented but not routed ({status})"
        );
    }

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
