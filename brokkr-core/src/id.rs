//! Typed identifiers.
//!
//! Every entity has its own id type so a stack id cannot be passed where an agent id is
//! expected. Ids are UUID v7: time-ordered, so new rows land at the end of an index and
//! ordering by id is a stable, roughly chronological order for pagination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a [`Stack`](crate::Stack).
    StackId
);
id_type!(
    /// Identifies a [`DeploymentObject`](crate::DeploymentObject).
    DeploymentObjectId
);
id_type!(
    /// Identifies an [`Agent`](crate::Agent).
    AgentId
);
id_type!(
    /// Identifies an [`AgentEvent`](crate::AgentEvent).
    AgentEventId
);
id_type!(
    /// Identifies a [`Generator`](crate::Generator).
    GeneratorId
);
id_type!(
    /// Identifies a [`Template`](crate::Template) across all its versions.
    TemplateId
);
id_type!(
    /// Identifies an [`AuditRecord`](crate::AuditRecord).
    AuditRecordId
);
id_type!(
    /// Identifies an [`ApiKey`](crate::ApiKey) record.
    ApiKeyId
);
id_type!(
    /// Identifies a [`StoredPlan`](crate::StoredPlan).
    PlanId
);
id_type!(
    /// Identifies a [`Subscription`](crate::Subscription) to webhooks.
    SubscriptionId
);
id_type!(
    /// Identifies a [`WebhookEvent`](crate::WebhookEvent), the same in each of its
    /// deliveries.
    WebhookEventId
);
id_type!(
    /// Identifies a [`Delivery`](crate::Delivery): the receiver's idempotency key.
    DeliveryId
);
id_type!(
    /// Identifies a [`Rollout`](crate::Rollout): one candidate deployment object's way
    /// through a stack's waves.
    RolloutId
);
id_type!(
    /// Identifies a [`GateEvaluation`](crate::GateEvaluation); a webhook gate sends it
    /// as `X-Brokkr-Delivery`, the same on every retry of the evaluation.
    GateEvaluationId
);
id_type!(
    /// Identifies a [`RolloutCommand`](crate::RolloutCommand) an operator gave.
    RolloutCommandId
);
