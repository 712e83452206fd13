//! Request bodies of the plan endpoints: the change to plan, a rollback, and a stack's
//! guard overrides, with their conversions into the core's types.

use std::collections::BTreeSet;

use brokkr_core::plan::{GuardOverrides, GuardPolicy};
use brokkr_core::runtime::GenerateSource;
use brokkr_core::runtime::plan::{GuardView, PlanRequest};
use brokkr_core::{AgentId, DeploymentObjectId};
use poem_openapi::{Object, Union};
use serde_json::Value;
use uuid::Uuid;

use crate::api::fields::no_null;
use crate::api::plans::dto::{
    DeleteChange, DeletionMarkerChange, RemovePlacementChange, RollbackChange, UnassignChange,
};
use crate::error::{ApiError, ApiResult};

/// A deployment object to plan: exactly one of `yaml_content`, `template_id` and
/// `generator`.
#[derive(Debug, Clone, Object)]
pub struct PlanDeploymentObject {
    /// Multi-document Kubernetes YAML.
    #[oai(deserialize_with = "no_null")]
    pub yaml_content: Option<String>,
    /// A template the caller may see.
    #[oai(deserialize_with = "no_null")]
    pub template_id: Option<Uuid>,
    /// The template's version; the latest when absent. Only with `template_id`.
    #[oai(deserialize_with = "no_null")]
    pub template_version: Option<i32>,
    /// A registered Rust generator, by name.
    #[oai(deserialize_with = "no_null")]
    pub generator: Option<String>,
    /// Parameters of the template or generator (`{}` when absent).
    #[oai(deserialize_with = "no_null")]
    pub parameters: Option<Value>,
}

/// A placement policy to plan.
#[derive(Debug, Clone, Object)]
pub struct PlanPlacement {
    /// The policy (see `docs/placement.md`).
    pub policy: Value,
}

/// The change to plan, by `change`.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "change", one_of)]
pub enum PlanRequestBody {
    /// `deployment_object`: append YAML, or what a template or generator renders.
    #[oai(mapping = "deployment_object")]
    DeploymentObject(PlanDeploymentObject),
    /// `placement`: set the placement policy.
    #[oai(mapping = "placement")]
    Placement(PlanPlacement),
    /// `remove_placement`: remove the placement policy.
    #[oai(mapping = "remove_placement")]
    RemovePlacement(RemovePlacementChange),
    /// `delete`: delete the stack.
    #[oai(mapping = "delete")]
    Delete(DeleteChange),
    /// `deletion_marker`: append a deletion marker.
    #[oai(mapping = "deletion_marker")]
    DeletionMarker(DeletionMarkerChange),
    /// `rollback`: send an older deployment object of the stack again.
    #[oai(mapping = "rollback")]
    Rollback(RollbackChange),
    /// `unassign`: unassign the stack from one agent.
    #[oai(mapping = "unassign")]
    Unassign(UnassignChange),
}

impl PlanRequestBody {
    /// The core's request: 422 `validation_failed` for a deployment object that names
    /// no source or several, and 422 `invalid_policy` for a policy that is not one.
    pub fn into_request(self) -> ApiResult<PlanRequest> {
        Ok(match self {
            Self::DeploymentObject(body) => body.into_request()?,
            Self::Placement(body) => {
                PlanRequest::Placement(Some(crate::api::placement::parse_policy(body.policy)?))
            }
            Self::RemovePlacement(_) => PlanRequest::Placement(None),
            Self::Delete(_) => PlanRequest::Delete,
            Self::DeletionMarker(_) => PlanRequest::DeletionMarker,
            Self::Rollback(body) => {
                PlanRequest::Rollback(DeploymentObjectId::from(body.to_deployment_object_id))
            }
            Self::Unassign(body) => PlanRequest::Unassign(AgentId::from(body.agent_id)),
        })
    }
}

impl PlanDeploymentObject {
    fn into_request(self) -> ApiResult<PlanRequest> {
        let invalid = |message: &str| ApiError::unprocessable("validation_failed", message, None);
        if self.template_version.is_some() && self.template_id.is_none() {
            return Err(invalid("`template_version` applies to templates only"));
        }
        let parameters = self
            .parameters
            .unwrap_or_else(|| Value::Object(Default::default()));
        match (self.yaml_content, self.template_id, self.generator) {
            (Some(yaml), None, None) if parameters.as_object().is_some_and(|p| p.is_empty()) => {
                Ok(PlanRequest::Yaml(yaml))
            }
            (Some(_), None, None) => Err(invalid("`parameters` apply to a template or generator")),
            (None, Some(id), None) => Ok(PlanRequest::Generate {
                source: GenerateSource::Template {
                    id: id.into(),
                    version: self.template_version,
                },
                parameters,
            }),
            (None, None, Some(name)) => Ok(PlanRequest::Generate {
                source: GenerateSource::Registered(name),
                parameters,
            }),
            _ => Err(invalid(
                "give exactly one of `yaml_content`, `template_id` and `generator`",
            )),
        }
    }
}

/// Body of `POST /stacks/{id}/rollback`.
#[derive(Debug, Clone, Object)]
pub struct RollbackRequest {
    /// An older, live (not deletion-marker) deployment object of the stack.
    pub to_deployment_object_id: Uuid,
}

/// A stack's own guard limits; a limit left out follows the server's default. Unknown
/// fields are refused (400), so a misspelt limit is never silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Object)]
#[oai(rename = "GuardOverrides", deny_unknown_fields)]
pub struct GuardOverridesDto {
    /// The largest share (0 to 1) of the stack's current agents one change may remove
    /// it from.
    #[oai(deserialize_with = "no_null", skip_serializing_if_is_none)]
    pub max_removed_fraction: Option<f64>,
    /// Removing at most this many agents passes whatever their share.
    #[oai(deserialize_with = "no_null", skip_serializing_if_is_none)]
    pub min_removed_agents: Option<u64>,
    /// The most objects one change may prune, counted per agent.
    #[oai(deserialize_with = "no_null", skip_serializing_if_is_none)]
    pub max_pruned_objects: Option<u64>,
    /// Kinds never pruned without confirmation (replaces the default list).
    #[oai(deserialize_with = "no_null", skip_serializing_if_is_none)]
    pub protected_kinds: Option<Vec<String>>,
}

/// The limits a change is checked against.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "GuardLimits")]
pub struct GuardPolicyDto {
    /// The largest share (0 to 1) of the stack's current agents one change may remove
    /// it from.
    pub max_removed_fraction: f64,
    /// Removing at most this many agents passes whatever their share.
    pub min_removed_agents: u64,
    /// The most objects one change may prune, counted per agent.
    pub max_pruned_objects: u64,
    /// Kinds never pruned without confirmation, sorted.
    pub protected_kinds: Vec<String>,
}

/// A stack's guard: the server's defaults, the stack's overrides, and what applies.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "GuardPolicy")]
pub struct GuardPolicyViewDto {
    /// The server's defaults (`[guard]` in its configuration).
    pub defaults: GuardPolicyDto,
    /// The stack's own limits.
    pub overrides: GuardOverridesDto,
    /// The defaults with the overrides: what the stack's changes are checked against.
    pub effective: GuardPolicyDto,
}

impl From<GuardOverridesDto> for GuardOverrides {
    fn from(dto: GuardOverridesDto) -> Self {
        Self {
            max_removed_fraction: dto.max_removed_fraction,
            min_removed_agents: dto.min_removed_agents,
            max_pruned_objects: dto.max_pruned_objects,
            protected_kinds: dto
                .protected_kinds
                .map(|kinds| kinds.into_iter().collect::<BTreeSet<_>>()),
        }
    }
}

impl From<GuardOverrides> for GuardOverridesDto {
    fn from(overrides: GuardOverrides) -> Self {
        Self {
            max_removed_fraction: overrides.max_removed_fraction,
            min_removed_agents: overrides.min_removed_agents,
            max_pruned_objects: overrides.max_pruned_objects,
            protected_kinds: overrides
                .protected_kinds
                .map(|kinds| kinds.into_iter().collect()),
        }
    }
}

impl From<GuardPolicy> for GuardPolicyDto {
    fn from(policy: GuardPolicy) -> Self {
        Self {
            max_removed_fraction: policy.max_removed_fraction,
            min_removed_agents: policy.min_removed_agents,
            max_pruned_objects: policy.max_pruned_objects,
            protected_kinds: policy.protected_kinds.into_iter().collect(),
        }
    }
}

impl From<GuardView> for GuardPolicyViewDto {
    fn from(view: GuardView) -> Self {
        Self {
            defaults: view.defaults.into(),
            overrides: view.overrides.into(),
            effective: view.effective.into(),
        }
    }
}
