//! Health reports: the latest health of every agent for every stack, one row each,
//! replaced in place by every report and never audited (observed state, like
//! heartbeats).

use brokkr_core::health::summarize;
use brokkr_core::store::{Error, Result};
use brokkr_core::{Actor, HealthReport, NewHealthReport, StackId};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, QuerySelect};
use uuid::Uuid;

use crate::convert::{self, to_json};
use crate::entity::deployment_objects;
use crate::entity::health_reports::{self, Column};
use crate::errors::db;
use crate::{SqlStore, agents, sql};

/// A stack's reports ordered by agent, or one row of nulls when it has none; no row at
/// all means no such stack. One lookup of the stack's primary key, one range of the
/// reports' primary key.
const STACK_HEALTH_SQL: &str = "\
    SELECT h.stack_id, h.agent_id, h.deployment_object_id, h.status, h.summary, \
           h.resources, h.reported_at \
    FROM stacks s LEFT JOIN health_reports h ON h.stack_id = s.id \
    WHERE s.id = ? \
    ORDER BY h.agent_id";

impl SqlStore {
    pub(crate) async fn record_health_impl(
        &self,
        _actor: &Actor,
        new: NewHealthReport,
    ) -> Result<HealthReport> {
        new.validate()?;
        let write = self.begin().await?;
        agents::live_agent(write.tx(), new.agent_id, false).await?;
        // Only the stack id: the object's YAML may be megabytes and is not needed.
        let stack_id: Uuid = deployment_objects::Entity::find_by_id(new.deployment_object_id.0)
            .select_only()
            .column(deployment_objects::Column::StackId)
            .into_tuple()
            .one(write.tx())
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("deployment object", new.deployment_object_id))?;
        let row = health_reports::Model {
            stack_id,
            agent_id: new.agent_id.0,
            deployment_object_id: new.deployment_object_id.0,
            status: summarize(&new.resources).as_str().to_owned(),
            summary: new.summary,
            resources: to_json(&new.resources),
            reported_at: write.now,
        };
        // One statement whether or not the agent reported on this stack before.
        health_reports::Entity::insert(health_reports::ActiveModel::from(row.clone()))
            .on_conflict(
                OnConflict::columns([Column::StackId, Column::AgentId])
                    .update_columns([
                        Column::DeploymentObjectId,
                        Column::Status,
                        Column::Summary,
                        Column::Resources,
                        Column::ReportedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        // No target state changes, so no agent is woken.
        self.commit(write).await?;
        convert::health_report(row)
    }

    pub(crate) async fn stack_health_impl(&self, stack_id: StackId) -> Result<Vec<HealthReport>> {
        let rows = self
            .reader
            .query_all_raw(sql::stmt(
                self.backend,
                STACK_HEALTH_SQL,
                [stack_id.0.into()],
            ))
            .await
            .map_err(db)?;
        if rows.is_empty() {
            return Err(Error::not_found("stack", stack_id));
        }
        let mut reports = Vec::with_capacity(rows.len());
        for row in rows {
            // The null row of a stack without reports.
            if row
                .try_get::<Option<Uuid>>("", "agent_id")
                .map_err(db)?
                .is_none()
            {
                continue;
            }
            let model = health_reports::Model::from_query_result(&row, "").map_err(db)?;
            reports.push(convert::health_report(model)?);
        }
        Ok(reports)
    }
}
