//! Appends of deployment objects, committed in batches.
//!
//! Appending is the main write of a runtime-driven control plane, and many callers
//! append at once, mostly to different stacks. A transaction per append costs a commit
//! (a WAL flush) and half a dozen round trips each, so the appends wait in a queue
//! instead and a few committer tasks each take whatever is waiting and write it in one
//! transaction: the stacks locked in id order (so batches on any replica cannot
//! deadlock), sequences drawn, every object, stack pointer and audit record written with
//! one statement each, the agents to wake found with one query. An idle store commits a
//! lone append at once; a busy one commits many per flush.
//!
//! Order within a stack holds because a stack's row is locked before its sequences are
//! drawn: appends to one stack take their sequences, and commit, one after the other.
//! Appends to different stacks never wait for each other's locks.
//!
//! A batch is all or nothing in the database, but callers are not hostage to one
//! another: an append to a missing or deleted stack gets `NotFound` and the rest commit;
//! if a statement of the batch fails, each append is retried alone, so a failure reaches
//! only the append that causes it. A failed commit is not retried (it may have landed):
//! every append of the batch gets the error, as a lone append would.

use std::collections::{BTreeMap, HashMap};

use brokkr_core::store::{Error, HarmlessAppend, Result};
use brokkr_core::{
    Actor, AgentId, AppendedObject, AuditAction, DeploymentObjectId, NewDeploymentObject,
    ResourceKind, StackId, WebhookEvent,
};
use sea_orm::sea_query::{ArrayType, IntoIden, Query};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::Backend;
use crate::audit::Audit;
use crate::batch::{self, Batched, distinct};
use crate::convert::{self, to_json};
use crate::entity::deployment_objects::{self, Column};
use crate::errors::db;
use crate::harmless;
use crate::items::ITEMS;
use crate::rollout_appends::{RolloutEffects, lock_stacks};
use crate::sql::{self, AnyOf, bind_params};
use crate::write::{Write, Writer};

/// Committers on PostgreSQL, where batches of different stacks commit side by side.
/// Two, not more: each batch costs about a dozen statements whatever its size, so
/// under load fewer, larger batches cost less CPU per append. Measured with 200
/// clients on two cores: 3,008-3,159 appends/s with two, 2,276-2,415/s with four (see
/// docs/benchmarks.md).
pub(crate) const POSTGRES_COMMITTERS: usize = 2;

/// One append waiting for its batch.
pub(crate) struct Append {
    pub(crate) actor: Actor,
    pub(crate) new: NewDeploymentObject,
    /// Only if the guard's shortcut clears it (`Store::append_if_harmless`).
    pub(crate) harmless_only: bool,
}

impl Batched for Append {
    type Output = HarmlessAppend;
    const WHAT: &'static str = "appends";

    fn bytes(&self) -> usize {
        self.new.yaml_content().len()
    }

    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<HarmlessAppend>>>> + Send {
        append_batch(writer, batch)
    }
}

/// Writes a batch in one transaction; one result per append, in order.
async fn append_batch(writer: &Writer, batch: &[Append]) -> Result<Vec<Result<HarmlessAppend>>> {
    let mut write = writer.begin().await?;
    let stacks: Vec<StackId> = distinct(batch.iter().map(|p| p.new.stack_id()));
    let mut locked = lock_stacks(&write, &stacks).await?;
    let asking: Vec<(bool, &NewDeploymentObject)> =
        batch.iter().map(|p| (p.harmless_only, &p.new)).collect();
    let needs_plan = harmless::needs_plan(&write, &asking).await?;
    // Each append decided in order, before any sequence is drawn: a refused one writes
    // nothing, and a later append to the same stack sees what an earlier one did. `None`:
    // handed back for the full guard, writing nothing either.
    let mut effects = RolloutEffects::default();
    let mut decided: Vec<Result<Option<DeploymentObjectId>>> = Vec::with_capacity(batch.len());
    for (pending, needs_plan) in batch.iter().zip(needs_plan) {
        let stack = pending.new.stack_id();
        let object = DeploymentObjectId::new();
        decided.push(match locked.get_mut(&stack) {
            None => Err(Error::not_found("stack", stack)),
            Some(_) if needs_plan => Ok(None),
            Some(locked) => effects
                .decide(locked, &pending.actor, &pending.new, object, write.now)
                .map(|()| Some(object)),
        });
    }
    let accepted: Vec<(&Append, DeploymentObjectId)> = batch
        .iter()
        .zip(&decided)
        .filter_map(|(pending, object)| match object {
            Ok(Some(id)) => Some((pending, *id)),
            _ => None,
        })
        .collect();
    let mut objects = Vec::with_capacity(accepted.len());
    if !accepted.is_empty() {
        let sequences = draw_sequences(&write, accepted.len()).await?;
        let rows: Vec<ObjectRow> = accepted
            .iter()
            .zip(sequences)
            .map(|((pending, id), sequence)| object_row(&write, &pending.new, sequence, *id))
            .collect();
        write_objects(&mut write, &rows, effects).await?;
        let audits = accepted
            .iter()
            .zip(&rows)
            .map(|((pending, _), ObjectRow { row, .. })| {
                let summary = format!(
                    "appended deployment object {} to stack {:?}",
                    row.sequence,
                    locked[&StackId::from(row.stack_id)].name
                );
                let audit = Audit::new(
                    AuditAction::Create,
                    ResourceKind::DeploymentObject,
                    row.id,
                    summary,
                );
                (&pending.actor, audit)
            });
        write.audit_many(audits).await?;
        for ObjectRow { row, .. } in rows {
            objects.push(convert::deployment_object(row)?);
        }
    }
    let mut objects = objects.into_iter();
    let results = decided
        .into_iter()
        .zip(batch)
        .map(|(decided, pending)| match decided? {
            None => Ok(HarmlessAppend::NeedsPlan(pending.new.clone())),
            Some(_) => objects
                .next()
                .map(HarmlessAppend::Appended)
                .ok_or_else(|| Error::Backend("an accepted append has no object".into())),
        })
        .collect();
    Ok(batch::commit(writer, write, Append::WHAT, results).await)
}

/// Runs `query`, whose `{stacks}` becomes the condition that a column is one of
/// `stacks` ([`AnyOf`]).
pub(crate) async fn query_stacks(
    write: &Write,
    query: &str,
    stacks: &[StackId],
) -> Result<Vec<sea_orm::QueryResult>> {
    let ids = AnyOf::uuids(write.backend(), stacks.iter().map(|s| s.0));
    let query = query.replace("{stacks}", &ids.sql);
    write
        .tx()
        .query_all_raw(sql::stmt(write.backend(), &query, ids.values))
        .await
        .map_err(db)
}

/// Draws `n` increasing deployment-object sequences. Callers lock the stacks first, so
/// that within a stack, sequence order is commit order.
///
/// PostgreSQL draws from a database sequence, which never waits for other
/// transactions; SQLite, which has one writer, from the `counters` row.
pub(crate) async fn draw_sequences(write: &Write, n: usize) -> Result<Vec<i64>> {
    let count = i64::try_from(n).map_err(|_| Error::Invalid("too many appends".into()))?;
    match write.backend() {
        Backend::Postgres => {
            let rows = write
                .tx()
                .query_all_raw(sql::stmt(
                    Backend::Postgres,
                    "SELECT nextval('deployment_object_sequence') AS value FROM generate_series(1, ?)",
                    [count.into()],
                ))
                .await
                .map_err(db)?;
            let mut values = rows
                .iter()
                .map(|row| row.try_get::<i64>("", "value").map_err(db))
                .collect::<Result<Vec<_>>>()?;
            values.sort_unstable();
            Ok(values)
        }
        Backend::Sqlite => {
            let row = write
                .tx()
                .query_one_raw(sql::stmt(
                    Backend::Sqlite,
                    "UPDATE counters SET value = value + ? WHERE name = ? RETURNING value",
                    [
                        count.into(),
                        brokkr_migrations::DEPLOYMENT_OBJECT_SEQUENCE.into(),
                    ],
                ))
                .await
                .map_err(db)?
                .ok_or_else(|| Error::Backend("the deployment-object counter is missing".into()))?;
            let last = row.try_get::<i64>("", "value").map_err(db)?;
            Ok((last - count + 1..=last).collect())
        }
    }
}

/// A new deployment object's row and its items. The items are a column of their own
/// outside the entity, so that every other read of objects leaves them alone.
pub(crate) struct ObjectRow {
    pub(crate) row: deployment_objects::Model,
    pub(crate) items: serde_json::Value,
}

/// The row of a new deployment object `id`.
pub(crate) fn object_row(
    write: &Write,
    new: &NewDeploymentObject,
    sequence: i64,
    id: DeploymentObjectId,
) -> ObjectRow {
    let row = deployment_objects::Model {
        id: id.0,
        stack_id: new.stack_id().0,
        sequence,
        yaml_content: new.yaml_content().to_owned(),
        yaml_checksum: new.yaml_checksum().to_owned(),
        is_deletion_marker: new.is_deletion_marker(),
        provenance: new.provenance().map(to_json),
        created_at: write.now,
    };
    ObjectRow {
        row,
        items: to_json(&new.items()),
    }
}

/// Inserts new deployment objects, makes each stack's last one its latest (and its
/// release head where `effects` released it), writes a `deployment_object.created`
/// event for each, then what the appends do to rollouts, which wakes the agents whose
/// target state changed: a few statements whatever the number of rows, and none for
/// rollouts when no stack has any.
pub(crate) async fn write_objects(
    write: &mut Write,
    rows: &[ObjectRow],
    effects: RolloutEffects,
) -> Result<()> {
    insert_objects(write, rows).await?;
    for ObjectRow { row, .. } in rows {
        let object = AppendedObject {
            id: row.id.into(),
            stack_id: row.stack_id.into(),
            sequence: row.sequence,
            yaml_checksum: &row.yaml_checksum,
            is_deletion_marker: row.is_deletion_marker,
        };
        write.emit(WebhookEvent::deployment_object_created(object, write.now));
    }
    point_stacks(write, rows, effects.released()).await?;
    effects.write(write).await
}

/// Inserts the rows, items included, with one statement.
async fn insert_objects(write: &Write, rows: &[ObjectRow]) -> Result<()> {
    let mut stmt = Query::insert();
    stmt.into_table(deployment_objects::Entity).columns([
        Column::Id.into_iden(),
        Column::StackId.into_iden(),
        Column::Sequence.into_iden(),
        Column::YamlContent.into_iden(),
        Column::YamlChecksum.into_iden(),
        Column::IsDeletionMarker.into_iden(),
        Column::Provenance.into_iden(),
        Column::CreatedAt.into_iden(),
        ITEMS.into_iden(),
    ]);
    for ObjectRow { row, items } in rows {
        stmt.values_panic([
            row.id.into(),
            row.stack_id.into(),
            row.sequence.into(),
            row.yaml_content.clone().into(),
            row.yaml_checksum.clone().into(),
            row.is_deletion_marker.into(),
            row.provenance.clone().into(),
            row.created_at.into(),
            items.clone().into(),
        ]);
    }
    write.tx().execute(&stmt).await.map_err(db)?;
    Ok(())
}

/// Makes each stack's last row in `rows` its latest, and moves the release heads of
/// `released` stacks, with one statement.
async fn point_stacks(
    write: &Write,
    rows: &[ObjectRow],
    released: &BTreeMap<Uuid, Uuid>,
) -> Result<()> {
    let mut latest: HashMap<Uuid, Uuid> = HashMap::new();
    for ObjectRow { row, .. } in rows {
        latest.insert(row.stack_id, row.id);
    }
    if write.backend() == Backend::Postgres {
        return point_stacks_postgres(write, &latest, released).await;
    }
    let mut cases = String::new();
    let mut values: Vec<Value> = Vec::with_capacity(latest.len() * 3 + released.len() * 2);
    for (stack, object) in &latest {
        cases.push_str(" WHEN ? THEN ?");
        values.push((*stack).into());
        values.push((*object).into());
    }
    let mut release = String::new();
    if !released.is_empty() {
        let mut heads = String::new();
        for (stack, object) in released {
            heads.push_str(" WHEN ? THEN ?");
            values.push((*stack).into());
            values.push((*object).into());
        }
        release = format!(
            ", release_deployment_object_id = CASE id{heads} \
             ELSE release_deployment_object_id END"
        );
    }
    values.extend(latest.keys().map(|stack| Value::from(*stack)));
    let query = format!(
        "UPDATE stacks SET latest_deployment_object_id = CASE id{cases} END{release} \
         WHERE id IN ({})",
        bind_params(latest.len())
    );
    write
        .tx()
        .execute_raw(sql::stmt(write.backend(), &query, values))
        .await
        .map_err(db)?;
    Ok(())
}

/// [`point_stacks`] on PostgreSQL: the same statement text whatever the batch's size
/// (one array per column), so it is prepared and planned once per connection.
async fn point_stacks_postgres(
    write: &Write,
    latest: &HashMap<Uuid, Uuid>,
    released: &BTreeMap<Uuid, Uuid>,
) -> Result<()> {
    let mut columns: [Vec<Value>; 4] = Default::default();
    for (stack, object) in latest {
        let release = released.get(stack);
        columns[0].push((*stack).into());
        columns[1].push((*object).into());
        columns[2].push((*release.unwrap_or(object)).into());
        columns[3].push(release.is_some().into());
    }
    let [stacks, objects, releases, moves] = columns;
    let arrays = [
        (ArrayType::Uuid, stacks),
        (ArrayType::Uuid, objects),
        (ArrayType::Uuid, releases),
        (ArrayType::Bool, moves),
    ]
    .map(|(ty, values)| Value::Array(ty, Some(Box::new(values))));
    write
        .tx()
        .execute_raw(sql::stmt(
            Backend::Postgres,
            "UPDATE stacks SET latest_deployment_object_id = v.latest, \
               release_deployment_object_id = CASE WHEN v.moves THEN v.release \
                 ELSE stacks.release_deployment_object_id END \
             FROM unnest(?::uuid[], ?::uuid[], ?::uuid[], ?::bool[]) AS v(id, latest, release, moves) \
             WHERE stacks.id = v.id",
            arrays,
        ))
        .await
        .map_err(db)?;
    Ok(())
}

/// Every agent with a target row on any of `stacks`, with one indexed query.
pub(crate) async fn agents_of(write: &Write, stacks: &[StackId]) -> Result<Vec<AgentId>> {
    let query = "SELECT agent_id FROM agent_targets WHERE stack_id {stacks}";
    let rows = query_stacks(write, query, stacks).await?;
    rows.iter()
        .map(|row| {
            row.try_get::<Uuid>("", "agent_id")
                .map(AgentId::from)
                .map_err(db)
        })
        .collect()
}
