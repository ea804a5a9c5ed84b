//! The simulated devices and their signals.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::PayloadFormat;

/// What a metric measures, which shapes its signal.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Temperature,
    Humidity,
    Pressure,
    Power,
    Vibration,
    Battery,
}

const KINDS: [(Kind, &str, &str); 6] = [
    (Kind::Temperature, "temperature", "Cel"),
    (Kind::Humidity, "humidity", "%RH"),
    (Kind::Pressure, "pressure", "hPa"),
    (Kind::Power, "power", "W"),
    (Kind::Vibration, "vibration", "mm/s"),
    (Kind::Battery, "battery", "V"),
];

#[derive(Debug, Clone)]
struct Series {
    kind: Kind,
    name: String,
    /// A per-series offset so devices differ.
    offset: f64,
    /// Last timestamp used: readings of one series never share a millisecond.
    last_ms: i64,
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    lat: f64,
    lon: f64,
    series: Vec<Series>,
}

/// A set of devices publishing in turn.
#[derive(Debug, Clone)]
pub struct Fleet {
    devices: Vec<Device>,
    rng: SmallRng,
    /// Round-robin position: (device, metric).
    cursor: (usize, usize),
}

impl Fleet {
    pub fn new(prefix: &str, devices: usize, metrics: usize, seed: u64) -> Fleet {
        let mut rng = SmallRng::seed_from_u64(seed);
        let devices = (0..devices)
            .map(|d| Device {
                id: format!("{prefix}-{d:04}"),
                lat: 48.0 + rng.random::<f64>() * 6.0,
                lon: 2.0 + rng.random::<f64>() * 14.0,
                series: (0..metrics)
                    .map(|m| {
                        let (kind, name, _) = KINDS[m % KINDS.len()];
                        let name = if m < KINDS.len() {
                            name.to_owned()
                        } else {
                            format!("{name}{}", m / KINDS.len())
                        };
                        Series {
                            kind,
                            name,
                            offset: rng.random::<f64>() * 2.0 - 1.0,
                            last_ms: 0,
                        }
                    })
                    .collect(),
            })
            .collect();
        Fleet {
            devices,
            rng,
            cursor: (0, 0),
        }
    }

    /// The devices with index ≡ `part` (mod `parts`), for one connection.
    pub fn shard(&self, part: usize, parts: usize) -> Fleet {
        let devices = self
            .devices
            .iter()
            .skip(part)
            .step_by(parts)
            .cloned()
            .collect();
        Fleet {
            devices,
            rng: SmallRng::seed_from_u64(self.rng.clone().random::<u64>() ^ part as u64),
            cursor: (0, 0),
        }
    }

    pub fn metrics_per_device(&self) -> usize {
        self.devices.first().map_or(0, |d| d.series.len())
    }

    /// Retained metadata per device: model, location, units.
    pub fn metadata(&self) -> Vec<(String, Vec<u8>)> {
        self.devices
            .iter()
            .map(|d| {
                let units: serde_json::Map<String, serde_json::Value> = d
                    .series
                    .iter()
                    .map(|s| (s.name.clone(), json!(unit(s.kind))))
                    .collect();
                let meta = json!({"model": "vigil-sim", "location": {"lat": d.lat, "lon": d.lon}, "units": units});
                (d.id.clone(), meta.to_string().into_bytes())
            })
            .collect()
    }

    /// The next message(s) in turn, with the number of readings each carries.
    pub fn next_messages(
        &mut self,
        format: PayloadFormat,
        now_ms: i64,
    ) -> Vec<(String, Vec<u8>, u64)> {
        if self.devices.is_empty() {
            return Vec::new();
        }
        let (d, m) = self.cursor;
        if format == PayloadFormat::Senml {
            self.cursor = ((d + 1) % self.devices.len(), 0);
            let mut records = Vec::new();
            let n = self.devices[d].series.len();
            for i in 0..n {
                let (ts, v) = self.sample(d, i, now_ms);
                let name = &self.devices[d].series[i].name;
                records.push(json!({"n": name, "t": ts as f64 / 1000.0, "v": v}));
            }
            let topic = format!("sensors/{}", self.devices[d].id);
            return vec![(
                topic,
                serde_json::Value::Array(records).to_string().into_bytes(),
                n as u64,
            )];
        }
        let n = self.devices[d].series.len();
        self.cursor = if m + 1 < n {
            (d, m + 1)
        } else {
            ((d + 1) % self.devices.len(), 0)
        };
        let (ts, v) = self.sample(d, m, now_ms);
        let dev = &self.devices[d];
        let metric = &dev.series[m].name;
        let (topic, payload) = match format {
            PayloadFormat::Json => (
                format!("sensors/{}/{metric}", dev.id),
                format!("{{\"ts\":{ts},\"value\":{v}}}"),
            ),
            PayloadFormat::Bare => (format!("sensors/{}/{metric}", dev.id), format!("{v}")),
            PayloadFormat::Line => (
                "ingest/line".to_owned(),
                format!("{metric},device={} value={v} {}", dev.id, ts * 1_000_000),
            ),
            PayloadFormat::Senml => unreachable!("handled above"),
        };
        vec![(topic, payload.into_bytes(), 1)]
    }

    fn sample(&mut self, d: usize, m: usize, now_ms: i64) -> (i64, f64) {
        let noise: f64 = self.rng.random::<f64>() - 0.5;
        let s = &mut self.devices[d].series[m];
        let ts = now_ms.max(s.last_ms + 1);
        s.last_ms = ts;
        let value = signal(s.kind, ts, s.offset, noise);
        (ts, (value * 1000.0).round() / 1000.0)
    }
}

fn unit(kind: Kind) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _, _)| std::mem::discriminant(k) == std::mem::discriminant(&kind))
        .map_or("", |k| k.2)
}

/// A plausible value of `kind` at `ts_ms`.
fn signal(kind: Kind, ts_ms: i64, offset: f64, noise: f64) -> f64 {
    let day = (ts_ms as f64 / 86_400_000.0) * std::f64::consts::TAU;
    match kind {
        Kind::Temperature => 20.0 + 4.0 * offset + 5.0 * day.sin() + noise * 0.4,
        Kind::Humidity => (45.0 + 10.0 * offset - 8.0 * day.sin() + noise * 2.0).clamp(0.0, 100.0),
        Kind::Pressure => 1013.0 + 6.0 * offset + noise * 0.5,
        Kind::Power => {
            // Load steps: the machine switches between levels every few minutes.
            let step = (ts_ms / 180_000 + (offset * 10.0) as i64) % 3;
            200.0 + 150.0 * step as f64 + noise * 10.0
        }
        Kind::Vibration => {
            let on = (ts_ms / 300_000) % 2 == 0;
            if on {
                4.0 + offset + noise * 0.3
            } else {
                0.2 + noise.abs() * 0.05
            }
        }
        Kind::Battery => 4.2 - ((ts_ms / 1000) % 86_400) as f64 / 86_400.0 * 0.8 + noise * 0.01,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_readings() {
        let mut a = Fleet::new("s", 3, 2, 7);
        let mut b = Fleet::new("s", 3, 2, 7);
        for _ in 0..20 {
            assert_eq!(
                a.next_messages(PayloadFormat::Json, 1_000),
                b.next_messages(PayloadFormat::Json, 1_000)
            );
        }
    }

    #[test]
    fn timestamps_of_a_series_never_repeat() {
        let mut f = Fleet::new("s", 1, 1, 1);
        let first = f.next_messages(PayloadFormat::Json, 5_000);
        let second = f.next_messages(PayloadFormat::Json, 5_000);
        assert_ne!(first[0].1, second[0].1);
        assert!(String::from_utf8_lossy(&second[0].1).contains("\"ts\":5001"));
    }

    #[test]
    fn signals_stay_in_range() {
        for ts in (0..86_400_000).step_by(600_000) {
            for noise in [-0.5, 0.5] {
                let h = signal(Kind::Humidity, ts, 1.0, noise);
                assert!((0.0..=100.0).contains(&h));
                let t = signal(Kind::Temperature, ts, 1.0, noise);
                assert!((-10.0..=40.0).contains(&t));
                let b = signal(Kind::Battery, ts, 0.0, noise);
                assert!((3.3..=4.3).contains(&b));
            }
        }
    }

    #[test]
    fn senml_packs_carry_every_metric_of_a_device() {
        let mut f = Fleet::new("s", 2, 3, 1);
        let m = f.next_messages(PayloadFormat::Senml, 1_000);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "sensors/s-0000");
        assert_eq!(m[0].2, 3);
    }
}
