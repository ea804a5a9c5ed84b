//! PostgreSQL down for seconds mid-stream: vigil stops acking, reports not-ready, keeps
//! everything, and resumes by itself with exactly the published rows.

mod common;

use std::time::Duration;

use common::vigil::{
    assert_stream_stored, publish_stream_acked, settings, wait_ready, wait_stream_rows, Publisher,
};
use common::{wait_for, Mosquitto, Postgres};

const N: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_loses_nothing_and_readyz_tells() {
    let mut pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let app = vigil::app::start(settings(&db, &broker.url(), "vigil-outage"))
        .await
        .expect("vigil starts");
    let base = format!("http://{}", app.addr);
    wait_ready(&base).await;

    let p = Publisher::connect(broker.port(), "outage-publisher");
    let stream = publish_stream_acked(&p, N, 3_000);
    let outage = async {
        wait_stream_rows(&db, 2_000, Duration::from_secs(60)).await;
        pg.stop();
        let url = format!("{base}/readyz");
        wait_for(
            "/readyz to answer 503 while the database is down",
            Duration::from_secs(15),
            || {
                let url = url.clone();
                async move { reqwest::get(&url).await.is_ok_and(|r| r.status() == 503) }
            },
        )
        .await;
        let body = reqwest::get(&url)
            .await
            .expect("readyz")
            .text()
            .await
            .expect("body");
        assert!(body.contains("database unreachable"), "{body}");
        // The outage itself: at least five seconds of a stopped database.
        tokio::time::sleep(Duration::from_secs(5)).await;
        pg.start_again();
    };
    tokio::join!(stream, outage);
    wait_stream_rows(&db, N as i64, Duration::from_secs(120)).await;
    wait_ready(&base).await;
    assert_stream_stored(&db, N).await;

    app.shutdown();
    tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("clean shutdown");
}
