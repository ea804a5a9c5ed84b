//! What the devices API answers: the JSON shapes of one device and of a page of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a device is reachable, as far as vigil can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Heard from within `api.offline_after`, and no `offline` status since.
    Online,
    /// Silent for longer than `api.offline_after`, or its last word was `offline`
    /// (usually its MQTT Last Will).
    Offline,
}

/// The newest stored value of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Latest {
    /// When the reading was taken (RFC 3339, UTC).
    pub ts: DateTime<Utc>,
    /// The value as stored.
    pub value: f64,
}

/// One device of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "device_id": "pump-7",
    "status": "online",
    "last_seen": "2026-11-23T10:00:00.123Z",
    "first_seen": "2026-11-01T08:00:00Z",
    "meta": {"model": "P-200", "location": {"lat": 52.5, "lon": 13.4}, "units": {"temperature": "°C"}},
    "latest": {"temperature": {"ts": "2026-11-23T10:00:00.123Z", "value": 21.5}}
}))]
pub struct Device {
    /// The device id, `[A-Za-z0-9._:-]{1,128}`.
    pub device_id: String,
    /// Online or offline at the time of the answer.
    pub status: Status,
    /// Time of its newest reading; null while it has sent none.
    pub last_seen: Option<DateTime<Utc>>,
    /// When vigil first heard of it.
    pub first_seen: DateTime<Utc>,
    /// The JSON object last published on `devices/{device}/meta` (model, location
    /// `{"lat","lon"}`, units per metric); null when none was.
    #[schema(value_type = Option<Object>)]
    pub meta: Option<Arc<serde_json::Value>>,
    /// The newest value of each metric, by metric name.
    pub latest: BTreeMap<String, Latest>,
}

/// One page of devices, sorted by `device_id`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceList {
    /// At most `limit` devices, from the `offset`-th match on.
    pub devices: Vec<Device>,
    /// Devices matching the filters, on all pages.
    pub total: usize,
    /// The page size used.
    pub limit: usize,
    /// The matches skipped.
    pub offset: usize,
}

/// Which devices a list request wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A substring of the device id, compared without regard to ASCII case.
    pub q: Option<String>,
    pub status: Option<Status>,
    pub limit: usize,
    pub offset: usize,
}

impl Filter {
    /// Whether `device_id` contains `q` (ids are ASCII, so ASCII case folding is enough).
    pub(crate) fn matches_id(&self, device_id: &str) -> bool {
        let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) else {
            return true;
        };
        let (hay, needle) = (device_id.as_bytes(), q.as_bytes());
        hay.len() >= needle.len()
            && hay
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_is_a_case_insensitive_substring() {
        let f = Filter {
            q: Some("PUMP".into()),
            ..Filter::default()
        };
        assert!(f.matches_id("pump-7"));
        assert!(f.matches_id("big-pump"));
        assert!(!f.matches_id("valve-1"));
        assert!(!f.matches_id("pum"));
        assert!(Filter::default().matches_id("anything"));
    }

    #[test]
    fn a_device_serialises_as_the_contract_says() {
        let ts = DateTime::from_timestamp_millis(1_795_000_000_123).expect("valid");
        let d = Device {
            device_id: "pump-7".into(),
            status: Status::Online,
            last_seen: Some(ts),
            first_seen: ts,
            meta: None,
            latest: BTreeMap::from([("temperature".into(), Latest { ts, value: 21.5 })]),
        };
        let v = serde_json::to_value(&d).expect("serialises");
        assert_eq!(v["status"], "online");
        assert_eq!(v["meta"], serde_json::Value::Null);
        assert_eq!(v["latest"]["temperature"]["value"], 21.5);
        let t = v["last_seen"].as_str().expect("a string");
        assert!(t.ends_with('Z') && t.contains(".123"), "{t}");
    }
}
