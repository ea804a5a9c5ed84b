//! The broker restarts mid-stream (SIGTERM, persistence on): vigil reconnects,
//! re-subscribes, and stores exactly what was published.

mod common;

use std::time::Duration;

use common::vigil::{
    assert_stream_stored, metric, publish_stream_acked, settings, wait_ready, wait_stream_rows,
    Publisher,
};
use common::{Mosquitto, Postgres};

const N: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing() {
    let pg = Postgres::start().await;
    let mut broker = Mosquitto::start();
    let db = pg.url();
    let app = vigil::app::start(settings(&db, &broker.url(), "vigil-restart"))
        .await
        .expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let p = Publisher::connect(broker.port(), "restart-publisher");
    let stream = publish_stream_acked(&p, N, 3_000);
    let restart = async {
        wait_stream_rows(&db, 3_000, Duration::from_secs(60)).await;
        broker.stop();
        broker.start_again();
    };
    tokio::join!(stream, restart);
    wait_stream_rows(&db, N as i64, Duration::from_secs(120)).await;
    assert_stream_stored(&db, N).await;
    assert!(
        metric(&base, "vigil_mqtt_connects_total").await >= 2.0,
        "vigil reconnected"
    );
    assert_eq!(metric(&base, "vigil_mqtt_connected").await, 1.0);

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
