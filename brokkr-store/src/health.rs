//! Health reports: the latest health of every agent for every stack, one row each,
//! replaced in place by every report and never audited (observed state, like
//! heartbeats). Every agent reports on every stack it applies, so reports come in
//! crowds after a change and commit in batches ([`crate::batch`]).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use brokkr_core::health::summarize;
use brokkr_core::store::{Error, Result};
use brokkr_core::{Actor, HealthReport, HealthStatus, NewHealthReport, StackId, WebhookEvent};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, Value};
use uuid::Uuid;

use crate::batch::{self, Batched};
use crate::convert::{self, to_json};
use crate::entity::health_reports::{self, Column};
use crate::errors::db;
use crate::report_refs::ReportRefs;
use crate::write::{Write, Writer};
use crate::{Backend, SqlStore, sql};

/// Committers on PostgreSQL.
pub(crate) const POSTGRES_COMMITTERS: usize = 2;

/// A stack's reports ordered by agent, or one row of nulls when it has none; no row at
/// all means no such stack. One lookup of the stack's primary key, one range of the
/// reports' primary key.
const STACK_HEALTH_SQL: &str = "\
    SELECT h.stack_id, h.agent_id, h.deployment_object_id, h.status, h.summary, \
           h.resources, h.reported_at \
    FROM stacks s LEFT JOIN health_reports h ON h.stack_id = s.id \
    WHERE s.id = ? \
    ORDER BY h.agent_id";

/// One health report waiting for its batch.
pub(crate) struct HealthUpdate(pub(crate) NewHealthReport);

impl Batched for HealthUpdate {
    type Output = HealthReport;
    const WHAT: &'static str = "health reports";

    fn bytes(&self) -> usize {
        // The resources are bounded by `NewHealthReport::validate`; count them roughly.
        self.0.summary.as_ref().map_or(0, String::len) + self.0.resources.len() * 256
    }

    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<HealthReport>>>> + Send {
        record_reports(writer, batch)
    }
}

/// Stores a batch of reports (validated before they were queued) in one transaction: the live agents and the objects'
/// stacks read with one query each, every report upserted with one statement. When one
/// agent reports twice on a stack in a batch, the later report is the one kept.
async fn record_reports(
    writer: &Writer,
    batch: &[HealthUpdate],
) -> Result<Vec<Result<HealthReport>>> {
    let mut write = writer.begin().await?;
    let refs = ReportRefs::load(
        &write,
        batch.iter().map(|r| r.0.agent_id),
        batch.iter().map(|r| r.0.deployment_object_id),
    )
    .await?;
    let mut latest: HashMap<(Uuid, Uuid), health_reports::Model> = HashMap::new();
    let mut previous = previous_statuses(&write, batch, &refs).await?;
    let mut results = Vec::with_capacity(batch.len());
    for HealthUpdate(new) in batch {
        let stack_id = match refs.stack(new.agent_id, new.deployment_object_id) {
            Ok(stack_id) => stack_id,
            Err(err) => {
                results.push(Err(err));
                continue;
            }
        };
        let row = health_reports::Model {
            stack_id,
            agent_id: new.agent_id.0,
            deployment_object_id: new.deployment_object_id.0,
            status: summarize(&new.resources).as_str().to_owned(),
            summary: new.summary.clone(),
            resources: to_json(&new.resources),
            reported_at: write.now,
        };
        let report = convert::health_report(row.clone())?;
        let before = previous.insert((stack_id, new.agent_id.0), report.status);
        if before != Some(report.status) {
            write.emit(WebhookEvent::health_changed(&report, before, write.now));
        }
        results.push(Ok(report));
        // One row per (stack, agent) in the statement: PostgreSQL refuses an upsert
        // that touches a row twice.
        latest.insert((stack_id, new.agent_id.0), row);
    }
    if latest.is_empty() {
        return Ok(results);
    }
    let latest_stacks: Vec<Uuid> = latest.keys().map(|(stack, _)| *stack).collect();
    let mut rows: Vec<health_reports::Model> = latest.into_values().collect();
    // A fixed order, so batches upserting the same rows lock them in the same order.
    rows.sort_unstable_by_key(|row| (row.stack_id, row.agent_id));
    health_reports::Entity::insert_many(rows.into_iter().map(health_reports::ActiveModel::from))
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
    let stacks = crate::batch::distinct(latest_stacks.into_iter());
    crate::rollout_due::stacks(&write, &stacks).await?;
    // No target state changes, so no agent is woken.
    Ok(batch::commit(writer, write, HealthUpdate::WHAT, results).await)
}

/// The stored status of every (stack, agent) the batch reports on, with one query,
/// the rows locked on PostgreSQL (in key order, like the upsert) so that a concurrent
/// batch cannot report the same change.
async fn previous_statuses(
    write: &Write,
    batch: &[HealthUpdate],
    refs: &ReportRefs,
) -> Result<HashMap<(Uuid, Uuid), HealthStatus>> {
    let keys: BTreeSet<(Uuid, Uuid)> = batch
        .iter()
        .filter_map(|HealthUpdate(new)| {
            let stack = refs.stack(new.agent_id, new.deployment_object_id).ok()?;
            Some((stack, new.agent_id.0))
        })
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let lock = match write.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let pairs = vec!["(?, ?)"; keys.len()].join(", ");
    let query = format!(
        "SELECT stack_id, agent_id, status FROM health_reports \
         WHERE (stack_id, agent_id) IN ({pairs}) ORDER BY stack_id, agent_id{lock}"
    );
    let values = keys
        .iter()
        .flat_map(|(stack, agent)| [Value::from(*stack), Value::from(*agent)]);
    let rows = write
        .tx()
        .query_all_raw(sql::stmt(write.backend(), &query, values))
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            let stack = row.try_get::<Uuid>("", "stack_id").map_err(db)?;
            let agent = row.try_get::<Uuid>("", "agent_id").map_err(db)?;
            let status = row.try_get::<String>("", "status").map_err(db)?;
            Ok(((stack, agent), convert::health_status(&status)?))
        })
        .collect()
}

impl SqlStore {
    pub(crate) async fn record_health_impl(
        &self,
        _actor: &Actor,
        new: NewHealthReport,
    ) -> Result<HealthReport> {
        new.validate()?;
        self.health.submit(HealthUpdate(new)).await
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
