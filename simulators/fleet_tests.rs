use super::*;
use crate::anomaly::AnomalyKind;

fn spec(devices: usize, metrics: usize, seed: u64, anomaly_rate: f64) -> Spec {
    Spec {
        prefix: "s".into(),
        devices,
        metrics,
        seed,
        anomaly_rate,
    }
}

fn run(f: &mut Fleet, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| f.next_sample(1_700_000_000_000 + i as i64 * 100).unwrap())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_samples_and_labels() {
    let mut a = Fleet::new(&spec(3, 4, 7, 0.01), 0, 1);
    let mut b = Fleet::new(&spec(3, 4, 7, 0.01), 0, 1);
    assert_eq!(run(&mut a, 5000), run(&mut b, 5000));
    assert_eq!(a.close(), b.close());
    assert_eq!(a.metadata(), b.metadata());
    let mut c = Fleet::new(&spec(3, 4, 8, 0.01), 0, 1);
    assert_ne!(run(&mut a, 100), run(&mut c, 100));
}

#[test]
fn timestamps_of_a_series_never_repeat() {
    let mut f = Fleet::new(&spec(1, 1, 1, 0.0), 0, 1);
    let a = f.next_sample(5_000).unwrap();
    let b = f.next_sample(5_000).unwrap();
    assert_eq!((a.ts_ms, b.ts_ms), (5_000, 5_001));
}

#[test]
fn shards_split_the_devices_without_overlap() {
    let s = spec(10, 2, 3, 0.0);
    let mut ids: Vec<String> = (0..3)
        .flat_map(|p| {
            let f = Fleet::new(&s, p, 3);
            (0..f.device_count())
                .map(|d| f.device_id(d).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    let all: Vec<String> = (0..10).map(|d| format!("s-{d:04}")).collect();
    assert_eq!(ids, all);
}

#[test]
fn metadata_carries_model_location_and_units() {
    let f = Fleet::new(&spec(2, 7, 1, 0.0), 0, 1);
    let (id, meta) = &f.metadata()[1];
    assert_eq!(id, "s-0001");
    let v: serde_json::Value = serde_json::from_slice(meta).unwrap();
    assert!(v["model"].is_string());
    let lat = v["location"]["lat"].as_f64().unwrap();
    assert!((48.0..=54.0).contains(&lat), "{v}");
    assert_eq!(v["units"]["temperature"], "°C");
    assert_eq!(v["units"]["battery"], "V");
    assert_eq!(v["units"]["temperature1"], "°C");
}

/// The same fleet with and without anomalies: outside the labelled windows the samples are
/// identical, inside they deviate the way their kind says.
#[test]
fn labels_match_the_injected_anomalies() {
    let n = 60_000;
    let mut clean = Fleet::new(&spec(4, 6, 11, 0.0), 0, 1);
    let mut dirty = Fleet::new(&spec(4, 6, 11, 0.002), 0, 1);
    let a = run(&mut clean, n);
    let b = run(&mut dirty, n);
    let mut labels = dirty.take_labels();
    labels.extend(dirty.close());
    assert!(clean.close().is_empty());
    for kind in AnomalyKind::ALL {
        assert!(
            labels.iter().any(|l| l.kind == kind),
            "no {kind:?} in {n} samples"
        );
    }
    let name = |s: &Sample| {
        (
            dirty.device_id(s.device).to_owned(),
            dirty.metric_name(s.device, s.metric).to_owned(),
        )
    };
    let mut covered = 0;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.device, x.metric, x.ts_ms), (y.device, y.metric, y.ts_ms));
        let (dev, metric) = name(x);
        let label = labels.iter().find(|l| {
            l.device == dev && l.metric == metric && (l.start_ms..=l.end_ms).contains(&x.ts_ms)
        });
        let Some(label) = label else {
            assert_eq!(x.value, y.value, "unlabelled change at {x:?}");
            continue;
        };
        covered += 1;
        let scale = KINDS[x.metric % KINDS.len()].0.scale();
        let clean_v = x.value.unwrap();
        match label.kind {
            AnomalyKind::Dropout => assert_eq!(y.value, None, "{label:?}"),
            AnomalyKind::Spike => assert!((y.value.unwrap() - clean_v).abs() >= 5.9 * scale),
            AnomalyKind::LevelShift => {
                assert!(((y.value.unwrap() - clean_v).abs() - 3.0 * scale).abs() < 0.01)
            }
            AnomalyKind::NoiseBurst => {
                assert!(
                    (y.value.unwrap() - clean_v).abs() >= 0.99 * scale,
                    "{label:?}"
                )
            }
            AnomalyKind::Drift | AnomalyKind::Stuck => assert!(y.value.is_some()),
        }
    }
    assert!(covered > 0);
    // A drift grows to its full size by the end of its window; a stuck sensor repeats one value.
    for l in &labels {
        let window: Vec<(f64, Option<f64>)> = a
            .iter()
            .zip(&b)
            .filter(|(x, _)| {
                let (dev, metric) = name(x);
                dev == l.device && metric == l.metric && (l.start_ms..=l.end_ms).contains(&x.ts_ms)
            })
            .map(|(x, y)| (x.value.unwrap(), y.value))
            .collect();
        assert!(!window.is_empty(), "{l:?}");
        let scale = KINDS
            .iter()
            .find(|k| l.metric.starts_with(k.1))
            .unwrap()
            .0
            .scale();
        match l.kind {
            AnomalyKind::Drift => {
                // Full size (4 scales) after at most 80 samples; less when cut short.
                let (c, d) = window[window.len() - 1];
                let least = 4.0 * scale * window.len() as f64 / 80.0 - 0.01;
                assert!((d.unwrap() - c).abs() >= least, "{l:?}: {window:?}");
            }
            AnomalyKind::Stuck => {
                assert!(
                    window.iter().all(|w| w.1 == window[0].1),
                    "{l:?}: {window:?}"
                )
            }
            _ => {}
        }
    }
}
