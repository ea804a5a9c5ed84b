//! `GET /ws` clients that fall behind or go silent: told how much they skipped, dropped
//! when stuck or dead, while ingest and the other clients go on.

mod common;

use std::time::Duration;

use common::vigil::{metric, Publisher};
use common::wait_for;
use common::ws::{batch, start, tally, WsClient, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_told_how_much_it_skipped() {
    let env = start("vigil-ws-lag", |s| {
        s.stream.queue_capacity = 2;
        s.stream.slow_client_timeout = Duration::from_secs(300);
        s.stream.ping_interval = Duration::from_secs(300);
    })
    .await;
    let mut c = WsClient::connect_small(env.app.addr).await;
    c.subscribe("lag/+").await;
    // 300 batches of 1,000 readings (about 27 MB of JSON): far more than the sockets
    // hold while the client is not reading, so its queue overflows.
    let (batches, per) = (300usize, 1000usize);
    for i in 0..batches {
        env.app
            .live
            .publish(batch("lag", "m", (i * per) as i64, per));
    }
    env.wait_metric("vigil_stream_lagged_total", 1.0).await;
    let (mut received, mut skipped, mut notices) = (0u64, 0u64, 0);
    while received + skipped < (batches * per) as u64 {
        let v = c.next_json().await;
        match v["type"].as_str() {
            Some("readings") => received += v["readings"].as_array().unwrap().len() as u64,
            Some("lagged") => {
                skipped += v["skipped"].as_u64().unwrap();
                notices += 1;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!(
        received + skipped,
        (batches * per) as u64,
        "every reading accounted for"
    );
    assert!(notices >= 1 && skipped > 0);
    assert_eq!(
        metric(&env.base, "vigil_stream_lagged_total").await,
        skipped as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_is_disconnected_while_ingest_and_others_go_on() {
    let env = start("vigil-ws-stuck", |s| {
        s.stream.queue_capacity = 4;
        s.stream.slow_client_timeout = Duration::from_secs(1);
        s.stream.ping_interval = Duration::from_secs(300);
    })
    .await;
    let mut stuck = WsClient::connect_small(env.app.addr).await;
    stuck.subscribe("#").await;
    let mut other = WsClient::connect(env.app.addr).await;
    other.subscribe("+/v").await;
    // The stuck client never reads again while lots of data goes its way...
    let live = env.app.live.clone();
    let flood = tokio::spawn(async move {
        for i in 0..300 {
            live.publish(batch("bulk", "bulk", i * 1000, 1000));
            tokio::task::yield_now().await;
        }
    });
    // ... and ingest goes on meanwhile, every reading stored and acknowledged.
    let p = Publisher::connect(env.broker.port(), "ws-stuck-pub");
    common::vigil::publish_stream_acked(&p, 5000, 5000).await;
    common::vigil::wait_stream_rows(&env.pg.url(), 5000, WAIT).await;
    flood.await.unwrap();
    env.wait_metric("vigil_stream_disconnects_total{reason=\"slow\"}", 1.0)
        .await;
    // The other client got every ingested reading, once.
    let (got, _) = other.readings_until(|all| tally(all).len() >= 5000).await;
    assert_eq!(got.len(), 5000);
    let base = env.base.clone();
    wait_for("the stuck client gone from the gauge", WAIT, move || {
        let base = base.clone();
        async move { metric(&base, "vigil_stream_clients{transport=\"ws\"}").await == 1.0 }
    })
    .await;
    // What reached the stuck client's socket before the end is still readable; then
    // the connection is over.
    while let Some(v) = stuck.next_or_end().await {
        assert!(
            matches!(v["type"].as_str(), Some("readings" | "lagged" | "error")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_dropped() {
    let env = start("vigil-ws-ping", |s| {
        s.stream.ping_interval = Duration::from_millis(300);
    })
    .await;
    let mut silent = WsClient::connect(env.app.addr).await;
    silent.subscribe("#").await;
    let mut alive = WsClient::connect(env.app.addr).await;
    alive.subscribe("#").await;
    // Reading is what answers pings: the live client reads in the background.
    let reader = tokio::spawn(async move {
        let (got, _) = alive.readings_until(|all| !all.is_empty()).await;
        let pings = alive.pings;
        (got, pings, alive)
    });
    env.wait_metric(
        "vigil_stream_disconnects_total{reason=\"ping_timeout\"}",
        1.0,
    )
    .await;
    env.app.live.publish(batch("after", "m", 0, 1));
    let (got, pings, _alive) = reader.await.unwrap();
    assert_eq!(got[0].0, "after");
    assert!(pings >= 1, "vigil pinged the live client");
    assert_eq!(
        metric(&env.base, "vigil_stream_clients{transport=\"ws\"}").await,
        1.0
    );
}
