//! Counts for a fleet overview (the dashboard's first page).

use crate::health::HealthStatus;

/// Live agents by the status they show, and live stacks by the worst health any
/// agent's latest report gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Enabled agents whose written heartbeat is at or after the bound asked for.
    pub agents_active: u64,
    /// Enabled agents whose written heartbeat is older, or that never beat.
    pub agents_stale: u64,
    /// Agents an admin disabled.
    pub agents_inactive: u64,
    /// Live stacks.
    pub stacks: u64,
    /// Live stacks by their worst reported status, indexed by
    /// [`FleetCounts::health_index`]; the stacks nobody reported on are the rest.
    pub stacks_by_health: [u64; 4],
}

impl FleetCounts {
    /// The index of `status` in [`FleetCounts::stacks_by_health`].
    pub fn health_index(status: HealthStatus) -> usize {
        match status {
            HealthStatus::Healthy => 0,
            HealthStatus::Progressing => 1,
            HealthStatus::Degraded => 2,
            HealthStatus::Failed => 3,
        }
    }

    /// Live stacks whose worst reported status is `status`.
    pub fn stacks_with(&self, status: HealthStatus) -> u64 {
        self.stacks_by_health[Self::health_index(status)]
    }

    /// Live stacks no agent reported on.
    pub fn stacks_unreported(&self) -> u64 {
        self.stacks
            .saturating_sub(self.stacks_by_health.iter().sum::<u64>())
    }
}
