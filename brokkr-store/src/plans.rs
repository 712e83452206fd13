//! Plans and per-stack guard overrides.
//!
//! A plan is written once and changes once: its consumption, in the transaction of the
//! change that confirms it (`confirm.rs`). Guard overrides are a JSON column of the stack, outside its entity: only the guard reads
//! them.

use brokkr_core::id::PlanId;
use brokkr_core::plan::GuardOverrides;
use brokkr_core::store::{Error, Result};
use brokkr_core::{
    Actor, ActorKind, AuditAction, NewPlan, PlanOrigin, ResourceKind, StackId, StoredPlan,
    WebhookEvent,
};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::{from_json, to_json};
use crate::entity::plans::{self, Column};
use crate::errors::{corrupt, db};
use crate::stacks::live_stack;
use crate::{SqlStore, sql};

impl SqlStore {
    pub(crate) async fn guard_overrides_impl(&self, stack_id: StackId) -> Result<GuardOverrides> {
        let row = self
            .reader
            .query_one_raw(sql::stmt(
                self.backend,
                "SELECT guard_overrides FROM stacks WHERE id = ? AND deleted_at IS NULL",
                [stack_id.0.into()],
            ))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("stack", stack_id))?;
        match row
            .try_get::<Option<serde_json::Value>>("", "guard_overrides")
            .map_err(db)?
        {
            Some(overrides) => from_json("guard overrides", overrides),
            None => Ok(GuardOverrides::default()),
        }
    }

    pub(crate) async fn set_guard_overrides_impl(
        &self,
        actor: &Actor,
        stack_id: StackId,
        overrides: GuardOverrides,
    ) -> Result<GuardOverrides> {
        let write = self.begin().await?;
        let stack = live_stack(write.tx(), stack_id, true).await?;
        // No overrides is NULL, as for a stack that never had any.
        let stored = (overrides != GuardOverrides::default()).then(|| to_json(&overrides));
        write
            .tx()
            .execute_raw(sql::stmt(
                self.backend,
                "UPDATE stacks SET guard_overrides = ? WHERE id = ?",
                [Value::from(stored), Value::from(stack_id.0)],
            ))
            .await
            .map_err(db)?;
        let summary = format!("set the guard overrides of stack {:?}", stack.name);
        write
            .audit(
                actor,
                Audit::new(AuditAction::Update, ResourceKind::Stack, stack_id, summary),
            )
            .await?;
        self.commit(write).await?;
        Ok(overrides)
    }

    pub(crate) async fn create_plan_impl(&self, actor: &Actor, new: NewPlan) -> Result<StoredPlan> {
        let mut write = self.begin().await?;
        let stack = live_stack(write.tx(), new.stack_id, false).await?;
        let holds_change = new.holds_change || new.origin == PlanOrigin::Held;
        let row = plans::Model {
            id: PlanId::new().0,
            stack_id: new.stack_id.0,
            origin: new.origin.as_str().to_owned(),
            change: new.change,
            digest: new.digest,
            body: new.body,
            created_by_kind: actor.kind().as_str().to_owned(),
            created_by_id: actor.id(),
            created_at: write.now,
            // The precision both databases keep, so the plan answered is the one read.
            expires_at: new.expires_at.trunc_subsecs(6),
            consumed_at: None,
            consumed_by_kind: None,
            consumed_by_id: None,
        };
        plans::Entity::insert(plans::ActiveModel::from(row.clone()))
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        let summary = format!(
            "created {} plan for stack {:?}",
            new.origin.as_str(),
            stack.name
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::Create, ResourceKind::Plan, row.id, summary),
            )
            .await?;
        let stored = plan(row)?;
        if holds_change {
            write.emit(WebhookEvent::plan_held(&stored, write.now));
        }
        self.commit(write).await?;
        Ok(stored)
    }

    pub(crate) async fn get_plan_impl(&self, id: PlanId) -> Result<StoredPlan> {
        plans::Entity::find_by_id(id.0)
            .one(&self.reader)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("plan", id))
            .and_then(plan)
    }

    pub(crate) async fn held_plan_impl(
        &self,
        stack_id: StackId,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredPlan>> {
        // The newest held plan supersedes older ones: only it can be open.
        let newest = plans::Entity::find()
            .filter(Column::StackId.eq(stack_id.0))
            .filter(Column::Origin.eq(PlanOrigin::Held.as_str()))
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(1)
            .one(&self.reader)
            .await
            .map_err(db)?;
        newest
            .filter(|row| row.consumed_at.is_none() && row.expires_at > now)
            .map(plan)
            .transpose()
    }
}

/// An actor from its stored kind and id.
fn actor(kind: &str, id: Option<Uuid>) -> Result<Actor> {
    ActorKind::parse(kind)
        .and_then(|kind| Actor::from_parts(kind, id))
        .ok_or_else(|| corrupt("actor", kind))
}

fn plan(m: plans::Model) -> Result<StoredPlan> {
    let consumed_by = match &m.consumed_by_kind {
        Some(kind) => Some(actor(kind, m.consumed_by_id)?),
        None => None,
    };
    Ok(StoredPlan {
        id: m.id.into(),
        stack_id: m.stack_id.into(),
        origin: PlanOrigin::parse(&m.origin).ok_or_else(|| corrupt("plan origin", &m.origin))?,
        change: m.change,
        digest: m.digest,
        body: m.body,
        created_by: actor(&m.created_by_kind, m.created_by_id)?,
        created_at: m.created_at,
        expires_at: m.expires_at,
        consumed_at: m.consumed_at,
        consumed_by,
    })
}
