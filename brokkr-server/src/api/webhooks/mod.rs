//! Webhooks: `/webhooks` (subscriptions), `/webhooks/{id}/rotate-secret`,
//! `/webhooks/{id}/test`, `/webhooks/{id}/deliveries`, `/webhook-deliveries/{id}` and
//! `/webhook-deliveries/{id}/redeliver`.
//!
//! Admin manages every subscription; a generator only its own (for its own stacks),
//! and another generator's subscriptions and deliveries are a 404 to it; agents get
//! 403. A subscription's secret is shown once, in the answer that created or rotated
//! it. The rules live in the control plane (`brokkr_core::runtime`, `webhooks/ops.rs`).

mod dto;

use brokkr_core::{DeliveryId, SubscriptionId};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::page;
use crate::api::unchecked::Unchecked;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::state::AppState;

use dto::{
    CreateSubscriptionRequest, DeliveryDto, DeliveryPage, DeliveryStatusDto, SubscriptionDto,
    SubscriptionPage, SubscriptionWithSecretDto, UpdateSubscriptionRequest,
};

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /webhooks`.
#[derive(Debug, ApiResponse)]
pub enum SubscriptionCreated {
    /// The subscription was created; the body shows its secret, once.
    #[oai(status = 201)]
    Created(Json<SubscriptionWithSecretDto>),
}

/// A subscription.
#[derive(Debug, ApiResponse)]
pub enum SubscriptionResponse {
    /// The subscription.
    #[oai(status = 200)]
    Ok(Json<SubscriptionDto>),
}

/// A page of subscriptions.
#[derive(Debug, ApiResponse)]
pub enum SubscriptionPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<SubscriptionPage>),
}

/// Answer of `DELETE /webhooks/{id}`.
#[derive(Debug, ApiResponse)]
pub enum SubscriptionDeleted {
    /// The subscription and its deliveries are gone.
    #[oai(status = 204)]
    NoContent,
}

/// Answer of `POST /webhooks/{id}/rotate-secret`.
#[derive(Debug, ApiResponse)]
pub enum SecretRotated {
    /// A new secret signs from now on; the body shows it, once.
    #[oai(status = 200)]
    Ok(Json<SubscriptionWithSecretDto>),
}

/// Answer of `POST /webhooks/{id}/test`.
#[derive(Debug, ApiResponse)]
pub enum TestQueued {
    /// A `webhook.test` delivery was queued; follow it with
    /// `GET /webhook-deliveries/{id}`.
    #[oai(status = 201)]
    Created(Json<DeliveryDto>),
}

/// Answer of `POST /webhook-deliveries/{id}/redeliver`.
#[derive(Debug, ApiResponse)]
pub enum Redelivered {
    /// The delivery is pending again (attempts reset, same id); follow it with
    /// `GET /webhook-deliveries/{id}`.
    #[oai(status = 200)]
    Ok(Json<DeliveryDto>),
}

/// A delivery.
#[derive(Debug, ApiResponse)]
pub enum DeliveryResponse {
    /// The delivery.
    #[oai(status = 200)]
    Ok(Json<DeliveryDto>),
}

/// A page of deliveries.
#[derive(Debug, ApiResponse)]
pub enum DeliveryPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<DeliveryPage>),
}

// ---------------------------------------------------------------------------------------
// Operations

/// Webhook operations.
pub struct WebhooksApi;

#[OpenApi]
impl WebhooksApi {
    /// Subscribe a URL to events (admin, or a generator for its own stacks).
    ///
    /// The URL must be `http` or `https` without credentials or fragment, on a host
    /// the server's `[webhooks] allowed_hosts` names (422 `invalid_url`,
    /// `url_not_allowed`); at least one event type, not `webhook.test` (422
    /// `invalid_event_types`); `labels` a label selector (422 `invalid_selector`). A
    /// server without `[webhooks] keys` answers 422 `webhooks_not_configured`. The
    /// answer holds the signing secret, shown only here.
    #[oai(
        path = "/webhooks",
        method = "post",
        operation_id = "createWebhook",
        tag = "Tag::Webhooks"
    )]
    async fn create_webhook(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<Unchecked<CreateSubscriptionRequest>>,
    ) -> ApiResult<SubscriptionCreated> {
        let spec = body
            .0
            .parse("invalid_subscription", "subscription")?
            .into_spec()?;
        let created = state
            .control_plane
            .create_subscription(&auth.0, spec)
            .await?;
        Ok(SubscriptionCreated::Created(Json(created.into())))
    }

    /// List subscriptions, ordered by id: all for admin, its own for a generator.
    #[oai(
        path = "/webhooks",
        method = "get",
        operation_id = "listWebhooks",
        tag = "Tag::Webhooks"
    )]
    async fn list_webhooks(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<SubscriptionPageResponse> {
        let page = page(limit, cursor, Query(None))?;
        let subscriptions = state
            .control_plane
            .list_subscriptions(&auth.0, &page)
            .await?;
        Ok(SubscriptionPageResponse::Ok(Json(subscriptions.into())))
    }

    /// Get a subscription (admin, or the generator owning it).
    #[oai(
        path = "/webhooks/:id",
        method = "get",
        operation_id = "getWebhook",
        tag = "Tag::Webhooks"
    )]
    async fn get_webhook(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<SubscriptionResponse> {
        let subscription = state
            .control_plane
            .get_subscription(&auth.0, SubscriptionId::from(id.0))
            .await?;
        Ok(SubscriptionResponse::Ok(Json(subscription.into())))
    }

    /// Change a subscription (admin, or the generator owning it).
    ///
    /// What changes is checked as on creation (422). Disabling stops new deliveries
    /// and sending; enabling sends what waited.
    #[oai(
        path = "/webhooks/:id",
        method = "patch",
        operation_id = "updateWebhook",
        tag = "Tag::Webhooks"
    )]
    async fn update_webhook(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<Unchecked<UpdateSubscriptionRequest>>,
    ) -> ApiResult<SubscriptionResponse> {
        let change = body
            .0
            .parse("invalid_subscription", "subscription")?
            .into_change()?;
        let subscription = state
            .control_plane
            .update_subscription(&auth.0, SubscriptionId::from(id.0), change)
            .await?;
        Ok(SubscriptionResponse::Ok(Json(subscription.into())))
    }

    /// Delete a subscription and its deliveries (admin, or the generator owning it).
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook",
        tag = "Tag::Webhooks"
    )]
    async fn delete_webhook(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<SubscriptionDeleted> {
        state
            .control_plane
            .delete_subscription(&auth.0, SubscriptionId::from(id.0))
            .await?;
        Ok(SubscriptionDeleted::NoContent)
    }

    /// Give a subscription a new signing secret, shown only in this answer.
    ///
    /// The old secret stops signing at once: every attempt from now on, retries
    /// included, is signed with the new one.
    #[oai(
        path = "/webhooks/:id/rotate-secret",
        method = "post",
        operation_id = "rotateWebhookSecret",
        tag = "Tag::Webhooks"
    )]
    async fn rotate_webhook_secret(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<SecretRotated> {
        let rotated = state
            .control_plane
            .rotate_subscription_secret(&auth.0, SubscriptionId::from(id.0))
            .await?;
        Ok(SecretRotated::Ok(Json(rotated.into())))
    }

    /// Queue a `webhook.test` delivery, behind the subscription's other deliveries.
    #[oai(
        path = "/webhooks/:id/test",
        method = "post",
        operation_id = "sendTestWebhook",
        tag = "Tag::Webhooks"
    )]
    async fn test_webhook(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<TestQueued> {
        let delivery = state
            .control_plane
            .test_subscription(&auth.0, SubscriptionId::from(id.0))
            .await?;
        Ok(TestQueued::Created(Json(delivery.into())))
    }

    /// List a subscription's deliveries, ordered by id (oldest first by default).
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "listWebhookDeliveries",
        tag = "Tag::Webhooks"
    )]
    async fn list_webhook_deliveries(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Only deliveries with this status (`dead`: the dead letters).
        status: Query<Option<DeliveryStatusDto>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<crate::api::dto::OrderParam>>,
    ) -> ApiResult<DeliveryPageResponse> {
        let page = page(limit, cursor, order)?;
        let deliveries = state
            .control_plane
            .list_deliveries(
                &auth.0,
                SubscriptionId::from(id.0),
                status.0.map(Into::into),
                &page,
            )
            .await?;
        Ok(DeliveryPageResponse::Ok(Json(deliveries.into())))
    }

    /// Get a delivery (admin, or the generator owning its subscription).
    #[oai(
        path = "/webhook-deliveries/:id",
        method = "get",
        operation_id = "getWebhookDelivery",
        tag = "Tag::Webhooks"
    )]
    async fn get_webhook_delivery(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<DeliveryResponse> {
        let delivery = state
            .control_plane
            .get_delivery(&auth.0, DeliveryId::from(id.0))
            .await?;
        Ok(DeliveryResponse::Ok(Json(delivery.into())))
    }

    /// Send a delivered or dead delivery again: due now, attempts reset, same id.
    #[oai(
        path = "/webhook-deliveries/:id/redeliver",
        method = "post",
        operation_id = "sendWebhookDeliveryAgain",
        tag = "Tag::Webhooks"
    )]
    async fn redeliver_webhook_delivery(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<Redelivered> {
        let delivery = state
            .control_plane
            .redeliver(&auth.0, DeliveryId::from(id.0))
            .await?;
        Ok(Redelivered::Ok(Json(delivery.into())))
    }
}
