//! Which clients want what: the hub's index of subscriptions.
//!
//! One map per filter shape, so matching a reading costs four hash look-ups whatever the
//! number of clients, instead of testing every client's filters.

use std::collections::HashMap;

use super::filter::Filter;

/// A connected client, as the hub knows it.
pub type ClientId = u64;

/// Subscriptions by shape. A client appears once per filter it holds.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    all: Vec<ClientId>,
    by_device: HashMap<String, Vec<ClientId>>,
    by_metric: HashMap<String, Vec<ClientId>>,
    by_series: HashMap<String, HashMap<String, Vec<ClientId>>>,
}

impl SubscriptionIndex {
    pub fn add(&mut self, id: ClientId, filter: &Filter) {
        match filter {
            Filter::All => self.all.push(id),
            Filter::Device(d) => self.by_device.entry(d.clone()).or_default().push(id),
            Filter::Metric(m) => self.by_metric.entry(m.clone()).or_default().push(id),
            Filter::Series(d, m) => self
                .by_series
                .entry(d.clone())
                .or_default()
                .entry(m.clone())
                .or_default()
                .push(id),
        }
    }

    /// Removes one subscription of `id` to `filter` (empty entries are dropped so the
    /// index does not keep every device ever seen).
    pub fn remove(&mut self, id: ClientId, filter: &Filter) {
        fn take(ids: &mut Vec<ClientId>, id: ClientId) {
            if let Some(at) = ids.iter().position(|&x| x == id) {
                ids.swap_remove(at);
            }
        }
        match filter {
            Filter::All => take(&mut self.all, id),
            Filter::Device(d) => {
                if let Some(ids) = self.by_device.get_mut(d) {
                    take(ids, id);
                    if ids.is_empty() {
                        self.by_device.remove(d);
                    }
                }
            }
            Filter::Metric(m) => {
                if let Some(ids) = self.by_metric.get_mut(m) {
                    take(ids, id);
                    if ids.is_empty() {
                        self.by_metric.remove(m);
                    }
                }
            }
            Filter::Series(d, m) => {
                if let Some(metrics) = self.by_series.get_mut(d) {
                    if let Some(ids) = metrics.get_mut(m) {
                        take(ids, id);
                        if ids.is_empty() {
                            metrics.remove(m);
                        }
                    }
                    if metrics.is_empty() {
                        self.by_series.remove(d);
                    }
                }
            }
        }
    }

    /// Clients subscribed to everything.
    pub fn everything(&self) -> &[ClientId] {
        &self.all
    }

    /// Appends the clients with a narrower filter matching `device`/`metric` (those in
    /// [`Self::everything`] are not repeated here). A client may appear more than once.
    pub fn narrow_matches(&self, device: &str, metric: &str, out: &mut Vec<ClientId>) {
        if let Some(ids) = self.by_device.get(device) {
            out.extend_from_slice(ids);
        }
        if let Some(ids) = self.by_metric.get(metric) {
            out.extend_from_slice(ids);
        }
        if let Some(ids) = self.by_series.get(device).and_then(|m| m.get(metric)) {
            out.extend_from_slice(ids);
        }
    }

    /// Appends every client whose filters match a device-level message of `device`.
    /// A client may appear more than once.
    pub fn device_matches(&self, device: &str, out: &mut Vec<ClientId>) {
        out.extend_from_slice(&self.all);
        if let Some(ids) = self.by_device.get(device) {
            out.extend_from_slice(ids);
        }
        // `+/metric` has a wildcard device level: it hears about every device.
        for ids in self.by_metric.values() {
            out.extend_from_slice(ids);
        }
        if let Some(metrics) = self.by_series.get(device) {
            for ids in metrics.values() {
                out.extend_from_slice(ids);
            }
        }
    }

    /// Whether nothing is subscribed (every entry was cleaned up).
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
            && self.by_device.is_empty()
            && self.by_metric.is_empty()
            && self.by_series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<ClientId>) -> Vec<ClientId> {
        v.sort_unstable();
        v.dedup();
        v
    }

    fn index() -> SubscriptionIndex {
        let mut ix = SubscriptionIndex::default();
        for (id, f) in [
            (1, "#"),
            (2, "pump-7/+"),
            (3, "+/temp"),
            (4, "pump-7/temp"),
            (5, "pump-8/temp"),
            (2, "pump-7/temp"),
        ] {
            ix.add(id, &Filter::parse(f).unwrap());
        }
        ix
    }

    #[test]
    fn readings_reach_exactly_the_matching_clients() {
        let ix = index();
        assert_eq!(ix.everything(), &[1]);
        let mut out = Vec::new();
        ix.narrow_matches("pump-7", "temp", &mut out);
        assert_eq!(sorted(out), vec![2, 3, 4]);
        let mut out = Vec::new();
        ix.narrow_matches("pump-7", "hum", &mut out);
        assert_eq!(sorted(out), vec![2]);
        let mut out = Vec::new();
        ix.narrow_matches("pump-9", "hum", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn device_messages_reach_every_client_whose_device_level_matches() {
        let ix = index();
        let mut out = Vec::new();
        ix.device_matches("pump-7", &mut out);
        assert_eq!(sorted(out), vec![1, 2, 3, 4]);
        let mut out = Vec::new();
        ix.device_matches("pump-9", &mut out);
        assert_eq!(sorted(out), vec![1, 3]);
    }

    #[test]
    fn removing_every_subscription_leaves_an_empty_index() {
        let mut ix = index();
        for (id, f) in [
            (1, "#"),
            (2, "pump-7/#"),
            (3, "+/temp"),
            (4, "pump-7/temp"),
            (5, "pump-8/temp"),
        ] {
            ix.remove(id, &Filter::parse(f).unwrap());
        }
        let mut out = Vec::new();
        ix.narrow_matches("pump-7", "temp", &mut out);
        assert_eq!(out, vec![2]);
        ix.remove(2, &Filter::parse("pump-7/temp").unwrap());
        assert!(ix.is_empty());
    }
}
