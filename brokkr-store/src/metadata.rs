//! Labels and annotations of stacks, agents and templates, one key at a time.

use brokkr_core::store::{Error, Result};
use brokkr_core::{Actor, AuditAction, Labels, MetadataField, MetadataTarget, ResourceKind};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::{from_json, to_json};
use crate::errors::db;
use crate::write::Write;
use crate::{Backend, SqlStore, sql};

/// Where a map lives: table, column and the resource's kind and id.
struct Place {
    table: &'static str,
    column: &'static str,
    kind: ResourceKind,
    noun: &'static str,
    id: Uuid,
}

fn place(target: MetadataTarget, field: MetadataField) -> Place {
    let (table, kind, noun, id) = match target {
        MetadataTarget::Stack(id) => ("stacks", ResourceKind::Stack, "stack", id.0),
        MetadataTarget::Agent(id) => ("agents", ResourceKind::Agent, "agent", id.0),
        MetadataTarget::Template(id) => ("templates", ResourceKind::Template, "template", id.0),
    };
    let column = match field {
        MetadataField::Labels => "labels",
        MetadataField::Annotations => "annotations",
    };
    Place {
        table,
        column,
        kind,
        noun,
        id,
    }
}

/// Reads the map of a live resource, locking its row on PostgreSQL.
async fn read(write: &Write, place: &Place) -> Result<Labels> {
    let lock = match write.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT {} AS map FROM {} WHERE id = ? AND deleted_at IS NULL{lock}",
        place.column, place.table
    );
    let row = write
        .tx()
        .query_one_raw(sql::stmt(write.backend(), &sql, [place.id.into()]))
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found(place.noun, place.id))?;
    from_json(
        place.column,
        row.try_get::<serde_json::Value>("", "map").map_err(db)?,
    )
}

async fn store(write: &Write, place: &Place, map: &Labels) -> Result<()> {
    let sql = format!(
        "UPDATE {} SET {} = ?, updated_at = ? WHERE id = ?",
        place.table, place.column
    );
    write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            &sql,
            [to_json(map).into(), write.now.into(), place.id.into()],
        ))
        .await
        .map_err(db)?;
    Ok(())
}

impl SqlStore {
    pub(crate) async fn put_metadata_impl(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
        value: &str,
    ) -> Result<Labels> {
        field.validate_entry(key, value)?;
        let place = place(target, field);
        let mut write = self.begin().await?;
        // An agent's labels and annotations feed placement on every replica.
        if let MetadataTarget::Agent(id) = target {
            write.agent_changed([id]);
        }
        let mut map = read(&write, &place).await?;
        map.insert(key.to_owned(), value.to_owned());
        // Checked on the map read under the row's lock: two writers cannot each pass
        // with half of the budget.
        field.validate_map(&map)?;
        store(&write, &place, &map).await?;
        let summary = format!(
            "set {} {key:?} of {} {}",
            place.column, place.noun, place.id
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::SetMetadata, place.kind, place.id, summary),
            )
            .await?;
        self.commit(write).await?;
        Ok(map)
    }

    pub(crate) async fn remove_metadata_impl(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
    ) -> Result<Labels> {
        let place = place(target, field);
        let mut write = self.begin().await?;
        // An agent's labels and annotations feed placement on every replica.
        if let MetadataTarget::Agent(id) = target {
            write.agent_changed([id]);
        }
        let mut map = read(&write, &place).await?;
        if map.remove(key).is_none() {
            let what = match field {
                MetadataField::Labels => "label",
                MetadataField::Annotations => "annotation",
            };
            return Err(Error::not_found(what, key));
        }
        store(&write, &place, &map).await?;
        let summary = format!(
            "removed {} {key:?} of {} {}",
            place.column, place.noun, place.id
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::RemoveMetadata, place.kind, place.id, summary),
            )
            .await?;
        self.commit(write).await?;
        Ok(map)
    }
}
