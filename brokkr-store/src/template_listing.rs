//! Templates as a listing returns them, in two reads (see [`crate::content`]): the
//! templates joined to their latest version without its source and schema, with their
//! sizes, decide where the page ends; then, when the listing includes the content, one
//! query reads the source and schema of exactly the versions kept.

use std::collections::HashMap;

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Result, TemplateFilter};
use brokkr_core::{ContentListing, Labels, ListedTemplate, ListedTemplateVersion};
use sea_orm::prelude::{DateTimeUtc, Json};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, JoinType, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::SqlStore;
use crate::content::{byte_length, put_in_place, size};
use crate::convert::from_json;
use crate::entity::template_versions::{self, Column as VersionColumn};
use crate::entity::templates::{Column, Entity};
use crate::errors::db;
use crate::paging::{keyset, uuid_cursor};
use crate::templates::latest_version;

/// A template's row with its latest version's number, time and sizes.
#[derive(Debug, FromQueryResult)]
struct TemplateRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    generator_id: Option<Uuid>,
    labels: Json,
    annotations: Json,
    latest_version: i32,
    version_created_at: DateTimeUtc,
    content_bytes: i64,
    parameters_schema_bytes: i64,
    created_at: DateTimeUtc,
    updated_at: DateTimeUtc,
    deleted_at: Option<DateTimeUtc>,
}

impl SqlStore {
    pub(crate) async fn list_templates_impl(
        &self,
        filter: &TemplateFilter,
        content: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedTemplate>> {
        let mut query = Entity::find()
            .join(JoinType::InnerJoin, latest_version())
            .column_as(
                Expr::col((template_versions::Entity, VersionColumn::CreatedAt)),
                "version_created_at",
            )
            .expr_as(byte_length("template_versions", "content"), "content_bytes")
            .expr_as(
                byte_length("template_versions", "parameters_schema"),
                "parameters_schema_bytes",
            );
        if let Some(generator) = filter.generator_id {
            query = query.filter(Column::GeneratorId.eq(generator.0));
        }
        if !filter.include_deleted {
            query = query.filter(Column::DeletedAt.is_null());
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .into_model::<TemplateRow>()
            .all(&self.reader)
            .await
            .map_err(db)?
            .into_iter()
            .map(listed)
            .collect::<Result<Vec<_>>>()?;
        let key = |t: &ListedTemplate| t.id.to_string();
        let mut page = content.page(rows, page, ListedTemplate::content_bytes, key);
        if content.includes() {
            self.fill_content(&mut page.items).await?;
        }
        Ok(page)
    }

    /// Reads the source and schema of the listed versions with one query and puts them
    /// in place. Versions are immutable, so a template updated since its row was read
    /// still gets the version that row named.
    async fn fill_content(&self, templates: &mut [ListedTemplate]) -> Result<()> {
        if templates.is_empty() {
            return Ok(());
        }
        let versions = templates.iter().fold(Condition::any(), |any, t| {
            any.add(
                Condition::all()
                    .add(VersionColumn::TemplateId.eq(t.id.0))
                    .add(VersionColumn::Version.eq(t.latest.version)),
            )
        });
        let bodies: HashMap<(Uuid, i32), (String, Json)> = template_versions::Entity::find()
            .select_only()
            .columns([
                VersionColumn::TemplateId,
                VersionColumn::Version,
                VersionColumn::Content,
                VersionColumn::ParametersSchema,
            ])
            .filter(versions)
            .into_tuple::<(Uuid, i32, String, Json)>()
            .all(&self.reader)
            .await
            .map_err(db)?
            .into_iter()
            .map(|(id, version, content, schema)| ((id, version), (content, schema)))
            .collect();
        put_in_place(
            templates,
            bodies,
            |t| (t.id.0, t.latest.version),
            |t, (content, schema)| {
                t.latest.content = Some(content);
                t.latest.parameters_schema = Some(schema);
            },
            "template version",
        )
    }
}

/// A listed row, without its latest version's content.
fn listed(row: TemplateRow) -> Result<ListedTemplate> {
    Ok(ListedTemplate {
        id: row.id.into(),
        name: row.name,
        description: row.description,
        generator_id: row.generator_id.map(Into::into),
        labels: from_json::<Labels>("labels", row.labels)?,
        annotations: from_json("annotations", row.annotations)?,
        latest: ListedTemplateVersion {
            version: row.latest_version,
            content: None,
            parameters_schema: None,
            content_bytes: size("template source size", row.content_bytes)?,
            parameters_schema_bytes: size("template schema size", row.parameters_schema_bytes)?,
            created_at: row.version_created_at,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted_at: row.deleted_at,
    })
}
