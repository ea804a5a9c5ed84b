//! Settings: one typed struct, layered defaults → TOML file → environment.
//!
//! Every key may be overridden by `VIGIL_<SECTION>__<KEY>` (nested tables add more
//! `__<KEY>` levels); `VIGIL_DATABASE_URL`, `VIGIL_MQTT_URL` and `VIGIL_HTTP_ADDR` work as
//! written. A wrong value stops start-up with an error naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::ingest::parse::{Limits, LineOptions};
use crate::ingest::topics::{default_rules, TopicMap, TopicRule};

/// Why the settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type or shape; figment's message names the key.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value parsed but is not acceptable.
    #[error("configuration: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
    /// The file given on the command line does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// All of vigil's settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub mqtt: MqttConfig,
    pub ingest: IngestConfig,
    pub database: DatabaseConfig,
    pub writer: WriterConfig,
    pub live: LiveConfig,
    pub http: HttpConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub api: crate::fleet::ApiConfig,
    pub stream: crate::stream::StreamConfig,
    pub history: crate::history::HistoryConfig,
    pub retention: crate::store::retention::RetentionConfig,
    pub detect: crate::detect::DetectConfig,
}

/// The broker connection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Off: vigil takes readings over HTTP only and `/readyz` ignores the broker.
    pub enabled: bool,
    /// `mqtt://host:port` or `mqtts://host:port`; user and password may be in the URL.
    pub url: String,
    /// Stable client id: the broker keeps this session's queue while vigil restarts.
    pub client_id: String,
    /// Filters subscribed at QoS 1. Topics that arrive but match no `ingest.topics`
    /// rule are dead-lettered as `unmapped_topic`, so keep them a bit wider than the rules.
    pub subscriptions: Vec<String>,
    /// When set, subscribe as `$share/<group>/<filter>` so several vigils split the load.
    pub shared_group: String,
    pub username: String,
    pub password: String,
    /// PEM file of the CA that signed the broker's certificate (enables TLS).
    pub ca_file: String,
    /// PEM client certificate and key for mutual TLS (both or neither).
    pub client_cert_file: String,
    pub client_key_file: String,
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long the broker keeps vigil's session (and queues its messages) while it is away.
    #[serde(with = "humantime_serde")]
    pub session_expiry: Duration,
    /// MQTT v5 Receive Maximum: QoS 1 messages the broker may have un-acked in flight.
    /// Throughput ≈ this / commit latency, so it should cover a whole batch or more.
    pub receive_maximum: u16,
    /// Largest MQTT packet accepted from the broker. Keep it above
    /// `ingest.limits.max_payload_bytes` so an oversized payload reaches vigil and is
    /// dead-lettered instead of breaking the connection.
    pub max_packet_bytes: u32,
    /// Reconnect back-off: first delay, doubling up to the maximum.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "vigil".into(),
            subscriptions: vec!["sensors/#".into(), "ingest/#".into(), "devices/#".into()],
            shared_group: String::new(),
            username: String::new(),
            password: String::new(),
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            keep_alive: Duration::from_secs(30),
            session_expiry: Duration::from_secs(7 * 24 * 3600),
            receive_maximum: 10_000,
            max_packet_bytes: 1024 * 1024,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// Parsing, validation and the intake queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Messages held between intake and the writer. When full, vigil stops reading from
    /// the broker (and HTTP ingest waits): the policy is to block, never to drop.
    pub queue_capacity: usize,
    /// Distinct (device, metric) series one vigil accepts; a new series past it is
    /// rejected as `series_limit`, so a runaway device cannot grow memory without bound.
    pub max_series: usize,
    pub limits: Limits,
    pub line: LineOptions,
    /// Topic → payload format mapping; the first matching rule wins.
    pub topics: Vec<TopicRule>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 20_000,
            max_series: 1_000_000,
            limits: Limits::default(),
            line: LineOptions::default(),
            topics: default_rules(),
        }
    }
}

/// PostgreSQL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
    /// Pool for HTTP queries and health checks (the writers hold their own connections).
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Apply pending migrations when `vigil serve` starts.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://vigil:vigil@127.0.0.1:5432/vigil".into(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            migrate_on_start: true,
        }
    }
}

/// The batched writer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// A batch is flushed when it holds this many rows ...
    pub batch_size: usize,
    /// ... or when this long has passed since its first message arrived.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Writer connections committing batches in parallel (acks stay in receive order).
    pub writers: usize,
    /// Back-off between retries of a batch while the database is unavailable.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often a device's `last_seen` in the registry is refreshed.
    #[serde(with = "humantime_serde")]
    pub registry_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            flush_interval: Duration::from_millis(50),
            writers: 2,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            registry_interval: Duration::from_secs(10),
        }
    }
}

/// The live broadcast of stored readings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Committed batches retained for live consumers; a consumer further behind skips
    /// ahead and is told how many it missed (policy: drop oldest, never block storage).
    pub capacity: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self { capacity: 1024 }
    }
}

/// Who may write readings over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestAuth {
    /// `Authorization: Bearer <http.ingest_token>` required.
    Token,
    /// Anyone who reaches the port may write: for closed networks only.
    None,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub ingest_auth: IngestAuth,
    /// The bearer token for `POST /api/v1/ingest`; empty refuses every write.
    pub ingest_token: String,
    /// Larger request bodies are answered 413.
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ingest_auth: IngestAuth::Token,
            ingest_token: String::new(),
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Stopping.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Flushing, acking and disconnecting must finish within this; past it vigil exits
    /// anyway (nothing is lost: un-acked messages are redelivered).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directives, e.g. `info` or `vigil=debug,sqlx=warn`; `RUST_LOG` wins.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Settings {
    /// Defaults, then `file` (when given), then the environment; validated.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let (prefixed, raw) = (Env::prefixed("VIGIL_"), Env::raw());
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let settings: Settings = figment
            // Only `VIGIL_<SECTION>__<KEY>` names are nested keys; the three short names
            // below are mapped by hand.
            .merge(prefixed.filter(|k| k.as_str().contains("__")).split("__"))
            .merge(
                raw.clone()
                    .only(&["VIGIL_DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(
                raw.clone()
                    .only(&["VIGIL_MQTT_URL"])
                    .map(|_| "mqtt.url".into()),
            )
            .merge(raw.only(&["VIGIL_HTTP_ADDR"]).map(|_| "http.addr".into()))
            .extract()
            .map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mqtt.enabled {
            crate::ingest::bridge::broker_options(&self.mqtt)
                .map_err(|e| invalid("mqtt.url", e.to_string()))?;
            if self.mqtt.subscriptions.is_empty() {
                return Err(invalid(
                    "mqtt.subscriptions",
                    "must list at least one filter",
                ));
            }
            if self.mqtt.receive_maximum == 0 {
                return Err(invalid("mqtt.receive_maximum", "must be at least 1"));
            }
            if (self.mqtt.max_packet_bytes as usize) < self.ingest.limits.max_payload_bytes {
                return Err(invalid(
                    "mqtt.max_packet_bytes",
                    "must be at least ingest.limits.max_payload_bytes, or oversized \
                     payloads break the connection instead of being dead-lettered",
                ));
            }
        }
        if !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return Err(invalid(
                "database.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        TopicMap::new(&self.ingest.topics).map_err(|e| invalid("ingest.topics", e.to_string()))?;
        self.api.validate()?;
        let positive = [
            ("ingest.queue_capacity", self.ingest.queue_capacity),
            ("ingest.max_series", self.ingest.max_series),
            ("writer.batch_size", self.writer.batch_size),
            ("writer.writers", self.writer.writers),
            ("live.capacity", self.live.capacity),
            (
                "database.max_connections",
                self.database.max_connections as usize,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        self.stream
            .validate()
            .map_err(|(key, problem)| invalid(key, problem))?;
        if self.writer.retry_min > self.writer.retry_max {
            return Err(invalid(
                "writer.retry_min",
                "must not exceed writer.retry_max",
            ));
        }
        self.history.validate().map_err(|(k, p)| invalid(k, p))?;
        self.retention.validate().map_err(|(k, p)| invalid(k, p))?;
        self.detect
            .validate()
            .map_err(|(key, problem)| invalid(key, problem))?;
        if self.mqtt.reconnect_min > self.mqtt.reconnect_max {
            return Err(invalid(
                "mqtt.reconnect_min",
                "must not exceed mqtt.reconnect_max",
            ));
        }
        Ok(())
    }

    /// The settings as TOML, for `vigil check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings are plain data and always serialise")
    }
}

#[cfg(test)]
// figment's Jail closures return its large error type; that is its API, not our choice.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn environment_overrides_nested_keys_and_the_short_names() {
        Jail::expect_with(|jail| {
            jail.set_env("VIGIL_WRITER__BATCH_SIZE", "123");
            jail.set_env("VIGIL_INGEST__LIMITS__MAX_PAYLOAD_BYTES", "1000");
            jail.set_env("VIGIL_DATABASE_URL", "postgres://u@db.example/v");
            jail.set_env("VIGIL_MQTT_URL", "mqtt://broker.example:1884");
            jail.set_env("VIGIL_HTTP_ADDR", "127.0.0.1:9999");
            let s = Settings::load(None).expect("valid settings");
            assert_eq!(s.writer.batch_size, 123);
            assert_eq!(s.ingest.limits.max_payload_bytes, 1000);
            assert_eq!(s.database.url, "postgres://u@db.example/v");
            assert_eq!(s.mqtt.url, "mqtt://broker.example:1884");
            assert_eq!(s.http.addr.port(), 9999);
            Ok(())
        });
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("v.toml", "[writer]\nbatch_size = 7\nwriters = 3\n")?;
            jail.set_env("VIGIL_WRITER__WRITERS", "4");
            let s = Settings::load(Some(Path::new("v.toml"))).expect("valid settings");
            assert_eq!((s.writer.batch_size, s.writer.writers), (7, 4));
            Ok(())
        });
    }

    #[test]
    fn wrong_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("VIGIL_WRITER__BATCH_SIZE", "lots");
            let e = Settings::load(None).expect_err("not a number").to_string();
            assert!(e.to_lowercase().contains("writer.batch_size"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("VIGIL_WRITER__BATCH_SIZE", "0");
            let e = Settings::load(None).expect_err("zero").to_string();
            assert!(e.contains("writer.batch_size"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("VIGIL_MQTT_URL", "http://nope");
            let e = Settings::load(None).expect_err("bad scheme").to_string();
            assert!(e.contains("mqtt.url"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("v.toml", "[writer]\nbatch_sise = 7\n")?;
            let e = Settings::load(Some(Path::new("v.toml")))
                .expect_err("typo")
                .to_string();
            assert!(e.contains("batch_sise"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_shipped_default_file_matches_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        Jail::expect_with(|_| {
            let from_file = Settings::load(Some(&path)).expect("config/default.toml is valid");
            assert_eq!(from_file.to_toml(), Settings::default().to_toml());
            Ok(())
        });
    }
}
