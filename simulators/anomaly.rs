//! Anomaly injection and its ground truth: which samples of a series are disturbed, how,
//! and the label written for each injected anomaly.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::SmallRng;
use rand::Rng;

/// The kinds of anomaly injected, as named in the labels file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyKind {
    Spike,
    LevelShift,
    Drift,
    Stuck,
    NoiseBurst,
    Dropout,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 6] = [
        Self::Spike,
        Self::LevelShift,
        Self::Drift,
        Self::Stuck,
        Self::NoiseBurst,
        Self::Dropout,
    ];

    /// The name used in the labels file.
    pub fn label(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::LevelShift => "level_shift",
            Self::Drift => "drift",
            Self::Stuck => "stuck",
            Self::NoiseBurst => "noise_burst",
            Self::Dropout => "dropout",
        }
    }
}

/// One injected anomaly, as written to the labels file.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub device: String,
    pub metric: String,
    pub kind: AnomalyKind,
    /// Timestamp of the first disturbed (or, for a dropout, withheld) sample, unix ms.
    pub start_ms: i64,
    /// Timestamp of the last one.
    pub end_ms: i64,
}

impl Label {
    /// One line of the labels file (without the newline).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "device": self.device,
            "metric": self.metric,
            "kind": self.kind.label(),
            "start": rfc3339(self.start_ms),
            "end": rfc3339(self.end_ms),
        })
        .to_string()
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An anomaly under way on one series.
#[derive(Debug, Clone)]
pub struct Active {
    kind: AnomalyKind,
    /// Samples it lasts, and samples done so far.
    len: u32,
    done: u32,
    /// Signed size, in the signal's own units.
    magnitude: f64,
    /// The value a stuck sensor keeps repeating.
    stuck: Option<f64>,
    start_ms: i64,
}

/// What the injector did to one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The value to publish; `None` when the sample is withheld (dropout).
    pub value: Option<f64>,
    /// The anomaly that ended with this sample: (kind, start, end).
    pub finished: Option<(AnomalyKind, i64, i64)>,
}

/// Decides when anomalies start and disturbs the samples they cover.
///
/// Its random draws come from its own generator, so a fleet with anomalies has exactly the
/// same clean signal as one without (tests compare the two).
#[derive(Debug, Clone)]
pub struct Injector {
    /// Probability that a sample starts an anomaly on its series (when none is under way).
    rate: f64,
    rng: SmallRng,
}

impl Injector {
    pub fn new(rate: f64, rng: SmallRng) -> Injector {
        Injector { rate, rng }
    }

    /// Applies the series' anomaly (starting one first, maybe) to the clean sample `value`
    /// taken at `ts_ms`; `scale` is the signal's typical movement.
    pub fn apply(
        &mut self,
        state: &mut Option<Active>,
        scale: f64,
        ts_ms: i64,
        value: f64,
    ) -> Outcome {
        if state.is_none() && self.rate > 0.0 && self.rng.random::<f64>() < self.rate {
            *state = Some(self.start(scale, ts_ms));
        }
        let Some(a) = state.as_mut() else {
            return Outcome {
                value: Some(value),
                finished: None,
            };
        };
        let out = match a.kind {
            AnomalyKind::Spike | AnomalyKind::LevelShift => Some(value + a.magnitude),
            AnomalyKind::Drift => {
                Some(value + a.magnitude * f64::from(a.done + 1) / f64::from(a.len))
            }
            AnomalyKind::Stuck => Some(*a.stuck.get_or_insert(value)),
            AnomalyKind::NoiseBurst => {
                // At least one scale away from the clean value, in a random direction.
                let sign = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
                Some(value + sign * a.magnitude.abs() * (1.0 + self.rng.random::<f64>()))
            }
            AnomalyKind::Dropout => None,
        };
        a.done += 1;
        let finished = (a.done >= a.len).then_some((a.kind, a.start_ms, ts_ms));
        if finished.is_some() {
            *state = None;
        }
        Outcome {
            value: out,
            finished,
        }
    }

    fn start(&mut self, scale: f64, ts_ms: i64) -> Active {
        let kind = AnomalyKind::ALL[self.rng.random_range(0..AnomalyKind::ALL.len())];
        let sign = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
        let (len, size) = match kind {
            AnomalyKind::Spike => (1, 6.0 + 2.0 * self.rng.random::<f64>()),
            AnomalyKind::LevelShift => (self.rng.random_range(20..60), 3.0),
            AnomalyKind::Drift => (self.rng.random_range(30..80), 4.0),
            AnomalyKind::Stuck => (self.rng.random_range(20..60), 0.0),
            AnomalyKind::NoiseBurst => (self.rng.random_range(10..30), 1.0),
            AnomalyKind::Dropout => (self.rng.random_range(10..40), 0.0),
        };
        Active {
            kind,
            len,
            done: 0,
            magnitude: sign * size * scale,
            stuck: None,
            start_ms: ts_ms,
        }
    }
}

/// Closes an anomaly cut short by the end of the run: its label ends at `last_ms`, the
/// last sample it covered. `None` when the anomaly had not covered any sample yet.
pub fn cut_short(state: &Option<Active>, last_ms: i64) -> Option<(AnomalyKind, i64, i64)> {
    state
        .as_ref()
        .filter(|a| a.done > 0)
        .map(|a| (a.kind, a.start_ms, last_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_label_is_one_json_line_in_the_agreed_shape() {
        let l = Label {
            device: "sim-0003".into(),
            metric: "temperature".into(),
            kind: AnomalyKind::LevelShift,
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_060_500,
        };
        let v: serde_json::Value = serde_json::from_str(&l.to_json()).unwrap();
        assert_eq!(v["device"], "sim-0003");
        assert_eq!(v["kind"], "level_shift");
        assert_eq!(v["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["end"], "2023-11-14T22:14:20.500Z");
    }

    #[test]
    fn no_rate_no_anomaly() {
        let mut inj = Injector::new(0.0, SmallRng::seed_from_u64(1));
        let mut state = None;
        for ts in 0..1000 {
            let o = inj.apply(&mut state, 1.0, ts, 5.0);
            assert_eq!(o.value, Some(5.0));
            assert!(o.finished.is_none());
        }
    }

    #[test]
    fn every_kind_is_injected_and_each_ends_once() {
        let mut inj = Injector::new(0.05, SmallRng::seed_from_u64(9));
        let mut state = None;
        let mut seen = Vec::new();
        for ts in 0..20_000 {
            if let Some((kind, start, end)) = inj.apply(&mut state, 1.0, ts, 0.0).finished {
                assert!(start <= end);
                seen.push(kind);
            }
        }
        for kind in AnomalyKind::ALL {
            assert!(seen.contains(&kind), "{kind:?} never injected");
        }
    }
}
