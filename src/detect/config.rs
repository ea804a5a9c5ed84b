//! The `[detect]` settings, and how they resolve for one series.
//!
//! Patterns name a series as `<device>/<metric>` with MQTT wildcards: `+` matches one
//! level, a final `#` matches the rest. `"+/temperature"`, `"pump-7/#"`, `"#"`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::series::Params;

/// Anomaly detection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Off: no detector task runs (the API still serves stored anomalies).
    pub enabled: bool,
    /// Multiplies every detector's surprise: 2 flags deviations half as large, 0.5 only
    /// those twice as large. One knob for every detector.
    pub sensitivity: f64,
    /// Score in [0, 1] at or above which a reading starts an episode (one anomaly event).
    /// 0.5 means "just anomalous" at sensitivity 1.
    pub threshold: f64,
    /// Readings a new series is observed before it is scored (its score is 0 meanwhile);
    /// a series returning after a silence longer than 64 of its usual intervals warms
    /// up again, keeping what it learned over the long run.
    pub warmup: u32,
    /// Readings per series loaded from the database at start to rebuild the detectors'
    /// state (0: start fresh).
    pub history: u32,
    /// How far back that load looks.
    #[serde(with = "humantime_serde")]
    pub history_window: Duration,
    /// Reading batches queued for the detector beyond the live feed's own buffer; when
    /// full, batches are skipped and counted in `vigil_detect_lagged_total`.
    pub queue_capacity: usize,
    /// Model fits running at once, off the scoring thread.
    pub training_workers: usize,
    /// Series never scored: `<device>/<metric>` patterns (`+` one level, `#` the rest).
    pub disabled: Vec<String>,
    /// Per-series settings; the first matching pattern wins.
    pub overrides: Vec<DetectOverride>,
}

/// Settings for the series matching `pattern`; unset fields keep the section's value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectOverride {
    /// `<device>/<metric>` with `+` and `#`, e.g. `"+/cpu"`.
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u32>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        let p = Params::default();
        DetectConfig {
            enabled: true,
            sensitivity: p.sensitivity,
            threshold: p.threshold,
            warmup: p.warmup,
            history: 256,
            history_window: Duration::from_secs(24 * 3600),
            queue_capacity: 65_536,
            training_workers: 1,
            disabled: Vec::new(),
            overrides: Vec::new(),
        }
    }
}

impl DetectConfig {
    /// The parameters of series without an override (and of `vigil detect`).
    pub fn params(&self) -> Params {
        Params {
            sensitivity: self.sensitivity,
            threshold: self.threshold,
            warmup: self.warmup,
        }
    }

    /// The parameters for one series, or `None` when it is disabled.
    pub fn params_for(&self, device: &str, metric: &str) -> Option<Params> {
        if self
            .disabled
            .iter()
            .any(|p| pattern_matches(p, device, metric))
        {
            return None;
        }
        let mut p = self.params();
        if let Some(o) = self
            .overrides
            .iter()
            .find(|o| pattern_matches(&o.pattern, device, metric))
        {
            p.sensitivity = o.sensitivity.unwrap_or(p.sensitivity);
            p.threshold = o.threshold.unwrap_or(p.threshold);
            p.warmup = o.warmup.unwrap_or(p.warmup);
        }
        Some(p)
    }

    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_sensitivity("detect.sensitivity", self.sensitivity)?;
        check_threshold("detect.threshold", self.threshold)?;
        if self.queue_capacity == 0 {
            return Err(("detect.queue_capacity", "must be at least 1".into()));
        }
        if self.training_workers == 0 {
            return Err(("detect.training_workers", "must be at least 1".into()));
        }
        for p in &self.disabled {
            check_pattern("detect.disabled", p)?;
        }
        for o in &self.overrides {
            check_pattern("detect.overrides.pattern", &o.pattern)?;
            if let Some(s) = o.sensitivity {
                check_sensitivity("detect.overrides.sensitivity", s)?;
            }
            if let Some(t) = o.threshold {
                check_threshold("detect.overrides.threshold", t)?;
            }
        }
        Ok(())
    }
}

fn check_sensitivity(key: &'static str, s: f64) -> Result<(), (&'static str, String)> {
    if !(s.is_finite() && (0.01..=100.0).contains(&s)) {
        return Err((key, format!("must be between 0.01 and 100, not {s}")));
    }
    Ok(())
}

fn check_threshold(key: &'static str, t: f64) -> Result<(), (&'static str, String)> {
    if !(t > 0.0 && t <= 1.0) {
        return Err((key, format!("must be in (0, 1], not {t}")));
    }
    Ok(())
}

fn check_pattern(key: &'static str, p: &str) -> Result<(), (&'static str, String)> {
    let levels: Vec<&str> = p.split('/').collect();
    let hash_ok = levels
        .iter()
        .enumerate()
        .all(|(i, l)| !l.contains('#') || (*l == "#" && i == levels.len() - 1));
    let plus_ok = levels.iter().all(|l| !l.contains('+') || *l == "+");
    let shape_ok = levels.len() == 2 || levels.last() == Some(&"#");
    if p.is_empty() || !hash_ok || !plus_ok || !shape_ok || levels.len() > 2 {
        return Err((
            key,
            format!(
                "{p:?} is not a <device>/<metric> pattern (`+` one level, a final `#` the rest)"
            ),
        ));
    }
    Ok(())
}

/// Whether `device/metric` matches an MQTT-style `pattern`.
pub fn pattern_matches(pattern: &str, device: &str, metric: &str) -> bool {
    let mut levels = pattern.split('/');
    for name in [device, metric] {
        match levels.next() {
            Some("#") => return true,
            Some("+") => {}
            Some(l) if l == name => {}
            _ => return false,
        }
    }
    matches!(levels.next(), None | Some("#"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_mqtt_filters() {
        assert!(pattern_matches("#", "pump-7", "temp"));
        assert!(pattern_matches("pump-7/#", "pump-7", "temp"));
        assert!(pattern_matches("+/temp", "pump-7", "temp"));
        assert!(pattern_matches("pump-7/+", "pump-7", "hum"));
        assert!(pattern_matches("pump-7/temp", "pump-7", "temp"));
        assert!(!pattern_matches("pump-7/temp", "pump-7", "hum"));
        assert!(!pattern_matches("+/temp", "pump-7", "hum"));
        assert!(!pattern_matches("pump-8/#", "pump-7", "temp"));
    }

    #[test]
    fn overrides_and_disabled_resolve_per_series() {
        let c = DetectConfig {
            disabled: vec!["test-+/#".into(), "+/door".into()],
            overrides: vec![DetectOverride {
                pattern: "+/cpu".into(),
                sensitivity: Some(0.5),
                threshold: None,
                warmup: Some(100),
            }],
            ..DetectConfig::default()
        };
        // `test-+` is not a wildcard level: it only matches literally.
        assert!(c.validate().is_err());
        let c = DetectConfig {
            disabled: vec!["+/door".into()],
            ..c
        };
        c.validate().expect("valid");
        assert_eq!(c.params_for("a", "door"), None);
        let cpu = c.params_for("a", "cpu").expect("enabled");
        assert_eq!(
            (cpu.sensitivity, cpu.warmup, cpu.threshold),
            (0.5, 100, 0.5)
        );
        assert_eq!(c.params_for("a", "temp"), Some(c.params()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = DetectConfig {
            threshold: 0.0,
            ..DetectConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "detect.threshold");
        let c = DetectConfig {
            sensitivity: f64::NAN,
            ..DetectConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "detect.sensitivity");
        assert!(check_pattern("k", "a/b/c").is_err());
        assert!(check_pattern("k", "#").is_ok());
        assert!(check_pattern("k", "a/#").is_ok());
    }
}
