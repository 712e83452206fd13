//! Deployment objects from parameters: `POST /stacks/{id}/deployment-objects/from-template`
//! (a stored template version, or a registered Rust generator), and the listing of
//! registered generators with their parameter schemas.
//!
//! The handler parses the body into a [`GenerateSource`] and calls the control plane
//! (`ControlPlane::render` for a dry run, `generate_deployment_object` otherwise),
//! which checks access, renders off the async workers and appends.

use std::sync::Arc;

use brokkr_core::StackId;
use brokkr_core::generator::Generator;
use brokkr_core::runtime::plan::{PlanRequest, PlanView};
use brokkr_core::runtime::{GenerateSource, Rendered};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{DeploymentObjectDto, ObjectKeyDto, ProvenanceDto};
use crate::api::fields::no_null;
use crate::api::plans::dto::PlanDto;
use crate::api::plans::guard_options;
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// What to generate from: exactly one of `template_id` and `generator`.
#[derive(Debug, Clone, Object)]
pub struct GenerateRequestDto {
    /// A template the caller may see (its own or a global one).
    #[oai(deserialize_with = "no_null")]
    pub template_id: Option<Uuid>,
    /// The template version; the latest when absent. Only with `template_id`.
    #[oai(deserialize_with = "no_null")]
    pub version: Option<i32>,
    /// The name of a registered Rust generator (see `GET /registered-generators`).
    #[oai(deserialize_with = "no_null")]
    pub generator: Option<String>,
    /// Parameters, checked against the template's or generator's JSON Schema.
    #[oai(default = "empty_object")]
    pub parameters: serde_json::Value,
    /// Render and validate only: nothing is stored and the YAML is returned with its
    /// plan (as `?dry_run=true`).
    #[oai(default)]
    pub dry_run: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A dry run's result: what would be stored, and what it would do to every agent.
#[derive(Debug, Clone, Object)]
pub struct DryRunResult {
    /// The rendered YAML, exactly as it would be stored.
    pub yaml_content: String,
    /// Hex SHA-256 of `yaml_content`, as the stored object would have.
    pub yaml_checksum: String,
    /// The objects it holds, in order.
    pub objects: Vec<ObjectKeyDto>,
    /// What produced it, as it would be recorded.
    pub provenance: ProvenanceDto,
    /// What appending it would do to every agent, with the guard's verdict; stored, so
    /// an admin can confirm it (`?confirm_plan_id=`) when the guard would stop it.
    pub plan: PlanDto,
}

/// A registered Rust generator.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RegisteredGenerator")]
pub struct RegisteredGeneratorDto {
    /// The name to pass as `generator`.
    pub name: String,
    /// What it produces.
    pub description: String,
    /// JSON Schema of its parameters.
    pub parameters_schema: serde_json::Value,
}

impl From<&Arc<dyn Generator>> for RegisteredGeneratorDto {
    fn from(generator: &Arc<dyn Generator>) -> Self {
        Self {
            name: generator.name().to_owned(),
            description: generator.description().to_owned(),
            parameters_schema: generator.parameters_schema(),
        }
    }
}

/// Every registered generator, by name.
#[derive(Debug, Clone, Object)]
pub struct RegisteredGeneratorList {
    /// The generators.
    pub items: Vec<RegisteredGeneratorDto>,
}

#[derive(ApiResponse)]
enum Generated201 {
    /// The deployment object was stored, with its provenance.
    #[oai(status = 201)]
    Created(Json<DeploymentObjectDto>),
    /// Dry run: rendered, validated and planned; nothing stored but the plan.
    #[oai(status = 200)]
    DryRun(Json<Box<DryRunResult>>),
}

#[derive(ApiResponse)]
enum RegisteredList {
    /// The registered generators.
    #[oai(status = 200)]
    Ok(Json<RegisteredGeneratorList>),
}

#[derive(ApiResponse)]
enum RegisteredOne {
    /// The registered generator.
    #[oai(status = 200)]
    Ok(Json<RegisteredGeneratorDto>),
}

// ---------------------------------------------------------------------------------------
// Parsing the request

impl GenerateRequestDto {
    /// What to generate from: exactly one of `template_id` and `generator`, and
    /// `version` only with a template (422 `validation_failed` otherwise).
    fn source(&self) -> ApiResult<GenerateSource> {
        match (&self.template_id, &self.generator) {
            (Some(id), None) => Ok(GenerateSource::Template {
                id: (*id).into(),
                version: self.version,
            }),
            (None, Some(_)) if self.version.is_some() => {
                Err(invalid("`version` applies to templates only"))
            }
            (None, Some(name)) => Ok(GenerateSource::Registered(name.clone())),
            _ => Err(invalid("give exactly one of `template_id` and `generator`")),
        }
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::unprocessable("validation_failed", message, None)
}

impl DryRunResult {
    fn new(rendered: Rendered, plan: PlanView) -> Self {
        let object = rendered.object();
        Self {
            yaml_content: object.yaml_content().to_owned(),
            yaml_checksum: object.yaml_checksum().to_owned(),
            objects: rendered.objects().iter().cloned().map(Into::into).collect(),
            provenance: rendered.provenance().clone().into(),
            plan: plan.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operations

/// Generating deployment objects, and the registered generators.
pub struct GenerateApi;

#[OpenApi]
impl GenerateApi {
    /// Create a deployment object from a template or a registered generator.
    ///
    /// Give `template_id` (and optionally `version`; the latest by default) or
    /// `generator`. Parameters get their schema defaults and are validated: every
    /// violation is listed in a 422 `invalid_parameters` with its JSON pointer. The
    /// rendered YAML is validated like a posted deployment object (422
    /// `render_failed` or `invalid_manifest` otherwise). The stored object records
    /// its provenance: template id and version or generator name, and the parameters
    /// after defaults; its `yaml_checksum` is the checksum of the rendered output.
    /// With `dry_run` (in the body or `?dry_run=true`), nothing is stored and the YAML
    /// is returned with its plan (200). The blast-radius guard compares the output with
    /// what every agent applied: a change over its limits is a 409
    /// `blast_radius_exceeded` until an admin repeats it with `?confirm_plan_id=` (403
    /// for a generator).
    ///
    /// Admin on any stack; a generator on its own stacks, with its own or global
    /// templates and any registered generator.
    #[oai(
        path = "/stacks/:id/deployment-objects/from-template",
        method = "post",
        operation_id = "createDeploymentObjectFromTemplate",
        tag = "Tag::DeploymentObjects"
    )]
    async fn create_deployment_object_from_template(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// `true`: as `dry_run` in the body.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
        body: Json<GenerateRequestDto>,
    ) -> ApiResult<Generated201> {
        let body = body.0;
        let source = body.source()?;
        let (caller, stack) = (auth.0, StackId::from(id.0));
        let control_plane = &state.control_plane;
        let options = guard_options(dry_run, confirm_plan_id);
        if body.dry_run || options.dry_run {
            // Rendered once: the plan is made from the rendered YAML, which is the
            // change (and so the digest) the append would plan.
            let rendered = control_plane
                .render(&caller, stack, &source, body.parameters)
                .await?;
            let yaml = rendered.object().yaml_content().to_owned();
            let plan = control_plane
                .plan(&caller, stack, PlanRequest::Yaml(yaml))
                .await?;
            let result = DryRunResult::new(rendered, plan);
            return Ok(Generated201::DryRun(Json(Box::new(result))));
        }
        let outcome = control_plane
            .guarded(options)
            .generate_deployment_object(&caller, stack, &source, body.parameters)
            .await?;
        // Not a dry run, so the outcome is the object appended.
        Ok(Generated201::Created(Json(outcome.done()?.into())))
    }

    /// List the registered Rust generators with their parameter schemas.
    ///
    /// Admin or any generator.
    #[oai(
        path = "/registered-generators",
        method = "get",
        operation_id = "listRegisteredGenerators",
        tag = "Tag::Generators"
    )]
    async fn list_registered_generators(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
    ) -> ApiResult<RegisteredList> {
        let generators = state.control_plane.registered_generators(&auth.0)?;
        let items = generators.iter().map(Into::into).collect();
        Ok(RegisteredList::Ok(Json(RegisteredGeneratorList { items })))
    }

    /// Get one registered Rust generator with its parameter schema.
    #[oai(
        path = "/registered-generators/:name",
        method = "get",
        operation_id = "getRegisteredGenerator",
        tag = "Tag::Generators"
    )]
    async fn get_registered_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<RegisteredOne> {
        let generator = state.control_plane.registered_generator(&auth.0, &name.0)?;
        Ok(RegisteredOne::Ok(Json((&generator).into())))
    }
}
