//! Command-line flags and their checks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use rumqttc::v5::mqttbytes::QoS;

use crate::bad::BadKind;
use crate::encode::PayloadFormat;
use crate::schedule::{Schedule, Shape};

/// Simulate a fleet of sensors publishing to an MQTT broker in vigil's formats (or, with
/// --to-csv, write the same fleet to CSV files in simulated time).
#[derive(Parser, Debug, Clone)]
#[command(name = "vigil-sim", version, about)]
pub struct Args {
    /// Broker URL.
    #[arg(long, env = "VIGIL_MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    pub url: String,
    /// Number of devices.
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// Metrics per device: temperature, humidity, pressure, power, vibration, battery,
    /// then again with a number suffix.
    #[arg(long, default_value_t = 3)]
    pub metrics: usize,
    /// Total samples per second across the fleet (the target of a ramp, the base of bursts).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Shape of the rate over time.
    #[arg(long, value_enum, default_value_t = Shape::Steady)]
    pub schedule: Shape,
    /// Ramp: the starting rate.
    #[arg(long, default_value_t = 0.0)]
    pub ramp_from: f64,
    /// Ramp: how long the climb to --rate takes, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ramp_time: Option<Duration>,
    /// Bursts: how often a burst starts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub burst_every: Duration,
    /// Bursts: how long a burst lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub burst_for: Duration,
    /// Bursts: the rate during a burst, as a multiple of --rate.
    #[arg(long, default_value_t = 5.0)]
    pub burst_factor: f64,
    /// Stop after this many samples (readings sent, withheld by dropouts, or replaced by
    /// bad input).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long, e.g. 30s, 5m (without it and --count: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// MQTT QoS for readings (0 or 1). Metadata and status always go at QoS 1.
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Payload format.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Json)]
    pub format: PayloadFormat,
    /// Parallel MQTT connections sharing the fleet (0: one per 15,000 samples/s, at least
    /// one). Ignored with --presence.
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Seed: the same seed (and --connections) gives the same values, anomalies and bad
    /// input.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device id prefix: devices are <prefix>-0000, <prefix>-0001, ...
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Probability that a sample starts an anomaly on its series (spike, level_shift,
    /// drift, stuck, noise_burst, dropout), e.g. 0.001.
    #[arg(long, default_value_t = 0.0)]
    pub anomaly_rate: f64,
    /// Write one JSON line per injected anomaly (the ground truth) to this file.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Fraction of messages replaced by malformed ones that vigil must reject.
    #[arg(long, default_value_t = 0.0)]
    pub bad_fraction: f64,
    /// Which kinds of bad input to send, comma-separated (default: all of them).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub bad_kinds: Vec<BadKind>,
    /// Size of the oversized bad messages (above vigil's ingest.limits.max_payload_bytes).
    #[arg(long, default_value_t = 300 * 1024)]
    pub oversize_bytes: usize,
    /// Presence mode: one connection per device, Last Will `offline` retained on
    /// devices/{device}/status, `online` published on connect.
    #[arg(long)]
    pub presence: bool,
    /// Presence mode: every this long, one device (chosen by the seed) drops its connection
    /// without a DISCONNECT, so the broker publishes its will.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub drop_every: Option<Duration>,
    /// Presence mode: how long a dropped device stays away before reconnecting.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub drop_for: Duration,
    /// How long to wait for the broker before giving up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,
    /// Also write the final summary as JSON to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Offline: write per-series CSV files and labels.jsonl to this directory, in
    /// simulated time, instead of publishing.
    #[arg(long)]
    pub to_csv: Option<PathBuf>,
    /// Offline: the simulated start time (RFC 3339).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    pub start: String,
}

impl Args {
    /// Checks the flags together, naming the one at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.devices == 0 || self.metrics == 0 {
            bail!("--devices and --metrics must be at least 1");
        }
        if self.devices > 1_000_000 || self.metrics > 1000 {
            bail!("--devices is limited to 1000000 and --metrics to 1000");
        }
        if !vigil::ingest::parse::valid_id(&format!("{}-0000", self.prefix)) {
            bail!(
                "--prefix {:?} does not make valid device ids ([A-Za-z0-9._:-])",
                self.prefix
            );
        }
        if self.qos > 1 {
            bail!("--qos must be 0 or 1 (got {})", self.qos);
        }
        if !(0.0..=1.0).contains(&self.anomaly_rate) {
            bail!("--anomaly-rate must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.bad_fraction) {
            bail!("--bad-fraction must be between 0 and 1");
        }
        if self.count == Some(0) {
            bail!("--count must be at least 1");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration must be longer than zero");
        }
        if self.drop_every.is_some() && !self.presence {
            bail!("--drop-every needs --presence (one connection per device)");
        }
        if self.drop_every.is_some_and(|d| d.is_zero()) {
            bail!("--drop-every must be longer than zero");
        }
        if self.presence && self.devices > 10_000 {
            bail!("--presence opens one connection per device: at most 10000 devices");
        }
        if self.to_csv.is_some() {
            if self.count.is_none() && self.duration.is_none() {
                bail!("--to-csv needs --count or --duration (simulated time)");
            }
            if self.bad_fraction > 0.0 || self.presence {
                bail!("--bad-fraction and --presence need a broker, not --to-csv");
            }
            self.start_ms()?;
        }
        self.schedule().validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    pub fn qos(&self) -> QoS {
        if self.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            shape: self.schedule,
            rate: self.rate,
            ramp_from: self.ramp_from,
            ramp_secs: self.ramp_time.map_or(0.0, |d| d.as_secs_f64()),
            burst_every: self.burst_every.as_secs_f64(),
            burst_for: self.burst_for.as_secs_f64(),
            burst_factor: self.burst_factor,
        }
    }

    pub fn bad_kinds(&self) -> Vec<BadKind> {
        if self.bad_kinds.is_empty() {
            <BadKind as clap::ValueEnum>::value_variants().to_vec()
        } else {
            self.bad_kinds.clone()
        }
    }

    /// Connections for load mode.
    pub fn connections(&self) -> usize {
        let auto = (self.rate / 15_000.0).ceil() as usize;
        let n = if self.connections == 0 {
            auto
        } else {
            self.connections
        };
        n.clamp(1, self.devices)
    }

    pub fn start_ms(&self) -> anyhow::Result<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.start)
            .map(|t| t.timestamp_millis())
            .map_err(|e| anyhow::anyhow!("--start {:?} is not RFC 3339: {e}", self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> anyhow::Result<Args> {
        let a = Args::try_parse_from(std::iter::once("vigil-sim").chain(flags.iter().copied()))?;
        a.validate()?;
        Ok(a)
    }

    #[test]
    fn bad_flags_are_named() {
        for (flags, word) in [
            (&["--qos", "2"][..], "--qos"),
            (&["--rate", "0"], "--rate"),
            (&["--rate=-5"], "--rate"),
            (&["--devices", "0"], "--devices"),
            (&["--anomaly-rate", "2"], "--anomaly-rate"),
            (&["--bad-fraction=-1"], "--bad-fraction"),
            (&["--drop-every", "1s"], "--presence"),
            (&["--to-csv", "x"], "--count"),
            (
                &["--to-csv", "x", "--count", "5", "--start", "yesterday"],
                "--start",
            ),
            (&["--schedule", "ramp"], "--ramp-time"),
            (&["--prefix", "a/b"], "--prefix"),
            (&["--duration", "soon"], "duration"),
            (&["--format", "xml"], "xml"),
        ] {
            let e = parse(flags).unwrap_err().to_string();
            assert!(e.contains(word), "{flags:?}: {e}");
        }
    }

    #[test]
    fn good_flags_pass_and_connections_scale_with_the_rate() {
        let a = parse(&["--rate", "60000", "--devices", "1000"]).unwrap();
        assert_eq!(a.connections(), 4);
        let a = parse(&["--rate", "10", "--devices", "3", "--connections", "8"]).unwrap();
        assert_eq!(a.connections(), 3);
        assert!(parse(&[
            "--to-csv",
            "d",
            "--duration",
            "1h",
            "--anomaly-rate",
            "0.01"
        ])
        .is_ok());
    }
}
