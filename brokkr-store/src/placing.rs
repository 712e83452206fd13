//! A new policy and its first decision, written together and in batches.
//!
//! Onboarding a tenant places its new stack: setting the policy and recording the
//! decision were two transactions and half a dozen reads per stack. Here both go in
//! one transaction, which also takes every other stack placed at the same moment
//! ([`crate::batch`]): the stacks, their stored placements (locked) and their targets
//! read with one query each, the placements upserted and the new targets inserted
//! with one statement each.
//!
//! Each write names the decision it was decided from (`expected`); a stack whose
//! stored decision differs is left alone and answered `None`, so its caller decides
//! again from what is stored. On PostgreSQL the stacks' rows are locked first, so two
//! replicas placing one stack at once take turns and the second sees the first's
//! decision.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use brokkr_core::store::{Error, Result, same_agents};
use brokkr_core::{
    Actor, AgentId, AuditAction, PlacementChange, PlacementDecision, PlacementPolicy, ResourceKind,
    StackId, StackPlacement, WebhookEvent,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::audit::Audit;
use crate::batch::{self, Batched, distinct};
use crate::convert::{self, from_json, to_json};
use crate::entity::{stack_placements, stacks as stack_rows};
use crate::errors::db;
use crate::placements::{decision_summary, sync_targets_many};
use crate::sql::uuid_in;
use crate::write::{Write, Writer};
use crate::{Backend, SqlStore};

/// Committers on PostgreSQL.
pub(crate) const POSTGRES_COMMITTERS: usize = 2;

/// One stack to place, waiting for its batch.
pub(crate) struct Placing {
    pub(crate) actor: Actor,
    pub(crate) stack: StackId,
    pub(crate) policy: PlacementPolicy,
    pub(crate) decision: PlacementDecision,
    pub(crate) expected: Option<Vec<AgentId>>,
}

type Placed = Option<(StackPlacement, PlacementChange)>;

impl Batched for Placing {
    type Output = Placed;
    const WHAT: &'static str = "placements";

    fn bytes(&self) -> usize {
        // Policies and decisions are small; the chosen agents are what can grow.
        self.decision.chosen.len() * 16
    }

    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<Placed>>>> + Send {
        place_batch(writer, batch)
    }
}

/// What one accepted write stores.
struct Accepted<'a> {
    placing: &'a Placing,
    stack: &'a stack_rows::Model,
    row: stack_placements::Model,
    chosen: BTreeSet<Uuid>,
    /// The chosen agents before, for the audit record.
    before: BTreeSet<Uuid>,
    /// The stored decision's chosen agents, for the webhook event.
    from: Option<Vec<AgentId>>,
    decision_changed: bool,
}

async fn place_batch(writer: &Writer, batch: &[Placing]) -> Result<Vec<Result<Placed>>> {
    let mut write = writer.begin().await?;
    let ids = distinct(batch.iter().map(|p| p.stack.0));
    let stacks = live_stacks(&write, &ids).await?;
    let stored = locked_placements(&write, &ids).await?;

    let mut results: Vec<Option<Result<Placed>>> = Vec::with_capacity(batch.len());
    let mut accepted: Vec<Accepted<'_>> = Vec::new();
    let mut seen = BTreeSet::new();
    for placing in batch {
        let Some(stack) = stacks.get(&placing.stack.0) else {
            results.push(Some(Err(Error::not_found("stack", placing.stack))));
            continue;
        };
        let before: Option<PlacementDecision> = stored
            .get(&placing.stack.0)
            .and_then(|row| row.decision.clone())
            .map(|d| from_json("placement decision", d))
            .transpose()?;
        let before_chosen = before.as_ref().map(|d| d.chosen.as_slice());
        // A second write for a stack in one batch decided from what the first replaces.
        if !seen.insert(placing.stack) || !same_agents(before_chosen, placing.expected.as_deref()) {
            results.push(Some(Ok(None)));
            continue;
        }
        let decision_changed = before.as_ref() != Some(&placing.decision);
        let decided_at = match stored.get(&placing.stack.0) {
            Some(row) if !decision_changed => row.decided_at,
            _ => Some(write.now),
        };
        let row = stack_placements::Model {
            stack_id: placing.stack.0,
            policy: to_json(&placing.policy),
            decision: Some(to_json(&placing.decision)),
            updated_at: write.now,
            decided_at,
        };
        accepted.push(Accepted {
            placing,
            stack,
            row,
            chosen: placing.decision.chosen.iter().map(|a| a.0).collect(),
            before: before_chosen
                .unwrap_or_default()
                .iter()
                .map(|a| a.0)
                .collect(),
            from: before_chosen.map(<[AgentId]>::to_vec),
            decision_changed,
        });
        results.push(None);
    }
    if accepted.is_empty() {
        return Ok(results.into_iter().flatten().collect());
    }

    upsert_placements(&write, accepted.iter().map(|a| a.row.clone())).await?;
    let targets: Vec<(&stack_rows::Model, &BTreeSet<Uuid>)> =
        accepted.iter().map(|a| (a.stack, &a.chosen)).collect();
    let changes = sync_targets_many(&mut write, &targets).await?;
    let mut audits = Vec::with_capacity(accepted.len() * 2);
    for (one, change) in accepted.iter().zip(&changes) {
        let name = &one.stack.name;
        let set = format!("set the placement policy of stack {name:?}");
        audits.push((
            &one.placing.actor,
            Audit::new(
                AuditAction::Update,
                ResourceKind::Placement,
                one.placing.stack,
                set,
            ),
        ));
        if one.before != one.chosen || !change.added.is_empty() || !change.removed.is_empty() {
            let placed = decision_summary(name, one.chosen.len(), change);
            audits.push((
                &one.placing.actor,
                Audit::new(
                    AuditAction::Place,
                    ResourceKind::Placement,
                    one.placing.stack,
                    placed,
                ),
            ));
        }
    }
    write.audit_many(audits).await?;
    for one in accepted.iter().filter(|one| one.before != one.chosen) {
        let event = WebhookEvent::placement_changed(
            one.placing.stack,
            one.from.as_deref(),
            &one.placing.decision.chosen,
            write.now,
        );
        write.emit(event);
    }

    let mut answers = accepted.into_iter().zip(changes);
    let mut out = Vec::with_capacity(results.len());
    for result in results {
        out.push(match result {
            Some(done) => done,
            None => match answers.next() {
                Some((one, mut change)) => {
                    change.decision_changed = one.decision_changed;
                    convert::placement(one.row).map(|placement| Some((placement, change)))
                }
                None => Err(Error::Backend("an accepted placement has no answer".into())),
            },
        });
    }
    Ok(batch::commit(writer, write, Placing::WHAT, out).await)
}

/// The live ones among the stacks, by id, locked on PostgreSQL in id order (as appends
/// lock them): replicas placing the same stack take turns, and the second reads the
/// placement the first committed. Matched on the primary key alone, deleted ones
/// dropped here (see `sql::live_ids`).
async fn live_stacks(write: &Write, ids: &[Uuid]) -> Result<HashMap<Uuid, stack_rows::Model>> {
    let mut query = stack_rows::Entity::find()
        .filter(uuid_in(
            write.backend(),
            stack_rows::Column::Id,
            ids.iter().copied(),
        ))
        .order_by_asc(stack_rows::Column::Id);
    if write.backend() == Backend::Postgres {
        query = query.lock_exclusive();
    }
    let rows = query.all(write.tx()).await.map_err(db)?;
    Ok(rows
        .into_iter()
        .filter(|row| row.deleted_at.is_none())
        .map(|row| (row.id, row))
        .collect())
}

/// The stored placements of the stacks, locked on PostgreSQL in stack order, against
/// decisions recorded meanwhile by the controller of another replica.
async fn locked_placements(
    write: &Write,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, stack_placements::Model>> {
    let mut query = stack_placements::Entity::find()
        .filter(uuid_in(
            write.backend(),
            stack_placements::Column::StackId,
            ids.iter().copied(),
        ))
        .order_by_asc(stack_placements::Column::StackId);
    if write.backend() == Backend::Postgres {
        query = query.lock_exclusive();
    }
    let rows = query.all(write.tx()).await.map_err(db)?;
    Ok(rows.into_iter().map(|row| (row.stack_id, row)).collect())
}

/// Inserts or replaces the placements, with one statement.
async fn upsert_placements(
    write: &Write,
    rows: impl Iterator<Item = stack_placements::Model>,
) -> Result<()> {
    use stack_placements::Column;
    let mut rows: Vec<stack_placements::Model> = rows.collect();
    // Stack order, like the locks.
    rows.sort_unstable_by_key(|row| row.stack_id);
    stack_placements::Entity::insert_many(
        rows.into_iter().map(stack_placements::ActiveModel::from),
    )
    .on_conflict(
        OnConflict::column(Column::StackId)
            .update_columns([
                Column::Policy,
                Column::Decision,
                Column::UpdatedAt,
                Column::DecidedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(write.tx())
    .await
    .map_err(db)?;
    Ok(())
}

impl SqlStore {
    pub(crate) async fn place_stack_impl(
        &self,
        actor: &Actor,
        stack: StackId,
        policy: PlacementPolicy,
        decision: PlacementDecision,
        expected: Option<Vec<AgentId>>,
    ) -> Result<Placed> {
        policy
            .validate()
            .map_err(|err| Error::Invalid(err.to_string()))?;
        let placing = Placing {
            actor: *actor,
            stack,
            policy,
            decision,
            expected,
        };
        self.placing.submit(placing).await
    }
}
