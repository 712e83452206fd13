//! Agent targets and the target-state query.

use brokkr_core::page::{Order, Page, PageRequest};
use brokkr_core::store::{Error, Result, TargetFilter};
use brokkr_core::{
    Actor, AgentId, AgentStatus, AgentTarget, AgentTargetState, AuditAction, ResourceKind, StackId,
    TargetAction, TargetState, TargetStateEntry,
};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, Iterable, QueryFilter,
    QueryOrder, QuerySelect, Value,
};
use std::collections::HashMap;
use std::sync::LazyLock;

use uuid::Uuid;

use crate::audit::Audit;
use crate::convert;
use crate::entity::agent_targets::{self, Column};
use crate::entity::agents as agents_entity;
use crate::entity::deployment_objects;
use crate::errors::db;
use crate::paging::bad_cursor;
use crate::write::Write;
use crate::{SqlStore, agents};

/// The cursor of the targets listing: `<agent id>:<stack id>`.
fn target_cursor(page: &PageRequest) -> Result<Option<(Uuid, Uuid)>> {
    let Some(cursor) = &page.cursor else {
        return Ok(None);
    };
    let (agent, stack) = cursor.0.split_once(':').ok_or_else(|| bad_cursor(page))?;
    let parse = |s: &str| Uuid::parse_str(s).map_err(|_| bad_cursor(page));
    Ok(Some((parse(agent)?, parse(stack)?)))
}

/// The target-state query: one join from the agents' targets through each stack to the
/// object the agent gets, its pin's if a rollout pinned it, else the stack's release
/// head. It reads only the agents' own target rows (primary-key prefix) and one row of
/// `stacks`, `agent_stack_pins` and `deployment_objects` per target (primary keys), so
/// its cost never grows with history or with other agents. `filter` ends the
/// statement: `= ?` for one agent, `IN (...)` for many.
fn target_state_sql(filter: &str) -> String {
    // The column list is built once: the query runs on every cache miss.
    static SELECT: LazyLock<String> = LazyLock::new(|| {
        let object_columns: Vec<String> = deployment_objects::Column::iter()
            .map(|c| {
                let name = sea_orm::IdenStatic::as_str(&c);
                format!("d.{name} AS d_{name}")
            })
            .collect();
        format!(
            "SELECT t.agent_id AS agent_id, t.removed_at AS removed_at, s.name AS stack_name, {} \
             FROM agent_targets t \
             JOIN stacks s ON s.id = t.stack_id \
             LEFT JOIN agent_stack_pins p ON p.agent_id = t.agent_id AND p.stack_id = t.stack_id \
             JOIN deployment_objects d \
               ON d.id = COALESCE(p.deployment_object_id, s.release_deployment_object_id) \
             WHERE t.agent_id ",
            object_columns.join(", ")
        )
    });
    format!("{}{filter}", *SELECT)
}

/// One row of the target-state query: the agent it belongs to and its entry.
fn target_entry(row: &sea_orm::QueryResult) -> Result<(AgentId, TargetStateEntry)> {
    let agent: Uuid = row.try_get("", "agent_id").map_err(db)?;
    let object = deployment_objects::Model::from_query_result(row, "d_").map_err(db)?;
    let removed = row
        .try_get::<Option<chrono::DateTime<chrono::Utc>>>("", "removed_at")
        .map_err(db)?
        .is_some();
    let action = if removed || object.is_deletion_marker {
        TargetAction::Remove
    } else {
        TargetAction::Apply
    };
    let entry = TargetStateEntry {
        stack_id: object.stack_id.into(),
        stack_name: row.try_get("", "stack_name").map_err(db)?,
        action,
        deployment_object: convert::deployment_object(object)?,
    };
    Ok((agent.into(), entry))
}

impl SqlStore {
    pub(crate) async fn unassign_stack_impl(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<()> {
        let mut write = self.begin().await?;
        unassign_in(&mut write, actor, agent_id, stack_id).await?;
        self.commit(write).await
    }

    pub(crate) async fn list_agent_targets_impl(
        &self,
        filter: &TargetFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>> {
        let mut query = agent_targets::Entity::find();
        if let Some(agent) = filter.agent_id {
            query = query.filter(Column::AgentId.eq(agent.0));
        }
        if let Some(stack) = filter.stack_id {
            query = query.filter(Column::StackId.eq(stack.0));
        }
        if let Some((agent, stack)) = target_cursor(page)? {
            let after = match page.order {
                Order::Ascending => Condition::any()
                    .add(Column::AgentId.gt(agent))
                    .add(Column::AgentId.eq(agent).and(Column::StackId.gt(stack))),
                Order::Descending => Condition::any()
                    .add(Column::AgentId.lt(agent))
                    .add(Column::AgentId.eq(agent).and(Column::StackId.lt(stack))),
            };
            query = query.filter(after);
        }
        let query = match page.order {
            Order::Ascending => query
                .order_by_asc(Column::AgentId)
                .order_by_asc(Column::StackId),
            Order::Descending => query
                .order_by_desc(Column::AgentId)
                .order_by_desc(Column::StackId),
        };
        let rows = query
            .limit(u64::from(page.effective_limit()) + 1)
            .all(&self.reader)
            .await
            .map_err(db)?;
        crate::paging::page_of(rows, page, convert::target, |t| {
            format!("{}:{}", t.agent_id, t.stack_id)
        })
    }

    pub(crate) async fn target_state_impl(&self, agent_id: AgentId) -> Result<TargetState> {
        agents::live_agent(&self.reader, agent_id, false).await?;
        let rows = self
            .reader
            .query_all_raw(crate::sql::stmt(
                self.backend,
                &target_state_sql("= ?"),
                [agent_id.0.into()],
            ))
            .await
            .map_err(db)?;
        let entries = rows
            .iter()
            .map(|row| target_entry(row).map(|(_, entry)| entry))
            .collect::<Result<Vec<_>>>()?;
        Ok(TargetState::new(agent_id, entries))
    }

    /// Target states of many agents: per chunk of agents, one query for their statuses
    /// and one for all their targets, side by side.
    pub(crate) async fn target_states_impl(
        &self,
        agents: &[AgentId],
    ) -> Result<Vec<AgentTargetState>> {
        let mut out = Vec::with_capacity(agents.len());
        for chunk in agents.chunks(agents::CHUNK) {
            // Only the status: the rest of the row (labels, capabilities) is not needed.
            // By primary key alone, deleted agents dropped below: see `sql::live_ids`.
            let statuses = agents_entity::Entity::find()
                .select_only()
                .column(agents_entity::Column::Id)
                .column(agents_entity::Column::Status)
                .column(agents_entity::Column::DeletedAt)
                .filter(agents_entity::Column::Id.is_in(chunk.iter().map(|a| a.0)))
                .into_tuple::<(Uuid, String, crate::sql::DeletedAt)>()
                .all(&self.reader);
            let filter = format!("IN ({})", crate::sql::bind_params(chunk.len()));
            let targets = self.reader.query_all_raw(crate::sql::stmt(
                self.backend,
                &target_state_sql(&filter),
                chunk.iter().map(|a| Value::from(a.0)),
            ));
            let (statuses, targets) = futures::try_join!(statuses, targets).map_err(db)?;
            let mut states: HashMap<AgentId, (AgentStatus, Vec<TargetStateEntry>)> =
                HashMap::with_capacity(statuses.len());
            for (id, status, _) in statuses
                .into_iter()
                .filter(|(.., deleted)| deleted.is_none())
            {
                states.insert(id.into(), (convert::agent_status(&status)?, Vec::new()));
            }
            for row in &targets {
                let (agent, entry) = target_entry(row)?;
                // A target of an agent deleted between the two queries is left out
                // with its agent.
                if let Some((_, entries)) = states.get_mut(&agent) {
                    entries.push(entry);
                }
            }
            out.extend(states.into_iter().map(|(agent, (agent_status, entries))| {
                AgentTargetState {
                    agent_status,
                    state: TargetState::new(agent, entries),
                }
            }));
        }
        Ok(out)
    }
}

/// Unassigns a live target in `write` and audits; the agent is woken at commit.
pub(crate) async fn unassign_in(
    write: &mut Write,
    actor: &Actor,
    agent_id: AgentId,
    stack_id: StackId,
) -> Result<()> {
    agents::live_agent(write.tx(), agent_id, false).await?;
    let updated = agent_targets::Entity::update_many()
        .col_expr(Column::RemovedAt, Expr::value(write.now))
        .filter(Column::AgentId.eq(agent_id.0))
        .filter(Column::StackId.eq(stack_id.0))
        .filter(Column::RemovedAt.is_null())
        .exec(write.tx())
        .await
        .map_err(db)?;
    if updated.rows_affected == 0 {
        return Err(Error::not_found(
            "agent target",
            format!("{agent_id}:{stack_id}"),
        ));
    }
    // Never sent anything of the stack (no release head, no pin), the agent has
    // nothing to remove and no removal to wait for: retire the target now.
    if !ever_sent(write, agent_id, stack_id).await? {
        agent_targets::Entity::delete_many()
            .filter(Column::AgentId.eq(agent_id.0))
            .filter(Column::StackId.eq(stack_id.0))
            .exec(write.tx())
            .await
            .map_err(db)?;
    }
    crate::rollout_due::stacks(write, &[stack_id.0]).await?;
    write.affect([agent_id]);
    let summary = format!("unassigned stack {stack_id} from agent {agent_id}");
    write
        .audit(
            actor,
            Audit::new(
                AuditAction::Unassign,
                ResourceKind::AgentTarget,
                stack_id,
                summary,
            ),
        )
        .await?;
    Ok(())
}

/// Whether the agent was ever sent anything of the stack: a release head, or its pin.
async fn ever_sent(write: &Write, agent: AgentId, stack: StackId) -> Result<bool> {
    let row = write
        .tx()
        .query_one_raw(crate::sql::stmt(
            write.backend(),
            "SELECT s.release_deployment_object_id AS head, p.deployment_object_id AS pinned \
             FROM stacks s LEFT JOIN agent_stack_pins p ON p.stack_id = s.id AND p.agent_id = ? \
             WHERE s.id = ?",
            [agent.0.into(), stack.0.into()],
        ))
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Ok(false);
    };
    let head: Option<Uuid> = row.try_get("", "head").map_err(db)?;
    let pinned: Option<Uuid> = row.try_get("", "pinned").map_err(db)?;
    Ok(head.is_some() || pinned.is_some())
}
