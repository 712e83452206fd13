//! Heartbeats coalesced in memory and written in batches.
//!
//! An agent's liveness does not need one transaction per beat: beats land in a map
//! (one entry per agent, latest wins, so memory is bounded by the number of agents)
//! and a background task writes the map with one `record_heartbeats` call per period.
//! Reads merge the pending beat, so an agent shows as active the moment it beats.
//!
//! Agents report their capabilities with every beat. A flush tells the placement
//! controller about the agents whose placement-relevant capabilities differ from the
//! last ones this buffer wrote for them (a fingerprint per agent, so memory stays
//! bounded by the number of agents), not about every beat.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{AgentId, Capabilities, Heartbeat, Store};
use chrono::{DateTime, Utc};

use super::placement::PlacementSignals;
use crate::sync::lock;
use tracing::instrument::WithSubscriber;

/// Beats not yet written.
#[derive(Debug, Default)]
pub struct HeartbeatBuffer {
    pending: Mutex<HashMap<AgentId, Heartbeat>>,
    /// Beats taken by a flush whose write has not finished: still visible to
    /// [`HeartbeatBuffer::pending_at`], so an agent never looks stale mid-flush.
    writing: Mutex<HashMap<AgentId, DateTime<Utc>>>,
    /// Fingerprints of the placement-relevant capabilities last written per agent.
    written_capabilities: Mutex<HashMap<AgentId, u64>>,
}

/// What a flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Beats written.
    pub written: usize,
    /// Agents whose placement-relevant capabilities changed (or were first seen).
    pub capabilities_changed: Vec<AgentId>,
}

/// A fingerprint of what placement reads from capabilities (not `extra` or the node
/// count, which change nothing about a decision).
fn placement_fingerprint(capabilities: &Capabilities) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &capabilities.kubernetes_version,
        capabilities.allocatable_cpu_millis,
        capabilities.allocatable_memory_bytes,
        &capabilities.features,
    )
        .hash(&mut hasher);
    hasher.finish()
}

impl HeartbeatBuffer {
    /// Keeps the newest beat per agent; capabilities reported earlier in the same
    /// period survive a later beat that carries none.
    pub fn record(&self, beat: Heartbeat) {
        let mut pending = lock(&self.pending);
        match pending.get_mut(&beat.agent_id) {
            Some(held) if held.at > beat.at => {
                if held.capabilities.is_none() {
                    held.capabilities = beat.capabilities;
                }
            }
            Some(held) => {
                let earlier = held.capabilities.take();
                *held = Heartbeat {
                    capabilities: beat.capabilities.or(earlier),
                    ..beat
                };
            }
            None => {
                pending.insert(beat.agent_id, beat);
            }
        }
    }

    /// The time of the agent's newest beat not yet in the store, if any.
    pub fn pending_at(&self, agent: AgentId) -> Option<DateTime<Utc>> {
        let pending = lock(&self.pending);
        let writing = lock(&self.writing);
        pending
            .get(&agent)
            .map(|beat| beat.at)
            .max(writing.get(&agent).copied())
    }

    /// Writes every pending beat in one store call. On failure the beats are put back
    /// (unless newer ones arrived meanwhile) so the next flush retries them.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, crate::store::Error> {
        self.flush_reporting(store)
            .await
            .map(|flushed| flushed.written)
    }

    /// [`HeartbeatBuffer::flush`], also naming the agents whose placement-relevant
    /// capabilities this flush changed.
    pub async fn flush_reporting(&self, store: &dyn Store) -> Result<Flushed, crate::store::Error> {
        let batch: Vec<Heartbeat> = {
            let mut pending = lock(&self.pending);
            let mut writing = lock(&self.writing);
            writing.extend(pending.values().map(|beat| (beat.agent_id, beat.at)));
            pending.drain().map(|(_, beat)| beat).collect()
        };
        if batch.is_empty() {
            return Ok(Flushed::default());
        }
        let mut in_flight = InFlight {
            buffer: self,
            batch,
        };
        let written = store.record_heartbeats(&in_flight.batch).await;
        let batch = std::mem::take(&mut in_flight.batch);
        let count = batch.len();
        let taken: Vec<(AgentId, DateTime<Utc>)> =
            batch.iter().map(|beat| (beat.agent_id, beat.at)).collect();
        let mut capabilities_changed = Vec::new();
        if written.is_err() {
            // Back into pending (unless newer beats arrived) before leaving `writing`,
            // so the beats stay visible throughout.
            for beat in batch {
                self.record(beat);
            }
        } else {
            let mut fingerprints = lock(&self.written_capabilities);
            for beat in &batch {
                if let Some(capabilities) = &beat.capabilities {
                    let print = placement_fingerprint(capabilities);
                    if fingerprints.insert(beat.agent_id, print) != Some(print) {
                        capabilities_changed.push(beat.agent_id);
                    }
                }
            }
        }
        self.done_writing(&taken);
        written.map(|()| Flushed {
            written: count,
            capabilities_changed,
        })
    }

    /// Forgets the in-flight marks of `taken`, unless another flush has marked a newer
    /// beat of the same agent since: a flush finishing never hides what another one is
    /// still writing.
    fn done_writing(&self, taken: &[(AgentId, DateTime<Utc>)]) {
        let mut writing = lock(&self.writing);
        for (agent, at) in taken {
            if writing.get(agent) == Some(at) {
                writing.remove(agent);
            }
        }
    }

    /// Flushes every `period` until the returned task is aborted, telling `placement`
    /// about changed capabilities; call [`HeartbeatBuffer::flush`] once more at
    /// shutdown.
    pub fn spawn_flusher(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        period: Duration,
        placement: Arc<PlacementSignals>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Failed flushes in a row: during an outage the first is logged, then one
            // a minute, not one a period.
            let mut failures: u32 = 0;
            let log_every = u32::try_from(Duration::from_secs(60).as_millis() / period.as_millis().max(1)).unwrap_or(u32::MAX).max(1);
            loop {
                tick.tick().await;
                match self.flush_reporting(store.as_ref()).await {
                    Ok(flushed) => {
                        if failures > 0 {
                            tracing::info!(failures, written = flushed.written, "heartbeats written again");
                            failures = 0;
                        }
                        if !flushed.capabilities_changed.is_empty() {
                            placement.agents_changed(flushed.capabilities_changed);
                        }
                    }
                    Err(err) => {
                        if failures.is_multiple_of(log_every) {
                            tracing::warn!(error = %super::error::ErrorChain(&err), failures, "writing heartbeats failed; they stay in memory and will be retried");
                        }
                        failures = failures.saturating_add(1);
                    }
                }
            }
        }.with_current_subscriber())
    }
}

/// A batch being written. Dropped before the write finished (the flusher task aborted
/// at shutdown, mid-write), it puts its beats back, so the final flush writes them
/// rather than losing them.
struct InFlight<'a> {
    buffer: &'a HeartbeatBuffer,
    batch: Vec<Heartbeat>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let taken: Vec<(AgentId, DateTime<Utc>)> =
            batch.iter().map(|beat| (beat.agent_id, beat.at)).collect();
        // Back into pending first, so the beats stay visible throughout.
        for beat in batch {
            self.buffer.record(beat);
        }
        self.buffer.done_writing(&taken);
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use crate::testing::MemoryStore;
    use crate::{Actor, Capabilities, Pak};
    use chrono::TimeDelta;

    use super::*;

    fn beat(agent: AgentId, at: DateTime<Utc>, version: Option<&str>) -> Heartbeat {
        Heartbeat {
            agent_id: agent,
            at,
            capabilities: version.map(|v| Capabilities {
                kubernetes_version: Some(v.into()),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn a_finishing_flush_keeps_what_another_flush_is_writing() {
        let store = MemoryStore::new();
        let buffer = HeartbeatBuffer::default();
        let (mine, theirs) = (AgentId::new(), AgentId::new());
        let at = Utc::now();
        // Another flush has taken `theirs` and is still writing it.
        lock(&buffer.writing).insert(theirs, at);
        buffer.record(beat(mine, at, None));
        // MemoryStore has no such agents; whether the write succeeds does not matter.
        let _ = buffer.flush(&store).await;
        assert_eq!(
            buffer.pending_at(theirs),
            Some(at),
            "the other flush's beat must stay visible until that flush ends"
        );
        assert_eq!(lock(&buffer.writing).get(&mine), None);
    }

    #[test]
    fn keeps_the_latest_beat_and_the_last_capabilities() {
        let buffer = HeartbeatBuffer::default();
        let agent = AgentId::new();
        let t0 = Utc::now();
        buffer.record(beat(agent, t0, Some("v1.33.0")));
        buffer.record(beat(agent, t0 + TimeDelta::seconds(5), None));
        buffer.record(beat(agent, t0 - TimeDelta::seconds(5), None));
        let pending = buffer.pending.lock().unwrap();
        let held = &pending[&agent];
        assert_eq!(held.at, t0 + TimeDelta::seconds(5));
        assert_eq!(
            held.capabilities
                .as_ref()
                .unwrap()
                .kubernetes_version
                .as_deref(),
            Some("v1.33.0")
        );
    }

    #[test]
    fn a_beat_being_written_is_still_visible() {
        let buffer = HeartbeatBuffer::default();
        let agent = AgentId::new();
        let at = Utc::now();
        buffer.record(beat(agent, at, None));
        // The first half of a flush: the batch left `pending` for `writing`, and the
        // store write has not finished.
        {
            let mut pending = buffer.pending.lock().unwrap();
            let mut writing = buffer.writing.lock().unwrap();
            writing.extend(pending.values().map(|b| (b.agent_id, b.at)));
            pending.clear();
        }
        assert_eq!(buffer.pending_at(agent), Some(at));
    }

    #[tokio::test]
    async fn flush_writes_one_batch_and_empties_the_buffer() {
        let store = MemoryStore::new();
        let agent = store
            .create_agent(
                &Actor::Admin,
                crate::testing::conformance::new_agent("a", "c", &Pak::generate()),
            )
            .await
            .unwrap();
        let buffer = HeartbeatBuffer::default();
        let at = Utc::now();
        buffer.record(beat(agent.id, at, Some("v1.33.0")));
        assert_eq!(buffer.pending_at(agent.id), Some(at));
        let flushed = buffer.flush_reporting(&store).await.unwrap();
        assert_eq!(flushed.written, 1);
        assert_eq!(flushed.capabilities_changed, vec![agent.id]);
        assert_eq!(buffer.pending_at(agent.id), None);
        assert_eq!(buffer.flush(&store).await.unwrap(), 0);

        let stored = store.get_agent(agent.id).await.unwrap();
        assert!(stored.last_heartbeat.is_some());
        assert_eq!(
            stored.capabilities.kubernetes_version.as_deref(),
            Some("v1.33.0")
        );

        // The same capabilities again change nothing for placement; new ones do.
        buffer.record(beat(agent.id, at, Some("v1.33.0")));
        let flushed = buffer.flush_reporting(&store).await.unwrap();
        assert_eq!(
            (flushed.written, flushed.capabilities_changed.len()),
            (1, 0)
        );
        buffer.record(beat(agent.id, at, Some("v1.34.0")));
        let flushed = buffer.flush_reporting(&store).await.unwrap();
        assert_eq!(flushed.capabilities_changed, vec![agent.id]);
    }
}
