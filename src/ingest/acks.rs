//! Acknowledges QoS 1 messages to the broker, in receive order, once committed.
//!
//! Writers may finish batches out of order; each batch carries the sequence number the
//! batcher gave it, and acks are released only for the contiguous committed prefix.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::{AsyncClient, ClientError};
use tokio::sync::mpsc;

use super::bridge::{puback, Connection};
use super::envelope::MqttAck;

/// A committed batch's acks, sent by a writer.
#[derive(Debug)]
pub struct CommittedBatch {
    pub seq: u64,
    pub acks: Vec<MqttAck>,
}

/// Orders commits and hands PUBACKs to the MQTT client.
pub struct Acker {
    pub rx: mpsc::UnboundedReceiver<CommittedBatch>,
    /// `None` when MQTT is off: batches are still sequenced, nothing is sent.
    pub client: Option<(AsyncClient, Arc<Connection>)>,
}

/// Releases batches in sequence order.
#[derive(Debug, Default)]
pub struct Sequencer {
    next: u64,
    waiting: BTreeMap<u64, Vec<MqttAck>>,
}

impl Sequencer {
    /// Records a committed batch and returns the acks that are now in order.
    pub fn commit(&mut self, batch: CommittedBatch) -> Vec<MqttAck> {
        self.waiting.insert(batch.seq, batch.acks);
        let mut ready = Vec::new();
        while let Some(acks) = self.waiting.remove(&self.next) {
            ready.extend(acks);
            self.next += 1;
        }
        ready
    }

    /// Batches committed but held back behind an earlier one.
    pub fn held(&self) -> usize {
        self.waiting.len()
    }
}

impl Acker {
    /// Runs until every writer has gone and every ack has been handed over.
    pub async fn run(mut self) {
        let mut sequencer = Sequencer::default();
        let mut ready: VecDeque<MqttAck> = VecDeque::new();
        let mut open = true;
        while open || !ready.is_empty() {
            tokio::select! {
                batch = self.rx.recv(), if open => match batch {
                    Some(b) => ready.extend(sequencer.commit(b)),
                    None => open = false,
                },
                // The client's request queue was full: try again shortly.
                _ = tokio::time::sleep(Duration::from_millis(2)), if !ready.is_empty() => {}
            }
            let Some((client, connection)) = &self.client else {
                ready.clear();
                continue;
            };
            let current = connection.generation.load(Ordering::Relaxed);
            while let Some(ack) = ready.front().copied() {
                if ack.generation != current {
                    // From an earlier connection: the broker redelivers it; its packet id
                    // may already belong to another message.
                    ready.pop_front();
                    continue;
                }
                match client.try_ack(&puback(ack)) {
                    Ok(()) => {
                        ready.pop_front();
                    }
                    Err(ClientError::TryRequest(_)) => break,
                    Err(ClientError::Request(_)) => {
                        tracing::warn!(
                            "MQTT client gone; remaining acks dropped (redelivered later)"
                        );
                        return;
                    }
                }
            }
        }
        if sequencer.held() > 0 {
            tracing::warn!(
                batches = sequencer.held(),
                "batches never committed in order; not acked"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(pkid: u16) -> MqttAck {
        MqttAck {
            generation: 1,
            pkid,
        }
    }

    #[test]
    fn acks_are_released_in_sequence_order() {
        let mut s = Sequencer::default();
        assert!(s
            .commit(CommittedBatch {
                seq: 1,
                acks: vec![ack(3), ack(4)]
            })
            .is_empty());
        assert!(s
            .commit(CommittedBatch {
                seq: 2,
                acks: vec![ack(5)]
            })
            .is_empty());
        assert_eq!(s.held(), 2);
        let out = s.commit(CommittedBatch {
            seq: 0,
            acks: vec![ack(1), ack(2)],
        });
        assert_eq!(
            out.iter().map(|a| a.pkid).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(s.held(), 0);
    }
}
