//! What `/readyz` reports: can vigil do its job right now?

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::metrics::Metrics;

/// Reachability of the two things vigil cannot work without.
#[derive(Debug)]
pub struct Health {
    /// False when MQTT intake is switched off: the broker then does not count.
    broker_required: bool,
    broker: AtomicBool,
    database: AtomicBool,
    /// False until the migrations are applied: a reachable database without the
    /// schema cannot take readings yet.
    schema: AtomicBool,
}

/// The readiness answer, serialised as `/readyz`'s body.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub broker: &'static str,
    pub database: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<&'static str>,
}

impl Health {
    /// Everything starts unreachable until proven otherwise.
    pub fn new(broker_required: bool) -> Health {
        Health {
            broker_required,
            broker: AtomicBool::new(false),
            database: AtomicBool::new(false),
            schema: AtomicBool::new(false),
        }
    }

    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Relaxed);
    }

    pub fn set_database(&self, up: bool) {
        self.database.store(up, Ordering::Relaxed);
    }

    /// Marks the schema as migrated (or managed elsewhere).
    pub fn set_schema_ready(&self) {
        self.schema.store(true, Ordering::Relaxed);
    }

    pub fn database(&self) -> bool {
        self.database.load(Ordering::Relaxed)
    }

    /// Sets the connection gauges from the current state (at every scrape).
    pub fn observe(&self, metrics: &Metrics) {
        metrics
            .mqtt_connected
            .set(i64::from(self.broker.load(Ordering::Relaxed)));
        metrics.database_up.set(i64::from(self.database()));
    }

    /// The current answer.
    pub fn readiness(&self) -> Readiness {
        let broker = self.broker.load(Ordering::Relaxed);
        let database = self.database();
        let mut reasons = Vec::new();
        if self.broker_required && !broker {
            reasons.push("not connected to the MQTT broker");
        }
        if !database {
            reasons.push("database unreachable");
        } else if !self.schema.load(Ordering::Relaxed) {
            reasons.push("database schema not migrated yet");
        }
        Readiness {
            ready: reasons.is_empty(),
            broker: match (self.broker_required, broker) {
                (false, _) => "disabled",
                (true, true) => "connected",
                (true, false) => "disconnected",
            },
            database: if database { "reachable" } else { "unreachable" },
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_both_are_up() {
        let h = Health::new(true);
        assert!(!h.readiness().ready);
        h.set_database(true);
        h.set_schema_ready();
        assert_eq!(
            h.readiness().reasons,
            vec!["not connected to the MQTT broker"]
        );
        h.set_broker(true);
        assert!(h.readiness().ready);
        h.set_database(false);
        assert_eq!(h.readiness().reasons, vec!["database unreachable"]);
    }

    #[test]
    fn not_ready_until_the_schema_is_migrated() {
        let h = Health::new(false);
        h.set_database(true);
        assert_eq!(
            h.readiness().reasons,
            vec!["database schema not migrated yet"]
        );
        h.set_schema_ready();
        assert!(h.readiness().ready);
    }

    #[test]
    fn broker_does_not_count_when_mqtt_is_off() {
        let h = Health::new(false);
        h.set_database(true);
        h.set_schema_ready();
        assert!(h.readiness().ready);
        assert_eq!(h.readiness().broker, "disabled");
    }
}
