//! Stack creation, in batches.
//!
//! Onboarding a tenant starts with its stack, and many tenants sign up at once: the
//! stacks created at the same moment commit together ([`crate::batch`]), their
//! generators and names checked with one query each, the rows and audit records
//! written with one statement each. A name taken by a batch on another replica at the
//! same moment fails the unique index, and the batch is retried one stack at a time,
//! so only that stack gets the `Conflict`.

use std::collections::HashSet;
use std::future::Future;

use brokkr_core::store::{Error, Result};
use brokkr_core::{Actor, AuditAction, NewStack, ResourceKind, Stack, StackId};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::SqlStore;
use crate::audit::Audit;
use crate::batch::{self, Batched, distinct};
use crate::convert::{self, to_json};
use crate::entity::{generators, stacks};
use crate::errors::db;
use crate::sql::{AnyOf, DeletedAt, live_ids, uuid_in};
use crate::write::{Write, Writer};

/// Committers on PostgreSQL.
pub(crate) const POSTGRES_COMMITTERS: usize = 2;

/// One stack to create (validated before it was queued), waiting for its batch.
pub(crate) struct NewStackWrite {
    pub(crate) actor: Actor,
    pub(crate) new: NewStack,
}

impl Batched for NewStackWrite {
    type Output = Stack;
    const WHAT: &'static str = "stack creations";

    fn bytes(&self) -> usize {
        self.new.name.len() + self.new.description.as_ref().map_or(0, String::len)
    }

    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<Stack>>>> + Send {
        create_batch(writer, batch)
    }
}

async fn create_batch(writer: &Writer, batch: &[NewStackWrite]) -> Result<Vec<Result<Stack>>> {
    let write = writer.begin().await?;
    let live_generators = live_generators(&write, batch).await?;
    let mut taken = taken_names(&write, batch).await?;
    let mut rows = Vec::with_capacity(batch.len());
    let mut results = Vec::with_capacity(batch.len());
    for one in batch {
        let new = &one.new;
        if let Some(generator) = new.generator_id
            && !live_generators.contains(&generator.0)
        {
            results.push(Err(Error::not_found("generator", generator)));
            continue;
        }
        // Taken in the store, or by an earlier stack of this batch.
        if !taken.insert(new.name.clone()) {
            results.push(Err(Error::Conflict(format!(
                "a stack named {:?} exists",
                new.name
            ))));
            continue;
        }
        let row = stacks::Model {
            id: StackId::new().0,
            name: new.name.clone(),
            description: new.description.clone(),
            generator_id: new.generator_id.map(|g| g.0),
            labels: to_json(&new.labels),
            annotations: to_json(&new.annotations),
            latest_deployment_object_id: None,
            created_at: write.now,
            updated_at: write.now,
            deleted_at: None,
        };
        results.push(convert::stack(row.clone()));
        rows.push((&one.actor, row));
    }
    if rows.is_empty() {
        return Ok(results);
    }
    stacks::Entity::insert_many(
        rows.iter()
            .map(|(_, row)| stacks::ActiveModel::from(row.clone())),
    )
    .exec_without_returning(write.tx())
    .await
    .map_err(db)?;
    let audits = rows.iter().map(|(actor, row)| {
        let summary = format!("created stack {:?}", row.name);
        let audit = Audit::new(AuditAction::Create, ResourceKind::Stack, row.id, summary);
        (*actor, audit)
    });
    write.audit_many(audits).await?;
    Ok(batch::commit(writer, write, NewStackWrite::WHAT, results).await)
}

/// The live generators among the batch's, locked against deletion until commit.
async fn live_generators(write: &Write, batch: &[NewStackWrite]) -> Result<HashSet<Uuid>> {
    let ids = distinct(
        batch
            .iter()
            .filter_map(|one| one.new.generator_id.map(|g| g.0)),
    );
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    // By primary key alone: see `sql::live_ids`.
    let rows: Vec<(Uuid, DeletedAt)> = generators::Entity::find()
        .select_only()
        .columns([generators::Column::Id, generators::Column::DeletedAt])
        .filter(uuid_in(write.backend(), generators::Column::Id, ids))
        .lock_shared()
        .into_tuple()
        .all(write.tx())
        .await
        .map_err(db)?;
    Ok(live_ids(rows).collect())
}

/// The batch's names that live stacks already have.
async fn taken_names(write: &Write, batch: &[NewStackWrite]) -> Result<HashSet<String>> {
    let names: Vec<&str> = batch.iter().map(|one| one.new.name.as_str()).collect();
    let taken: Vec<String> = stacks::Entity::find()
        .select_only()
        .column(stacks::Column::Name)
        .filter(AnyOf::strings(write.backend(), names).matched_by(stacks::Column::Name))
        .filter(stacks::Column::DeletedAt.is_null())
        .into_tuple()
        .all(write.tx())
        .await
        .map_err(db)?;
    Ok(taken.into_iter().collect())
}

impl SqlStore {
    pub(crate) async fn create_stack_impl(&self, actor: &Actor, new: NewStack) -> Result<Stack> {
        new.validate()?;
        let write = NewStackWrite { actor: *actor, new };
        self.new_stacks.submit(write).await
    }
}
