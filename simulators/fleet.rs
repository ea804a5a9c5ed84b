//! The simulated devices: their series, metadata and samples in round-robin order, with
//! anomalies injected and labelled.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::anomaly::{cut_short, Active, Injector, Label};
use crate::signals::{round3, signal, Kind, KINDS};

/// What a fleet is made of; the same spec and seed give the same fleet.
#[derive(Debug, Clone)]
pub struct Spec {
    pub prefix: String,
    pub devices: usize,
    pub metrics: usize,
    pub seed: u64,
    /// Probability that a sample starts an anomaly on its series.
    pub anomaly_rate: f64,
}

#[derive(Debug, Clone)]
struct Series {
    kind: Kind,
    name: String,
    /// `sensors/{device}/{metric}`, built once.
    topic: String,
    /// In [-1, 1], so that the series of a fleet differ.
    offset: f64,
    /// Last timestamp used: samples of one series never share a millisecond, so every
    /// published reading is a distinct row.
    last_ms: i64,
    anomaly: Option<Active>,
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    model: &'static str,
    lat: f64,
    lon: f64,
    series: Vec<Series>,
}

/// One sample of one series: the value is `None` when a dropout withholds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub device: usize,
    pub metric: usize,
    pub ts_ms: i64,
    pub value: Option<f64>,
}

const MODELS: [&str; 4] = ["TH-200", "PX-10", "MotorGuard 3", "EnviroNode"];

/// A set of devices sampled in turn (device by device, metric by metric).
#[derive(Debug, Clone)]
pub struct Fleet {
    devices: Vec<Device>,
    noise: SmallRng,
    injector: Injector,
    labels: Vec<Label>,
    cursor: (usize, usize),
}

/// A generator seed for one purpose of one shard, so that streams never overlap.
fn stream_seed(seed: u64, part: usize, purpose: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((part as u64) << 8) ^ purpose
}

impl Fleet {
    /// The devices with index ≡ `part` (mod `parts`): one connection's share of the fleet.
    /// Device ids, metadata and signal shapes depend on the seed only, not on `parts`.
    pub fn new(spec: &Spec, part: usize, parts: usize) -> Fleet {
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let all: Vec<Device> = (0..spec.devices)
            .map(|d| make_device(&mut rng, &spec.prefix, d, spec.metrics))
            .collect();
        let devices = all.into_iter().skip(part).step_by(parts.max(1)).collect();
        Fleet {
            devices,
            noise: SmallRng::seed_from_u64(stream_seed(spec.seed, part, 1)),
            injector: Injector::new(
                spec.anomaly_rate,
                SmallRng::seed_from_u64(stream_seed(spec.seed, part, 2)),
            ),
            labels: Vec::new(),
            cursor: (0, 0),
        }
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    pub fn device_id(&self, d: usize) -> &str {
        &self.devices[d].id
    }

    pub fn metric_name(&self, d: usize, m: usize) -> &str {
        &self.devices[d].series[m].name
    }

    /// `sensors/{device}/{metric}`.
    pub fn topic(&self, d: usize, m: usize) -> &str {
        &self.devices[d].series[m].topic
    }

    /// Retained metadata per device: model, location, units per metric.
    pub fn metadata(&self) -> Vec<(String, Vec<u8>)> {
        self.devices
            .iter()
            .map(|d| {
                let units: serde_json::Map<String, serde_json::Value> = d
                    .series
                    .iter()
                    .map(|s| (s.name.clone(), json!(s.kind.unit())))
                    .collect();
                let meta = json!({
                    "model": d.model,
                    "location": {"lat": d.lat, "lon": d.lon},
                    "units": units,
                });
                (d.id.clone(), meta.to_string().into_bytes())
            })
            .collect()
    }

    /// The next sample in turn, taken at `now_ms` (or just after the series' last one).
    pub fn next_sample(&mut self, now_ms: i64) -> Option<Sample> {
        if self.devices.is_empty() {
            return None;
        }
        let (d, m) = self.cursor;
        self.cursor = if m + 1 < self.devices[d].series.len() {
            (d, m + 1)
        } else {
            ((d + 1) % self.devices.len(), 0)
        };
        Some(self.sample(d, m, now_ms))
    }

    /// One sample of every metric of the next device in turn (for packed formats).
    pub fn next_device(&mut self, now_ms: i64) -> Option<(usize, Vec<Sample>)> {
        if self.devices.is_empty() {
            return None;
        }
        let d = self.cursor.0;
        self.cursor = ((d + 1) % self.devices.len(), 0);
        let samples = (0..self.devices[d].series.len())
            .map(|m| self.sample(d, m, now_ms))
            .collect();
        Some((d, samples))
    }

    fn sample(&mut self, d: usize, m: usize, now_ms: i64) -> Sample {
        let noise = self.noise.random::<f64>() - 0.5;
        let device = &mut self.devices[d];
        let s = &mut device.series[m];
        let ts_ms = now_ms.max(s.last_ms + 1);
        s.last_ms = ts_ms;
        let clean = round3(signal(s.kind, ts_ms, s.offset, noise));
        let out = self
            .injector
            .apply(&mut s.anomaly, s.kind.scale(), ts_ms, clean);
        if let Some((kind, start_ms, end_ms)) = out.finished {
            self.labels.push(Label {
                device: device.id.clone(),
                metric: s.name.clone(),
                kind,
                start_ms,
                end_ms,
            });
        }
        Sample {
            device: d,
            metric: m,
            ts_ms,
            value: out.value.map(round3),
        }
    }

    /// Labels of the anomalies finished since the last call.
    pub fn take_labels(&mut self) -> Vec<Label> {
        std::mem::take(&mut self.labels)
    }

    /// Ends the run: anomalies still under way are labelled up to their last sample.
    pub fn close(&mut self) -> Vec<Label> {
        for device in &mut self.devices {
            for s in &mut device.series {
                if let Some((kind, start_ms, end_ms)) = cut_short(&s.anomaly, s.last_ms) {
                    self.labels.push(Label {
                        device: device.id.clone(),
                        metric: s.name.clone(),
                        kind,
                        start_ms,
                        end_ms,
                    });
                }
                s.anomaly = None;
            }
        }
        self.take_labels()
    }
}

fn make_device(rng: &mut SmallRng, prefix: &str, d: usize, metrics: usize) -> Device {
    let id = format!("{prefix}-{d:04}");
    let series = (0..metrics)
        .map(|m| {
            let (kind, name, _) = KINDS[m % KINDS.len()];
            let name = if m < KINDS.len() {
                name.to_owned()
            } else {
                format!("{name}{}", m / KINDS.len())
            };
            Series {
                kind,
                topic: format!("sensors/{id}/{name}"),
                name,
                offset: rng.random::<f64>() * 2.0 - 1.0,
                last_ms: i64::MIN / 2,
                anomaly: None,
            }
        })
        .collect();
    Device {
        model: MODELS[rng.random_range(0..MODELS.len())],
        lat: ((48.0 + rng.random::<f64>() * 6.0) * 1e5).round() / 1e5,
        lon: ((2.0 + rng.random::<f64>() * 14.0) * 1e5).round() / 1e5,
        id,
        series,
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
