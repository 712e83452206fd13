//! Placement policies, stored decisions, and the placement targets that follow them.
//!
//! A decision is applied as a diff against the stack's target rows, read once: the
//! writes are a few multi-row statements whatever the number of agents. On PostgreSQL
//! the placement row is locked (`FOR UPDATE`) first, so replicas recording decisions
//! for the same stack take turns instead of interleaving their diffs; on SQLite the
//! single `IMMEDIATE` writer serialises them already.

use std::collections::{BTreeSet, HashMap, HashSet};

use brokkr_core::page::{Order, Page, PageRequest};
use brokkr_core::store::{Error, Result};
use brokkr_core::{
    Actor, AgentId, AuditAction, PlacementChange, PlacementDecision, PlacementPolicy, ResourceKind,
    StackId, StackPlacement, TargetSource, WebhookEvent,
};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Value,
};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::{self, from_json, to_json};
use crate::entity::{agent_targets, stack_placements, stacks as stack_rows};
use crate::errors::{corrupt, db};
use crate::paging::{page_of, uuid_cursor};
use crate::sql::uuid_in;
use crate::write::Write;
use crate::{SqlStore, agents, sql, stacks};

/// Rows or ids per statement: far below the bind-parameter limits of both databases.
const CHUNK: usize = 1_000;

/// The audit summary of a decision: counts, never the agent lists (they can be long).
pub(crate) fn decision_summary(stack: &str, chosen: usize, change: &PlacementChange) -> String {
    format!(
        "placed stack {stack:?} on {chosen} agents ({} added, {} removed)",
        change.added.len(),
        change.removed.len()
    )
}

/// What one stack's placement targets need to follow its chosen agents.
#[derive(Default)]
struct TargetDiff {
    revive: Vec<Uuid>,
    remove: Vec<Uuid>,
    insert: Vec<Uuid>,
}

/// Makes the stack's placement targets follow `chosen`; see [`sync_targets_many`].
async fn sync_targets(
    write: &mut Write,
    stack: &stack_rows::Model,
    chosen: &BTreeSet<Uuid>,
) -> Result<PlacementChange> {
    let mut changes = sync_targets_many(write, &[(stack, chosen)]).await?;
    changes
        .pop()
        .ok_or_else(|| corrupt("placement", "no change for the stack synced"))
}

/// Makes each stack's placement targets follow its chosen agents: chosen live agents
/// without a live target get one (a target awaiting removal is revived), placement
/// targets of agents not chosen are unassigned. Direct targets are never touched.
/// Every update repeats the state it expects in its filter, so a target changed
/// meanwhile by `assign_stack` or a confirmed removal is left as that change left it.
/// The stacks' targets and the live agents are read with one query each and the new
/// targets inserted with one statement, whatever the number of stacks; removals and
/// revivals take a statement per stack. One change per stack, in order.
pub(crate) async fn sync_targets_many(
    write: &mut Write,
    stacks: &[(&stack_rows::Model, &BTreeSet<Uuid>)],
) -> Result<Vec<PlacementChange>> {
    use agent_targets::Column;
    let placement = TargetSource::Placement.as_str();
    let mut rows_of: HashMap<Uuid, Vec<agent_targets::Model>> = HashMap::new();
    let ids: Vec<Uuid> = stacks.iter().map(|(stack, _)| stack.id).collect();
    for chunk in ids.chunks(CHUNK) {
        let rows = agent_targets::Entity::find()
            .filter(uuid_in(
                write.backend(),
                Column::StackId,
                chunk.iter().copied(),
            ))
            .all(write.tx())
            .await
            .map_err(db)?;
        for row in rows {
            rows_of.entry(row.stack_id).or_default().push(row);
        }
    }
    let mut diffs: Vec<TargetDiff> = Vec::with_capacity(stacks.len());
    for (stack, chosen) in stacks {
        let rows = rows_of.remove(&stack.id).unwrap_or_default();
        let mut has_row = HashSet::with_capacity(rows.len());
        let mut diff = TargetDiff::default();
        for row in &rows {
            has_row.insert(row.agent_id);
            let is_chosen = chosen.contains(&row.agent_id);
            match row.removed_at {
                None if row.source == placement && !is_chosen => diff.remove.push(row.agent_id),
                Some(_) if is_chosen => diff.revive.push(row.agent_id),
                _ => {}
            }
        }
        diff.insert = chosen
            .iter()
            .filter(|a| !has_row.contains(*a))
            .copied()
            .collect();
        diffs.push(diff);
    }
    // A decision may name an agent deleted since it was computed: it gets nothing.
    let candidates: Vec<Uuid> = diffs
        .iter()
        .flat_map(|d| d.revive.iter().chain(&d.insert))
        .copied()
        .collect();
    if !candidates.is_empty() {
        let live = agents::live_agent_ids(write.tx(), &candidates).await?;
        for diff in &mut diffs {
            diff.revive.retain(|a| live.contains(a));
            diff.insert.retain(|a| live.contains(a));
        }
    }

    let removing: Vec<Uuid> = stacks
        .iter()
        .zip(&diffs)
        .filter(|(_, diff)| !diff.remove.is_empty())
        .map(|((stack, _), _)| stack.id)
        .collect();
    let sent = ever_sent(write, &removing).await?;
    let now = write.now;
    for ((stack, _), diff) in stacks.iter().zip(&diffs) {
        // Agents never sent anything of the stack (no release head, no pin) have
        // nothing to remove and no removal to wait for (as in `unassign_stack`).
        let (sent_to, never_sent): (Vec<Uuid>, Vec<Uuid>) = diff
            .remove
            .iter()
            .partition(|agent| sent.sent_to(**agent, stack.id));
        for chunk in never_sent.chunks(CHUNK) {
            agent_targets::Entity::delete_many()
                .filter(live_placed(stack.id, chunk))
                .exec(write.tx())
                .await
                .map_err(db)?;
        }
        for chunk in sent_to.chunks(CHUNK) {
            agent_targets::Entity::update_many()
                .col_expr(Column::RemovedAt, Expr::value(now))
                .filter(live_placed(stack.id, chunk))
                .exec(write.tx())
                .await
                .map_err(db)?;
        }
        for chunk in diff.revive.chunks(CHUNK) {
            agent_targets::Entity::update_many()
                .col_expr(
                    Column::RemovedAt,
                    Expr::value(Value::ChronoDateTimeUtc(None)),
                )
                .col_expr(Column::Source, Expr::value(placement))
                .col_expr(Column::CreatedAt, Expr::value(now))
                .filter(Column::StackId.eq(stack.id))
                .filter(Column::AgentId.is_in(chunk.iter().copied()))
                .filter(Column::RemovedAt.is_not_null())
                .exec(write.tx())
                .await
                .map_err(db)?;
        }
    }
    let inserts: Vec<(Uuid, Uuid)> = stacks
        .iter()
        .zip(&diffs)
        .flat_map(|((stack, _), diff)| diff.insert.iter().map(|agent| (*agent, stack.id)))
        .collect();
    for chunk in inserts.chunks(CHUNK) {
        let mut stmt = Query::insert();
        stmt.into_table(agent_targets::Entity)
            .columns([
                Column::AgentId,
                Column::StackId,
                Column::Source,
                Column::CreatedAt,
            ])
            // A target made meanwhile (an admin's assignment) stays as it is.
            .on_conflict(
                OnConflict::columns([Column::AgentId, Column::StackId])
                    .do_nothing()
                    .to_owned(),
            );
        for (agent, stack) in chunk {
            stmt.values_panic([
                (*agent).into(),
                (*stack).into(),
                placement.into(),
                now.into(),
            ]);
        }
        write.tx().execute(&stmt).await.map_err(db)?;
    }

    let moved: Vec<Uuid> = stacks
        .iter()
        .zip(&diffs)
        .filter(|(_, d)| !(d.remove.is_empty() && d.revive.is_empty() && d.insert.is_empty()))
        .map(|((stack, _), _)| stack.id)
        .collect();
    crate::rollout_due::stacks(write, &moved).await?;
    let mut changes = Vec::with_capacity(diffs.len());
    for diff in diffs {
        let mut added: Vec<AgentId> = diff
            .revive
            .into_iter()
            .chain(diff.insert)
            .map(AgentId)
            .collect();
        let mut removed: Vec<AgentId> = diff.remove.into_iter().map(AgentId).collect();
        added.sort_unstable();
        removed.sort_unstable();
        write.affect(added.iter().chain(&removed).copied());
        changes.push(PlacementChange {
            added,
            removed,
            decision_changed: false,
        });
    }
    Ok(changes)
}

/// The live placement targets of `agents` on `stack`.
fn live_placed(stack: Uuid, agents: &[Uuid]) -> Condition {
    use agent_targets::Column;
    Condition::all()
        .add(Column::StackId.eq(stack))
        .add(Column::AgentId.is_in(agents.iter().copied()))
        .add(Column::Source.eq(TargetSource::Placement.as_str()))
        .add(Column::RemovedAt.is_null())
}

/// What stacks have sent their agents: a release head to all, or a pin to some (a
/// stack's first object under a rollout).
struct Sent {
    released: HashSet<Uuid>,
    pinned: HashSet<(Uuid, Uuid)>,
}

impl Sent {
    fn sent_to(&self, agent: Uuid, stack: Uuid) -> bool {
        self.released.contains(&stack) || self.pinned.contains(&(agent, stack))
    }
}

/// What `stacks` have sent their agents, with one query (none for no stacks); pins are
/// read only for a stack without a release head.
async fn ever_sent(write: &Write, stacks: &[Uuid]) -> Result<Sent> {
    let mut sent = Sent {
        released: HashSet::new(),
        pinned: HashSet::new(),
    };
    for chunk in stacks.chunks(CHUNK) {
        let query = format!(
            "SELECT s.id, s.release_deployment_object_id AS head, p.agent_id \
             FROM stacks s LEFT JOIN agent_stack_pins p \
               ON p.stack_id = s.id AND s.release_deployment_object_id IS NULL \
             WHERE s.id IN ({})",
            sql::bind_params(chunk.len())
        );
        let rows = write
            .tx()
            .query_all_raw(sql::stmt(
                write.backend(),
                &query,
                chunk.iter().map(|s| Value::from(*s)),
            ))
            .await
            .map_err(db)?;
        for row in rows {
            let stack: Uuid = row.try_get("", "id").map_err(db)?;
            if row
                .try_get::<Option<Uuid>>("", "head")
                .map_err(db)?
                .is_some()
            {
                sent.released.insert(stack);
            }
            if let Some(agent) = row.try_get::<Option<Uuid>>("", "agent_id").map_err(db)? {
                sent.pinned.insert((agent, stack));
            }
        }
    }
    Ok(sent)
}

/// The live placements after `cursor`, in the page's order: one join, so deleted
/// stacks are skipped in the database rather than after paging.
fn list_sql(order: Order, after: bool) -> String {
    let (cmp, dir) = match order {
        Order::Ascending => (">", "ASC"),
        Order::Descending => ("<", "DESC"),
    };
    let after = if after {
        format!("AND p.stack_id {cmp} ? ")
    } else {
        String::new()
    };
    format!(
        "SELECT p.stack_id, p.policy, p.decision, p.updated_at, p.decided_at \
         FROM stack_placements p JOIN stacks s ON s.id = p.stack_id \
         WHERE s.deleted_at IS NULL {after}\
         ORDER BY p.stack_id {dir} LIMIT ?"
    )
}

impl SqlStore {
    pub(crate) async fn set_placement_policy_impl(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<PlacementPolicy>,
    ) -> Result<Option<StackPlacement>> {
        if let Some(policy) = &policy {
            policy
                .validate()
                .map_err(|err| Error::Invalid(err.to_string()))?;
        }
        let mut write = self.begin().await?;
        let placement = set_policy_in(&mut write, actor, stack_id, policy).await?;
        self.commit(write).await?;
        Ok(placement)
    }

    pub(crate) async fn get_placement_impl(
        &self,
        stack_id: StackId,
    ) -> Result<Option<StackPlacement>> {
        stacks::live_stack(&self.reader, stack_id, false).await?;
        stack_placements::Entity::find_by_id(stack_id.0)
            .one(&self.reader)
            .await
            .map_err(db)?
            .map(convert::placement)
            .transpose()
    }

    pub(crate) async fn list_placements_impl(
        &self,
        page: &PageRequest,
    ) -> Result<Page<StackPlacement>> {
        let after = uuid_cursor(page)?;
        let limit = i64::from(page.effective_limit()) + 1;
        let mut values: Vec<Value> = Vec::with_capacity(2);
        if let Some(after) = after {
            values.push(after.into());
        }
        values.push(limit.into());
        let rows = self
            .reader
            .query_all_raw(sql::stmt(
                self.backend,
                &list_sql(page.order, after.is_some()),
                values,
            ))
            .await
            .map_err(db)?;
        let rows = rows
            .iter()
            .map(|row| stack_placements::Model::from_query_result(row, "").map_err(db))
            .collect::<Result<Vec<_>>>()?;
        page_of(rows, page, convert::placement, |p| p.stack_id.to_string())
    }

    pub(crate) async fn record_placement_impl(
        &self,
        actor: &Actor,
        stack_id: StackId,
        decision: PlacementDecision,
    ) -> Result<PlacementChange> {
        let mut write = self.begin().await?;
        let change = record_in(&mut write, actor, stack_id, decision).await?;
        self.commit(write).await?;
        Ok(change)
    }
}

/// Sets (validated by the caller) or removes a live stack's policy in `write`, audited.
pub(crate) async fn set_policy_in(
    write: &mut Write,
    actor: &Actor,
    stack_id: StackId,
    policy: Option<PlacementPolicy>,
) -> Result<Option<StackPlacement>> {
    use stack_placements::Column;
    let stack = stacks::live_stack(write.tx(), stack_id, false).await?;
    let Some(policy) = policy else {
        let deleted = stack_placements::Entity::delete_by_id(stack_id.0)
            .exec(write.tx())
            .await
            .map_err(db)?;
        // Removing a policy that is not there changes nothing.
        if deleted.rows_affected == 0 {
            return Ok(None);
        }
        let change = sync_targets(write, &stack, &BTreeSet::new()).await?;
        let summary = format!(
            "removed the placement policy of stack {:?} ({} placement targets unassigned)",
            stack.name,
            change.removed.len()
        );
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::Delete,
                    ResourceKind::Placement,
                    stack_id,
                    summary,
                ),
            )
            .await?;
        return Ok(None);
    };
    let row = stack_placements::Model {
        stack_id: stack_id.0,
        policy: to_json(&policy),
        decision: None,
        updated_at: write.now,
        decided_at: None,
    };
    // One statement whether or not the stack had a policy; the decision stays
    // until the caller records the next one.
    stack_placements::Entity::insert(stack_placements::ActiveModel::from(row))
        .on_conflict(
            OnConflict::column(Column::StackId)
                .update_columns([Column::Policy, Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    let row = stack_placements::Entity::find_by_id(stack_id.0)
        .one(write.tx())
        .await
        .map_err(db)?
        .ok_or_else(|| corrupt("placement", "row missing right after its upsert"))?;
    let summary = format!("set the placement policy of stack {:?}", stack.name);
    write
        .audit(
            actor,
            Audit::new(
                AuditAction::Update,
                ResourceKind::Placement,
                stack_id,
                summary,
            ),
        )
        .await?;
    convert::placement(row).map(Some)
}

/// Records a decision for a stack with a policy in `write` and makes its placement
/// targets follow its chosen and leaving agents (see `Store::record_placement`).
pub(crate) async fn record_in(
    write: &mut Write,
    actor: &Actor,
    stack_id: StackId,
    decision: PlacementDecision,
) -> Result<PlacementChange> {
    use stack_placements::Column;
    let stack = stacks::live_stack(write.tx(), stack_id, false).await?;
    let row = stack_placements::Entity::find_by_id(stack_id.0)
        .lock_exclusive()
        .one(write.tx())
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("placement", stack_id))?;
    let stored: Option<PlacementDecision> = row
        .decision
        .map(|d| from_json("placement decision", d))
        .transpose()?;
    let decision_changed = stored.as_ref() != Some(&decision);
    let before: BTreeSet<Uuid> = stored
        .iter()
        .flat_map(|d| d.chosen.iter().map(|a| a.0))
        .collect();
    let chosen: BTreeSet<Uuid> = decision.chosen.iter().map(|a| a.0).collect();
    // Leaving agents keep their targets (graceful eviction) until a later decision no
    // longer lists them.
    let keeps: BTreeSet<Uuid> = decision.keeps().iter().map(|a| a.0).collect();
    let mut change = sync_targets(write, &stack, &keeps).await?;
    change.decision_changed = decision_changed;
    if decision_changed {
        stack_placements::Entity::update_many()
            .col_expr(Column::Decision, Expr::value(to_json(&decision)))
            .col_expr(Column::DecidedAt, Expr::value(write.now))
            .filter(Column::StackId.eq(stack_id.0))
            .exec(write.tx())
            .await
            .map_err(db)?;
    }
    if before != chosen {
        let from = stored.as_ref().map(|d| d.chosen.as_slice());
        let event = WebhookEvent::placement_changed(stack_id, from, &decision.chosen, write.now);
        write.emit(event);
    }
    if before != chosen || !change.added.is_empty() || !change.removed.is_empty() {
        let summary = decision_summary(&stack.name, chosen.len(), &change);
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::Place,
                    ResourceKind::Placement,
                    stack_id,
                    summary,
                ),
            )
            .await?;
    }
    Ok(change)
}
