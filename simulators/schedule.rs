//! Rate control: how many readings are due by a given time into the run.

use clap::ValueEnum;

/// The shape of the offered rate over time.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `--rate` throughout.
    Steady,
    /// From `--ramp-from` up (or down) to `--rate` over `--ramp-time`, then steady.
    Ramp,
    /// `--rate`, with `--burst-factor` × `--rate` for `--burst-for` every `--burst-every`.
    Bursts,
}

/// A rate schedule; pure, time is an argument (seconds since the start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub shape: Shape,
    /// Readings per second (the target of a ramp, the base of bursts).
    pub rate: f64,
    pub ramp_from: f64,
    pub ramp_secs: f64,
    pub burst_every: f64,
    pub burst_for: f64,
    pub burst_factor: f64,
}

impl Schedule {
    /// A steady rate.
    #[cfg(test)]
    pub fn steady(rate: f64) -> Schedule {
        Schedule {
            shape: Shape::Steady,
            rate,
            ramp_from: 0.0,
            ramp_secs: 0.0,
            burst_every: 0.0,
            burst_for: 0.0,
            burst_factor: 1.0,
        }
    }

    /// Checks the parameters, naming the flag at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!(
                "--rate must be a positive number (got {})",
                self.rate
            ));
        }
        match self.shape {
            Shape::Steady => {}
            Shape::Ramp => {
                if !(self.ramp_from.is_finite() && self.ramp_from >= 0.0) {
                    return Err("--ramp-from must be zero or more".into());
                }
                if self.ramp_secs.is_nan() || self.ramp_secs <= 0.0 {
                    return Err("--schedule ramp needs --ramp-time (e.g. 30s)".into());
                }
            }
            Shape::Bursts => {
                if !(self.burst_every > 0.0 && self.burst_for > 0.0)
                    || self.burst_for >= self.burst_every
                {
                    return Err(
                        "--schedule bursts needs --burst-for shorter than --burst-every".into(),
                    );
                }
                if !(self.burst_factor.is_finite() && self.burst_factor > 0.0) {
                    return Err("--burst-factor must be a positive number".into());
                }
            }
        }
        Ok(())
    }

    /// Readings per second asked for at `t` seconds into the run.
    pub fn rate_at(&self, t: f64) -> f64 {
        match self.shape {
            Shape::Steady => self.rate,
            Shape::Ramp if t < self.ramp_secs => {
                self.ramp_from + (self.rate - self.ramp_from) * t / self.ramp_secs
            }
            Shape::Ramp => self.rate,
            Shape::Bursts if t.rem_euclid(self.burst_every) < self.burst_for => {
                self.rate * self.burst_factor
            }
            Shape::Bursts => self.rate,
        }
    }

    /// Readings due in the first `t` seconds (the integral of the rate).
    pub fn due(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match self.shape {
            Shape::Steady => self.rate * t,
            Shape::Ramp => {
                let r = t.min(self.ramp_secs);
                let ramp = self.ramp_from * r
                    + (self.rate - self.ramp_from) * r * r / (2.0 * self.ramp_secs);
                ramp + self.rate * (t - r)
            }
            Shape::Bursts => {
                let per_period = self.burst_for * self.rate * self.burst_factor
                    + (self.burst_every - self.burst_for) * self.rate;
                let periods = (t / self.burst_every).floor();
                let rest = t - periods * self.burst_every;
                let in_burst = rest.min(self.burst_for);
                periods * per_period
                    + in_burst * self.rate * self.burst_factor
                    + (rest - in_burst) * self.rate
            }
        }
    }

    /// The average rate asked for over the first `t` seconds.
    pub fn mean_rate(&self, t: f64) -> f64 {
        if t > 0.0 {
            self.due(t) / t
        } else {
            self.rate_at(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn steady_is_linear() {
        let s = Schedule::steady(1000.0);
        assert!(close(s.due(2.5), 2500.0));
        assert!(close(s.rate_at(100.0), 1000.0));
    }

    #[test]
    fn a_ramp_climbs_then_holds() {
        let s = Schedule {
            shape: Shape::Ramp,
            ramp_from: 100.0,
            ramp_secs: 10.0,
            ..Schedule::steady(1100.0)
        };
        assert!(close(s.rate_at(0.0), 100.0));
        assert!(close(s.rate_at(5.0), 600.0));
        assert!(close(s.rate_at(20.0), 1100.0));
        // Area of the trapezoid, then a rectangle.
        assert!(close(s.due(10.0), 6000.0));
        assert!(close(s.due(12.0), 8200.0));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn bursts_repeat_and_the_integral_matches_the_rate() {
        let s = Schedule {
            shape: Shape::Bursts,
            burst_every: 10.0,
            burst_for: 2.0,
            burst_factor: 5.0,
            ..Schedule::steady(100.0)
        };
        assert!(close(s.rate_at(1.0), 500.0));
        assert!(close(s.rate_at(3.0), 100.0));
        assert!(close(s.rate_at(21.0), 500.0));
        assert!(close(s.due(10.0), 1000.0 + 800.0));
        assert!(close(s.due(21.0), 3600.0 + 500.0));
        // The integral agrees with summing the rate in small steps.
        let sum: f64 = (0..35_000)
            .map(|i| s.rate_at(i as f64 * 0.001 + 0.0005) * 0.001)
            .sum();
        assert!((sum - s.due(35.0)).abs() < 1.0, "{sum} vs {}", s.due(35.0));
    }

    #[test]
    fn bad_parameters_name_the_flag() {
        assert!(Schedule::steady(0.0)
            .validate()
            .unwrap_err()
            .contains("--rate"));
        assert!(Schedule::steady(f64::NAN).validate().is_err());
        let ramp = Schedule {
            shape: Shape::Ramp,
            ..Schedule::steady(10.0)
        };
        assert!(ramp.validate().unwrap_err().contains("--ramp-time"));
        let bursts = Schedule {
            shape: Shape::Bursts,
            burst_every: 1.0,
            burst_for: 2.0,
            ..Schedule::steady(10.0)
        };
        assert!(bursts.validate().unwrap_err().contains("--burst-for"));
    }
}
