//! The series detector on constructed series: each anomaly kind, quiet normal series,
//! irregular time, bounds, episodes.

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use super::finding::Detector;
use super::series::{Params, SeriesDetector};

const STEP_MS: i64 = 60_000;

fn gauss(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Scores `values` one minute apart; returns (index, detector) of every event and all scores.
fn run(values: &[f64]) -> (Vec<(usize, Detector)>, Vec<f64>) {
    let times: Vec<i64> = (0..values.len() as i64).map(|i| i * STEP_MS).collect();
    run_at(&times, values)
}

fn run_at(times: &[i64], values: &[f64]) -> (Vec<(usize, Detector)>, Vec<f64>) {
    let mut d = SeriesDetector::new(Params::default());
    let mut events = Vec::new();
    let mut scores = Vec::new();
    for (i, (&t, &v)) in times.iter().zip(values).enumerate() {
        let s = d.score(t, v);
        d.train_if_due();
        assert!(
            s.score.is_finite() && (0.0..=1.0).contains(&s.score),
            "score {} at {i}",
            s.score
        );
        assert!(s.raw.is_finite() && (0.0..=1.0).contains(&s.raw));
        if let Some(f) = s.event {
            assert!(s.score >= 0.5, "an event scores at least the threshold");
            events.push((i, f.detector()));
        } else {
            assert!(
                s.score < 0.5,
                "a reading without an event scores below the threshold"
            );
        }
        scores.push(s.score);
    }
    (events, scores)
}

fn noise(n: usize, seed: u64, level: f64, sigma: f64) -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| level + sigma * gauss(&mut rng)).collect()
}

#[test]
fn noisy_but_normal_series_stay_quiet() {
    for seed in 0..5 {
        let (events, _) = run(&noise(20_000, seed, 100.0, 5.0));
        assert!(events.is_empty(), "seed {seed}: {events:?}");
    }
    // Correlated noise on a daily cycle, like a machine temperature sampled every minute.
    let mut rng = SmallRng::seed_from_u64(7);
    let mut ar = 0.0;
    let values: Vec<f64> = (0..20_000)
        .map(|i| {
            ar = 0.7 * ar + gauss(&mut rng);
            60.0 + 8.0 * (i as f64 * std::f64::consts::TAU / 1440.0).sin() + ar
        })
        .collect();
    let (events, _) = run(&values);
    assert!(events.len() <= 1, "{events:?}");
}

#[test]
fn a_spike_is_flagged_on_the_reading_by_the_baseline() {
    let mut v = noise(400, 1, 50.0, 2.0);
    v[300] = 50.0 + 2.0 * 15.0;
    let (events, scores) = run(&v);
    assert_eq!(events, vec![(300, Detector::Baseline)]);
    assert!(scores[300] > 0.9);
    // Downward too.
    let mut v = noise(400, 2, 50.0, 2.0);
    v[200] = 50.0 - 2.0 * 15.0;
    assert_eq!(run(&v).0, vec![(200, Detector::Baseline)]);
}

#[test]
fn the_spike_event_explains_itself() {
    let mut d = SeriesDetector::new(Params::default());
    let v = noise(200, 3, 41.0, 1.0);
    for (i, x) in v.iter().enumerate() {
        d.score(i as i64 * STEP_MS, *x);
    }
    let s = d.score(200 * STEP_MS, 87.2);
    let text = s.event.expect("an event").explanation();
    assert!(text.starts_with("value 87.2 is "), "{text}");
    assert!(text.contains("MADs above its recent median 4"), "{text}");
}

#[test]
fn a_level_shift_is_flagged_within_three_readings_once() {
    for (seed, size) in [(4, 6.0), (5, 8.0), (6, -6.0), (8, 20.0)] {
        let mut v = noise(800, seed, 10.0, 1.0);
        for x in &mut v[500..] {
            *x += size;
        }
        let (events, _) = run(&v);
        assert_eq!(events.len(), 1, "shift {size}: one event, got {events:?}");
        let (at, _) = events[0];
        assert!((500..=502).contains(&at), "shift {size} flagged at {at}");
    }
}

#[test]
fn a_stuck_sensor_is_flagged_once_and_its_recovery_is_not() {
    let mut v = noise(600, 9, 20.0, 0.5);
    let stuck = v[299];
    for x in &mut v[300..450] {
        *x = stuck;
    }
    let (events, scores) = run(&v);
    assert_eq!(events.len(), 1, "{events:?}");
    let (at, detector) = events[0];
    assert_eq!(detector, Detector::Stuck, "{events:?}");
    assert!((300..=310).contains(&at), "stuck flagged at {at}");
    assert!(
        scores[at + 1..450].iter().all(|s| *s < 0.5),
        "suppressed while stuck"
    );
}

#[test]
fn a_slow_drift_is_followed_not_flagged_and_a_fast_ramp_is() {
    // 0.01 σ per reading: the series changes its level over days, as equipment ages.
    let mut v = noise(5_000, 10, 30.0, 1.0);
    for (i, x) in v.iter_mut().enumerate() {
        *x += 0.01 * i as f64;
    }
    assert!(run(&v).0.is_empty());
    // A sudden steep ramp (2 σ per reading) is out of character at its start.
    let mut v = noise(600, 11, 30.0, 1.0);
    for (i, x) in v[400..].iter_mut().enumerate() {
        *x += 2.0 * i as f64;
    }
    let (events, _) = run(&v);
    assert!(
        !events.is_empty() && (400..=405).contains(&events[0].0),
        "{events:?}"
    );
}

#[test]
fn irregular_timestamps_and_gaps_are_tolerated() {
    let mut rng = SmallRng::seed_from_u64(12);
    let mut t = 0;
    let mut times = Vec::new();
    for i in 0..6_000 {
        // Jittered sampling, occasional long gaps, and some late duplicates.
        t += if i % 1_000 == 999 {
            6 * 3_600_000
        } else {
            rng.random_range(5_000..120_000)
        };
        times.push(if i % 97 == 0 { t - 200_000 } else { t });
    }
    let mut v = noise(6_000, 13, 5.0, 0.3);
    assert!(run_at(&times, &v).0.is_empty());
    v[4_321] += 0.3 * 20.0;
    assert_eq!(run_at(&times, &v).0, vec![(4_321, Detector::Baseline)]);
}

#[test]
fn scores_stay_in_bounds_on_hostile_input() {
    let mut rng = SmallRng::seed_from_u64(14);
    let mut values = Vec::new();
    for i in 0..5_000 {
        values.push(match i % 7 {
            0 => 1e300,
            1 => -1e300,
            2 => 0.0,
            3 => f64::MIN_POSITIVE,
            4 => rng.random::<f64>() * 1e-300,
            _ => gauss(&mut rng) * 1e12,
        });
    }
    run(&values);
    let mut d = SeriesDetector::new(Params::default());
    for i in 0..100 {
        let s = d.score(i, if i % 2 == 0 { f64::NAN } else { f64::INFINITY });
        assert_eq!(s.score, 0.0);
    }
}

#[test]
fn degenerate_series_do_not_spam() {
    // Constant, binary flapping, and quantised to one step.
    assert!(run(&vec![7.0; 3_000]).0.is_empty());
    let flapping: Vec<f64> = (0..3_000).map(|i| ((i / 13) % 2) as f64).collect();
    assert!(run(&flapping).0.len() <= 1);
    let mut rng = SmallRng::seed_from_u64(15);
    let quantised: Vec<f64> = (0..3_000)
        .map(|_| 21.0 + 0.5 * (rng.random_range(0..3) as f64))
        .collect();
    assert!(run(&quantised).0.is_empty());
    // A series that never varied and then jumps far is still noticed.
    let mut v = vec![0.0; 300];
    v.extend(vec![1000.0; 10]);
    assert_eq!(run(&v).0.len(), 1);
}

#[test]
fn nothing_is_scored_during_warm_up() {
    let mut d = SeriesDetector::new(Params {
        warmup: 10,
        ..Params::default()
    });
    for i in 0..10 {
        let s = d.score(i * STEP_MS, if i == 5 { 1e6 } else { 1.0 });
        assert!(s.warming_up && s.score == 0.0 && s.event.is_none());
    }
    assert!(!d.score(10 * STEP_MS, 1.0).warming_up);
}

#[test]
fn sensitivity_scales_what_counts_as_anomalous() {
    let mut v = noise(400, 16, 0.0, 1.0);
    v[300] = 4.5; // 4.5 σ: below the default 6 σ.
    let score_with = |sensitivity: f64| {
        let mut d = SeriesDetector::new(Params {
            sensitivity,
            ..Params::default()
        });
        v.iter()
            .enumerate()
            .map(|(i, x)| d.score(i as i64 * STEP_MS, *x))
            .nth(300)
            .expect("400 readings")
    };
    assert!(score_with(1.0).event.is_none());
    assert!(score_with(2.0).event.is_some());
}

#[test]
fn state_per_series_is_bounded() {
    let mut d = SeriesDetector::new(Params::default());
    let v = noise(10_000, 17, 3.0, 1.0);
    for (i, x) in v.iter().enumerate() {
        d.score(i as i64 * STEP_MS, *x);
        d.train_if_due();
    }
    assert!(d.trained());
    assert!(d.heap_bytes() < 20 * 1024, "{} bytes", d.heap_bytes());
}

#[test]
fn a_bursty_series_learns_its_own_tail_and_still_flags_a_much_larger_burst() {
    // Request-count-like: a base level with frequent heavy-tailed bursts (Pareto, index
    // 1.5): jumps of many MADs are routine here.
    let mut rng = SmallRng::seed_from_u64(11);
    let mut values: Vec<f64> = (0..12_000)
        .map(|_| 100.0 + 2.0 * gauss(&mut rng) + 4.0 / rng.random::<f64>().max(1e-9).powf(0.66))
        .collect();
    let fixed_bar_events = values
        .iter()
        .skip(1_000)
        .filter(|v| **v > 100.0 + 6.0 * 4.0)
        .count();
    assert!(
        fixed_bar_events > 100,
        "the series is bursty: {fixed_bar_events}"
    );
    // One burst far beyond anything the series did.
    let at = 11_000;
    values[at] = 100_000.0;
    let (events, _) = run(&values);
    let after_learning = events.iter().filter(|(i, _)| *i >= 4_000).count();
    // What remains is the rarest of its own bursts (each component is calibrated to about
    // one in a thousand readings of the series' own history), not every routine one.
    assert!(
        after_learning <= 20 && after_learning * 20 <= fixed_bar_events,
        "once its tail is learned, routine bursts stay quiet ({fixed_bar_events} beyond 6 σ): {events:?}"
    );
    assert!(
        events.iter().any(|(i, _)| *i == at),
        "the extraordinary burst is still flagged: {events:?}"
    );
}

#[test]
fn after_a_long_gap_the_series_warms_up_again_instead_of_flagging_its_return() {
    // A day cycle seen for a few hours, then the device (or vigil) is away for half a
    // day and the series returns at another point of its cycle.
    let mut values = noise(600, 21, 20.0, 0.2);
    let mut times: Vec<i64> = (0..600).map(|i| i * STEP_MS).collect();
    let back = 600 * STEP_MS + 12 * 3_600_000;
    values.extend(noise(400, 22, 27.0, 0.2));
    times.extend((0..400).map(|i| back + i * STEP_MS));
    // A real spike well after the return is still flagged.
    values[900] = 35.0;
    let (events, _) = run_at(&times, &values);
    assert_eq!(
        events.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![900],
        "{events:?}"
    );
    // Without the gap, the same jump is a level shift, flagged at once.
    let steady: Vec<i64> = (0..1000).map(|i| i * STEP_MS).collect();
    let (events, _) = run_at(&steady, &values);
    assert!(matches!(events.first(), Some((600..=602, _))), "{events:?}");
}
