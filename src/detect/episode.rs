//! Episodes: one event per anomalous stretch, not one per anomalous reading.
//!
//! An event is raised when the score reaches the threshold and no episode is running; the
//! episode then lasts until [`RELEASE`] readings in a row score below
//! [`RELEASE_FRACTION`] of the threshold, and its readings report at most half the
//! threshold, so a level shift or a stuck sensor is one event, not hundreds.

/// Quiet readings that end an episode ...
pub const RELEASE: u32 = 5;
/// ... quiet meaning a raw score below this fraction of the threshold.
pub const RELEASE_FRACTION: f64 = 0.5;

/// The episode state of one series: none, or one in progress (events suppressed).
#[derive(Debug, Clone, Copy, Default)]
pub struct Episodes {
    /// Quiet readings in a row of the running episode; `None` when no episode runs.
    quiet: Option<u32>,
}

impl Episodes {
    /// Gates one raw score against `threshold`: returns the score to report and whether
    /// this reading starts an episode (is an event).
    pub fn step(&mut self, raw: f64, threshold: f64) -> (f64, bool) {
        match &mut self.quiet {
            None if raw >= threshold => {
                self.quiet = Some(0);
                (raw, true)
            }
            None => (raw, false),
            Some(quiet) => {
                *quiet = if raw < RELEASE_FRACTION * threshold {
                    *quiet + 1
                } else {
                    0
                };
                if *quiet >= RELEASE {
                    self.quiet = None;
                }
                (raw.min(threshold) * 0.5, false)
            }
        }
    }

    /// Whether an episode is running.
    pub fn running(&self) -> bool {
        self.quiet.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_stretch_and_release_after_quiet_readings() {
        let mut e = Episodes::default();
        assert_eq!(e.step(0.2, 0.5), (0.2, false));
        assert_eq!(e.step(0.9, 0.5), (0.9, true));
        assert!(e.running());
        assert_eq!(e.step(0.9, 0.5), (0.25, false));
        for _ in 0..RELEASE - 1 {
            assert!(!e.step(0.1, 0.5).1);
        }
        // A reading above the quiet level restarts the count.
        assert!(!e.step(0.3, 0.5).1);
        for _ in 0..RELEASE - 1 {
            e.step(0.1, 0.5);
        }
        assert!(e.running());
        e.step(0.1, 0.5);
        assert!(!e.running());
        assert_eq!(e.step(0.6, 0.5), (0.6, true));
    }
}
