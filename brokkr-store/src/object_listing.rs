//! A stack's deployment objects as a listing returns them, in two reads (see
//! [`crate::content`]): the rows without their YAML, with its size, decide where the
//! page ends; then, when the listing includes the YAML, one query reads the YAML of
//! exactly the rows kept. A page's memory thus never depends on the size of objects
//! beyond its end, and without the YAML not on object sizes at all.

use std::collections::HashMap;

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Error, Result};
use brokkr_core::{ContentListing, ListedDeploymentObject, Provenance, StackId};
use sea_orm::prelude::{DateTimeUtc, Json};
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::SqlStore;
use crate::content::{byte_length, put_in_place, size};
use crate::convert::from_json;
use crate::entity::deployment_objects::{Column, Entity};
use crate::entity::stacks;
use crate::errors::db;
use crate::paging::{int_cursor, keyset};

/// A deployment object's row without its YAML, and the YAML's size in bytes.
#[derive(Debug, FromQueryResult)]
struct ObjectRow {
    id: Uuid,
    stack_id: Uuid,
    sequence: i64,
    yaml_bytes: i64,
    yaml_checksum: String,
    is_deletion_marker: bool,
    provenance: Option<Json>,
    created_at: DateTimeUtc,
}

impl SqlStore {
    pub(crate) async fn list_deployment_objects_impl(
        &self,
        stack_id: StackId,
        yaml: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedDeploymentObject>> {
        let after = int_cursor(page)?;
        let exists = stacks::Entity::find_by_id(stack_id.0)
            .one(&self.reader)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(Error::not_found("stack", stack_id));
        }
        let query = Entity::find()
            .select_only()
            .columns([
                Column::Id,
                Column::StackId,
                Column::Sequence,
                Column::YamlChecksum,
                Column::IsDeletionMarker,
                Column::Provenance,
                Column::CreatedAt,
            ])
            .expr_as(
                byte_length("deployment_objects", "yaml_content"),
                "yaml_bytes",
            )
            .filter(Column::StackId.eq(stack_id.0));
        let rows = keyset(query, Column::Sequence, after, page)
            .into_model::<ObjectRow>()
            .all(&self.reader)
            .await
            .map_err(db)?
            .into_iter()
            .map(listed)
            .collect::<Result<Vec<_>>>()?;
        let key = |o: &ListedDeploymentObject| o.sequence.to_string();
        let mut page = yaml.page(rows, page, |o| o.yaml_bytes, key);
        if yaml.includes() {
            self.fill_yaml(&mut page.items).await?;
        }
        Ok(page)
    }

    /// Reads the YAML of `objects` with one query and puts it in place.
    async fn fill_yaml(&self, objects: &mut [ListedDeploymentObject]) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let yaml: HashMap<Uuid, String> = Entity::find()
            .select_only()
            .columns([Column::Id, Column::YamlContent])
            .filter(Column::Id.is_in(objects.iter().map(|o| o.id.0)))
            .into_tuple::<(Uuid, String)>()
            .all(&self.reader)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        put_in_place(
            objects,
            yaml,
            |o| o.id.0,
            |o, content| o.yaml_content = Some(content),
            "deployment object",
        )
    }
}

/// A listed row, without its YAML.
fn listed(row: ObjectRow) -> Result<ListedDeploymentObject> {
    Ok(ListedDeploymentObject {
        id: row.id.into(),
        stack_id: row.stack_id.into(),
        sequence: row.sequence,
        yaml_content: None,
        yaml_bytes: size("deployment object size", row.yaml_bytes)?,
        yaml_checksum: row.yaml_checksum,
        is_deletion_marker: row.is_deletion_marker,
        provenance: row
            .provenance
            .map(|p| from_json::<Provenance>("provenance", p))
            .transpose()?,
        created_at: row.created_at,
    })
}
