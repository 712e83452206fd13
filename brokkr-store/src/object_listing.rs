//! A stack's deployment objects as a listing returns them, in two reads: the rows
//! without their YAML, with its size (`OCTET_LENGTH`, which neither database answers by
//! reading the value: SQLite from the record header, PostgreSQL from the TOAST header),
//! decide where the page ends; then, when the listing includes the YAML, one query
//! reads the YAML of exactly the rows kept. A page's memory thus never depends on the
//! size of objects beyond its end, and without the YAML not on object sizes at all.

use std::collections::HashMap;

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Error, Result};
use brokkr_core::{ListedDeploymentObject, Provenance, StackId, YamlListing};
use sea_orm::prelude::{DateTimeUtc, Json};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::SqlStore;
use crate::convert::from_json;
use crate::entity::deployment_objects::{Column, Entity};
use crate::entity::stacks;
use crate::errors::{corrupt, db};
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

/// The YAML's size in bytes, as BIGINT on both databases (PostgreSQL's `OCTET_LENGTH`
/// is an `integer`, which the driver does not read as `i64`).
const YAML_BYTES: &str = r#"CAST(OCTET_LENGTH("yaml_content") AS BIGINT)"#;

impl SqlStore {
    pub(crate) async fn list_deployment_objects_impl(
        &self,
        stack_id: StackId,
        yaml: YamlListing,
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
            .expr_as(Expr::cust(YAML_BYTES), "yaml_bytes")
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
        let limit = page.effective_limit();
        match yaml {
            YamlListing::Omit => Ok(Page::from_overfetch(rows, limit, key)),
            YamlListing::Include { page_bytes } => {
                let size = |o: &ListedDeploymentObject| o.yaml_bytes;
                let mut page = Page::from_overfetch_within(rows, limit, page_bytes, size, key);
                self.fill_yaml(&mut page.items).await?;
                Ok(page)
            }
        }
    }

    /// Reads the YAML of `objects` with one query and puts it in place.
    async fn fill_yaml(&self, objects: &mut [ListedDeploymentObject]) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let mut yaml: HashMap<Uuid, String> = Entity::find()
            .select_only()
            .columns([Column::Id, Column::YamlContent])
            .filter(Column::Id.is_in(objects.iter().map(|o| o.id.0)))
            .into_tuple::<(Uuid, String)>()
            .all(&self.reader)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        for object in objects {
            // Deployment objects are never updated or deleted, so a row listed a
            // moment ago is still there.
            let content = yaml
                .remove(&object.id.0)
                .ok_or_else(|| corrupt("deployment object", "listed row vanished"))?;
            object.yaml_content = Some(content);
        }
        Ok(())
    }
}

/// A listed row, without its YAML.
fn listed(row: ObjectRow) -> Result<ListedDeploymentObject> {
    Ok(ListedDeploymentObject {
        id: row.id.into(),
        stack_id: row.stack_id.into(),
        sequence: row.sequence,
        yaml_content: None,
        yaml_bytes: u64::try_from(row.yaml_bytes)
            .map_err(|_| corrupt("deployment object size", row.yaml_bytes))?,
        yaml_checksum: row.yaml_checksum,
        is_deletion_marker: row.is_deletion_marker,
        provenance: row
            .provenance
            .map(|p| from_json::<Provenance>("provenance", p))
            .transpose()?,
        created_at: row.created_at,
    })
}
