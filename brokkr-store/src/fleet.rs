//! The fleet overview's counts: four counts of agents and stacks and one grouped
//! scan of the health reports, on the reader pool.

use brokkr_core::health::HealthStatus;
use brokkr_core::store::Result;
use brokkr_core::{AgentStatus, FleetCounts};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::entity::{agents, stacks};
use crate::errors::db;
use crate::{SqlStore, sql};

/// Live stacks by the worst status of their reports (0 healthy ... 3 failed, as
/// [`HealthStatus`] orders them); a stack without reports has no row.
const WORST_HEALTH_SQL: &str = "\
    SELECT w.worst AS worst, COUNT(*) AS n FROM ( \
        SELECT h.stack_id, MAX(CASE h.status WHEN 'failed' THEN 3 WHEN 'degraded' THEN 2 \
                                    WHEN 'progressing' THEN 1 ELSE 0 END) AS worst \
        FROM health_reports h JOIN stacks s ON s.id = h.stack_id \
        WHERE s.deleted_at IS NULL \
        GROUP BY h.stack_id \
    ) w GROUP BY w.worst";

/// The statuses in the order of `WORST_HEALTH_SQL`'s numbers.
const BY_RANK: [HealthStatus; 4] = [
    HealthStatus::Healthy,
    HealthStatus::Progressing,
    HealthStatus::Degraded,
    HealthStatus::Failed,
];

impl SqlStore {
    pub(crate) async fn fleet_counts_impl(
        &self,
        active_since: DateTime<Utc>,
    ) -> Result<FleetCounts> {
        let inactive = AgentStatus::Inactive.as_str();
        let live_agents = agents::Entity::find().filter(agents::Column::DeletedAt.is_null());
        let all_agents = live_agents.clone().count(&self.reader).await.map_err(db)?;
        let agents_inactive = live_agents
            .clone()
            .filter(agents::Column::Status.eq(inactive))
            .count(&self.reader)
            .await
            .map_err(db)?;
        let agents_active = live_agents
            .filter(agents::Column::Status.ne(inactive))
            .filter(agents::Column::LastHeartbeat.gte(active_since))
            .count(&self.reader)
            .await
            .map_err(db)?;
        let live_stacks = stacks::Entity::find()
            .filter(stacks::Column::DeletedAt.is_null())
            .count(&self.reader)
            .await
            .map_err(db)?;
        let mut counts = FleetCounts {
            agents_active,
            agents_stale: all_agents.saturating_sub(agents_active + agents_inactive),
            agents_inactive,
            stacks: live_stacks,
            stacks_by_health: [0; 4],
        };
        let rows = self
            .reader
            .query_all_raw(sql::stmt(self.backend, WORST_HEALTH_SQL, []))
            .await
            .map_err(db)?;
        for row in rows {
            let rank = row.try_get::<i32>("", "worst").map_err(db)?;
            let n = row.try_get::<i64>("", "n").map_err(db)?;
            if let Some(status) = usize::try_from(rank).ok().and_then(|r| BY_RANK.get(r)) {
                counts.stacks_by_health[FleetCounts::health_index(*status)] = n.max(0) as u64;
            }
        }
        Ok(counts)
    }
}
