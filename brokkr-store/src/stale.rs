//! Agents found silent: marked stale with an `agent.stale` event, once per silence;
//! the heartbeat that ends it writes `agent.recovered` (`agents.rs`).

use brokkr_core::store::Result;
use brokkr_core::{AgentId, WebhookEvent};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::SqlStore;
use crate::errors::db;
use crate::sql;

impl SqlStore {
    pub(crate) async fn mark_stale_agents_impl(
        &self,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<AgentId>> {
        let mut write = self.begin().await?;
        let rows = write
            .tx()
            .query_all_raw(sql::stmt(
                write.backend(),
                "UPDATE agents SET stale_since = ? \
                 WHERE deleted_at IS NULL AND stale_since IS NULL AND last_heartbeat < ? \
                 RETURNING id, last_heartbeat",
                [write.now.into(), stale_before.into()],
            ))
            .await
            .map_err(db)?;
        let mut stale = rows
            .iter()
            .map(|row| {
                let id = row.try_get::<Uuid>("", "id").map_err(db)?;
                let beat = row
                    .try_get::<Option<DateTime<Utc>>>("", "last_heartbeat")
                    .map_err(db)?;
                Ok((AgentId::from(id), beat))
            })
            .collect::<Result<Vec<_>>>()?;
        stale.sort_unstable_by_key(|(agent, _)| *agent);
        for (agent, beat) in &stale {
            let event = WebhookEvent::agent_stale(*agent, *beat, write.now);
            write.emit(event);
        }
        self.commit(write).await?;
        Ok(stale.into_iter().map(|(agent, _)| agent).collect())
    }
}
