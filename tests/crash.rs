//! Killing vigil with SIGKILL mid-stream loses nothing and duplicates nothing: acks
//! wait for the commit, the broker redelivers the rest, and writes are idempotent.

mod common;

use std::time::Duration;

use common::vigil::{
    assert_stream_stored, publish_stream_acked, wait_ready, wait_stream_rows, Publisher,
    VigilProcess,
};
use common::{count_rows, Mosquitto, Postgres};

const N: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twice_mid_stream_loses_and_duplicates_nothing() {
    let pg = Postgres::start().await;
    let broker = Mosquitto::start();
    let db = pg.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vigil = VigilProcess::start(
        &db,
        &broker.url(),
        "vigil-crash",
        dir.path().join("vigil.log"),
        &[],
    );
    wait_ready(&vigil.base()).await;

    let p = Publisher::connect(broker.port(), "crash-publisher");
    let stream = publish_stream_acked(&p, N, 4_000);
    let chaos = async {
        for threshold in [3_000, 10_000] {
            wait_stream_rows(&db, threshold, Duration::from_secs(120)).await;
            vigil.kill9();
            let at = count_rows(&db, "SELECT count(*) FROM readings").await;
            assert!(at < N as i64, "killed mid-stream ({at} of {N} stored)");
            eprintln!("killed vigil with SIGKILL at {at} rows");
            vigil.restart();
            wait_ready(&vigil.base()).await;
        }
    };
    tokio::join!(stream, chaos);
    wait_stream_rows(&db, N as i64, Duration::from_secs(120)).await;
    assert_stream_stored(&db, N).await;
    assert_eq!(
        vigil.terminate_within(Duration::from_secs(30)).await,
        Some(0),
        "clean exit on SIGTERM:\n{}",
        vigil.log_tail()
    );
    assert_stream_stored(&db, N).await;
}
