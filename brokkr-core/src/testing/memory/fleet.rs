//! The fleet overview's counts, over the whole state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::StackId;
use crate::health::HealthStatus;
use crate::model::{AgentStatus, FleetCounts};
use crate::store::Result;

pub(super) fn fleet_counts(
    store: &MemoryStore,
    active_since: DateTime<Utc>,
) -> Result<FleetCounts> {
    let state = store.state();
    let mut counts = FleetCounts::default();
    for agent in state.agents.values().filter(|a| a.deleted_at.is_none()) {
        if agent.status == AgentStatus::Inactive {
            counts.agents_inactive += 1;
        } else if agent
            .last_heartbeat
            .is_some_and(|beat| beat >= active_since)
        {
            counts.agents_active += 1;
        } else {
            counts.agents_stale += 1;
        }
    }
    let live = |id: &StackId| state.stacks.get(id).is_some_and(|s| s.deleted_at.is_none());
    counts.stacks = state.stacks.keys().filter(|id| live(id)).count() as u64;
    let mut worst: BTreeMap<StackId, HealthStatus> = BTreeMap::new();
    for ((stack, _), report) in state.health.iter().filter(|((stack, _), _)| live(stack)) {
        let entry = worst.entry(*stack).or_insert(report.status);
        *entry = (*entry).max(report.status);
    }
    for status in worst.values() {
        counts.stacks_by_health[FleetCounts::health_index(*status)] += 1;
    }
    Ok(counts)
}
