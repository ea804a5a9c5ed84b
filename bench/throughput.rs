//! The highest sustained QoS 1 rate vigil commits with zero loss and a bounded backlog:
//! the offered rate is stepped up until vigil no longer keeps up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::publish::{single, Make, Publishers};
use crate::service::Vigil;

/// How the search runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub devices: u64,
    pub publishers: usize,
    pub start_rate: f64,
    pub factor: f64,
    pub step: Duration,
    pub max_steps: usize,
    pub base_ms: i64,
}

/// One offered rate held for a step.
#[derive(Debug, Clone)]
pub struct Step {
    pub offered: f64,
    /// What the publishers achieved (the broker acknowledging).
    pub published: f64,
    /// Readings vigil committed per second over the second half of the step.
    pub committed: f64,
    /// Published but not committed when the step ended.
    pub backlog: f64,
    /// How much the backlog grew over the second half of the step.
    pub growth: f64,
    pub half_secs: f64,
    pub verdict: Verdict,
}

pub struct Search {
    pub steps: Vec<Step>,
    /// The highest offered rate vigil kept up with.
    pub max: f64,
    pub published: u64,
    pub cpu_s: f64,
    pub rss_mib: f64,
}

/// Why a step passed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The rate was offered and the backlog (published, not yet committed) stayed
    /// bounded: at most 2 s of traffic at the end of the step, growing by less than 5% of
    /// the traffic over the step's second half.
    KeptUp,
    /// vigil fell behind: the backlog grew or got too large.
    FellBehind,
    /// The publishers and the broker could not offer the rate (under 95% of it): the load
    /// generator binds, not vigil, and the search stops there.
    NotOffered,
}

impl Verdict {
    pub fn mark(self) -> &'static str {
        match self {
            Self::KeptUp => "✓",
            Self::FellBehind => "✗",
            Self::NotOffered => "✗ (not offered)",
        }
    }
}

fn verdict(s: &Step) -> Verdict {
    if s.published < 0.95 * s.offered {
        Verdict::NotOffered
    } else if s.backlog <= 2.0 * s.offered && s.growth <= 0.05 * s.offered * s.half_secs {
        Verdict::KeptUp
    } else {
        Verdict::FellBehind
    }
}

pub async fn search(vigil: &Vigil, port: u16, plan: &Plan) -> anyhow::Result<Search> {
    let mut pubs = Publishers::connect(port, plan.publishers, "tp").await?;
    let (devices, base_ms) = (plan.devices, plan.base_ms);
    let make: Make = Arc::new(move |i| single("tp", i, devices, base_ms));
    let mut next = 0u64;
    let mut steps: Vec<Step> = Vec::new();
    let mut peak_rss = 0.0f64;
    let mut rate = plan.start_rate;
    let mut fail: Option<f64> = None;
    let mut best = 0.0f64;
    let mut refined = 0;
    for k in 0..plan.max_steps {
        let n = (rate * plan.step.as_secs_f64()) as u64;
        let started = Instant::now();
        let progress = pubs.progress();
        let half = plan.step / 2;
        let mid = async {
            tokio::time::sleep(half).await;
            let sent = progress.load(std::sync::atomic::Ordering::Relaxed) as f64;
            (sent, vigil.stored().await, Instant::now())
        };
        let (sent, (sent_mid, stored_mid, at_mid)) =
            tokio::join!(pubs.send(next..next + n, make.clone(), Some(rate)), mid);
        sent?;
        let secs = started.elapsed().as_secs_f64();
        next += n;
        let stored_end = vigil.stored().await;
        let half_secs = at_mid.elapsed().as_secs_f64();
        let backlog_mid = sent_mid - stored_mid;
        let backlog = next as f64 - stored_end;
        let step = Step {
            offered: rate,
            published: n as f64 / secs,
            committed: (stored_end - stored_mid) / half_secs,
            backlog,
            growth: backlog - backlog_mid,
            half_secs,
            verdict: Verdict::FellBehind,
        };
        let step = Step {
            verdict: verdict(&step),
            ..step
        };
        eprintln!(
            "  offered {:.0}/s: published {:.0}/s, committed {:.0}/s, backlog {:.0} (grew {:.0}) -> {:?}",
            step.offered,
            step.published,
            step.committed,
            step.backlog,
            step.growth,
            step.verdict
        );
        // Drain before the next step, so each starts with no backlog.
        peak_rss = peak_rss.max(vigil.wait_stored(next as f64).await?);
        let verdict = step.verdict;
        match verdict {
            Verdict::KeptUp => best = best.max(rate),
            _ => fail = Some(fail.map_or(rate, |f: f64| f.min(rate))),
        }
        steps.push(step);
        rate = match fail {
            // Two bisection steps between the last rate kept and the first missed, then stop.
            Some(f) if k + 1 < plan.max_steps && refined < 2 && best > 0.0 && best < f => {
                refined += 1;
                (best + f) / 2.0
            }
            Some(_) => break,
            None => rate * plan.factor,
        };
    }
    pubs.close();
    let (cpu_s, rss) = vigil.resources();
    Ok(Search {
        steps,
        max: best,
        published: next,
        cpu_s,
        rss_mib: rss.max(peak_rss),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_up_needs_the_rate_offered_and_a_bounded_backlog() {
        let s = |published, backlog, growth| Step {
            offered: 10_000.0,
            published,
            committed: 10_000.0,
            backlog,
            growth,
            half_secs: 5.0,
            verdict: Verdict::FellBehind,
        };
        assert_eq!(verdict(&s(10_000.0, 5_000.0, 1_000.0)), Verdict::KeptUp);
        assert_eq!(verdict(&s(10_000.0, 5_000.0, 4_000.0)), Verdict::FellBehind);
        assert_eq!(verdict(&s(10_000.0, 25_000.0, 0.0)), Verdict::FellBehind);
        assert_eq!(verdict(&s(8_000.0, 5_000.0, 0.0)), Verdict::NotOffered);
    }
}
