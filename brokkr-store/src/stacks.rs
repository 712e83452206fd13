//! Stacks and their deployment objects.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Error, HarmlessAppend, Result, StackFilter};
use brokkr_core::{
    Actor, AuditAction, DeploymentObject, DeploymentObjectId, NewDeploymentObject, ResourceKind,
    Stack, StackId, StackUpdate, WebhookEvent,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use std::collections::BTreeMap;

use crate::SqlStore;
use crate::append::{Append, draw_sequences, object_row, write_objects};
use crate::audit::Audit;
use crate::convert;
use crate::entity::{deployment_objects, stacks};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::rollout_appends::{LockedStack, decide_one, lock_stacks};
use crate::write::Write;

/// A live stack, locked for update on PostgreSQL when `lock` is set. Matched on the
/// primary key alone and a deleted one dropped here: every request on a stack makes
/// this read (see `sql::live_ids`).
pub(crate) async fn live_stack(
    conn: &impl ConnectionTrait,
    id: StackId,
    lock: bool,
) -> Result<stacks::Model> {
    let mut query = stacks::Entity::find_by_id(id.0);
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await
        .map_err(db)?
        .filter(|row| row.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("stack", id))
}

/// The stack of every deployment object among `ids` that exists, with one query
/// (callers pass a batch's worth). Only the ids: the objects' YAML may be megabytes.
pub(crate) async fn stacks_of_objects(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Uuid>> {
    let rows: Vec<(Uuid, Uuid)> = deployment_objects::Entity::find()
        .select_only()
        .column(deployment_objects::Column::Id)
        .column(deployment_objects::Column::StackId)
        .filter(deployment_objects::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(conn)
        .await
        .map_err(db)?;
    Ok(rows.into_iter().collect())
}

/// `Conflict` if another live stack has `name`.
async fn check_name_free(
    conn: &impl ConnectionTrait,
    name: &str,
    except: Option<Uuid>,
) -> Result<()> {
    let mut query = stacks::Entity::find()
        .filter(stacks::Column::Name.eq(name))
        .filter(stacks::Column::DeletedAt.is_null());
    if let Some(id) = except {
        query = query.filter(stacks::Column::Id.ne(id));
    }
    if query.one(conn).await.map_err(db)?.is_some() {
        return Err(Error::Conflict(format!("a stack named {name:?} exists")));
    }
    Ok(())
}

impl SqlStore {
    pub(crate) async fn get_stack_impl(&self, id: StackId) -> Result<Stack> {
        convert::stack(live_stack(&self.reader, id, false).await?)
    }

    pub(crate) async fn list_stacks_impl(
        &self,
        filter: &StackFilter,
        page: &PageRequest,
    ) -> Result<Page<Stack>> {
        let mut query = stacks::Entity::find();
        if let Some(generator) = filter.generator_id {
            query = query.filter(stacks::Column::GeneratorId.eq(generator.0));
        }
        if let Some(name) = &filter.name {
            query = query.filter(stacks::Column::Name.eq(name.as_str()));
        }
        if let Some(id) = filter.id {
            query = query.filter(stacks::Column::Id.eq(id.0));
        }
        if !filter.include_deleted {
            query = query.filter(stacks::Column::DeletedAt.is_null());
        }
        let rows = keyset(query, stacks::Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(rows, page, convert::stack, |s| s.id.to_string())
    }

    pub(crate) async fn update_stack_impl(
        &self,
        actor: &Actor,
        id: StackId,
        update: StackUpdate,
    ) -> Result<Stack> {
        update.validate()?;
        let write = self.begin().await?;
        let mut row = live_stack(write.tx(), id, true).await?;
        if let Some(name) = update.name {
            check_name_free(write.tx(), &name, Some(row.id)).await?;
            row.name = name;
        }
        if let Some(description) = update.description {
            row.description = description;
        }
        row.updated_at = write.now;
        stacks::Entity::update_many()
            .col_expr(stacks::Column::Name, Expr::value(row.name.clone()))
            .col_expr(
                stacks::Column::Description,
                Expr::value(row.description.clone()),
            )
            .col_expr(stacks::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(stacks::Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        let summary = format!("updated stack {:?}", row.name);
        write
            .audit(
                actor,
                Audit::new(AuditAction::Update, ResourceKind::Stack, row.id, summary),
            )
            .await?;
        self.commit(write).await?;
        convert::stack(row)
    }

    pub(crate) async fn delete_stack_impl(
        &self,
        actor: &Actor,
        id: StackId,
    ) -> Result<DeploymentObject> {
        let mut write = self.begin().await?;
        let marker = delete_stack_in(&mut write, actor, id).await?;
        self.commit(write).await?;
        Ok(marker)
    }

    pub(crate) async fn append_impl(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject> {
        let append = Append {
            actor: *actor,
            new,
            harmless_only: false,
        };
        match self.appends.submit(append).await? {
            HarmlessAppend::Appended(object) => Ok(object),
            HarmlessAppend::NeedsPlan(_) => Err(Error::Backend(
                "an append without the guard's shortcut was handed back".into(),
            )),
        }
    }

    pub(crate) async fn append_if_harmless_impl(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<HarmlessAppend> {
        let append = Append {
            actor: *actor,
            new,
            harmless_only: true,
        };
        self.appends.submit(append).await
    }

    pub(crate) async fn get_deployment_object_impl(
        &self,
        id: DeploymentObjectId,
    ) -> Result<DeploymentObject> {
        let row = deployment_objects::Entity::find_by_id(id.0)
            .one(&self.reader)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("deployment object", id))?;
        convert::deployment_object(row)
    }
}

/// Inserts a deployment object of a stack locked by `lock_stacks`, with what it does to
/// the stack's rollouts (refused, writing nothing, when the policy rejects it), and
/// makes it the stack's latest.
async fn insert_object(
    write: &mut Write,
    locked: &mut BTreeMap<StackId, LockedStack>,
    actor: &Actor,
    new: NewDeploymentObject,
) -> Result<DeploymentObject> {
    let id = DeploymentObjectId::new();
    let effects = decide_one(locked, actor, &new, id, write.now)?;
    let sequence = draw_sequences(write, 1).await?[0];
    let row = object_row(write, &new, sequence, id);
    write_objects(write, std::slice::from_ref(&row), effects).await?;
    convert::deployment_object(row.row)
}

/// Deletes a live stack in `write`: marks it, appends its deletion marker (which
/// cancels its rollouts), audits.
pub(crate) async fn delete_stack_in(
    write: &mut Write,
    actor: &Actor,
    id: StackId,
) -> Result<DeploymentObject> {
    // The stack's lock first: appends to it wait for it too, so none of them can
    // draw a sequence after the marker's and land after it.
    let mut locked = lock_stacks(write, &[id]).await?;
    let name = locked
        .get(&id)
        .ok_or_else(|| Error::not_found("stack", id))?
        .name
        .clone();
    stacks::Entity::update_many()
        .col_expr(stacks::Column::DeletedAt, Expr::value(write.now))
        .filter(stacks::Column::Id.eq(id.0))
        .exec(write.tx())
        .await
        .map_err(db)?;
    let marker = NewDeploymentObject::deletion_marker(id);
    let marker = insert_object(write, &mut locked, actor, marker).await?;
    let event = WebhookEvent::stack_deleted(&name, (&marker).into(), write.now);
    write.emit(event);
    let summary = format!("deleted stack {name:?}");
    write
        .audit(
            actor,
            Audit::new(AuditAction::Delete, ResourceKind::Stack, id, summary),
        )
        .await?;
    Ok(marker)
}

/// Appends one deployment object in `write`, as a batch of the append committer would:
/// the stack locked, its rollouts decided, a sequence drawn, the object written and
/// audited.
pub(crate) async fn append_in(
    write: &mut Write,
    actor: &Actor,
    new: NewDeploymentObject,
) -> Result<DeploymentObject> {
    let mut locked = lock_stacks(write, &[new.stack_id()]).await?;
    let name = locked
        .get(&new.stack_id())
        .ok_or_else(|| Error::not_found("stack", new.stack_id()))?
        .name
        .clone();
    let object = insert_object(write, &mut locked, actor, new).await?;
    let summary = format!(
        "appended deployment object {} to stack {name:?}",
        object.sequence
    );
    write
        .audit(
            actor,
            Audit::new(
                AuditAction::Create,
                ResourceKind::DeploymentObject,
                object.id,
                summary,
            ),
        )
        .await?;
    Ok(object)
}
