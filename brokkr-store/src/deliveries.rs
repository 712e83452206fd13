//! Webhook deliveries: queued by fan-out or a test request, claimed by dispatchers
//! (one subscription's head delivery at a time, under a lease on the subscription),
//! finished, listed, redelivered, counted and pruned.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{DeliveryFilter, Error, Result};
use brokkr_core::{
    Actor, AuditAction, ClaimedDelivery, Delivery, DeliveryId, DeliveryOutcome, DeliveryStatus,
    ResourceKind, Subscription, SubscriptionId, WebhookEvent, WebhookQueueStats,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::entity::webhook_deliveries::{self, Column};
use crate::entity::webhook_subscriptions;
use crate::errors::db;
use crate::outbox::INSERT_CHUNK;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::sql::{self, bind_params};
use crate::write::Write;
use crate::{Backend, SqlStore, convert};

/// The head pending delivery of the subscription `s`: the condition the partial index
/// `ix_webhook_deliveries_pending` serves.
const HEAD: &str = "(SELECT MIN(h.position) FROM webhook_deliveries h \
     WHERE h.subscription_id = s.id AND h.status = 'pending')";

/// Queues one pending delivery per (subscription, event), due now, in the given
/// order, with one statement per chunk.
pub(crate) async fn queue(write: &Write, queued: &[(&Subscription, &WebhookEvent)]) -> Result<()> {
    for chunk in queued.chunks(INSERT_CHUNK) {
        let mut stmt = Query::insert();
        stmt.into_table(Alias::new("webhook_deliveries")).columns(
            [
                "id",
                "subscription_id",
                "event_id",
                "event_type",
                "stack_id",
                "agent_id",
                "occurred_at",
                "data",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ]
            .map(Alias::new),
        );
        for (subscription, event) in chunk {
            stmt.values_panic([
                DeliveryId::new().0.into(),
                subscription.id.0.into(),
                event.id.0.into(),
                event.event_type.as_str().into(),
                event.stack_id.map(|s| s.0).into(),
                event.agent_id.map(|a| a.0).into(),
                event.occurred_at.into(),
                event.data.clone().into(),
                DeliveryStatus::Pending.as_str().into(),
                0i32.into(),
                write.now.into(),
                write.now.into(),
            ]);
        }
        write.tx().execute(&stmt).await.map_err(db)?;
    }
    Ok(())
}

/// The deliveries with these ids.
async fn by_ids(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<Vec<webhook_deliveries::Model>> {
    webhook_deliveries::Entity::find()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await
        .map_err(db)
}

fn stored_status(status: u16) -> i32 {
    i32::from(status)
}

impl SqlStore {
    pub(crate) async fn queue_test_delivery_impl(
        &self,
        actor: &Actor,
        id: SubscriptionId,
    ) -> Result<Delivery> {
        let write = self.begin().await?;
        let subscription = webhook_subscriptions::Entity::find_by_id(id.0)
            .one(write.tx())
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("subscription", id))?;
        let subscription = convert::subscription(subscription)?;
        let event = WebhookEvent::test(id, write.now);
        queue(&write, &[(&subscription, &event)]).await?;
        let row = webhook_deliveries::Entity::find()
            .filter(Column::EventId.eq(event.id.0))
            .one(write.tx())
            .await
            .map_err(db)?
            .ok_or_else(|| Error::Backend("a queued test delivery is missing".into()))?;
        let summary = format!("queued a test delivery for webhook subscription {id}");
        let audit = Audit::new(AuditAction::Create, ResourceKind::Delivery, row.id, summary);
        write.audit(actor, audit).await?;
        self.commit(write).await?;
        convert::delivery(row)
    }

    /// Leases the subscriptions whose head delivery is due, least recently leased
    /// first, skipping (on PostgreSQL) those another claimant is leasing right now.
    pub(crate) async fn claim_impl(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        let write = self.begin().await?;
        let lock = match write.backend() {
            Backend::Postgres => " FOR UPDATE OF s SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let query = format!(
            "SELECT s.id FROM webhook_subscriptions s \
             WHERE s.enabled = ? AND (s.lease_owner IS NULL OR s.lease_until <= ?) \
             AND EXISTS (SELECT 1 FROM webhook_deliveries d \
                         WHERE d.position = {HEAD} AND d.next_attempt_at <= ?) \
             ORDER BY s.lease_until NULLS FIRST, s.id LIMIT ?{lock}"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = write
            .tx()
            .query_all_raw(sql::stmt(
                write.backend(),
                &query,
                [true.into(), now.into(), now.into(), limit.into()],
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
        let in_ids = bind_params(ids.len());
        let mut values: Vec<Value> = vec![claimant.into(), lease_until.into()];
        values.extend(ids.iter().map(|id| Value::from(*id)));
        write
            .tx()
            .execute_raw(sql::stmt(
                write.backend(),
                &format!(
                    "UPDATE webhook_subscriptions SET lease_owner = ?, lease_until = ? \
                     WHERE id IN ({in_ids})"
                ),
                values,
            ))
            .await
            .map_err(db)?;
        let subscriptions = webhook_subscriptions::Entity::find()
            .filter(webhook_subscriptions::Column::Id.is_in(ids.iter().copied()))
            .all(write.tx())
            .await
            .map_err(db)?;
        let heads = webhook_deliveries::Entity::find()
            .from_raw_sql(sql::stmt(
                write.backend(),
                &format!(
                    "SELECT d.* FROM webhook_deliveries d JOIN webhook_subscriptions s \
                     ON s.id = d.subscription_id \
                     WHERE s.id IN ({in_ids}) AND d.position = {HEAD}"
                ),
                ids.iter().map(|id| Value::from(*id)),
            ))
            .all(write.tx())
            .await
            .map_err(db)?;
        self.commit(write).await?;
        let mut claimed = Vec::with_capacity(heads.len());
        for head in heads {
            let subscription = subscriptions
                .iter()
                .find(|s| s.id == head.subscription_id)
                .cloned()
                .ok_or_else(|| Error::Backend("a claimed subscription is missing".into()))?;
            claimed.push(ClaimedDelivery {
                delivery: convert::delivery(head)?,
                subscription: convert::subscription(subscription)?,
            });
        }
        // In the order they were leased.
        claimed.sort_by_key(|c| ids.iter().position(|id| *id == c.subscription.id.0));
        Ok(claimed)
    }

    pub(crate) async fn finish_impl(
        &self,
        claimant: &str,
        id: DeliveryId,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome,
    ) -> Result<()> {
        let (status, last_status, last_error, retry_at, delivered_at) = match outcome {
            DeliveryOutcome::Delivered { status } => (
                DeliveryStatus::Delivered,
                Some(stored_status(status)),
                None,
                None,
                Some(at),
            ),
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at: Some(retry_at),
            } => (
                DeliveryStatus::Pending,
                status.map(stored_status),
                Some(error),
                Some(retry_at),
                None,
            ),
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at: None,
            } => (
                DeliveryStatus::Dead,
                status.map(stored_status),
                Some(error),
                None,
                None,
            ),
        };
        let write = self.begin().await?;
        let updated = write
            .tx()
            .query_one_raw(sql::stmt(
                write.backend(),
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?, \
                 last_status = ?, last_error = ?, status = ?, \
                 next_attempt_at = COALESCE(?, next_attempt_at), delivered_at = ? \
                 WHERE id = ? AND status = 'pending' RETURNING subscription_id",
                [
                    at.into(),
                    last_status.into(),
                    last_error.into(),
                    status.as_str().into(),
                    retry_at.into(),
                    delivered_at.into(),
                    id.0.into(),
                ],
            ))
            .await
            .map_err(db)?;
        let subscription = match updated {
            Some(row) => row.try_get::<Uuid>("", "subscription_id").map_err(db)?,
            // Not pending any more: the attempt changes nothing, but the claimant is
            // done with the subscription (another claimant may have finished the
            // delivery after this one's lease expired).
            None => {
                by_ids(write.tx(), &[id.0])
                    .await?
                    .pop()
                    .ok_or_else(|| Error::not_found("delivery", id))?
                    .subscription_id
            }
        };
        // The lease's end stays as when it was last leased, so that claims serve the
        // least recently served subscriptions first.
        write
            .tx()
            .execute_raw(sql::stmt(
                write.backend(),
                "UPDATE webhook_subscriptions SET lease_owner = NULL \
                 WHERE id = ? AND lease_owner = ?",
                [subscription.into(), claimant.into()],
            ))
            .await
            .map_err(db)?;
        self.commit(write).await
    }

    pub(crate) async fn get_delivery_impl(&self, id: DeliveryId) -> Result<Delivery> {
        let row = by_ids(&self.reader, &[id.0]).await?.pop();
        convert::delivery(row.ok_or_else(|| Error::not_found("delivery", id))?)
    }

    pub(crate) async fn list_deliveries_impl(
        &self,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        let mut query = webhook_deliveries::Entity::find();
        if let Some(subscription) = filter.subscription_id {
            query = query.filter(Column::SubscriptionId.eq(subscription.0));
        }
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(rows, page, convert::delivery, |d| d.id.to_string())
    }

    pub(crate) async fn redeliver_impl(&self, actor: &Actor, id: DeliveryId) -> Result<Delivery> {
        let write = self.begin().await?;
        let updated = write
            .tx()
            .execute_raw(sql::stmt(
                write.backend(),
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
                 next_attempt_at = ?, delivered_at = NULL \
                 WHERE id = ? AND status <> 'pending'",
                [write.now.into(), id.0.into()],
            ))
            .await
            .map_err(db)?;
        let row = by_ids(write.tx(), &[id.0])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("delivery", id))?;
        if updated.rows_affected() == 0 {
            // Already pending: answered as it is, nothing written.
            return convert::delivery(row);
        }
        let summary = format!(
            "queued delivery {id} again for webhook subscription {}",
            row.subscription_id
        );
        let audit = Audit::new(AuditAction::Update, ResourceKind::Delivery, id.0, summary);
        write.audit(actor, audit).await?;
        self.commit(write).await?;
        convert::delivery(row)
    }

    pub(crate) async fn queue_stats_impl(&self) -> Result<WebhookQueueStats> {
        let count = async |query: &str| -> Result<u64> {
            let row = self
                .reader
                .query_one_raw(sql::stmt(self.backend, query, []))
                .await
                .map_err(db)?
                .ok_or_else(|| Error::Backend("a count answered no row".into()))?;
            let n = row.try_get::<i64>("", "n").map_err(db)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let oldest = async |query: &str| -> Result<Option<DateTime<Utc>>> {
            let row = self
                .reader
                .query_one_raw(sql::stmt(self.backend, query, []))
                .await
                .map_err(db)?;
            row.map(|row| row.try_get::<DateTime<Utc>>("", "occurred_at").map_err(db))
                .transpose()
        };
        let outbox = count("SELECT COUNT(*) AS n FROM webhook_outbox").await?;
        let pending =
            count("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'").await?;
        let dead =
            count("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'dead'").await?;
        let oldest_outbox =
            oldest("SELECT occurred_at FROM webhook_outbox ORDER BY position LIMIT 1").await?;
        let oldest_pending = oldest(
            "SELECT occurred_at FROM webhook_deliveries WHERE status = 'pending' \
             ORDER BY occurred_at LIMIT 1",
        )
        .await?;
        Ok(WebhookQueueStats {
            outbox,
            pending,
            dead,
            oldest_undelivered_at: oldest_outbox.into_iter().chain(oldest_pending).min(),
        })
    }

    pub(crate) async fn prune_impl(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let write = self.begin().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let done = write
            .tx()
            .execute_raw(sql::stmt(
                write.backend(),
                "DELETE FROM webhook_deliveries WHERE position IN \
                 (SELECT position FROM webhook_deliveries \
                  WHERE status = 'delivered' AND delivered_at < ? \
                  ORDER BY delivered_at LIMIT ?)",
                [before.into(), limit.into()],
            ))
            .await
            .map_err(db)?;
        self.commit(write).await?;
        Ok(done.rows_affected())
    }
}
