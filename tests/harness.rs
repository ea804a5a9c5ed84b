//! Proves the test harness itself: private PostgreSQL and Mosquitto instances start,
//! stop and start again with their data, and the shipped `config/mosquitto.conf` keeps a
//! QoS 1 message queued for an offline persistent session across a broker restart.

mod common;

use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{ConnAck, Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use sqlx::Connection;

use common::{count_rows, wait_for, Mosquitto, Postgres};

/// Upper bound for every single wait in these tests.
const TIMEOUT: Duration = Duration::from_secs(20);

async fn connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    tokio::time::timeout(TIMEOUT, sqlx::PgConnection::connect(url))
        .await
        .unwrap_or_else(|_| panic!("connecting to {url} took over {TIMEOUT:?}"))
}

#[tokio::test]
async fn postgres_starts_stops_and_starts_again_with_its_data() {
    let started = Instant::now();
    let mut pg = Postgres::start().await;
    eprintln!("Postgres::start took {:?}", started.elapsed());
    let url = pg.url();

    let mut conn = connect(&url).await.expect("connect to the fresh cluster");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    sqlx::query("create table kept (id int primary key)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("insert into kept values (1), (2)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let stopping = Instant::now();
    pg.stop();
    eprintln!("Postgres::stop took {:?}", stopping.elapsed());
    assert!(
        connect(&url).await.is_err(),
        "a stopped server must refuse connections"
    );

    let restarting = Instant::now();
    pg.start_again();
    eprintln!("Postgres::start_again took {:?}", restarting.elapsed());
    assert_eq!(pg.url(), url, "the URL survives a restart");
    wait_for("both rows after the restart", TIMEOUT, || async {
        count_rows(&url, "select count(*) from kept").await == 2
    })
    .await;

    // The superuser URL works too (for tests that need to terminate sessions, say).
    assert_eq!(
        count_rows(
            &pg.admin_url(),
            "select count(*) from pg_database where datname = 'vigil'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn two_postgres_instances_run_side_by_side() {
    let (a, b) = tokio::join!(Postgres::start(), Postgres::start());
    assert_ne!(a.port(), b.port());
    for pg in [&a, &b] {
        assert_eq!(
            count_rows(
                &pg.url(),
                "select count(*) from pg_database where datname = 'vigil'"
            )
            .await,
            1
        );
    }
}

#[tokio::test]
async fn wait_for_returns_once_the_condition_holds() {
    let started = Instant::now();
    wait_for("200 ms to pass", TIMEOUT, || async {
        started.elapsed() >= Duration::from_millis(200)
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "timed out after 100ms waiting for the impossible")]
async fn wait_for_panics_with_what_it_waited_for() {
    wait_for("the impossible", Duration::from_millis(100), || async {
        false
    })
    .await;
}

fn mqtt_options(client_id: &str, broker: &Mosquitto) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.port());
    options.set_keep_alive(Duration::from_secs(5));
    options
}

/// A persistent session: the broker keeps its subscriptions and queue while it is away.
fn persistent_options(client_id: &str, broker: &Mosquitto) -> MqttOptions {
    let mut options = mqtt_options(client_id, broker);
    options.set_clean_start(false);
    // Without an expiry interval, MQTT v5 ends the session at disconnect.
    options.set_session_expiry_interval(Some(3600));
    options
}

/// Polls `events` until `pick` accepts an event, under [`TIMEOUT`]. A connection error
/// fails the test: nothing here expects one.
async fn poll_until<T>(
    what: &str,
    events: &mut EventLoop,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let polling = async {
        loop {
            match events.poll().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(e) => panic!("MQTT connection error while waiting for {what}: {e}"),
            }
        }
    };
    tokio::time::timeout(TIMEOUT, polling)
        .await
        .unwrap_or_else(|_| panic!("timed out after {TIMEOUT:?} waiting for {what}"))
}

async fn conn_ack(what: &str, events: &mut EventLoop) -> ConnAck {
    poll_until(what, events, |event| match event {
        Event::Incoming(Packet::ConnAck(ack)) => Some(ack),
        _ => None,
    })
    .await
}

async fn sub_ack(events: &mut EventLoop) {
    poll_until("SUBACK", events, |event| {
        matches!(event, Event::Incoming(Packet::SubAck(_))).then_some(())
    })
    .await;
}

async fn pub_ack(events: &mut EventLoop) {
    poll_until("PUBACK", events, |event| {
        matches!(event, Event::Incoming(Packet::PubAck(_))).then_some(())
    })
    .await;
}

async fn publish_on(topic: &str, events: &mut EventLoop) -> Publish {
    poll_until(
        &format!("a PUBLISH on {topic}"),
        events,
        |event| match event {
            Event::Incoming(Packet::Publish(publish)) if publish.topic == topic.as_bytes() => {
                Some(publish)
            }
            _ => None,
        },
    )
    .await
}

/// Sends DISCONNECT and waits until the broker closes the connection, so it has read it.
async fn disconnect(client: &AsyncClient, events: &mut EventLoop) {
    client.disconnect().await.unwrap();
    let closing = async {
        loop {
            if events.poll().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(TIMEOUT, closing)
        .await
        .unwrap_or_else(|_| panic!("the broker did not close the connection within {TIMEOUT:?}"));
}

#[tokio::test]
async fn mosquitto_delivers_qos1_and_keeps_an_offline_queue_across_a_restart() {
    let started = Instant::now();
    let mut broker = Mosquitto::start();
    eprintln!("Mosquitto::start took {:?}", started.elapsed());
    assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", broker.port()));

    // A client receives its own QoS 1 message.
    let (client, mut events) = AsyncClient::new(mqtt_options("harness-echo", &broker), 10);
    conn_ack("CONNACK", &mut events).await;
    client
        .subscribe("harness/echo", QoS::AtLeastOnce)
        .await
        .unwrap();
    sub_ack(&mut events).await;
    client
        .publish("harness/echo", QoS::AtLeastOnce, false, "hello")
        .await
        .unwrap();
    let echo = publish_on("harness/echo", &mut events).await;
    assert_eq!(echo.payload, "hello");
    assert_eq!(echo.qos, QoS::AtLeastOnce);
    disconnect(&client, &mut events).await;

    // A persistent subscriber subscribes, then goes away.
    let (sub, mut sub_events) =
        AsyncClient::new(persistent_options("harness-persistent", &broker), 10);
    conn_ack("the subscriber's first CONNACK", &mut sub_events).await;
    sub.subscribe("harness/queued", QoS::AtLeastOnce)
        .await
        .unwrap();
    sub_ack(&mut sub_events).await;
    disconnect(&sub, &mut sub_events).await;
    drop((sub, sub_events));

    // While it is offline, a QoS 1 message for it is accepted (PUBACK) and queued.
    let (publisher, mut pub_events) =
        AsyncClient::new(mqtt_options("harness-publisher", &broker), 10);
    conn_ack("the publisher's CONNACK", &mut pub_events).await;
    publisher
        .publish(
            "harness/queued",
            QoS::AtLeastOnce,
            false,
            "queued while offline",
        )
        .await
        .unwrap();
    pub_ack(&mut pub_events).await;
    disconnect(&publisher, &mut pub_events).await;

    // A graceful restart writes and reloads the persistence file.
    let restarting = Instant::now();
    broker.stop();
    broker.start_again();
    eprintln!(
        "Mosquitto stop + start_again took {:?}",
        restarting.elapsed()
    );

    let (sub, mut sub_events) =
        AsyncClient::new(persistent_options("harness-persistent", &broker), 10);
    let ack = conn_ack(
        "the subscriber's CONNACK after the restart",
        &mut sub_events,
    )
    .await;
    assert!(
        ack.session_present,
        "the session must survive the broker restart"
    );
    let queued = publish_on("harness/queued", &mut sub_events).await;
    assert_eq!(queued.payload, "queued while offline");
    disconnect(&sub, &mut sub_events).await;
}

#[tokio::test]
async fn killed_mosquitto_comes_back_on_the_same_port() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    broker.kill();
    broker.start_again();
    assert_eq!(broker.port(), port);
    let (client, mut events) = AsyncClient::new(mqtt_options("harness-after-kill", &broker), 10);
    conn_ack("CONNACK after kill and start_again", &mut events).await;
    disconnect(&client, &mut events).await;
}
