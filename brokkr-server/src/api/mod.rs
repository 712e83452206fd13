//! The REST API v1, one module per resource. Every operation takes [`BearerAuth`]
//! (except the public probes, which live outside the OpenAPI service), checks role and
//! row access, and returns `ApiResult<_>`.
//!
//! [`BearerAuth`]: crate::auth::BearerAuth

pub mod dto;
pub mod fields;

mod admin;
mod agents;
mod audit_chain;
mod events;
mod fleet;
mod generate;
mod generators;
mod health;
mod metadata;
mod placement;
mod plans;
mod rollouts;
mod stacks;
mod targets;
mod templates;
mod unchecked;
mod webhooks;
mod yaml_body;

pub use admin::AdminApi;
pub use agents::AgentsApi;
pub use audit_chain::AuditChainApi;
pub use events::EventsApi;
pub use fleet::FleetApi;
pub use generate::GenerateApi;
pub use generators::GeneratorsApi;
pub use health::HealthApi;
pub use metadata::MetadataApi;
pub use placement::PlacementApi;
pub use plans::PlansApi;
pub use rollouts::RolloutsApi;
pub use stacks::StacksApi;
pub use targets::TargetsApi;
pub use templates::TemplatesApi;
pub use webhooks::WebhooksApi;

/// Groups of operations in the OpenAPI document.
#[derive(Debug, poem_openapi::Tags)]
pub enum Tag {
    /// Stacks and their deployment objects.
    Stacks,
    /// Deployment objects.
    DeploymentObjects,
    /// Agents, their heartbeats and target states.
    Agents,
    /// Which agents are responsible for which stacks.
    AgentTargets,
    /// Placement policies of stacks and the decisions made from them.
    Placement,
    /// Plans and the blast-radius guard.
    Plans,
    /// Outcomes of agents' attempts.
    AgentEvents,
    /// Health of applied workloads, as agents report it.
    Health,
    /// Labels and annotations of stacks, agents and templates.
    Metadata,
    /// Generators (external systems with their own keys).
    Generators,
    /// Versioned templates.
    Templates,
    /// Keys, the audit log and its chain.
    Admin,
    /// Webhook subscriptions and their deliveries.
    Webhooks,
    /// Progressive rollouts: policies, rollouts and their commands.
    Rollouts,
}

/// Every operation of the API.
pub type Api = (
    StacksApi,
    GenerateApi,
    TargetsApi,
    PlacementApi,
    PlansApi,
    MetadataApi,
    GeneratorsApi,
    TemplatesApi,
    AgentsApi,
    EventsApi,
    HealthApi,
    AdminApi,
    AuditChainApi,
    FleetApi,
    WebhooksApi,
    RolloutsApi,
);

/// The API, for `OpenApiService::new`.
pub fn api() -> Api {
    (
        StacksApi,
        GenerateApi,
        TargetsApi,
        PlacementApi,
        PlansApi,
        MetadataApi,
        GeneratorsApi,
        TemplatesApi,
        AgentsApi,
        EventsApi,
        HealthApi,
        AdminApi,
        AuditChainApi,
        FleetApi,
        WebhooksApi,
        RolloutsApi,
    )
}
