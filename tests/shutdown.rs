//! SIGTERM mid-stream: vigil stops intake, commits and acknowledges what it took, exits 0,
//! and after a restart nothing is missing and nothing it had committed comes back.

mod common;

use std::time::Duration;

use common::vigil::{
    assert_stream_stored, metric, publish_stream_acked, wait_ready, wait_stream_rows, Publisher,
    VigilProcess,
};
use common::{count_rows, Mosquitto, Postgres};

const N: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_flushes_acks_and_exits_cleanly() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vigil = VigilProcess::start(
        &db,
        &broker.url(),
        "vigil-shutdown",
        dir.path().join("vigil.log"),
        &[],
    );
    wait_ready(&vigil.base()).await;

    let p = Publisher::connect(broker.port(), "shutdown-publisher");
    let stream = publish_stream_acked(&p, N, 4_000);
    let stop = async {
        wait_stream_rows(&db, 5_000, Duration::from_secs(60)).await;
        let code = vigil.terminate_within(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "exit status 0:\n{}", vigil.log_tail());
        let at = count_rows(&db, "SELECT count(*) FROM readings").await;
        assert!(at < N as i64, "stopped mid-stream ({at} of {N})");
        vigil.restart();
        wait_ready(&vigil.base()).await;
    };
    tokio::join!(stream, stop);
    wait_stream_rows(&db, N as i64, Duration::from_secs(120)).await;
    assert_stream_stored(&db, N).await;
    // Everything committed before the stop was acknowledged before the exit, so the
    // broker redelivered none of it.
    assert_eq!(
        metric(&vigil.base(), "vigil_readings_duplicate_total").await,
        0.0,
        "{}",
        vigil.log_tail()
    );
}
