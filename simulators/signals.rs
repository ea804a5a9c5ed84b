//! What each simulated metric measures, and its undisturbed signal over time.

/// What a metric measures, which shapes its signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Temperature,
    Humidity,
    Pressure,
    Power,
    Vibration,
    Battery,
}

/// Every kind in the order metrics are assigned to a device, with its name and unit.
pub const KINDS: [(Kind, &str, &str); 6] = [
    (Kind::Temperature, "temperature", "°C"),
    (Kind::Humidity, "humidity", "%RH"),
    (Kind::Pressure, "pressure", "hPa"),
    (Kind::Power, "power", "W"),
    (Kind::Vibration, "vibration", "mm/s"),
    (Kind::Battery, "battery", "V"),
];

const DAY_MS: f64 = 86_400_000.0;

impl Kind {
    /// The unit written into the device's metadata.
    pub fn unit(self) -> &'static str {
        KINDS.iter().find(|k| k.0 == self).map_or("", |k| k.2)
    }

    /// A typical size of this signal's movements: anomalies are sized in these units so
    /// that a spike on pressure and one on power are equally visible.
    pub fn scale(self) -> f64 {
        match self {
            Kind::Temperature => 3.0,
            Kind::Humidity => 6.0,
            Kind::Pressure => 4.0,
            Kind::Power => 80.0,
            Kind::Vibration => 1.5,
            Kind::Battery => 0.1,
        }
    }

    /// The range the undisturbed signal stays in (anomalies may leave it).
    #[cfg(test)]
    pub fn range(self) -> (f64, f64) {
        match self {
            Kind::Temperature => (5.0, 35.0),
            Kind::Humidity => (0.0, 100.0),
            Kind::Pressure => (985.0, 1040.0),
            Kind::Power => (0.0, 700.0),
            Kind::Vibration => (0.0, 8.0),
            Kind::Battery => (3.3, 4.25),
        }
    }
}

/// The undisturbed value of a `kind` series at `ts_ms` (unix milliseconds).
///
/// `offset` in [-1, 1] makes each series of a fleet differ; `noise` in [-0.5, 0.5] is the
/// sample's random part. Pure, so tests can sweep it.
pub fn signal(kind: Kind, ts_ms: i64, offset: f64, noise: f64) -> f64 {
    let day = (ts_ms as f64 / DAY_MS) * std::f64::consts::TAU;
    let phase = offset * 0.5;
    match kind {
        // A daily cycle peaking in the afternoon, plus sensor noise.
        Kind::Temperature => 20.0 + 4.0 * offset + 5.0 * (day + phase).sin() + noise * 0.6,
        // Relative humidity falls as the air warms.
        Kind::Humidity => {
            (50.0 + 10.0 * offset - 12.0 * (day + phase).sin() + noise * 2.0).clamp(0.0, 100.0)
        }
        // Weather systems pass over a few days.
        Kind::Pressure => {
            1013.0 + 6.0 * offset + 10.0 * (day / 3.0 + offset * 3.0).sin() + noise * 0.4
        }
        // The machine switches between load levels every few minutes.
        Kind::Power => {
            let step = (ts_ms.div_euclid(180_000) + (offset * 10.0) as i64).rem_euclid(4);
            80.0 + 150.0 * step as f64 + noise * 12.0
        }
        // Running for 5 minutes, idle for 5: vibration RMS follows.
        Kind::Vibration => {
            let shift = ((offset + 1.0) * 150_000.0) as i64;
            if (ts_ms + shift).div_euclid(300_000) % 2 == 0 {
                4.0 + offset + noise * 0.4
            } else {
                0.2 + noise.abs() * 0.1
            }
        }
        // A cell drains over five days, then is recharged.
        Kind::Battery => {
            let period = 5.0 * DAY_MS;
            let t = (ts_ms as f64 + (offset + 1.0) * DAY_MS).rem_euclid(period) / period;
            4.15 - 0.75 * t + noise * 0.01
        }
    }
}

/// Rounds to three decimals, as a sensor would report.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_stays_in_its_range_over_a_week() {
        for (kind, _, _) in KINDS {
            let (lo, hi) = kind.range();
            for ts in (0..7 * 86_400_000i64).step_by(60_000) {
                for offset in [-1.0, -0.3, 0.0, 0.7, 1.0] {
                    for noise in [-0.5, 0.0, 0.5] {
                        let v = signal(kind, ts + 1_700_000_000_000, offset, noise);
                        assert!(
                            (lo..=hi).contains(&v),
                            "{kind:?} = {v} at {ts} (offset {offset}, noise {noise})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn temperature_follows_a_daily_cycle() {
        let at = |h: i64| signal(Kind::Temperature, h * 3_600_000, 0.0, 0.0);
        // Warmest a quarter-day in, coolest three quarters in.
        assert!(at(6) - at(18) > 8.0, "{} vs {}", at(6), at(18));
        assert!((at(0) - at(24)).abs() < 1e-9);
    }

    #[test]
    fn vibration_has_on_and_off_cycles_and_power_has_steps() {
        let vib: Vec<f64> = (0..20)
            .map(|m| signal(Kind::Vibration, m * 60_000, 0.0, 0.0))
            .collect();
        assert!(vib.iter().any(|&v| v > 3.0) && vib.iter().any(|&v| v < 0.5));
        let mut levels: Vec<i64> = (0..40)
            .map(|m| signal(Kind::Power, m * 60_000, 0.0, 0.0) as i64)
            .collect();
        levels.dedup();
        assert!(levels.len() >= 4, "load steps: {levels:?}");
    }

    #[test]
    fn the_battery_drains_slowly() {
        let a = signal(Kind::Battery, 0, -1.0, 0.0);
        let b = signal(Kind::Battery, 86_400_000, -1.0, 0.0);
        assert!(a > b && a - b < 0.2, "{a} -> {b}");
    }
}
