//! Templates and their versions. A template row carries `latest_version`, so a
//! template with its latest version is one join, for one template or a whole page.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Error, Result};
use brokkr_core::{
    Actor, AuditAction, NewTemplate, NewTemplateVersion, ResourceKind, Template, TemplateId,
    TemplateVersion,
};
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QuerySelect, RelationDef,
    Select, SelectTwo,
};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::{self, to_json};
use crate::entity::template_versions::{self, Column as VersionColumn};
use crate::entity::templates::{self, Column};
use crate::errors::db;
use crate::paging::{int_cursor, keyset, page_of};
use crate::write::Write;
use crate::{SqlStore, generators};

/// `templates JOIN template_versions ON id = template_id AND latest_version = version`.
pub(crate) fn latest_version() -> RelationDef {
    templates::Entity::belongs_to(template_versions::Entity)
        .from(Column::Id)
        .to(VersionColumn::TemplateId)
        .on_condition(|left, right| {
            Expr::col((left, Column::LatestVersion))
                .equals((right, VersionColumn::Version))
                .into_condition()
        })
        .into()
}

fn with_latest(
    query: Select<templates::Entity>,
) -> SelectTwo<templates::Entity, template_versions::Entity> {
    query
        .join(JoinType::InnerJoin, latest_version())
        .select_also(template_versions::Entity)
}

fn joined(row: (templates::Model, Option<template_versions::Model>)) -> Result<Template> {
    match row {
        (template, Some(latest)) => convert::template(template, latest),
        (template, None) => Err(crate::errors::corrupt(
            "template",
            format!("{} has no row for its latest version", template.id),
        )),
    }
}

/// A live template row, locked for update on PostgreSQL.
pub(crate) async fn live_template(
    conn: &impl ConnectionTrait,
    id: TemplateId,
) -> Result<templates::Model> {
    // By primary key alone: see `sql::live_ids`.
    templates::Entity::find_by_id(id.0)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db)?
        .filter(|row| row.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("template", id))
}

async fn check_name_free(conn: &impl ConnectionTrait, name: &str) -> Result<()> {
    let taken = templates::Entity::find()
        .filter(Column::Name.eq(name))
        .filter(Column::DeletedAt.is_null())
        .one(conn)
        .await
        .map_err(db)?;
    if taken.is_some() {
        return Err(Error::Conflict(format!("a template named {name:?} exists")));
    }
    Ok(())
}

async fn insert_version(
    write: &Write,
    id: Uuid,
    version: i32,
    body: NewTemplateVersion,
) -> Result<template_versions::Model> {
    let row = template_versions::Model {
        template_id: id,
        version,
        content: body.content,
        parameters_schema: body.parameters_schema,
        created_at: write.now,
    };
    template_versions::Entity::insert(template_versions::ActiveModel::from(row.clone()))
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    Ok(row)
}

impl SqlStore {
    /// Whether the template was ever created (deleted ones included).
    async fn template_exists(&self, id: TemplateId) -> Result<bool> {
        let row = templates::Entity::find_by_id(id.0)
            .one(&self.reader)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    pub(crate) async fn create_template_impl(
        &self,
        actor: &Actor,
        new: NewTemplate,
    ) -> Result<Template> {
        new.validate()?;

        let write = self.begin().await?;
        if let Some(generator) = new.generator_id {
            generators::live_generator(write.tx(), generator, false).await?;
        }
        check_name_free(write.tx(), &new.name).await?;
        let row = templates::Model {
            id: TemplateId::new().0,
            name: new.name,
            description: new.description,
            generator_id: new.generator_id.map(|g| g.0),
            labels: to_json(&new.labels),
            annotations: to_json(&new.annotations),
            latest_version: 1,
            created_at: write.now,
            updated_at: write.now,
            deleted_at: None,
        };
        templates::Entity::insert(templates::ActiveModel::from(row.clone()))
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        let body = NewTemplateVersion {
            content: new.content,
            parameters_schema: new.parameters_schema,
        };
        let version = insert_version(&write, row.id, 1, body).await?;
        let summary = format!("created template {:?}", row.name);
        write
            .audit(
                actor,
                Audit::new(AuditAction::Create, ResourceKind::Template, row.id, summary),
            )
            .await?;
        self.commit(write).await?;
        convert::template(row, version)
    }

    pub(crate) async fn get_template_impl(&self, id: TemplateId) -> Result<Template> {
        // By primary key alone: see `sql::live_ids`.
        let row = with_latest(templates::Entity::find_by_id(id.0))
            .one(&self.reader)
            .await
            .map_err(db)?
            .filter(|(template, _)| template.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("template", id))?;
        joined(row)
    }

    pub(crate) async fn get_template_version_impl(
        &self,
        id: TemplateId,
        version: i32,
    ) -> Result<TemplateVersion> {
        let row = template_versions::Entity::find_by_id((id.0, version))
            .one(&self.reader)
            .await
            .map_err(db)?;
        match row {
            Some(row) => Ok(convert::template_version(row)),
            // Say which is missing: the template, or only this version of it.
            None => match self.template_exists(id).await? {
                true => Err(Error::not_found(
                    "template version",
                    format!("{id}@{version}"),
                )),
                false => Err(Error::not_found("template", id)),
            },
        }
    }

    pub(crate) async fn list_template_versions_impl(
        &self,
        id: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<TemplateVersion>> {
        let after = int_cursor(page)?
            .map(|v| i32::try_from(v).map_err(|_| crate::paging::bad_cursor(page)))
            .transpose()?;
        if !self.template_exists(id).await? {
            return Err(Error::not_found("template", id));
        }
        let query = template_versions::Entity::find().filter(VersionColumn::TemplateId.eq(id.0));
        let rows = keyset(query, VersionColumn::Version, after, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(
            rows,
            page,
            |m| Ok(convert::template_version(m)),
            |v| v.version.to_string(),
        )
    }

    pub(crate) async fn add_template_version_impl(
        &self,
        actor: &Actor,
        id: TemplateId,
        body: NewTemplateVersion,
    ) -> Result<Template> {
        let write = self.begin().await?;
        let mut row = live_template(write.tx(), id).await?;
        row.latest_version += 1;
        row.updated_at = write.now;
        let version = insert_version(&write, row.id, row.latest_version, body).await?;
        templates::Entity::update_many()
            .col_expr(Column::LatestVersion, Expr::value(row.latest_version))
            .col_expr(Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        let summary = format!(
            "added version {} to template {:?}",
            row.latest_version, row.name
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::Update, ResourceKind::Template, row.id, summary),
            )
            .await?;
        self.commit(write).await?;
        convert::template(row, version)
    }

    pub(crate) async fn delete_template_impl(&self, actor: &Actor, id: TemplateId) -> Result<()> {
        let write = self.begin().await?;
        let row = live_template(write.tx(), id).await?;
        templates::Entity::update_many()
            .col_expr(Column::DeletedAt, Expr::value(write.now))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        let summary = format!("deleted template {:?}", row.name);
        write
            .audit(
                actor,
                Audit::new(AuditAction::Delete, ResourceKind::Template, row.id, summary),
            )
            .await?;
        self.commit(write).await
    }
}
