use super::*;
use serde_json::json;

const AFTER: Duration = Duration::from_secs(60);

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid time")
}

fn reading(device: &str, metric: &str, ts: i64, value: f64) -> Reading {
    Reading {
        device_id: device.into(),
        metric: metric.into(),
        ts: t(ts),
        value,
    }
}

fn status(device: &str, online: bool) -> DeviceUpdate {
    DeviceUpdate::Status {
        device_id: device.into(),
        online,
    }
}

fn page(limit: usize, offset: usize) -> Filter {
    Filter {
        limit,
        offset,
        ..Filter::default()
    }
}

#[test]
fn readings_make_a_device_with_latest_values() {
    let mut f = Fleet::new(AFTER);
    f.apply_readings(
        &[
            reading("pump-7", "temp", 10, 20.0),
            reading("pump-7", "temp", 12, 21.5),
            reading("pump-7", "temp", 11, 99.0), // late: does not hide the newer value
            reading("pump-7", "hum", 5, 40.0),
        ],
        t(13),
    );
    assert!(
        f.sweep(t(13), 10).changed.is_empty(),
        "a new device's readings introduce it"
    );
    let d = f.get("pump-7", t(14)).expect("known");
    assert_eq!(d.status, Status::Online);
    assert_eq!(d.first_seen, t(5));
    assert_eq!(d.last_seen, Some(t(12)));
    assert_eq!(
        d.latest["temp"],
        Latest {
            ts: t(12),
            value: 21.5
        }
    );
    assert_eq!(d.latest["hum"].value, 40.0);
    assert_eq!(d.meta, None);
    assert!(f.get("pump-8", t(14)).is_none());
}

#[test]
fn silence_makes_a_device_offline_once_and_a_reading_brings_it_back() {
    let mut f = Fleet::new(AFTER);
    f.apply_readings(&[reading("a", "m", 0, 1.0)], t(0));
    assert!(
        f.sweep(t(60), 10).changed.is_empty(),
        "exactly the timeout is still online"
    );
    assert_eq!(f.get("a", t(60)).expect("known").status, Status::Online);
    let gone = f.sweep(t(61), 10).changed;
    assert_eq!(
        gone,
        vec![Transition {
            device_id: "a".into(),
            status: Status::Offline
        }]
    );
    assert!(f.sweep(t(62), 10).changed.is_empty(), "announced once");
    assert_eq!(f.get("a", t(62)).expect("known").status, Status::Offline);
    let swept = f.sweep(t(62), 10);
    assert_eq!((swept.known, swept.online), (1, 0));
    f.apply_readings(&[reading("a", "m", 70, 2.0)], t(70));
    let back = f.sweep(t(70), 10).changed;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].status, Status::Online);
    let swept = f.sweep(t(70), 10);
    assert_eq!((swept.known, swept.online), (1, 1));
}

#[test]
fn the_status_is_computed_at_read_time_even_before_a_sweep() {
    let mut f = Fleet::new(AFTER);
    f.apply_readings(&[reading("a", "m", 0, 1.0)], t(0));
    assert_eq!(f.get("a", t(100)).expect("known").status, Status::Offline);
}

#[test]
fn an_offline_status_holds_until_the_next_reading_or_online() {
    let mut f = Fleet::new(AFTER);
    f.apply_readings(&[reading("a", "m", 0, 1.0)], t(0));
    f.sweep(t(0), 10);
    f.apply_update(&status("a", false), t(1));
    assert_eq!(f.get("a", t(2)).expect("known").status, Status::Offline);
    assert!(
        f.sweep(t(3), 10).changed.is_empty(),
        "the status message told clients already"
    );
    f.apply_readings(&[reading("a", "m", 4, 1.0)], t(4));
    let back = f.sweep(t(4), 10).changed;
    assert_eq!(back.len(), 1, "a reading after offline is announced");
    assert_eq!(f.get("a", t(5)).expect("known").status, Status::Online);

    f.apply_update(&status("a", false), t(6));
    f.apply_update(&status("a", true), t(7));
    assert_eq!(f.get("a", t(8)).expect("known").status, Status::Online);
    // An `online` status counts as being heard from: silence starts there.
    assert_eq!(f.get("a", t(67)).expect("known").status, Status::Online);
    assert_eq!(f.get("a", t(68)).expect("known").status, Status::Offline);
}

#[test]
fn a_device_known_only_by_its_metadata_is_offline() {
    let mut f = Fleet::new(AFTER);
    let meta = json!({"model": "X1", "location": {"lat": 1.0, "lon": 2.0}});
    f.apply_update(
        &DeviceUpdate::Meta {
            device_id: "m".into(),
            meta: meta.clone(),
        },
        t(0),
    );
    let d = f.get("m", t(1)).expect("known");
    assert_eq!(d.status, Status::Offline);
    assert_eq!(d.last_seen, None);
    assert_eq!(d.meta.as_deref(), Some(&meta));
    assert!(f.sweep(t(1), 10).changed.is_empty());
    f.apply_readings(&[reading("m", "v", 2, 1.0)], t(2));
    let back = f.sweep(t(2), 10).changed;
    assert_eq!(back.len(), 1, "shown offline until now: announced online");
    assert_eq!(back[0].status, Status::Online);
}

#[test]
fn the_stored_registry_merges_with_what_the_feed_said_in_any_order() {
    let stored = |status, changed| StoredDevice {
        device_id: "a".into(),
        first_seen: t(-100),
        last_seen: Some(t(-10)),
        meta: Some(json!({"model": "old"})),
        status,
        status_changed_at: changed,
    };
    // Load first, then the feed.
    let mut f = Fleet::new(AFTER);
    f.merge_stored(stored(Some(Status::Offline), Some(t(-5))), t(0));
    f.merge_latest(
        "a",
        "m",
        Latest {
            ts: t(-10),
            value: 3.0,
        },
    );
    let d = f.get("a", t(0)).expect("known");
    assert_eq!(
        d.status,
        Status::Offline,
        "offline came after the last reading"
    );
    assert_eq!(d.latest["m"].value, 3.0);
    assert_eq!(d.first_seen, t(-100));
    f.apply_readings(&[reading("a", "m", 1, 4.0)], t(1));
    assert_eq!(f.sweep(t(1), 10).changed.len(), 1);
    assert_eq!(f.get("a", t(1)).expect("known").status, Status::Online);

    // The feed first, then the (older) load: the feed's newer facts win.
    let mut f = Fleet::new(AFTER);
    f.apply_update(
        &DeviceUpdate::Meta {
            device_id: "a".into(),
            meta: json!({"model": "new"}),
        },
        t(0),
    );
    f.apply_readings(&[reading("a", "m", 1, 4.0)], t(1));
    f.merge_stored(stored(Some(Status::Offline), Some(t(-5))), t(2));
    f.merge_latest(
        "a",
        "m",
        Latest {
            ts: t(-10),
            value: 3.0,
        },
    );
    let d = f.get("a", t(2)).expect("known");
    assert_eq!(d.status, Status::Online);
    assert_eq!(d.latest["m"].value, 4.0);
    assert_eq!(d.meta.as_deref(), Some(&json!({"model": "new"})));
    assert_eq!(d.first_seen, t(-100));
    assert_eq!(d.last_seen, Some(t(1)));
}

#[test]
fn a_stored_device_silent_too_long_loads_offline_without_an_announcement() {
    let mut f = Fleet::new(AFTER);
    f.merge_stored(
        StoredDevice {
            device_id: "old".into(),
            first_seen: t(-1000),
            last_seen: Some(t(-500)),
            meta: None,
            status: None,
            status_changed_at: None,
        },
        t(0),
    );
    f.merge_stored(
        StoredDevice {
            device_id: "fresh".into(),
            first_seen: t(-1000),
            last_seen: Some(t(-5)),
            meta: None,
            status: Some(Status::Online),
            status_changed_at: Some(t(-50)),
        },
        t(0),
    );
    assert_eq!(f.get("old", t(0)).expect("known").status, Status::Offline);
    assert_eq!(f.get("fresh", t(0)).expect("known").status, Status::Online);
    assert!(f.sweep(t(0), 10).changed.is_empty());
    let gone = f.sweep(t(56), 10).changed;
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].device_id, "fresh");
}

#[test]
fn pages_are_sorted_by_id_and_filters_count_every_match() {
    let mut f = Fleet::new(AFTER);
    let readings: Vec<Reading> = (0..25)
        .map(|i| reading(&format!("dev-{i:02}"), "m", 0, i as f64))
        .collect();
    f.apply_readings(&readings, t(0));
    f.apply_update(&status("dev-03", false), t(1));
    f.apply_update(&status("dev-13", false), t(1));

    let p = f.list(&page(10, 20), t(2));
    assert_eq!(p.total, 25);
    let ids: Vec<_> = p.devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["dev-20", "dev-21", "dev-22", "dev-23", "dev-24"]);
    assert!(f.list(&page(10, 30), t(2)).devices.is_empty());

    let offline = f.list(
        &Filter {
            status: Some(Status::Offline),
            ..page(1, 1)
        },
        t(2),
    );
    assert_eq!(offline.total, 2);
    assert_eq!(offline.devices[0].device_id, "dev-13");

    let q = f.list(
        &Filter {
            q: Some("V-1".into()),
            status: Some(Status::Online),
            ..page(100, 0)
        },
        t(2),
    );
    assert_eq!(q.total, 9, "dev-10..dev-19 but dev-13");
    assert_eq!((q.limit, q.offset), (100, 0));
}

#[test]
fn a_mass_outage_is_announced_a_bounded_number_at_a_time() {
    let mut f = Fleet::new(AFTER);
    let readings: Vec<Reading> = (0..10)
        .map(|i| reading(&format!("d{i}"), "m", 0, 1.0))
        .collect();
    f.apply_readings(&readings, t(0));
    let mut gone = Vec::new();
    for _ in 0..4 {
        gone.extend(f.sweep(t(100), 4).changed);
    }
    assert_eq!(gone.len(), 10, "every device, once");
    assert!(gone.iter().all(|t| t.status == Status::Offline));
    f.apply_readings(&readings, t(200));
    let sizes: Vec<usize> = (0..4).map(|_| f.sweep(t(200), 4).changed.len()).collect();
    assert_eq!(sizes, [4, 4, 2, 0], "and so is a mass return");
}

/// `cargo test --lib fleet::registry::tests::at_100k -- --ignored --nocapture`
#[test]
#[ignore = "prints timings; run by hand"]
fn at_100k_devices() {
    let mut f = Fleet::new(AFTER);
    let readings: Vec<Reading> = (0..100_000)
        .flat_map(|i| {
            (0..3).map(move |m| reading(&format!("dev-{i:06}"), &format!("m{m}"), 0, 1.0))
        })
        .collect();
    let started = std::time::Instant::now();
    f.apply_readings(&readings, t(0));
    println!("apply 300k readings: {:?}", started.elapsed());
    let started = std::time::Instant::now();
    f.apply_readings(&readings[..5000], t(1));
    println!("apply a batch of 5000: {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let swept = f.sweep(t(2), 256);
    println!(
        "sweep: {:?} ({} changed, {} known, {} online)",
        started.elapsed(),
        swept.changed.len(),
        swept.known,
        swept.online
    );
    for filter in [
        page(100, 0),
        page(100, 99_900),
        Filter {
            q: Some("dev-0999".into()),
            ..page(100, 0)
        },
        Filter {
            status: Some(Status::Offline),
            ..page(100, 0)
        },
    ] {
        let started = std::time::Instant::now();
        let p = f.list(&filter, t(2));
        println!(
            "list {filter:?}: {:?} (total {})",
            started.elapsed(),
            p.total
        );
    }
}
