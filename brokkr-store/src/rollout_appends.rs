//! What appends and deletions do to their stacks' rollouts (`RolloutStore`'s doc in
//! core): the stacks locked and read with their policies, release heads and open
//! rollouts in one statement; each append decided with `AppendEffect`, in batch order,
//! before any sequence is drawn (a refused append writes nothing); then everything
//! the batch decided written with a few statements whatever its size.

use std::collections::BTreeMap;

use brokkr_core::rollout::RolloutPolicy;
use brokkr_core::store::{AppendEffect, Error, Result, ended_by_append, rollout_in_progress};
use brokkr_core::{
    Actor, AgentId, AuditAction, DeploymentObjectId, NewDeploymentObject, ResourceKind, Rollout,
    RolloutState, RolloutSubject, StackId, WebhookEvent,
};
use sea_orm::{ConnectionTrait, EntityTrait, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::from_json;
use crate::entity::rollouts;
use crate::errors::db;
use crate::rollout_rows::{OPEN, rollout_row, rollout_state};
use crate::sql::{self, bind_params};
use crate::write::Write;
use crate::{Backend, append};

/// Rows per statement, far below either database's bind-parameter limit.
const CHUNK: usize = 500;

/// A live stack as an append sees it, locked.
pub(crate) struct LockedStack {
    pub(crate) name: String,
    policy: Option<RolloutPolicy>,
    release: Option<DeploymentObjectId>,
    /// Its queued and active rollouts, as decided so far.
    open: Vec<OpenRollout>,
}

#[derive(Clone, Copy)]
struct OpenRollout {
    subject: RolloutSubject,
    state: RolloutState,
    /// Queued by this batch: its index in `RolloutEffects::queued`.
    queued_here: Option<usize>,
}

/// Locks the live ones among `stacks` (sorted) in id order, on PostgreSQL `FOR UPDATE`
/// (appends, deletions and rollout changes of a stack take turns), and reads each with
/// its policy, release head and open rollouts (oldest first). Missing and deleted
/// stacks are left out.
///
/// Two statements, the lock first: a statement that waited for a lock sees the locked
/// rows as the holder committed them, but joined rows only as they were when it
/// began, so a join could miss the rollout the holder just queued. The second reads
/// only open rollouts (`ix_rollouts_open_stack`; ordering them in SQL would make
/// SQLite walk every rollout the stack ever had instead).
///
/// The lock matches on the primary key alone and deleted stacks are dropped here (see
/// `sql::live_ids`).
pub(crate) async fn lock_stacks(
    write: &Write,
    stacks: &[StackId],
) -> Result<BTreeMap<StackId, LockedStack>> {
    let lock = match write.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let locked = format!(
        "SELECT id, name, rollout_policy, release_deployment_object_id, deleted_at \
         FROM stacks WHERE id {{stacks}} ORDER BY id{lock}"
    );
    let rows = append::query_stacks(write, &locked, stacks).await?;
    let mut out: BTreeMap<StackId, LockedStack> = BTreeMap::new();
    for row in rows {
        let get = |e| db(e);
        let deleted_at: crate::sql::DeletedAt = row.try_get("", "deleted_at").map_err(get)?;
        if deleted_at.is_some() {
            continue;
        }
        let id = StackId::from(row.try_get::<Uuid>("", "id").map_err(get)?);
        let policy: Option<serde_json::Value> = row.try_get("", "rollout_policy").map_err(get)?;
        let release: Option<Uuid> = row
            .try_get("", "release_deployment_object_id")
            .map_err(get)?;
        let stack = LockedStack {
            name: row.try_get("", "name").map_err(get)?,
            policy: policy.map(|p| from_json("rollout policy", p)).transpose()?,
            release: release.map(Into::into),
            open: Vec::new(),
        };
        out.insert(id, stack);
    }
    let open = format!(
        "SELECT id, stack_id, state, candidate_deployment_object_id, \
                baseline_deployment_object_id \
         FROM rollouts WHERE stack_id {{stacks}} AND {OPEN}"
    );
    let rows = append::query_stacks(write, &open, stacks).await?;
    for row in rows {
        let get = |e| db(e);
        let stack_id = StackId::from(row.try_get::<Uuid>("", "stack_id").map_err(get)?);
        let Some(stack) = out.get_mut(&stack_id) else {
            continue;
        };
        let state: String = row.try_get("", "state").map_err(get)?;
        let baseline: Option<Uuid> = row
            .try_get("", "baseline_deployment_object_id")
            .map_err(get)?;
        let candidate: Uuid = row
            .try_get("", "candidate_deployment_object_id")
            .map_err(get)?;
        stack.open.push(OpenRollout {
            subject: RolloutSubject {
                id: row.try_get::<Uuid>("", "id").map_err(get)?.into(),
                stack_id,
                candidate: candidate.into(),
                baseline: baseline.map(Into::into),
            },
            state: rollout_state(&state)?,
            queued_here: None,
        });
    }
    for stack in out.values_mut() {
        stack.open.sort_by_key(|open| open.subject.id);
    }
    Ok(out)
}

/// A stored rollout an append ends.
struct Ended {
    id: Uuid,
    to: RolloutState,
    reason: String,
}

/// What a batch of appends does to rollouts, decided append by append.
#[derive(Default)]
pub(crate) struct RolloutEffects {
    /// Stacks whose release head moves, to which object.
    released: BTreeMap<Uuid, Uuid>,
    /// Rollouts the batch queues (some maybe superseded within it).
    queued: Vec<Rollout>,
    ended: Vec<Ended>,
    /// Stacks whose active rollout ends, so whose pins go, with the actor who ended it.
    unpin: BTreeMap<Uuid, Actor>,
    audits: Vec<(Actor, Audit)>,
    events: Vec<WebhookEvent>,
}

impl RolloutEffects {
    /// Decides what appending `new` (to be stored as `object`) does, against `stack` as
    /// the earlier appends of the batch left it. A refusal changes nothing.
    pub(crate) fn decide(
        &mut self,
        stack: &mut LockedStack,
        actor: &Actor,
        new: &NewDeploymentObject,
        object: DeploymentObjectId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let stack_id = new.stack_id();
        let effect = AppendEffect::of(new, stack.policy.as_ref(), !stack.open.is_empty());
        if effect == AppendEffect::Reject {
            return Err(rollout_in_progress(stack_id));
        }
        let mut still_open = Vec::with_capacity(stack.open.len());
        for open in std::mem::take(&mut stack.open) {
            let Some(end) = effect.ends(open.state) else {
                still_open.push(open);
                continue;
            };
            let reason = ended_by_append(end, object);
            match open.queued_here {
                Some(index) => {
                    let rollout = &mut self.queued[index];
                    rollout.state = end;
                    rollout.state_reason = Some(reason.clone());
                    rollout.next_eval_at = None;
                    rollout.finished_at = Some(at);
                    rollout.version += 1;
                }
                None => self.ended.push(Ended {
                    id: open.subject.id.0,
                    to: end,
                    reason: reason.clone(),
                }),
            }
            if open.state.is_active() {
                self.unpin.insert(stack_id.0, *actor);
            }
            self.transition(actor, open.subject, Some(open.state), end, Some(reason), at);
        }
        stack.open = still_open;
        match effect {
            AppendEffect::Release { .. } => {
                stack.release = Some(object);
                self.released.insert(stack_id.0, object.0);
            }
            AppendEffect::Queue { .. } => {
                let rollout = queued_rollout(stack, actor, stack_id, object, at);
                let subject = RolloutSubject::from(&rollout);
                stack.open.push(OpenRollout {
                    subject,
                    state: RolloutState::Queued,
                    queued_here: Some(self.queued.len()),
                });
                self.queued.push(rollout);
                self.transition(actor, subject, None, RolloutState::Queued, None, at);
            }
            AppendEffect::Reject => {}
        }
        Ok(())
    }

    /// Audits and sends one transition (`from` none: queued by the append).
    fn transition(
        &mut self,
        actor: &Actor,
        rollout: RolloutSubject,
        from: Option<RolloutState>,
        to: RolloutState,
        reason: Option<String>,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let id = rollout.id;
        let audit = match from {
            None => Audit::new(
                AuditAction::Create,
                ResourceKind::Rollout,
                id,
                format!(
                    "queued rollout {id} of deployment object {} on stack {}",
                    rollout.candidate, rollout.stack_id
                ),
            ),
            Some(from) => Audit::new(
                AuditAction::Update,
                ResourceKind::Rollout,
                id,
                brokkr_core::rollout::transition_summary(id, from, to, reason.as_deref()),
            ),
        };
        self.audits.push((*actor, audit));
        let event = WebhookEvent::rollout_state_changed(rollout, from, to, reason.as_deref(), at);
        self.events.push(event);
    }

    /// The stacks whose release head moves, to which object.
    pub(crate) fn released(&self) -> &BTreeMap<Uuid, Uuid> {
        &self.released
    }

    /// Writes what was decided: queued rollouts inserted, ended ones updated, the pins
    /// of ended active rollouts removed (each unpin audited, its agent woken), the
    /// agents of stacks whose release head moved woken, every transition audited and
    /// sent. The release heads themselves move with the latest pointers
    /// (`append::point_stacks`).
    pub(crate) async fn write(self, write: &mut Write) -> Result<()> {
        for chunk in self.queued.chunks(CHUNK) {
            rollouts::Entity::insert_many(
                chunk
                    .iter()
                    .map(|r| rollouts::ActiveModel::from(rollout_row(r))),
            )
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        }
        end_stored(write, &self.ended).await?;
        let mut audits = self.audits;
        if !self.unpin.is_empty() {
            let stacks: Vec<Uuid> = self.unpin.keys().copied().collect();
            for (agent, stack, rollout) in unpin_stacks(write, &stacks).await? {
                let actor = self.unpin[&stack];
                audits.push((actor, unpin_audit(rollout, agent)));
                write.affect([agent]);
            }
        }
        if !self.released.is_empty() {
            let stacks: Vec<StackId> = self.released.keys().map(|s| StackId::from(*s)).collect();
            let agents = append::agents_of(write, &stacks).await?;
            write.affect(agents);
        }
        let (actors, audits): (Vec<Actor>, Vec<Audit>) = audits.into_iter().unzip();
        write.audit_many(actors.iter().zip(audits)).await?;
        for event in self.events {
            write.emit(event);
        }
        Ok(())
    }
}

/// A rollout of `object` queued under the stack's policy, due now, its baseline the
/// release head.
fn queued_rollout(
    stack: &LockedStack,
    actor: &Actor,
    stack_id: StackId,
    object: DeploymentObjectId,
    at: chrono::DateTime<chrono::Utc>,
) -> Rollout {
    Rollout::queued(
        stack_id,
        object,
        stack.release,
        stack
            .policy
            .clone()
            .expect("only a stack with a policy queues rollouts"),
        *actor,
        at,
    )
}

/// Ends stored rollouts with one statement: final, not due, unleased, version bumped.
async fn end_stored(write: &Write, ended: &[Ended]) -> Result<()> {
    for chunk in ended.chunks(CHUNK) {
        let mut states = String::new();
        let mut reasons = String::new();
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5 + 4);
        for one in chunk {
            states.push_str(" WHEN ? THEN ?");
            values.extend([Value::from(one.id), Value::from(one.to.as_str())]);
        }
        for one in chunk {
            reasons.push_str(" WHEN ? THEN ?");
            values.extend([Value::from(one.id), Value::from(one.reason.clone())]);
        }
        values.extend([
            Value::from(write.now),
            Value::from(write.now),
            Value::from(false),
        ]);
        values.extend(chunk.iter().map(|one| Value::from(one.id)));
        let query = format!(
            "UPDATE rollouts SET state = CASE id{states} END, state_reason = CASE id{reasons} END, \
             next_eval_at = NULL, finished_at = ?, updated_at = ?, version = version + 1, \
             lease_owner = NULL, lease_until = NULL, signalled = ? WHERE id IN ({})",
            bind_params(chunk.len())
        );
        write
            .tx()
            .execute_raw(sql::stmt(write.backend(), &query, values))
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Removes every pin on `stacks` with one statement per chunk; answers (agent, stack,
/// rollout) of each.
async fn unpin_stacks(write: &Write, stacks: &[Uuid]) -> Result<Vec<(AgentId, Uuid, Uuid)>> {
    let mut out = Vec::new();
    for chunk in stacks.chunks(CHUNK) {
        let query = format!(
            "DELETE FROM agent_stack_pins WHERE stack_id IN ({}) \
             RETURNING agent_id, stack_id, rollout_id",
            bind_params(chunk.len())
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
            let agent: Uuid = row.try_get("", "agent_id").map_err(db)?;
            let stack: Uuid = row.try_get("", "stack_id").map_err(db)?;
            let rollout: Uuid = row.try_get("", "rollout_id").map_err(db)?;
            out.push((AgentId::from(agent), stack, rollout));
        }
    }
    Ok(out)
}

/// The audit record of one agent unpinned from a rollout.
pub(crate) fn unpin_audit(rollout: Uuid, agent: AgentId) -> Audit {
    Audit::new(
        AuditAction::Unassign,
        ResourceKind::Rollout,
        rollout,
        format!("unpinned agent {agent} from rollout {rollout}"),
    )
}

/// Decides one append to a locked stack (the single-append paths: a confirmed append,
/// a deletion), `NotFound` when the stack was not live.
pub(crate) fn decide_one(
    locked: &mut BTreeMap<StackId, LockedStack>,
    actor: &Actor,
    new: &NewDeploymentObject,
    object: DeploymentObjectId,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<RolloutEffects> {
    let stack = locked
        .get_mut(&new.stack_id())
        .ok_or_else(|| Error::not_found("stack", new.stack_id()))?;
    let mut effects = RolloutEffects::default();
    effects.decide(stack, actor, new, object, at)?;
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(policy: Option<RolloutPolicy>) -> LockedStack {
        LockedStack {
            name: "s".into(),
            policy,
            release: None,
            open: Vec::new(),
        }
    }

    fn append(stack: StackId) -> NewDeploymentObject {
        NewDeploymentObject::from_yaml(
            stack,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n",
        )
        .expect("valid YAML")
    }

    /// Appends to one stack in one batch see each other: the second queued one
    /// supersedes the first, which is then inserted already final.
    #[test]
    fn appends_of_one_batch_decide_in_order() {
        let policy: RolloutPolicy = serde_json::from_value(serde_json::json!({
            "waves": [{"name": "all", "select": {"remaining": true}}]
        }))
        .expect("policy");
        let id = StackId::new();
        let mut locked = stack(Some(policy));
        let mut effects = RolloutEffects::default();
        let at = chrono::Utc::now();
        for _ in 0..3 {
            let object = DeploymentObjectId::new();
            effects
                .decide(&mut locked, &Actor::Admin, &append(id), object, at)
                .expect("queued");
        }
        let states: Vec<RolloutState> = effects.queued.iter().map(|r| r.state).collect();
        use RolloutState::{Queued, Superseded};
        assert_eq!(states, vec![Superseded, Superseded, Queued]);
        assert_eq!(locked.open.len(), 1, "only the newest stays open");
        assert!(effects.ended.is_empty() && effects.unpin.is_empty());
        // Three queued, two superseded: five transitions.
        assert_eq!(effects.events.len(), 5);
    }
}
