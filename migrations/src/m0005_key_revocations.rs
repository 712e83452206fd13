//! A counter of key revocations, which every control plane on the database polls.
//!
//! A key revoked through one replica (or by the command line, which has no server to
//! tell) must stop working on every replica at once, while each keeps a cache of keys
//! it authenticated. Every revocation moves this `counters` row in its transaction;
//! a control plane that sees it move forgets its cached keys.

use sea_orm_migration::prelude::*;

use crate::KEY_REVOCATIONS;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("counters")
                    .columns(["name", "value"])
                    .values_panic([KEY_REVOCATIONS.into(), 0i64.into()])
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("counters")
                    .and_where(Expr::col("name").eq(KEY_REVOCATIONS))
                    .take(),
            )
            .await
    }
}
