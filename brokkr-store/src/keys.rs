//! API keys: issued with their owner, rotated, revoked with their owner.

use brokkr_core::store::{Error, Result};
use brokkr_core::{Actor, ApiKey, ApiKeyId, AuditAction, KeyOwner, ResourceKind, StoredKey};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::audit::Audit;
use crate::convert::{self, owner_parts};
use crate::entity::api_keys::{self, Column};
use crate::errors::db;
use crate::sql;
use crate::write::Write;
use crate::{SqlStore, agents, generators};
use brokkr_migrations::KEY_REVOCATIONS;

fn owner_filter(owner: KeyOwner) -> sea_orm::Condition {
    let (kind, id) = owner_parts(owner);
    let condition = sea_orm::Condition::all().add(Column::OwnerKind.eq(kind));
    match id {
        Some(id) => condition.add(Column::OwnerId.eq(id)),
        None => condition.add(Column::OwnerId.is_null()),
    }
}

/// Stores `key` for `owner`. `Conflict` if the short id is taken (by any key, revoked
/// or not: short ids name key records forever).
pub(crate) async fn insert_key(write: &Write, owner: KeyOwner, key: &StoredKey) -> Result<ApiKey> {
    let taken = api_keys::Entity::find()
        .filter(Column::ShortId.eq(key.short_id.as_str()))
        .one(write.tx())
        .await
        .map_err(db)?;
    if taken.is_some() {
        return Err(Error::Conflict("the key's short id is taken".into()));
    }
    let (kind, id) = owner_parts(owner);
    let row = api_keys::Model {
        id: ApiKeyId::new().0,
        short_id: key.short_id.clone(),
        hash: key.hash.to_hex(),
        owner_kind: kind.to_owned(),
        owner_id: id,
        created_at: write.now,
        revoked_at: None,
    };
    api_keys::Entity::insert(api_keys::ActiveModel::from(row.clone()))
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    convert::api_key(row)
}

/// Revokes every unrevoked key of `owner`, and moves the revocation counter that
/// every control plane on this database polls.
pub(crate) async fn revoke_keys(write: &Write, owner: KeyOwner) -> Result<()> {
    api_keys::Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(write.now))
        .filter(owner_filter(owner))
        .filter(Column::RevokedAt.is_null())
        .exec(write.tx())
        .await
        .map_err(db)?;
    write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            "UPDATE counters SET value = value + 1 WHERE name = ?",
            [KEY_REVOCATIONS.into()],
        ))
        .await
        .map_err(db)?;
    Ok(())
}

impl SqlStore {
    pub(crate) async fn find_api_key_impl(&self, short_id: &str) -> Result<Option<ApiKey>> {
        api_keys::Entity::find()
            .filter(Column::ShortId.eq(short_id))
            .filter(Column::RevokedAt.is_null())
            .one(&self.reader)
            .await
            .map_err(db)?
            .map(convert::api_key)
            .transpose()
    }

    pub(crate) async fn key_revocations_impl(&self) -> Result<u64> {
        let row = self
            .reader
            .query_one_raw(sql::stmt(
                self.backend,
                "SELECT value FROM counters WHERE name = ?",
                [KEY_REVOCATIONS.into()],
            ))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::Backend("the key revocation counter is missing".into()))?;
        let value = row.try_get::<i64>("", "value").map_err(db)?;
        // The counter only ever grows from zero; what matters is that it moved.
        Ok(value.cast_unsigned())
    }

    pub(crate) async fn active_api_keys_impl(&self, owner: KeyOwner) -> Result<Vec<ApiKey>> {
        api_keys::Entity::find()
            .filter(owner_filter(owner))
            .filter(Column::RevokedAt.is_null())
            .order_by_asc(Column::Id)
            .all(&self.reader)
            .await
            .map_err(db)?
            .into_iter()
            .map(convert::api_key)
            .collect()
    }

    pub(crate) async fn rotate_api_key_impl(
        &self,
        actor: &Actor,
        owner: KeyOwner,
        key: StoredKey,
    ) -> Result<ApiKey> {
        let write = self.begin().await?;
        let owner_name = match owner {
            KeyOwner::Admin => "admin".to_owned(),
            KeyOwner::Agent(id) => {
                format!(
                    "agent {:?}",
                    agents::live_agent(write.tx(), id, true).await?.name
                )
            }
            KeyOwner::Generator(id) => format!(
                "generator {:?}",
                generators::live_generator(write.tx(), id, true).await?.name
            ),
        };
        revoke_keys(&write, owner).await?;
        let stored = insert_key(&write, owner, &key).await?;
        let summary = format!("rotated the key of {owner_name}");
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::RotateKey,
                    ResourceKind::ApiKey,
                    stored.id,
                    summary,
                ),
            )
            .await?;
        self.commit(write).await?;
        Ok(stored)
    }
}
