//! Webhook subscriptions: created, read, listed, changed and deleted (with their
//! deliveries), each change audited.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{Error, Result, SubscriptionFilter};
use brokkr_core::{
    Actor, AuditAction, NewSubscription, ResourceKind, Subscription, SubscriptionId,
    SubscriptionOwner, SubscriptionUpdate,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::audit::Audit;
use crate::convert::{self, subscription_owner_parts, to_json};
use crate::entity::webhook_deliveries;
use crate::entity::webhook_subscriptions::{self, Column};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::{SqlStore, generators};

async fn find(
    conn: &impl ConnectionTrait,
    id: SubscriptionId,
) -> Result<webhook_subscriptions::Model> {
    webhook_subscriptions::Entity::find_by_id(id.0)
        .one(conn)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("subscription", id))
}

impl SqlStore {
    pub(crate) async fn create_subscription_impl(
        &self,
        actor: &Actor,
        new: NewSubscription,
    ) -> Result<Subscription> {
        let write = self.begin().await?;
        if let SubscriptionOwner::Generator(generator) = new.owner {
            generators::live_generator(write.tx(), generator, false).await?;
        }
        let (owner_kind, owner_id) = subscription_owner_parts(new.owner);
        let row = webhook_subscriptions::Model {
            id: SubscriptionId::new().0,
            owner_kind: owner_kind.to_owned(),
            owner_id,
            url: new.url,
            description: new.description,
            event_types: to_json(&new.event_types),
            stack_id: new.stack_id.map(|s| s.0),
            labels: new.labels.as_ref().map(to_json),
            sealed_secret: new.sealed_secret,
            enabled: true,
            created_at: write.now,
            updated_at: write.now,
            lease_owner: None,
            lease_until: None,
        };
        webhook_subscriptions::Entity::insert(webhook_subscriptions::ActiveModel::from(
            row.clone(),
        ))
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
        let summary = format!("created webhook subscription to {}", row.url);
        let audit = Audit::new(
            AuditAction::Create,
            ResourceKind::Subscription,
            row.id,
            summary,
        );
        write.audit(actor, audit).await?;
        self.commit(write).await?;
        convert::subscription(row)
    }

    pub(crate) async fn get_subscription_impl(&self, id: SubscriptionId) -> Result<Subscription> {
        convert::subscription(find(&self.reader, id).await?)
    }

    pub(crate) async fn list_subscriptions_impl(
        &self,
        filter: &SubscriptionFilter,
        page: &PageRequest,
    ) -> Result<Page<Subscription>> {
        let mut query = webhook_subscriptions::Entity::find();
        if let Some(owner) = filter.owner {
            let (kind, id) = subscription_owner_parts(owner);
            query = query.filter(Column::OwnerKind.eq(kind));
            query = match id {
                Some(id) => query.filter(Column::OwnerId.eq(id)),
                None => query.filter(Column::OwnerId.is_null()),
            };
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(rows, page, convert::subscription, |s| s.id.to_string())
    }

    pub(crate) async fn update_subscription_impl(
        &self,
        actor: &Actor,
        id: SubscriptionId,
        update: SubscriptionUpdate,
    ) -> Result<Subscription> {
        let write = self.begin().await?;
        let mut row = find(write.tx(), id).await?;
        if let Some(url) = update.url {
            row.url = url;
        }
        if let Some(description) = update.description {
            row.description = description;
        }
        if let Some(event_types) = update.event_types {
            row.event_types = to_json(&event_types);
        }
        if let Some(stack_id) = update.stack_id {
            row.stack_id = stack_id.map(|s| s.0);
        }
        if let Some(labels) = update.labels {
            row.labels = labels.as_ref().map(to_json);
        }
        if let Some(enabled) = update.enabled {
            row.enabled = enabled;
        }
        if let Some(secret) = update.sealed_secret {
            row.sealed_secret = secret;
        }
        row.updated_at = write.now;
        // The lease columns are the dispatcher's: left as they are.
        webhook_subscriptions::Entity::update_many()
            .col_expr(Column::Url, Expr::value(row.url.clone()))
            .col_expr(Column::Description, Expr::value(row.description.clone()))
            .col_expr(Column::EventTypes, Expr::value(row.event_types.clone()))
            .col_expr(Column::StackId, Expr::value(row.stack_id))
            .col_expr(Column::Labels, Expr::value(row.labels.clone()))
            .col_expr(Column::Enabled, Expr::value(row.enabled))
            .col_expr(Column::SealedSecret, Expr::value(row.sealed_secret.clone()))
            .col_expr(Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        let summary = format!("updated webhook subscription to {}", row.url);
        let audit = Audit::new(
            AuditAction::Update,
            ResourceKind::Subscription,
            row.id,
            summary,
        );
        write.audit(actor, audit).await?;
        self.commit(write).await?;
        convert::subscription(row)
    }

    pub(crate) async fn delete_subscription_impl(
        &self,
        actor: &Actor,
        id: SubscriptionId,
    ) -> Result<()> {
        let write = self.begin().await?;
        let row = find(write.tx(), id).await?;
        webhook_deliveries::Entity::delete_many()
            .filter(webhook_deliveries::Column::SubscriptionId.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        webhook_subscriptions::Entity::delete_by_id(row.id)
            .exec(write.tx())
            .await
            .map_err(db)?;
        let summary = format!("deleted webhook subscription to {}", row.url);
        let audit = Audit::new(
            AuditAction::Delete,
            ResourceKind::Subscription,
            row.id,
            summary,
        );
        write.audit(actor, audit).await?;
        self.commit(write).await
    }
}
