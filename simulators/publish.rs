//! The live run: each lane (one MQTT connection and its share of the fleet) paces its
//! messages against the rate schedule, publishes them, and in presence mode drops off and
//! comes back when told to.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bad::BadInput;
use crate::conn::{offline_will, Conn, Target};
use crate::encode::{next_message, PayloadFormat};
use crate::fleet::Fleet;
use crate::schedule::Schedule;
use crate::stats::Stats;

/// What every lane shares.
pub struct Ctx {
    pub target: Target,
    pub schedule: Schedule,
    pub started: Instant,
    pub deadline: Option<Instant>,
    pub qos: QoS,
    pub format: PayloadFormat,
    pub stats: Arc<Stats>,
    /// The labels file, when asked for.
    pub labels: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    pub stop: CancellationToken,
    /// One connection per device, with an `offline` Last Will and `online` on connect.
    pub presence: bool,
}

impl Ctx {
    fn write_labels(&self, labels: &[crate::anomaly::Label]) -> anyhow::Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        if let Some(file) = &self.labels {
            let mut f = file
                .lock()
                .map_err(|_| anyhow::anyhow!("labels file lock poisoned"))?;
            for l in labels {
                writeln!(f, "{}", l.to_json())?;
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.stop.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// One connection's work.
pub struct Lane {
    pub client_id: String,
    pub fleet: Fleet,
    pub bad: BadInput,
    /// This lane's fraction of the schedule.
    pub share: f64,
    /// Samples this lane takes before stopping (its share of --count).
    pub count: Option<u64>,
    /// Presence mode: "drop your connection for this long".
    pub drops: Option<mpsc::Receiver<Duration>>,
}

/// What a lane reports when it ends.
pub struct LaneEnd {
    pub expected: Vec<(&'static str, u64)>,
    pub anomalies: u64,
    pub unacked: u64,
    /// The device, when its connection was down at the end (presence mode).
    pub offline: Option<String>,
}

/// Connects a lane and publishes its devices' metadata (and `online`, in presence mode).
pub async fn open(ctx: &Ctx, lane: &Lane) -> anyhow::Result<Conn> {
    let will = ctx.presence.then(|| offline_will(lane.fleet.device_id(0)));
    let conn = Conn::open(&ctx.target, &lane.client_id, will, ctx.stats.clone()).await?;
    for (device, meta) in lane.fleet.metadata() {
        conn.publish(
            format!("devices/{device}/meta"),
            QoS::AtLeastOnce,
            true,
            meta,
        )
        .await?;
        Stats::add(&ctx.stats.control, 1);
        if ctx.presence {
            conn.publish(
                format!("devices/{device}/status"),
                QoS::AtLeastOnce,
                true,
                b"online".to_vec(),
            )
            .await?;
            Stats::add(&ctx.stats.control, 1);
        }
    }
    Ok(conn)
}

/// Runs a lane until the count, the duration or Ctrl-C ends it.
pub async fn run(ctx: Arc<Ctx>, mut lane: Lane, conn: Conn) -> anyhow::Result<LaneEnd> {
    let stats = ctx.stats.clone();
    let mut conn = Some(conn);
    let mut done = 0u64;
    // Samples skipped while the device was away, so it does not catch up in a burst.
    let mut skipped = 0.0f64;
    let mut anomalies = 0u64;
    let mut lost = 0u64;
    let count = lane.count.unwrap_or(u64::MAX);
    loop {
        if ctx.finished() || done >= count {
            break;
        }
        if let Some(away) = lane.drops.as_mut().and_then(|rx| rx.try_recv().ok()) {
            if let Some(c) = conn.take() {
                lost += c.unacked();
                c.kill();
                Stats::add(&stats.drops, 1);
                eprintln!(
                    "vigil-sim: {} dropped off for {away:?}",
                    lane.fleet.device_id(0)
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(away) => {}
                _ = ctx.stop.cancelled() => {}
                _ = sleep_until_opt(ctx.deadline) => {}
            }
            if ctx.finished() {
                break;
            }
            conn = Some(open(&ctx, &lane).await?);
            eprintln!("vigil-sim: {} is back", lane.fleet.device_id(0));
            let t = ctx.started.elapsed().as_secs_f64();
            skipped = ctx.schedule.due(t) * lane.share - done as f64;
        }
        let Some(c) = conn.as_ref() else { break };
        let t = ctx.started.elapsed().as_secs_f64();
        let due = ((ctx.schedule.due(t) * lane.share - skipped).max(0.0) as u64).min(count);
        let mut now_ms = chrono::Utc::now().timestamp_millis();
        let mut n = 0u32;
        while done < due {
            n += 1;
            if n % 256 == 0 {
                // Asked for more than it can do, the lane never catches up: check the end
                // here too.
                if ctx.finished() {
                    break;
                }
                now_ms = chrono::Utc::now().timestamp_millis();
            }
            if let Some(m) = lane.bad.next(&lane.fleet, now_ms) {
                c.publish(m.topic, ctx.qos, false, m.payload).await?;
                Stats::add(&stats.bad, 1);
                Stats::add(&stats.messages, 1);
                Stats::add(&stats.slots, 1);
                done += 1;
                continue;
            }
            let (m, slots) = next_message(&mut lane.fleet, ctx.format, now_ms);
            done += slots.max(1);
            Stats::add(&stats.slots, slots);
            let sent = m.as_ref().map_or(0, |m| m.readings);
            Stats::add(&stats.withheld, slots - sent);
            if let Some(m) = m {
                c.publish(m.topic, ctx.qos, false, m.payload).await?;
                Stats::add(&stats.readings, sent);
                Stats::add(&stats.messages, 1);
            }
        }
        let labels = lane.fleet.take_labels();
        anomalies += labels.len() as u64;
        ctx.write_labels(&labels)?;
        // Wake about once per sample at low rates, at most every millisecond at high ones.
        let per_sec = ctx.schedule.rate_at(t) * lane.share;
        let nap = (1.0 / per_sec.max(0.01)).clamp(0.001, 0.1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(nap)) => {}
            _ = ctx.stop.cancelled() => {}
        }
    }
    let labels = lane.fleet.close();
    anomalies += labels.len() as u64;
    ctx.write_labels(&labels)?;
    let offline = conn.is_none().then(|| lane.fleet.device_id(0).to_owned());
    let unacked = match conn {
        Some(c) => {
            let left = c.wait_acked(Duration::from_secs(30)).await;
            c.close().await;
            left
        }
        None => 0,
    };
    Ok(LaneEnd {
        expected: lane.bad.expected(),
        anomalies,
        unacked: unacked + lost,
        offline,
    })
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
