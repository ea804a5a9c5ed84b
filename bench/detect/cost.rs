//! Cost at scale: points scored per second on one thread, bytes per series, and whether
//! model fits on another thread slow scoring down.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use vigil::detect::learned::fit;
use vigil::detect::{Params, SeriesDetector};

/// Readings scored between two looks at the fit results, like one live batch.
const BATCH: usize = 1_000;

/// One timed scoring phase.
#[derive(Debug)]
pub struct Phase {
    pub points: u64,
    pub elapsed: Duration,
    /// CPU time of the scoring thread (the machine may be shared: this is per core).
    pub cpu: Option<Duration>,
    pub fits: u64,
    /// Slowest and 99th-percentile batch of `BATCH` readings.
    pub batch_max: Duration,
    pub batch_p99: Duration,
}

impl Phase {
    /// Points per second of wall-clock time.
    pub fn rate(&self) -> f64 {
        self.points as f64 / self.elapsed.as_secs_f64()
    }

    /// Points per second of the scoring thread's CPU time.
    pub fn rate_per_core(&self) -> Option<f64> {
        self.cpu.map(|c| self.points as f64 / c.as_secs_f64())
    }
}

/// CPU time (user + system) of the calling thread, from /proc (10 ms resolution).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Everything measured.
#[derive(Debug)]
pub struct CostReport {
    pub series: usize,
    pub warm_points: u64,
    /// Bytes each detector holds, by its own accounting (struct + heap), mean.
    pub state_bytes: f64,
    /// Growth of the process's resident memory per series (allocator overhead included).
    pub rss_bytes: Option<f64>,
    pub with_fits: Phase,
    pub without_fits: Phase,
    /// Mean duration of one fit on the worker.
    pub fit_mean: Duration,
}

fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A table of Gaussian noise, so generating readings costs a lookup, not the detector's time.
fn noise_table(seed: u64) -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..1 << 20)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(1e-12);
            let u2: f64 = rng.random();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

struct Fleet {
    detectors: Vec<SeriesDetector>,
    noise: Vec<f64>,
    /// Readings given to every series so far.
    step: usize,
}

impl Fleet {
    fn value(&self, s: usize, i: usize) -> f64 {
        let n = self.noise[(s * 7919 + i * 104_729) & ((1 << 20) - 1)];
        (s % 97) as f64 * 3.0 + (1.0 + (s % 7) as f64) * n
    }

    /// Gives every series `rounds` more readings, one series after another per round.
    /// `fits`: None = never fit; Some((tx, rx)) = offer due fits to the worker (one at a
    /// time, as `detect.training_workers = 1`) and install what came back each batch.
    fn run(&mut self, rounds: usize, mut fits: Option<&mut Worker>) -> Phase {
        let mut batches = Vec::new();
        let mut done = 0;
        let mut count = 0;
        let started = Instant::now();
        let cpu_start = thread_cpu();
        let mut batch_start = Instant::now();
        for r in 0..rounds {
            let i = self.step + r;
            for s in 0..self.detectors.len() {
                let ts = i as i64 * 60_000;
                let v = self.value(s, i);
                let d = &mut self.detectors[s];
                std::hint::black_box(d.score(ts, v));
                if let Some(w) = fits.as_deref_mut() {
                    w.offer(s, d);
                }
                count += 1;
                if count % BATCH == 0 {
                    if let Some(w) = fits.as_deref_mut() {
                        done += w.install(&mut self.detectors);
                    }
                    let now = Instant::now();
                    batches.push(now - batch_start);
                    batch_start = now;
                }
            }
        }
        let elapsed = started.elapsed();
        let cpu = thread_cpu()
            .zip(cpu_start)
            .map(|(b, a)| b.saturating_sub(a));
        self.step += rounds;
        batches.sort_unstable();
        Phase {
            points: count as u64,
            elapsed,
            cpu,
            fits: done,
            batch_max: batches.last().copied().unwrap_or_default(),
            batch_p99: batches
                .get(batches.len() * 99 / 100)
                .copied()
                .unwrap_or_default(),
        }
    }
}

/// A fitting thread, fed like the live task's blocking pool.
struct Worker {
    jobs: mpsc::Sender<(usize, vigil::detect::learned::TrainingSet)>,
    results: mpsc::Receiver<(usize, Option<vigil::detect::learned::Model>, Duration)>,
    in_flight: bool,
    fit_time: Duration,
    fits: u64,
}

impl Worker {
    fn start() -> Worker {
        let (jobs, job_rx) = mpsc::channel::<(usize, vigil::detect::learned::TrainingSet)>();
        let (res_tx, results) = mpsc::channel();
        std::thread::spawn(move || {
            for (s, set) in job_rx {
                let t = Instant::now();
                let m = fit(&set);
                if res_tx.send((s, m, t.elapsed())).is_err() {
                    return;
                }
            }
        });
        Worker {
            jobs,
            results,
            in_flight: false,
            fit_time: Duration::ZERO,
            fits: 0,
        }
    }

    fn offer(&mut self, s: usize, d: &mut SeriesDetector) {
        if !self.in_flight && d.training_due() {
            self.in_flight = true;
            let _ = self.jobs.send((s, d.training_set()));
        }
    }

    fn install(&mut self, detectors: &mut [SeriesDetector]) -> u64 {
        let mut n = 0;
        while let Ok((s, m, t)) = self.results.try_recv() {
            detectors[s].install(m);
            self.in_flight = false;
            self.fit_time += t;
            self.fits += 1;
            n += 1;
        }
        n
    }
}

/// Measures `series` detectors: warm-up with inline fits, then `rounds` readings each with
/// fits on a worker, then `rounds` more with no fits at all.
pub fn run(series: usize, warm_rounds: usize, rounds: usize) -> CostReport {
    let before = rss();
    let mut fleet = Fleet {
        detectors: (0..series)
            .map(|_| SeriesDetector::new(Params::default()))
            .collect(),
        noise: noise_table(1),
        step: 0,
    };
    for i in 0..warm_rounds {
        for s in 0..series {
            let v = fleet.value(s, i);
            let d = &mut fleet.detectors[s];
            d.score(i as i64 * 60_000, v);
            d.train_if_due();
        }
    }
    fleet.step = warm_rounds;
    let after = rss();
    let state_bytes = fleet
        .detectors
        .iter()
        .map(|d| d.heap_bytes() as f64)
        .sum::<f64>()
        / series as f64;
    let mut worker = Worker::start();
    let with_fits = fleet.run(rounds, Some(&mut worker));
    // Let the last fits land, so both phases start alike.
    while worker.in_flight {
        worker.install(&mut fleet.detectors);
        std::thread::sleep(Duration::from_millis(1));
    }
    let without_fits = fleet.run(rounds, None);
    CostReport {
        series,
        warm_points: (warm_rounds * series) as u64,
        state_bytes,
        rss_bytes: before
            .zip(after)
            .map(|(b, a)| a.saturating_sub(b) as f64 / series as f64),
        with_fits,
        without_fits,
        fit_mean: worker
            .fit_time
            .checked_div(worker.fits.max(1) as u32)
            .unwrap_or_default(),
    }
}
