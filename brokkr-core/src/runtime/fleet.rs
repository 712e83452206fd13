//! The fleet overview: how many agents are active, stale or disabled, and how many
//! stacks are healthy, progressing, degraded, failed or unreported (admin).

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::{Actor, FleetCounts};

use super::ControlPlane;
use super::access;
use super::error::Result;

impl ControlPlane {
    /// The fleet's counts (admin or system), counted by the store. An enabled agent is
    /// active when its written heartbeat is within
    /// [`Settings::stale_after`](super::Settings), so a first beat shows here within
    /// one heartbeat flush, where the agent's own page shows it at once.
    pub async fn fleet_overview(&self, caller: &Actor) -> Result<FleetCounts> {
        access::require_admin(caller)?;
        let stale_after =
            TimeDelta::from_std(self.settings().stale_after).unwrap_or(TimeDelta::MAX);
        let active_since = Utc::now()
            .checked_sub_signed(stale_after)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(self.store().fleet_counts(active_since).await?)
    }
}
