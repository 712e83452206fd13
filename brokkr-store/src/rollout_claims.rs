//! The driver's claims on due rollouts, under a lease: PostgreSQL skips the rows
//! another claimant is leasing right now (`FOR UPDATE SKIP LOCKED`, as deliveries are
//! claimed), SQLite's one writer serialises claims anyway.

use brokkr_core::RolloutId;
use brokkr_core::store::{Error, Result};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::errors::db;
use crate::rollout_rows::OPEN;
use crate::sql::{self, bind_params};
use crate::{Backend, SqlStore};

impl SqlStore {
    /// The due rollouts (`ix_rollouts_due`), oldest due first, whose lease is free,
    /// expired or `claimant`'s; leased in the same transaction, their `signalled`
    /// cleared (the evaluation that follows sees whatever made them due).
    pub(crate) async fn claim_due_rollouts_impl(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RolloutId>> {
        let write = self.begin().await?;
        let lock = match write.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let query = format!(
            "SELECT id FROM rollouts \
             WHERE next_eval_at IS NOT NULL AND next_eval_at <= ? AND {OPEN} \
             AND (lease_owner IS NULL OR lease_until <= ? OR lease_owner = ?) \
             ORDER BY next_eval_at, id LIMIT ?{lock}"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = write
            .tx()
            .query_all_raw(sql::stmt(
                write.backend(),
                &query,
                [now.into(), now.into(), claimant.into(), limit.into()],
            ))
            .await
            .map_err(db)?;
        let ids = rows
            .iter()
            .map(|row| row.try_get::<Uuid>("", "id").map_err(db))
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut values: Vec<Value> = vec![claimant.into(), lease_until.into(), false.into()];
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let update = format!(
            "UPDATE rollouts SET lease_owner = ?, lease_until = ?, signalled = ? \
             WHERE id IN ({})",
            bind_params(ids.len())
        );
        write
            .tx()
            .execute_raw(sql::stmt(write.backend(), &update, values))
            .await
            .map_err(db)?;
        self.commit(write).await?;
        Ok(ids.into_iter().map(RolloutId::from).collect())
    }

    pub(crate) async fn release_rollout_lease_impl(
        &self,
        claimant: &str,
        id: RolloutId,
    ) -> Result<()> {
        let write = self.begin().await?;
        let row = write
            .tx()
            .query_one_raw(sql::stmt(
                write.backend(),
                "SELECT lease_owner FROM rollouts WHERE id = ?",
                [id.0.into()],
            ))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("rollout", id))?;
        let owner: Option<String> = row.try_get("", "lease_owner").map_err(db)?;
        if owner.as_deref() == Some(claimant) {
            write
                .tx()
                .execute_raw(sql::stmt(
                    write.backend(),
                    "UPDATE rollouts SET lease_owner = NULL, lease_until = NULL \
                     WHERE id = ? AND lease_owner = ?",
                    [id.0.into(), claimant.into()],
                ))
                .await
                .map_err(db)?;
        }
        self.commit(write).await
    }
}
