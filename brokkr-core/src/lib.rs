//! Brokkr's core: the domain model, the four traits and the pure logic of an
//! embeddable multi-cluster control plane.
//!
//! This crate performs no I/O and depends on no database, HTTP or Kubernetes crate.
//! Start with the [`Store`] trait (persistence of the model, implemented by
//! `brokkr-store`), the [`model`] types it hands out, and [`manifest::parse`], which
//! turns multi-document YAML into validated [`Manifest`]s.
//!
//! ```no_run
//! use brokkr_core::{Actor, NewDeploymentObject, NewStack, Store};
//!
//! async fn ship(store: &dyn Store, yaml: &str) -> Result<(), Box<dyn std::error::Error>> {
//!     let stack = store
//!         .create_stack(&Actor::Admin, NewStack { name: "tenant-a".into(), ..Default::default() })
//!         .await?;
//!     // Parse and validate before anything is stored.
//!     let object = NewDeploymentObject::from_yaml(stack.id, yaml)?;
//!     store.append_deployment_object(&Actor::Admin, object).await?;
//!     Ok(())
//! }
//! ```
//!
//! Generators turn parameters into validated manifests: [`template::TemplateGenerator`]
//! renders minijinja templates checked by a JSON Schema ([`schema::ParameterSchema`]);
//! a control plane adds its own [`Generator`]s and registers them in a
//! [`GeneratorRegistry`].
//!
//! With the `testing` feature, [`testing`] offers an in-memory `Store` and the
//! conformance suite every `Store` implementation must pass.

#![deny(missing_docs)]

pub mod applier;
pub mod audit_chain;
pub mod change;
pub mod generator;
pub mod health;
pub mod id;
pub mod manifest;
pub mod metadata;
pub mod model;
pub mod page;
pub mod pak;
pub mod placement;
pub mod plan;
pub mod rollout;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod schema;
pub mod selector;
pub mod store;
pub mod sync;
pub mod target_state;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

pub use applier::Applier;
pub use audit_chain::{AuditHash, ChainCheck, ChainFault, ChainHead, ChainLink, ChainMismatch};
pub use change::{ChangeFeed, ChangeHub, TargetChange, TargetStateWatch};
pub use generator::{GenerateRequest, Generated, Generator, GeneratorRegistry, ParameterViolation};
pub use health::{HealthStatus, ObjectHealth};
pub use id::{
    AgentEventId, AgentId, ApiKeyId, AuditRecordId, DeliveryId, DeploymentObjectId,
    GateEvaluationId, GeneratorId, PlanId, RolloutCommandId, RolloutId, StackId, SubscriptionId,
    TemplateId, WebhookEventId,
};
pub use manifest::{Manifest, ObjectKey};
pub use metadata::{Annotations, Labels};
pub use model::*;
pub use page::{ContentListing, Cursor, Order, Page, PageRequest};
pub use pak::{KeyHash, Pak};
pub use placement::{
    DefaultPlacement, Placement, PlacementDecision, PlacementInput, PlacementPolicy,
};
pub use store::{
    AgentEventFilter, AgentFilter, AuditFilter, DeliveryFilter, GeneratorFilter, RolloutStore,
    StackFilter, Store, SubscriptionFilter, TargetFilter, TemplateFilter, WebhookStore,
};
pub use target_state::{AgentTargetState, TargetAction, TargetState, TargetStateEntry};
pub use template::{TemplateGenerator, TemplateLimits};
