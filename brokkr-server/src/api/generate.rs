//! Deployment objects from parameters: `POST /stacks/{id}/deployment-objects/from-template`
//! (a stored template version, or a registered Rust generator), and the listing of
//! registered generators with their parameter schemas.
//!
//! The order is fixed so that nothing is stored on bad input: row access to the stack,
//! then to the template; then parameters (schema defaults, validation), rendering and
//! the manifest parser, on a blocking thread because rendering is CPU work; only then
//! the append, which writes the object, its provenance and the audit record together.

use std::sync::Arc;

use brokkr_core::generator::{GenerateRequest, Generated, Generator};
use brokkr_core::manifest::ParseOptions;
use brokkr_core::{NewDeploymentObject, Provenance, Stack, TemplateGenerator, TemplateId};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{DeploymentObjectDto, ProvenanceDto};
use crate::api::stacks::visible_stack;
use crate::api::templates::visible_template;
use crate::auth::{BearerAuth, Identity};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// What to generate from: exactly one of `template_id` and `generator`.
#[derive(Debug, Clone, Object)]
pub struct GenerateRequestDto {
    /// A template the caller may see (its own or a global one).
    pub template_id: Option<Uuid>,
    /// The template version; the latest when absent. Only with `template_id`.
    pub version: Option<i32>,
    /// The name of a registered Rust generator (see `GET /registered-generators`).
    pub generator: Option<String>,
    /// Parameters, checked against the template's or generator's JSON Schema.
    #[oai(default = "empty_object")]
    pub parameters: serde_json::Value,
    /// Render and validate only: nothing is stored and the YAML is returned.
    #[oai(default)]
    pub dry_run: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// One object of a rendered output.
#[derive(Debug, Clone, Object)]
pub struct RenderedObject {
    /// `v1` or `group/version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, if set.
    #[oai(skip_serializing_if_is_none)]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// A dry run's result: what would be stored.
#[derive(Debug, Clone, Object)]
pub struct DryRunResult {
    /// The rendered YAML, exactly as it would be stored.
    pub yaml_content: String,
    /// Hex SHA-256 of `yaml_content`, as the stored object would have.
    pub yaml_checksum: String,
    /// The objects it holds, in order.
    pub objects: Vec<RenderedObject>,
    /// What produced it, as it would be recorded.
    pub provenance: ProvenanceDto,
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
    /// Dry run: rendered and validated, nothing stored.
    #[oai(status = 200)]
    DryRun(Json<DryRunResult>),
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
// Resolving the source

/// A generator ready to run, and the template version it renders, if any.
struct Source {
    generator: Arc<dyn Generator>,
    template_id: Option<TemplateId>,
    template_version: Option<i32>,
}

async fn resolve_source(
    state: &AppState,
    identity: &Identity,
    body: &GenerateRequestDto,
) -> ApiResult<Source> {
    match (&body.template_id, &body.generator) {
        (Some(template_id), None) => {
            let template = visible_template(state, identity, *template_id).await?;
            let version = match body.version {
                Some(v) if v == template.latest.version => template.latest,
                Some(v) => state.store.get_template_version(template.id, v).await?,
                None => template.latest,
            };
            let number = version.version;
            let limits = state.config.templates.limits();
            let name = template.name;
            let generator =
                blocking(move || TemplateGenerator::new(name, &version, limits)).await??;
            Ok(Source {
                generator: Arc::new(generator),
                template_id: Some(template.id),
                template_version: Some(number),
            })
        }
        (None, Some(name)) => {
            if body.version.is_some() {
                return Err(invalid("`version` applies to templates only"));
            }
            let generator = state
                .control_plane
                .generators()
                .get(name)
                .ok_or_else(|| ApiError::not_found("registered generator", name))?;
            Ok(Source {
                generator: Arc::clone(generator),
                template_id: None,
                template_version: None,
            })
        }
        _ => Err(invalid("give exactly one of `template_id` and `generator`")),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::unprocessable("validation_failed", message, None)
}

/// Runs CPU work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(&e))
}

async fn run(
    state: &AppState,
    identity: &Identity,
    source: &Source,
    stack: Stack,
    parameters: serde_json::Value,
) -> ApiResult<Generated> {
    let generator = Arc::clone(&source.generator);
    let limits = ParseOptions {
        max_bytes: state.config.server.body_limit_bytes,
        ..ParseOptions::default()
    };
    let requested_by = identity.actor();
    let generated = blocking(move || {
        generator.generate(&GenerateRequest {
            parameters: &parameters,
            stack: &stack,
            requested_by,
            limits: &limits,
        })
    })
    .await?;
    if let Err(err) = &generated {
        tracing::info!(generator = source.generator.name(), error = %err, "generation refused");
    }
    Ok(generated?)
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
    /// With `dry_run`, nothing is stored and the YAML is returned (200).
    ///
    /// Admin on any stack; a generator on its own stacks, with its own or global
    /// templates and any registered generator.
    #[oai(
        path = "/stacks/:id/deployment-objects/from-template",
        method = "post",
        tag = "Tag::DeploymentObjects"
    )]
    async fn create_deployment_object_from_template(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<GenerateRequestDto>,
    ) -> ApiResult<Generated201> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let body = body.0;
        let source = resolve_source(&state, &auth.0, &body).await?;
        let stack_id = stack.id;
        let generated = run(&state, &auth.0, &source, stack, body.parameters).await?;
        let parameters = generated.parameters().clone();
        let provenance = match (source.template_id, source.template_version) {
            (Some(id), Some(version)) => Provenance::template(id, version, parameters),
            _ => Provenance::generator(source.generator.name(), parameters),
        };
        let objects = rendered_objects(&generated);
        let new = NewDeploymentObject::from_generated(stack_id, generated, provenance.clone());
        if body.dry_run {
            return Ok(Generated201::DryRun(Json(DryRunResult {
                yaml_content: new.yaml_content().to_owned(),
                yaml_checksum: new.yaml_checksum().to_owned(),
                objects,
                provenance: provenance.into(),
            })));
        }
        let object = state
            .store
            .append_deployment_object(&auth.0.actor(), new)
            .await?;
        Ok(Generated201::Created(Json(object.into())))
    }

    /// List the registered Rust generators with their parameter schemas.
    ///
    /// Admin or any generator.
    #[oai(
        path = "/registered-generators",
        method = "get",
        tag = "Tag::Generators"
    )]
    async fn list_registered_generators(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
    ) -> ApiResult<RegisteredList> {
        auth.0.require_admin_or_generator()?;
        let items = state
            .control_plane
            .generators()
            .iter()
            .map(Into::into)
            .collect();
        Ok(RegisteredList::Ok(Json(RegisteredGeneratorList { items })))
    }

    /// Get one registered Rust generator with its parameter schema.
    #[oai(
        path = "/registered-generators/:name",
        method = "get",
        tag = "Tag::Generators"
    )]
    async fn get_registered_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<RegisteredOne> {
        auth.0.require_admin_or_generator()?;
        let generator = state
            .control_plane
            .generators()
            .get(&name.0)
            .ok_or_else(|| ApiError::not_found("registered generator", &name.0))?;
        Ok(RegisteredOne::Ok(Json(generator.into())))
    }
}

fn rendered_objects(generated: &Generated) -> Vec<RenderedObject> {
    generated
        .manifests()
        .iter()
        .map(|m| RenderedObject {
            api_version: m.api_version().to_owned(),
            kind: m.kind().to_owned(),
            namespace: m.namespace().map(str::to_owned),
            name: m.name().to_owned(),
        })
        .collect()
}
