//! Every Prometheus metric vigil exports, in one struct passed through the state.
//!
//! Names carry their unit; labels are bounded (reason, source, route, status), never a
//! device id.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::ingest::reading::RejectReason;

/// Where a reading or message entered vigil.
pub const SOURCES: [&str; 2] = ["mqtt", "http"];

/// vigil's metrics and the registry that exports them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// MQTT PUBLISH packets received from the broker (including redeliveries).
    pub mqtt_messages_received: IntCounter,
    /// Readings that passed validation, by source.
    pub readings_received: IntCounterVec,
    /// Readings newly committed to PostgreSQL.
    pub readings_stored: IntCounter,
    /// Valid readings whose (device, metric, ts) was already stored: redeliveries, retries.
    pub readings_duplicate: IntCounter,
    /// Refused input items, by reason.
    pub rejections: IntCounterVec,
    /// Dead-letter rows newly committed (a redelivered bad message adds none).
    pub dead_letters_stored: IntCounter,
    /// Rows per committed batch.
    pub batch_rows: Histogram,
    /// Time to commit one batch (COPY, insert, commit).
    pub commit_seconds: Histogram,
    /// Batches retried after a transient database failure.
    pub write_retries: IntCounter,
    /// Messages waiting in the intake queue.
    pub queue_depth: IntGauge,
    /// Capacity of the intake queue.
    pub queue_capacity: IntGauge,
    /// 1 while connected to the broker.
    pub mqtt_connected: IntGauge,
    /// Successful connections to the broker (the first one included).
    pub mqtt_connects: IntCounter,
    /// Failed polls of the broker connection (each followed by a back-off).
    pub mqtt_connection_errors: IntCounter,
    /// QoS 1 messages received but whose PUBACK has not been written yet.
    pub mqtt_unacked: IntGauge,
    /// Age of the oldest of those, in seconds (0 when none).
    pub mqtt_oldest_unacked_age_seconds: prometheus::Gauge,
    /// 1 while the last database check or write succeeded.
    pub database_up: IntGauge,
    /// Readings skipped by live consumers that fell behind (broadcast lag).
    pub live_lagged: IntCounter,
    /// HTTP requests by matched route and status.
    pub http_requests: IntCounterVec,
    /// Streaming clients connected, by transport (ws, sse).
    pub stream_clients: IntGaugeVec,
    /// Messages sent to streaming clients, by type.
    pub stream_messages_sent: IntCounterVec,
    /// Readings sent to streaming clients (a reading sent to two clients counts twice).
    pub stream_readings_sent: IntCounter,
    /// Readings or messages streaming clients skipped because they were behind.
    pub stream_lagged: IntCounter,
    /// Streaming clients disconnected, by reason (closed, slow, ping_timeout, shutdown).
    pub stream_disconnects: IntCounterVec,
    /// Streaming connections refused at the `stream.max_connections` cap.
    pub stream_refused: IntCounter,
    /// HTTP request latency by matched route.
    pub http_request_seconds: HistogramVec,
    /// Devices in the in-memory registry.
    pub devices_known: IntGauge,
    /// Of those, devices online (heard from within `api.offline_after`).
    pub devices_online: IntGauge,
    /// Live-feed messages the device registry skipped because it fell behind.
    pub fleet_lagged: IntCounter,
    /// End of the rolled-up history (rollups are complete before it), unix seconds.
    pub rollup_rolled_up_seconds: prometheus::Gauge,
    /// Minutes recomputed because late readings arrived in them.
    pub rollup_late_minutes: IntCounter,
    /// Rollup passes that failed (retried with back-off).
    pub rollup_errors: IntCounter,
    /// History queries by the coarsest source read (raw, 1m, 1h).
    pub history_queries: IntCounterVec,
    /// Rows streamed by exports, by format.
    pub export_rows: IntCounterVec,
    /// Rows deleted by retention, by table.
    pub retention_deleted: IntCounterVec,
    /// When the last complete retention pass ran, unix seconds.
    pub retention_last_run_seconds: prometheus::Gauge,
    /// Retention passes that failed.
    pub retention_errors: IntCounter,
    /// Anomaly events raised, by detector.
    pub anomalies: IntCounterVec,
    /// Readings scored by the detector.
    pub detect_points_scored: IntCounter,
    /// Live-feed messages the detector missed: broadcast lag or its own queue full.
    pub detect_lagged: IntCounter,
    /// Reading batches waiting for the detector.
    pub detect_queue_depth: IntGauge,
    /// Age of the batch being scored (from its arrival on the feed), in seconds.
    pub detect_lag_seconds: prometheus::Gauge,
    /// Series the detector holds state for.
    pub detect_series: IntGauge,
    /// Model fits completed off the scoring thread.
    pub detect_model_fits: IntCounter,
    /// Anomaly events that could not be stored (queue full or shutdown).
    pub detect_events_dropped: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5,
            5.0, 10.0,
        ];
        let rows = vec![
            1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0,
        ];
        let m = Metrics {
            mqtt_messages_received: IntCounter::new(
                "vigil_mqtt_messages_received_total",
                "MQTT PUBLISH packets received from the broker, redeliveries included",
            )
            .expect("valid metric"),
            readings_received: IntCounterVec::new(
                Opts::new(
                    "vigil_readings_received_total",
                    "Readings that passed validation",
                ),
                &["source"],
            )
            .expect("valid metric"),
            readings_stored: IntCounter::new(
                "vigil_readings_stored_total",
                "Readings newly committed to PostgreSQL",
            )
            .expect("valid metric"),
            readings_duplicate: IntCounter::new(
                "vigil_readings_duplicate_total",
                "Valid readings already stored (redeliveries and retries)",
            )
            .expect("valid metric"),
            rejections: IntCounterVec::new(
                Opts::new("vigil_rejections_total", "Input items refused, by reason"),
                &["reason"],
            )
            .expect("valid metric"),
            dead_letters_stored: IntCounter::new(
                "vigil_dead_letters_stored_total",
                "Dead-letter rows newly committed",
            )
            .expect("valid metric"),
            batch_rows: Histogram::with_opts(
                HistogramOpts::new("vigil_batch_rows", "Rows per committed batch").buckets(rows),
            )
            .expect("valid metric"),
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new("vigil_commit_duration_seconds", "Time to commit one batch")
                    .buckets(latency.clone()),
            )
            .expect("valid metric"),
            write_retries: IntCounter::new(
                "vigil_write_retries_total",
                "Batch writes retried after a transient database failure",
            )
            .expect("valid metric"),
            queue_depth: IntGauge::new("vigil_queue_depth", "Messages in the intake queue")
                .expect("valid metric"),
            queue_capacity: IntGauge::new("vigil_queue_capacity", "Capacity of the intake queue")
                .expect("valid metric"),
            mqtt_connected: IntGauge::new(
                "vigil_mqtt_connected",
                "1 while connected to the broker",
            )
            .expect("valid metric"),
            mqtt_connects: IntCounter::new(
                "vigil_mqtt_connects_total",
                "Successful connections to the broker",
            )
            .expect("valid metric"),
            mqtt_connection_errors: IntCounter::new(
                "vigil_mqtt_connection_errors_total",
                "Broker connection failures",
            )
            .expect("valid metric"),
            mqtt_unacked: IntGauge::new(
                "vigil_mqtt_unacked_messages",
                "QoS 1 messages received whose PUBACK is not written yet",
            )
            .expect("valid metric"),
            mqtt_oldest_unacked_age_seconds: prometheus::Gauge::new(
                "vigil_mqtt_oldest_unacked_age_seconds",
                "Age of the oldest QoS 1 message not acknowledged yet",
            )
            .expect("valid metric"),
            database_up: IntGauge::new("vigil_database_up", "1 while the database is reachable")
                .expect("valid metric"),
            live_lagged: IntCounter::new(
                "vigil_live_lagged_total",
                "Readings batches skipped by live consumers that fell behind",
            )
            .expect("valid metric"),
            http_requests: IntCounterVec::new(
                Opts::new("vigil_http_requests_total", "HTTP requests"),
                &["route", "status"],
            )
            .expect("valid metric"),
            http_request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "vigil_http_request_duration_seconds",
                    "HTTP request latency",
                )
                .buckets(latency),
                &["route"],
            )
            .expect("valid metric"),
            devices_known: IntGauge::new("vigil_devices_known", "Devices in the registry")
                .expect("valid metric"),
            devices_online: IntGauge::new(
                "vigil_devices_online",
                "Devices heard from within api.offline_after and not offline",
            )
            .expect("valid metric"),
            fleet_lagged: IntCounter::new(
                "vigil_fleet_lagged_messages_total",
                "Live-feed messages the device registry skipped because it fell behind",
            )
            .expect("valid metric"),
            stream_clients: IntGaugeVec::new(
                Opts::new("vigil_stream_clients", "Streaming clients connected"),
                &["transport"],
            )
            .expect("valid metric"),
            stream_messages_sent: IntCounterVec::new(
                Opts::new(
                    "vigil_stream_messages_sent_total",
                    "Messages sent to streaming clients, by type",
                ),
                &["type"],
            )
            .expect("valid metric"),
            stream_readings_sent: IntCounter::new(
                "vigil_stream_readings_sent_total",
                "Readings sent to streaming clients, counted per client",
            )
            .expect("valid metric"),
            stream_lagged: IntCounter::new(
                "vigil_stream_lagged_total",
                "Readings or messages skipped by streaming clients that fell behind",
            )
            .expect("valid metric"),
            stream_disconnects: IntCounterVec::new(
                Opts::new(
                    "vigil_stream_disconnects_total",
                    "Streaming clients disconnected, by reason",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            stream_refused: IntCounter::new(
                "vigil_stream_refused_total",
                "Streaming connections refused at stream.max_connections",
            )
            .expect("valid metric"),
            rollup_rolled_up_seconds: prometheus::Gauge::new(
                "vigil_rollup_rolled_up_timestamp_seconds",
                "Rollups are complete for readings before this time",
            )
            .expect("valid metric"),
            rollup_late_minutes: IntCounter::new(
                "vigil_rollup_late_minutes_total",
                "Rollup minutes recomputed because late readings arrived in them",
            )
            .expect("valid metric"),
            rollup_errors: IntCounter::new(
                "vigil_rollup_errors_total",
                "Rollup passes that failed",
            )
            .expect("valid metric"),
            history_queries: IntCounterVec::new(
                Opts::new(
                    "vigil_history_queries_total",
                    "History queries by the coarsest source read",
                ),
                &["source"],
            )
            .expect("valid metric"),
            export_rows: IntCounterVec::new(
                Opts::new("vigil_export_rows_total", "Rows streamed by exports"),
                &["format"],
            )
            .expect("valid metric"),
            retention_deleted: IntCounterVec::new(
                Opts::new(
                    "vigil_retention_deleted_rows_total",
                    "Rows deleted by retention",
                ),
                &["table"],
            )
            .expect("valid metric"),
            retention_last_run_seconds: prometheus::Gauge::new(
                "vigil_retention_last_run_timestamp_seconds",
                "When the last complete retention pass ran",
            )
            .expect("valid metric"),
            retention_errors: IntCounter::new(
                "vigil_retention_errors_total",
                "Retention passes that failed",
            )
            .expect("valid metric"),
            anomalies: IntCounterVec::new(
                Opts::new(
                    "vigil_anomalies_total",
                    "Anomaly events raised, by detector",
                ),
                &["detector"],
            )
            .expect("valid metric"),
            detect_points_scored: IntCounter::new(
                "vigil_detect_points_scored_total",
                "Readings scored by the anomaly detector",
            )
            .expect("valid metric"),
            detect_lagged: IntCounter::new(
                "vigil_detect_lagged_total",
                "Live-feed messages the detector missed (broadcast lag or its queue full)",
            )
            .expect("valid metric"),
            detect_queue_depth: IntGauge::new(
                "vigil_detect_queue_depth",
                "Reading batches waiting for the anomaly detector",
            )
            .expect("valid metric"),
            detect_lag_seconds: prometheus::Gauge::new(
                "vigil_detect_lag_seconds",
                "Age of the batch being scored, from its arrival on the live feed",
            )
            .expect("valid metric"),
            detect_series: IntGauge::new(
                "vigil_detect_series",
                "Series the anomaly detector holds state for",
            )
            .expect("valid metric"),
            detect_model_fits: IntCounter::new(
                "vigil_detect_model_fits_total",
                "Per-series model fits completed off the scoring thread",
            )
            .expect("valid metric"),
            detect_events_dropped: IntCounter::new(
                "vigil_detect_events_dropped_total",
                "Anomaly events that could not be stored",
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.mqtt_messages_received.clone()),
            Box::new(m.readings_received.clone()),
            Box::new(m.readings_stored.clone()),
            Box::new(m.readings_duplicate.clone()),
            Box::new(m.rejections.clone()),
            Box::new(m.dead_letters_stored.clone()),
            Box::new(m.batch_rows.clone()),
            Box::new(m.commit_seconds.clone()),
            Box::new(m.write_retries.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.queue_capacity.clone()),
            Box::new(m.mqtt_connected.clone()),
            Box::new(m.mqtt_connects.clone()),
            Box::new(m.mqtt_connection_errors.clone()),
            Box::new(m.mqtt_unacked.clone()),
            Box::new(m.mqtt_oldest_unacked_age_seconds.clone()),
            Box::new(m.database_up.clone()),
            Box::new(m.live_lagged.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_request_seconds.clone()),
            Box::new(m.devices_known.clone()),
            Box::new(m.devices_online.clone()),
            Box::new(m.fleet_lagged.clone()),
            Box::new(m.stream_clients.clone()),
            Box::new(m.stream_messages_sent.clone()),
            Box::new(m.stream_readings_sent.clone()),
            Box::new(m.stream_lagged.clone()),
            Box::new(m.stream_disconnects.clone()),
            Box::new(m.stream_refused.clone()),
            Box::new(m.rollup_rolled_up_seconds.clone()),
            Box::new(m.rollup_late_minutes.clone()),
            Box::new(m.rollup_errors.clone()),
            Box::new(m.history_queries.clone()),
            Box::new(m.export_rows.clone()),
            Box::new(m.retention_deleted.clone()),
            Box::new(m.retention_last_run_seconds.clone()),
            Box::new(m.retention_errors.clone()),
            Box::new(m.anomalies.clone()),
            Box::new(m.detect_points_scored.clone()),
            Box::new(m.detect_lagged.clone()),
            Box::new(m.detect_queue_depth.clone()),
            Box::new(m.detect_lag_seconds.clone()),
            Box::new(m.detect_series.clone()),
            Box::new(m.detect_model_fits.clone()),
            Box::new(m.detect_events_dropped.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        // Pre-create every bounded label value so dashboards see zeros, not gaps.
        for reason in RejectReason::ALL {
            m.rejections.with_label_values(&[reason.label()]);
        }
        for source in SOURCES {
            m.readings_received.with_label_values(&[source]);
        }
        for t in crate::stream::Transport::ALL {
            m.stream_clients.with_label_values(&[t.label()]);
        }
        for kind in crate::stream::shell::MESSAGE_TYPES {
            m.stream_messages_sent.with_label_values(&[kind]);
        }
        for end in crate::stream::shell::End::ALL {
            m.stream_disconnects.with_label_values(&[end.label()]);
        }
        for source in ["raw", "1m", "1h"] {
            m.history_queries.with_label_values(&[source]);
        }
        for format in ["csv", "arrow"] {
            m.export_rows.with_label_values(&[format]);
        }
        for table in crate::store::retention::Table::ALL {
            m.retention_deleted.with_label_values(&[table.name()]);
        }
        for detector in crate::detect::Detector::ALL {
            m.anomalies.with_label_values(&[detector.label()]);
        }
        m
    }

    /// Counts one rejection.
    pub fn reject(&self, reason: RejectReason) {
        self.rejections.with_label_values(&[reason.label()]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
