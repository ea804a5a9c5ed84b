use super::*;
use crate::detect::Anomaly;
use crate::ingest::reading::DeviceUpdate;
use chrono::TimeZone;
use serde_json::Value;

const TICK: Duration = Duration::from_millis(20);

fn r(device: &str, metric: &str, ms: i64, value: f64) -> Reading {
    Reading {
        device_id: device.into(),
        metric: metric.into(),
        ts: Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap(),
        value,
    }
}

fn all(readings: Vec<Reading>) -> Delivery {
    Delivery::Readings {
        batch: shared(readings),
        picks: Picks::All,
    }
}

fn values(frame: &Frame) -> Vec<f64> {
    let v: Value = serde_json::from_str(&frame.json).unwrap();
    assert_eq!(v["type"], "readings");
    v["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect()
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Send(f) => format!("send {}", f.kind),
            Action::Register(f) => format!("register {f}"),
            Action::Unregister(f) => format!("unregister {f}"),
            Action::Backfill { filter, .. } => format!("backfill {filter}"),
        })
        .collect()
}

#[test]
fn subscribe_registers_then_confirms() {
    let mut s = Session::new(10, TICK);
    let a = s.on_text(r##"{"op":"subscribe","filter":"pump-7/#"}"##);
    assert_eq!(kinds(&a), ["register pump-7/+", "send subscribed"]);
    // The same filter again is confirmed without a second registration.
    let a = s.on_text(r##"{"op":"subscribe","filter":"pump-7/+"}"##);
    assert_eq!(kinds(&a), ["send subscribed"]);
    assert_eq!(s.subscriptions(), 1);
    let a = s.on_text(r##"{"op":"unsubscribe","filter":"pump-7/+"}"##);
    assert_eq!(kinds(&a), ["unregister pump-7/+", "send unsubscribed"]);
    assert_eq!(s.subscriptions(), 0);
}

#[test]
fn bad_messages_get_error_frames_and_change_nothing() {
    let mut s = Session::new(10, TICK);
    for bad in [
        "not json",
        r##"{"op":"dance","filter":"#"}"##,
        r##"{"op":"subscribe","filter":"a/b/c"}"##,
        r##"{"op":"subscribe","filter":"pump+/x"}"##,
        r##"{"op":"subscribe","filter":"#","since":"soon"}"##,
        r##"{"op":"unsubscribe","filter":"x/y"}"##,
    ] {
        assert_eq!(kinds(&s.on_text(bad)), ["send error"], "{bad}");
    }
    assert_eq!(s.subscriptions(), 0);
}

#[test]
fn the_subscription_cap_is_enforced() {
    let mut s = Session::new(2, TICK);
    s.subscribe("a/+", None);
    s.subscribe("b/+", None);
    let a = s.subscribe("c/+", None);
    assert_eq!(kinds(&a), ["send error"]);
    let Action::Send(f) = &a[0] else { panic!() };
    assert!(f.json.contains("max_subscriptions"), "{}", f.json);
    // Re-subscribing to a held filter is not a new subscription.
    assert_eq!(kinds(&s.subscribe("a/#", None)), ["send subscribed"]);
}

#[test]
fn readings_are_batched_at_most_once_per_interval() {
    let mut s = Session::new(10, TICK);
    s.subscribe("#", None);
    let t0 = Instant::now();
    assert_eq!(s.next_flush(t0), None);
    s.on_delivery(all(vec![r("a", "m", 0, 1.0), r("a", "m", 1, 2.0)]), t0);
    s.on_delivery(all(vec![r("b", "m", 0, 3.0)]), t0);
    let f = s.flush(t0).expect("first batch goes at once");
    assert_eq!((values(&f), f.readings), (vec![1.0, 2.0, 3.0], 3));
    s.on_delivery(
        all(vec![r("a", "m", 2, 4.0)]),
        t0 + Duration::from_millis(5),
    );
    assert_eq!(s.next_flush(t0), Some(t0 + TICK));
    assert!(s.flush(t0 + Duration::from_millis(10)).is_none());
    s.on_delivery(
        all(vec![r("a", "m", 3, 5.0)]),
        t0 + Duration::from_millis(15),
    );
    let f = s.flush(t0 + TICK).unwrap();
    assert_eq!(values(&f), vec![4.0, 5.0]);
    assert!(s.flush(t0 + TICK * 3).is_none(), "nothing pending");
}

#[test]
fn only_readings_matching_a_held_filter_are_kept() {
    let mut s = Session::new(10, TICK);
    s.subscribe("a/m", None);
    let t0 = Instant::now();
    let batch = shared(vec![r("a", "m", 0, 1.0), r("a", "n", 0, 2.0)]);
    // The hub picked both (e.g. an unsubscribe raced); the session keeps what it wants.
    s.on_delivery(
        Delivery::Readings {
            batch,
            picks: Picks::Some(vec![0, 1]),
        },
        t0,
    );
    assert_eq!(values(&s.flush(t0).unwrap()), vec![1.0]);
    s.unsubscribe("a/m");
    s.on_delivery(all(vec![r("a", "m", 1, 3.0)]), t0 + TICK);
    assert!(s.flush(t0 + TICK).is_none());
}

#[test]
fn backfill_and_live_tail_meet_without_gap_or_duplicate() {
    let mut s = Session::new(10, TICK);
    let since = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
    let a = s.subscribe("d/+", Some(since));
    assert_eq!(kinds(&a), ["register d/+", "backfill d/+"]);
    let Action::Backfill { ticket, .. } = a[1] else {
        panic!()
    };
    let t0 = Instant::now();
    // Live, while the query runs: 2 (also found by the query), 3 (committed after it),
    // and 0.5, committed late with an older time, after the query.
    s.on_delivery(all(vec![r("d", "m", 2, 2.0)]), t0);
    s.on_delivery(all(vec![r("d", "m", 3, 3.0), r("d", "m", 0, 0.5)]), t0);
    assert!(s.flush(t0).is_none(), "live readings wait for the backfill");
    let stored = Backfilled {
        readings: vec![r("d", "m", 1, 1.0), r("d", "m", 2, 2.0)],
        truncated: false,
    };
    let frames = s.on_backfill(ticket, Ok(stored), t0);
    assert_eq!(frames.len(), 2);
    assert_eq!(values(&frames[0]), vec![1.0, 2.0]);
    let v: Value = serde_json::from_str(&frames[1].json).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["backfilled"].as_u64()),
        (Some("subscribed"), Some(2))
    );
    assert_eq!(v["filter"], "d/+");
    let f = s.flush(t0).unwrap();
    assert_eq!(values(&f), vec![3.0, 0.5]);
    // Reading 2 broadcast only now (committed before the query, published after it).
    s.on_delivery(
        all(vec![r("d", "m", 2, 2.0), r("d", "m", 4, 4.0)]),
        t0 + TICK,
    );
    assert_eq!(values(&s.flush(t0 + TICK).unwrap()), vec![4.0]);
}

#[test]
fn a_failed_backfill_is_reported_and_live_goes_on() {
    let mut s = Session::new(10, TICK);
    let since = Utc::now();
    let a = s.subscribe("#", Some(since));
    let Action::Backfill { ticket, .. } = a[1] else {
        panic!()
    };
    let t0 = Instant::now();
    s.on_delivery(all(vec![r("d", "m", 1, 1.0)]), t0);
    let frames = s.on_backfill(ticket, Err("database unavailable".into()), t0);
    assert_eq!(frames[0].kind, "error");
    assert!(frames[0].json.contains("database unavailable"));
    assert_eq!(frames[1].kind, "subscribed");
    assert_eq!(values(&s.flush(t0).unwrap()), vec![1.0]);
}

#[test]
fn other_filters_flow_while_a_backfill_runs() {
    let mut s = Session::new(10, TICK);
    s.subscribe("a/+", None);
    let a = s.subscribe("b/+", Some(Utc::now()));
    let Action::Backfill { ticket, .. } = a[1] else {
        panic!()
    };
    let t0 = Instant::now();
    s.on_delivery(all(vec![r("a", "m", 1, 1.0), r("b", "m", 1, 2.0)]), t0);
    assert_eq!(values(&s.flush(t0).unwrap()), vec![1.0]);
    s.on_backfill(ticket, Ok(Backfilled::default()), t0);
    assert_eq!(values(&s.flush(t0 + TICK).unwrap()), vec![2.0]);
}

#[test]
fn device_and_anomaly_messages_follow_the_filters() {
    let mut s = Session::new(10, TICK);
    s.subscribe("pump-7/temp", None);
    let t0 = Instant::now();
    let status = |d: &str| {
        Delivery::Device(Arc::new(DeviceUpdate::Status {
            device_id: d.into(),
            online: false,
        }))
    };
    assert!(s.on_delivery(status("pump-7"), t0).is_some());
    assert!(s.on_delivery(status("pump-8"), t0).is_none());
    let anomaly = |metric: &str| {
        Delivery::Anomaly(Arc::new(Anomaly {
            device_id: "pump-7".into(),
            metric: metric.into(),
            ts: Utc::now(),
            value: 1.0,
            score: 0.9,
            detector: "baseline".into(),
            explanation: "x".into(),
        }))
    };
    let f = s
        .on_delivery(anomaly("temp"), t0)
        .expect("matching anomaly");
    let v: Value = serde_json::from_str(&f.json).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["score"].as_f64()),
        (Some("anomaly"), Some(0.9))
    );
    assert!(s.on_delivery(anomaly("hum"), t0).is_none());
}
