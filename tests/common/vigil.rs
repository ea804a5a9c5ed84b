//! Running vigil in tests: in-process (`vigil::app::start`) or as the real binary, plus
//! an MQTT publisher that knows what the broker has accepted.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::task::JoinHandle;
use vigil::config::{IngestAuth, Settings};

use super::{free_port, wait_for};

/// The bearer token test settings use for HTTP ingest.
pub const TOKEN: &str = "test-token";

/// Settings for a test vigil: private database and broker, HTTP on a free port.
pub fn settings(db_url: &str, mqtt_url: &str, client_id: &str) -> Settings {
    let mut s = Settings::default();
    s.database.url = db_url.to_owned();
    s.mqtt.url = mqtt_url.to_owned();
    s.mqtt.client_id = client_id.to_owned();
    s.mqtt.reconnect_max = Duration::from_secs(1);
    s.http.addr = "127.0.0.1:0".parse().expect("valid address");
    s.http.ingest_auth = IngestAuth::Token;
    s.http.ingest_token = TOKEN.to_owned();
    s.writer.retry_max = Duration::from_millis(500);
    s.shutdown.timeout = Duration::from_secs(10);
    s
}

/// Waits until `/readyz` answers 200 at `base` (e.g. `http://127.0.0.1:8080`).
pub async fn wait_ready(base: &str) {
    let url = format!("{base}/readyz");
    wait_for(
        "vigil /readyz to answer 200",
        Duration::from_secs(60),
        || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        },
    )
    .await;
}

/// Fetches `/metrics` and returns the value of the first sample named `name`
/// (with labels, write them as in the exposition, e.g. `x{reason="malformed"}`).
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
}

/// The `vigil serve` binary as a child process, configured by environment.
pub struct VigilProcess {
    child: Option<Child>,
    envs: Vec<(String, String)>,
    pub http_port: u16,
    pub log: PathBuf,
}

impl VigilProcess {
    /// Starts `vigil serve`; `extra` adds `VIGIL_...` variables.
    pub fn start(
        db_url: &str,
        mqtt_url: &str,
        client_id: &str,
        log: PathBuf,
        extra: &[(&str, &str)],
    ) -> VigilProcess {
        let http_port = free_port();
        let mut envs: Vec<(String, String)> = vec![
            ("VIGIL_DATABASE_URL".into(), db_url.into()),
            ("VIGIL_MQTT_URL".into(), mqtt_url.into()),
            ("VIGIL_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}")),
            ("VIGIL_MQTT__CLIENT_ID".into(), client_id.into()),
            ("VIGIL_MQTT__RECONNECT_MAX".into(), "1s".into()),
            ("VIGIL_WRITER__RETRY_MAX".into(), "500ms".into()),
        ];
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut p = VigilProcess {
            child: None,
            envs,
            http_port,
            log,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file writable");
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "vigil=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("vigil binary starts");
        self.child = Some(child);
    }

    /// A handle with no process, to stand in while the real one is moved elsewhere.
    pub fn idle() -> VigilProcess {
        VigilProcess {
            child: None,
            envs: Vec::new(),
            http_port: 0,
            log: PathBuf::new(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// SIGKILL: no flush, no ack, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL delivered");
            c.wait().expect("reaped");
        }
    }

    /// SIGTERM, then waits (without blocking the runtime) for the exit status; panics
    /// if vigil is still running after `timeout`.
    pub async fn terminate_within(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("kill runs");
        let until = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = c.try_wait().expect("child status") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < until,
                "vigil still running {timeout:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop vigil before restarting it");
        self.spawn();
    }

    pub fn log_tail(&self) -> String {
        super::proc::log_tail(&self.log, 40)
    }
}

impl Drop for VigilProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A QoS 1 publisher with a persistent session, counting the broker's PUBACKs.
pub struct Publisher {
    pub client: AsyncClient,
    acked: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Publisher {
    pub fn connect(port: u16, client_id: &str) -> Publisher {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_clean_start(false)
            .set_session_expiry_interval(Some(3600))
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(Some(2 * 1024 * 1024))
            .set_outgoing_inflight_upper_limit(1000);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let counter = acked.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    // The broker is down or restarting: retry (rumqttc resends what is pending).
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            acked,
            task,
        }
    }

    /// Queues one QoS 1 message.
    pub async fn send(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish queued");
    }

    /// Waits until the broker has acknowledged `n` messages in all.
    pub async fn wait_acked(&self, n: u64, timeout: Duration) {
        let acked = self.acked.clone();
        wait_for(
            &format!("the broker to acknowledge {n} publishes"),
            timeout,
            move || {
                let acked = acked.clone();
                async move { acked.load(Ordering::Relaxed) >= n }
            },
        )
        .await;
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes `n` readings, `sensors/s-{i % 20}/v` with `{"ts": start + i, "value": i}`
/// (start an hour ago, in unix ms),
/// at about `per_second`, so a test can act on vigil while the stream is flowing.
pub async fn publish_stream(p: &Publisher, n: u64, per_second: u64) {
    let base_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let chunk = 100;
    let pause = Duration::from_micros(chunk * 1_000_000 / per_second.max(1));
    let mut tick = tokio::time::interval(pause);
    for i in 0..n {
        if i % chunk == 0 {
            tick.tick().await;
        }
        let payload = format!("{{\"ts\":{},\"value\":{i}}}", base_ms + i as i64);
        p.send(&format!("sensors/s-{}/v", i % 20), payload).await;
    }
}

/// [`publish_stream`], then waits until the broker has acknowledged all of it.
pub async fn publish_stream_acked(p: &Publisher, n: u64, per_second: u64) {
    publish_stream(p, n, per_second).await;
    p.wait_acked(n, Duration::from_secs(120)).await;
}

/// Asserts the stream of [`publish_stream`] is stored exactly: every reading once.
pub async fn assert_stream_stored(db: &str, n: u64) {
    let pool = sqlx::PgPool::connect(db).await.expect("db");
    let (count, distinct, sum): (i64, i64, f64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (device_id, metric, ts)), coalesce(sum(value), 0) \
         FROM readings WHERE device_id LIKE 's-%'",
    )
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!(count, n as i64, "rows stored");
    assert_eq!(distinct, n as i64, "no duplicates");
    assert_eq!(sum, (n * (n - 1) / 2) as f64, "every value present");
}

/// Waits until `n` stream rows are stored.
pub async fn wait_stream_rows(db: &str, n: i64, timeout: Duration) {
    let db = db.to_owned();
    wait_for(&format!("{n} stream rows"), timeout, move || {
        let db = db.clone();
        async move {
            super::count_rows(
                &db,
                "SELECT count(*) FROM readings WHERE device_id LIKE 's-%'",
            )
            .await
                >= n
        }
    })
    .await;
}
