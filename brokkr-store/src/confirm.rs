//! A stack's world in one read, and confirmed changes.
//!
//! A confirmation is one write transaction: the stack's row locked (PostgreSQL `FOR
//! UPDATE`; SQLite's single writer holds everything), the plan read, the world read
//! (`world.rs`) with its target and applied rows locked `FOR SHARE`, the digest recomputed and
//! compared, and only then the plan used and the change written. An agent's report or
//! a placement that would move the world waits for the commit, or commits first and
//! is seen.

use brokkr_core::id::PlanId;
use brokkr_core::store::{Confirmation, Confirmed, ConfirmedChange, ConfirmedWrite, Error, Result};
use brokkr_core::{Actor, AuditAction, ResourceKind, StackId, StackWorld, WebhookEvent};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::errors::db;
use crate::placements::{record_in, set_policy_in};
use crate::stacks::{append_in, delete_stack_in};
use crate::targets::unassign_in;
use crate::world::read_world;
use crate::write::Write;
use crate::{Backend, SqlStore, sql};

impl SqlStore {
    pub(crate) async fn stack_world_impl(&self, stack_id: StackId) -> Result<StackWorld> {
        read_world(&self.reader, self.backend, stack_id, false).await
    }

    pub(crate) async fn write_confirmed_impl(
        &self,
        actor: &Actor,
        confirmation: &Confirmation<'_>,
        change: ConfirmedChange,
    ) -> Result<Confirmed> {
        let stack = confirmation.stack_id;
        let mut write = self.begin().await?;
        // The stack's lock first, as every append and deletion takes it.
        crate::stacks::live_stack(write.tx(), stack, true).await?;
        let plan = confirmed_plan(&write, confirmation.plan_id).await?;
        if plan.consumed {
            return Ok(Confirmed::Consumed);
        }
        if plan.stack_id != stack.0 || plan.expires_at <= write.now {
            return Ok(Confirmed::Stale);
        }
        let world = read_world(write.tx(), self.backend, stack, true).await?;
        if (confirmation.digest)(&world) != plan.digest {
            tracing::info!(%stack, plan = %plan.id, "confirmation refused: the world moved since the plan");
            return Ok(Confirmed::Stale);
        }
        let written = write_change(&mut write, actor, stack, change).await?;
        consume(&write, actor, &plan).await?;
        let event = WebhookEvent::plan_confirmed(
            plan.id.into(),
            plan.stack_id.into(),
            &plan.digest,
            write.now,
        );
        write.emit(event);
        let at = write.now;
        self.commit(write).await?;
        Ok(Confirmed::Written { written, at })
    }
}

/// What a confirmation needs of its plan: not the body, which may be megabytes.
struct PlanHeader {
    id: Uuid,
    stack_id: Uuid,
    digest: String,
    expires_at: DateTime<Utc>,
    consumed: bool,
}

/// Reads the plan's header in `write`, its row locked on PostgreSQL.
async fn confirmed_plan(write: &Write, id: PlanId) -> Result<PlanHeader> {
    let lock = match write.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let query = format!(
        "SELECT id, stack_id, digest, expires_at, consumed_at FROM plans WHERE id = ?{lock}"
    );
    let row = write
        .tx()
        .query_one_raw(sql::stmt(write.backend(), &query, [id.0.into()]))
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("plan", id))?;
    let get = |e| db(e);
    Ok(PlanHeader {
        id: row.try_get("", "id").map_err(get)?,
        stack_id: row.try_get("", "stack_id").map_err(get)?,
        digest: row.try_get("", "digest").map_err(get)?,
        expires_at: row.try_get("", "expires_at").map_err(get)?,
        consumed: row
            .try_get::<Option<DateTime<Utc>>>("", "consumed_at")
            .map_err(get)?
            .is_some(),
    })
}

/// Writes a confirmed change as the store method it stands for does.
async fn write_change(
    write: &mut Write,
    actor: &Actor,
    stack: StackId,
    change: ConfirmedChange,
) -> Result<ConfirmedWrite> {
    Ok(match change {
        ConfirmedChange::Append(new) => {
            if new.stack_id() != stack {
                return Err(Error::Invalid(format!(
                    "a confirmation of stack {stack} appends to another stack"
                )));
            }
            ConfirmedWrite::Object(append_in(write, actor, new).await?)
        }
        ConfirmedChange::DeleteStack => {
            ConfirmedWrite::Object(delete_stack_in(write, actor, stack).await?)
        }
        ConfirmedChange::Unassign(agent) => {
            unassign_in(write, actor, agent, stack).await?;
            ConfirmedWrite::Done
        }
        ConfirmedChange::RemovePolicy => {
            set_policy_in(write, actor, stack, None).await?;
            ConfirmedWrite::Done
        }
        ConfirmedChange::Place(policy, decision) => {
            policy
                .validate()
                .map_err(|err| Error::Invalid(err.to_string()))?;
            set_policy_in(write, actor, stack, Some(policy)).await?;
            ConfirmedWrite::Placed(record_in(write, actor, stack, decision).await?)
        }
        ConfirmedChange::Decide(decision) => {
            ConfirmedWrite::Placed(record_in(write, actor, stack, decision).await?)
        }
    })
}

/// Marks the plan used by `actor` and audits it; the caller holds its row lock and saw
/// it unused.
async fn consume(write: &Write, actor: &Actor, plan: &PlanHeader) -> Result<()> {
    write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            "UPDATE plans SET consumed_at = ?, consumed_by_kind = ?, consumed_by_id = ? \
             WHERE id = ? AND consumed_at IS NULL",
            [
                Value::from(write.now),
                Value::from(actor.kind().as_str()),
                Value::from(actor.id()),
                Value::from(plan.id),
            ],
        ))
        .await
        .map_err(db)?;
    let summary = format!("confirmed plan {} of stack {}", plan.id, plan.stack_id);
    write
        .audit(
            actor,
            Audit::new(AuditAction::Confirm, ResourceKind::Plan, plan.id, summary),
        )
        .await
}
