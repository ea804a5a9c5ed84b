//! Counters shared by the connections, the live progress line and the final summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// What the simulator has done so far; updated by every connection.
#[derive(Debug, Default)]
pub struct Stats {
    /// Samples taken (readings sent, withheld by a dropout, or replaced by bad input).
    pub slots: AtomicU64,
    /// Good readings published.
    pub readings: AtomicU64,
    /// Messages carrying readings or bad input (not metadata or status).
    pub messages: AtomicU64,
    /// Bad messages published.
    pub bad: AtomicU64,
    /// Readings withheld by dropouts.
    pub withheld: AtomicU64,
    /// Metadata and status messages.
    pub control: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// Connection errors seen.
    pub errors: AtomicU64,
    /// Device connections dropped on purpose (presence mode).
    pub drops: AtomicU64,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The progress line printed every second.
    pub fn progress(&self, elapsed: Duration, last_slots: u64, asked_now: f64) -> String {
        format!(
            "vigil-sim: {:>6.1}s sent {} readings ({}/s, asked {:.0}/s), {} bad, acked {}, errors {}",
            elapsed.as_secs_f64(),
            Stats::get(&self.readings),
            Stats::get(&self.slots).saturating_sub(last_slots),
            asked_now,
            Stats::get(&self.bad),
            Stats::get(&self.acked),
            Stats::get(&self.errors),
        )
    }
}

/// The machine-readable end of a run (`--summary FILE.json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub elapsed_s: f64,
    /// Samples per second asked for (the schedule's mean over the run) and achieved.
    pub asked_rate: f64,
    pub achieved_rate: f64,
    pub samples: u64,
    /// Good readings published: the rows vigil should store.
    pub readings: u64,
    pub messages: u64,
    pub bad_messages: u64,
    pub withheld_readings: u64,
    pub control_messages: u64,
    pub acked: u64,
    /// QoS 1 messages the broker had not acknowledged when the run ended.
    pub unacked: u64,
    pub errors: u64,
    /// vigil's rejection reason → how many bad messages should be rejected with it.
    pub expected_rejections: BTreeMap<String, u64>,
    pub anomalies: u64,
    pub drops: u64,
    /// Devices whose connection was down (will sent) when the run ended.
    pub offline_devices: Vec<String>,
}

impl Summary {
    /// The human summary line(s).
    pub fn text(&self) -> String {
        let mut s = format!(
            "vigil-sim: {} readings in {:.1}s: {:.0} samples/s achieved, {:.0} asked ({:.0}%); \
             {} messages, {} acknowledged by the broker, {} unacknowledged, {} connection errors",
            self.readings,
            self.elapsed_s,
            self.achieved_rate,
            self.asked_rate,
            100.0 * self.achieved_rate / self.asked_rate.max(f64::MIN_POSITIVE),
            self.messages + self.control_messages,
            self.acked,
            self.unacked,
            self.errors,
        );
        if self.anomalies > 0 || self.withheld_readings > 0 {
            s += &format!(
                "\nvigil-sim: {} anomalies injected ({} readings withheld by dropouts)",
                self.anomalies, self.withheld_readings
            );
        }
        if self.bad_messages > 0 {
            let per: Vec<String> = self
                .expected_rejections
                .iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect();
            s += &format!(
                "\nvigil-sim: {} bad messages; expected rejections: {}",
                self.bad_messages,
                per.join(" ")
            );
        }
        if self.drops > 0 {
            s += &format!(
                "\nvigil-sim: {} device connections dropped; offline at the end: {}",
                self.drops,
                self.offline_devices.join(" ")
            );
        }
        s
    }
}
