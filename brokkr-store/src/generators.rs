//! Generators.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Error, GeneratorFilter, Result};
use brokkr_core::{
    Actor, AuditAction, GeneratorId, GeneratorUpdate, KeyOwner, NewGenerator, ResourceKind,
    model::Generator,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert;
use crate::entity::generators::{self, Column};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::{SqlStore, keys};

/// A live generator, row-locked on PostgreSQL: `exclusive` to change it, shared to
/// refer to it (so it cannot be deleted while a stack or template naming it is being
/// created, yet such creations do not queue behind each other).
pub(crate) async fn live_generator(
    conn: &impl ConnectionTrait,
    id: GeneratorId,
    exclusive: bool,
) -> Result<generators::Model> {
    // By primary key alone: see `sql::live_ids`.
    let query = generators::Entity::find_by_id(id.0);
    let query = if exclusive {
        query.lock_exclusive()
    } else {
        query.lock_shared()
    };
    query
        .one(conn)
        .await
        .map_err(db)?
        .filter(|row| row.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("generator", id))
}

async fn check_name_free(
    conn: &impl ConnectionTrait,
    name: &str,
    except: Option<Uuid>,
) -> Result<()> {
    let mut query = generators::Entity::find()
        .filter(Column::Name.eq(name))
        .filter(Column::DeletedAt.is_null());
    if let Some(id) = except {
        query = query.filter(Column::Id.ne(id));
    }
    if query.one(conn).await.map_err(db)?.is_some() {
        return Err(Error::Conflict(format!(
            "a generator named {name:?} exists"
        )));
    }
    Ok(())
}

impl SqlStore {
    pub(crate) async fn create_generator_impl(
        &self,
        actor: &Actor,
        new: NewGenerator,
    ) -> Result<Generator> {
        new.validate()?;
        let write = self.begin().await?;
        check_name_free(write.tx(), &new.name, None).await?;
        let row = generators::Model {
            id: GeneratorId::new().0,
            name: new.name,
            description: new.description,
            created_at: write.now,
            updated_at: write.now,
            deleted_at: None,
        };
        generators::Entity::insert(generators::ActiveModel::from(row.clone()))
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        keys::insert_key(&write, KeyOwner::Generator(row.id.into()), &new.key).await?;
        let summary = format!("created generator {:?}", row.name);
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::Create,
                    ResourceKind::Generator,
                    row.id,
                    summary,
                ),
            )
            .await?;
        self.commit(write).await?;
        Ok(convert::generator(row))
    }

    pub(crate) async fn get_generator_impl(&self, id: GeneratorId) -> Result<Generator> {
        let row = generators::Entity::find_by_id(id.0)
            .filter(Column::DeletedAt.is_null())
            .one(&self.reader)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("generator", id))?;
        Ok(convert::generator(row))
    }

    pub(crate) async fn list_generators_impl(
        &self,
        filter: &GeneratorFilter,
        page: &PageRequest,
    ) -> Result<Page<Generator>> {
        let mut query = generators::Entity::find();
        if !filter.include_deleted {
            query = query.filter(Column::DeletedAt.is_null());
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(
            rows,
            page,
            |m| Ok(convert::generator(m)),
            |g| g.id.to_string(),
        )
    }

    pub(crate) async fn update_generator_impl(
        &self,
        actor: &Actor,
        id: GeneratorId,
        update: GeneratorUpdate,
    ) -> Result<Generator> {
        update.validate()?;
        let write = self.begin().await?;
        let mut row = live_generator(write.tx(), id, true).await?;
        if let Some(name) = update.name {
            check_name_free(write.tx(), &name, Some(row.id)).await?;
            row.name = name;
        }
        if let Some(description) = update.description {
            row.description = description;
        }
        row.updated_at = write.now;
        generators::Entity::update_many()
            .col_expr(Column::Name, Expr::value(row.name.clone()))
            .col_expr(Column::Description, Expr::value(row.description.clone()))
            .col_expr(Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        let summary = format!("updated generator {:?}", row.name);
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::Update,
                    ResourceKind::Generator,
                    row.id,
                    summary,
                ),
            )
            .await?;
        self.commit(write).await?;
        Ok(convert::generator(row))
    }

    pub(crate) async fn delete_generator_impl(&self, actor: &Actor, id: GeneratorId) -> Result<()> {
        let write = self.begin().await?;
        let row = live_generator(write.tx(), id, true).await?;
        generators::Entity::update_many()
            .col_expr(Column::DeletedAt, Expr::value(write.now))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        keys::revoke_keys(&write, KeyOwner::Generator(id)).await?;
        let summary = format!("deleted generator {:?}", row.name);
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::Delete,
                    ResourceKind::Generator,
                    row.id,
                    summary,
                ),
            )
            .await?;
        self.commit(write).await
    }
}
