//! The pure core of the device registry: what vigil knows of each device, updated from
//! committed readings, device updates and the stored registry, with the time passed in.
//!
//! Presence is decided from two kinds of event, each with its time: *heard* (a reading
//! arrived, or an `online` status) and *offline* (an `offline` status, usually a Last
//! Will). The later one wins, so events may be merged in any order — the start-up load
//! and the live feed run side by side. A device heard from within `offline_after`, with
//! no `offline` since, is online.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::view::{Device, DeviceList, Filter, Latest, Status};
use crate::ingest::reading::{DeviceUpdate, Reading};

/// What one [`Fleet::sweep`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Status changes to announce now.
    pub changed: Vec<Transition>,
    /// Devices known.
    pub known: usize,
    /// Of those, online.
    pub online: usize,
}

/// One device's row of the `devices` table, as loaded at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    pub device_id: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
    /// `None` when the stored metadata is the empty default.
    pub meta: Option<serde_json::Value>,
    pub status: Option<Status>,
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// A status change the registry decided itself (silence, or a reading after silence or
/// an `offline`), to be announced to live clients. Status messages travel on the feed
/// already and yield none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub device_id: String,
    pub status: Status,
}

#[derive(Debug, Clone)]
struct Entry {
    first_seen: DateTime<Utc>,
    last_seen: Option<DateTime<Utc>>,
    /// Arrival of its last reading or `online` status.
    heard_at: Option<DateTime<Utc>>,
    /// Arrival of an `offline` status not followed by anything heard.
    offline_at: Option<DateTime<Utc>>,
    /// The status live clients were last told (or would assume).
    announced: Status,
    meta: Option<Arc<serde_json::Value>>,
    latest: BTreeMap<String, Latest>,
}

impl Entry {
    fn new(first_seen: DateTime<Utc>) -> Entry {
        Entry {
            first_seen,
            last_seen: None,
            heard_at: None,
            offline_at: None,
            announced: Status::Offline,
            meta: None,
            latest: BTreeMap::new(),
        }
    }

    fn heard(&mut self, at: DateTime<Utc>) {
        self.heard_at = self.heard_at.max(Some(at));
        if self.offline_at.is_some_and(|o| o <= at) {
            self.offline_at = None;
        }
    }

    fn went_offline(&mut self, at: DateTime<Utc>) {
        if self.heard_at.is_none_or(|h| at >= h) {
            self.offline_at = self.offline_at.max(Some(at));
        }
    }

    /// The status given `cutoff`: whoever was last heard before it is silent too long.
    fn status(&self, cutoff: DateTime<Utc>) -> Status {
        match self.heard_at {
            Some(h) if self.offline_at.is_none() && h >= cutoff => Status::Online,
            _ => Status::Offline,
        }
    }

    fn observe(&mut self, metric: &str, ts: DateTime<Utc>, value: f64) {
        self.first_seen = self.first_seen.min(ts);
        self.last_seen = self.last_seen.max(Some(ts));
        match self.latest.get_mut(metric) {
            // A late reading never hides a newer one.
            Some(l) if l.ts > ts => {}
            Some(l) => *l = Latest { ts, value },
            None => {
                self.latest.insert(metric.to_owned(), Latest { ts, value });
            }
        }
    }
}

/// Every device vigil knows, sorted by id.
#[derive(Debug)]
pub struct Fleet {
    devices: BTreeMap<String, Entry>,
    offline_after: TimeDelta,
}

impl Fleet {
    /// An empty registry; a device silent longer than `offline_after` is offline.
    pub fn new(offline_after: Duration) -> Fleet {
        Fleet {
            devices: BTreeMap::new(),
            offline_after: TimeDelta::from_std(offline_after).unwrap_or(TimeDelta::MAX),
        }
    }

    /// Devices last heard before this are offline at `now` (computed once per pass: the
    /// status check is then a plain comparison).
    fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.offline_after)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn entry(&mut self, device_id: &str, now: DateTime<Utc>) -> &mut Entry {
        // Looked up by &str first so the common case allocates nothing.
        if !self.devices.contains_key(device_id) {
            self.devices.insert(device_id.to_owned(), Entry::new(now));
        }
        self.devices
            .get_mut(device_id)
            .expect("inserted just above when missing")
    }

    /// Committed readings that arrived at `now`.
    pub fn apply_readings(&mut self, readings: &[Reading], now: DateTime<Utc>) {
        for r in readings {
            let new = !self.devices.contains_key(&r.device_id);
            let e = self.entry(&r.device_id, now);
            if new {
                // Its readings introduce it; a status message would only repeat them.
                e.announced = Status::Online;
            }
            e.observe(&r.metric, r.ts, r.value);
            e.heard(now);
        }
    }

    /// A stored metadata or status update that arrived at `now`.
    pub fn apply_update(&mut self, update: &DeviceUpdate, now: DateTime<Utc>) {
        let cutoff = self.cutoff(now);
        match update {
            DeviceUpdate::Meta { device_id, meta } => {
                self.entry(device_id, now).meta = Some(Arc::new(meta.clone()));
            }
            DeviceUpdate::Status { device_id, online } => {
                let e = self.entry(device_id, now);
                if *online {
                    e.heard(now);
                } else {
                    e.went_offline(now);
                }
                // The status message itself tells live clients.
                e.announced = e.status(cutoff);
            }
        }
    }

    /// Merges a stored device (start-up load); what the live feed said wins when newer.
    pub fn merge_stored(&mut self, d: StoredDevice, now: DateTime<Utc>) {
        let cutoff = self.cutoff(now);
        let known = self.devices.contains_key(&d.device_id);
        let e = self.entry(&d.device_id, d.first_seen);
        e.first_seen = e.first_seen.min(d.first_seen);
        e.last_seen = e.last_seen.max(d.last_seen);
        // Reading times come from device clocks; one from the future is not "heard later".
        if let Some(t) = d.last_seen {
            e.heard(t.min(now));
        }
        match (d.status, d.status_changed_at) {
            (Some(Status::Online), Some(t)) => e.heard(t.min(now)),
            (Some(Status::Offline), Some(t)) => e.went_offline(t.min(now)),
            _ => {}
        }
        if e.meta.is_none() {
            e.meta = d.meta.map(Arc::new);
        }
        if !known {
            e.announced = e.status(cutoff);
        }
    }

    /// Merges the newest stored reading of one series (start-up load).
    pub fn merge_latest(&mut self, device_id: &str, metric: &str, latest: Latest) {
        let e = self.entry(device_id, latest.ts);
        e.observe(metric, latest.ts, latest.value);
    }

    /// Status changes live clients have not been told yet, at most `max` of them (the
    /// rest come with the next sweeps): devices gone silent, and devices heard from again
    /// after silence or an `offline` (or known until then by their metadata only). Changes
    /// told by a status message are never repeated here. One pass also counts devices.
    ///
    /// Announcing from here only, and a bounded number at a time, keeps a mass outage or
    /// a mass return from flooding the live feed (whose consumers would lag).
    pub fn sweep(&mut self, now: DateTime<Utc>, max: usize) -> Sweep {
        let cutoff = self.cutoff(now);
        let mut out = Sweep {
            changed: Vec::new(),
            known: self.devices.len(),
            online: 0,
        };
        for (id, e) in &mut self.devices {
            let status = e.status(cutoff);
            if status == Status::Online {
                out.online += 1;
            }
            if status != e.announced && out.changed.len() < max {
                e.announced = status;
                out.changed.push(Transition {
                    device_id: id.clone(),
                    status,
                });
            }
        }
        out
    }

    /// Devices known.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is known.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// One device as the API shows it at `now`.
    pub fn get(&self, device_id: &str, now: DateTime<Utc>) -> Option<Device> {
        let (id, e) = self.devices.get_key_value(device_id)?;
        Some(self.view(id, e, now))
    }

    /// One page of the devices matching `filter`, in id order. Without filters this walks
    /// only up to the page; with filters it scans every device once (no sorting: the map
    /// is kept sorted).
    pub fn list(&self, filter: &Filter, now: DateTime<Utc>) -> DeviceList {
        let page = |total, devices| DeviceList {
            devices,
            total,
            limit: filter.limit,
            offset: filter.offset,
        };
        let cutoff = self.cutoff(now);
        let unfiltered = filter.status.is_none() && filter.q.as_deref().unwrap_or("").is_empty();
        if unfiltered {
            let devices = self
                .devices
                .iter()
                .skip(filter.offset)
                .take(filter.limit)
                .map(|(id, e)| self.view(id, e, now))
                .collect();
            return page(self.devices.len(), devices);
        }
        let mut total = 0;
        let mut devices = Vec::new();
        for (id, e) in &self.devices {
            if !filter.matches_id(id) || filter.status.is_some_and(|s| s != e.status(cutoff)) {
                continue;
            }
            if total >= filter.offset && devices.len() < filter.limit {
                devices.push(self.view(id, e, now));
            }
            total += 1;
        }
        page(total, devices)
    }

    fn view(&self, id: &str, e: &Entry, now: DateTime<Utc>) -> Device {
        Device {
            device_id: id.to_owned(),
            status: e.status(self.cutoff(now)),
            last_seen: e.last_seen,
            first_seen: e.first_seen,
            meta: e.meta.clone(),
            latest: e.latest.clone(),
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
