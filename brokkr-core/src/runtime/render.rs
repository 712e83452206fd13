//! Render-then-append: deployment objects from a stored template version or a
//! registered [`Generator`], and the registered generators themselves.
//!
//! The order is fixed so that nothing is stored on bad input: row access to the stack,
//! then to the template; then, on one blocking thread, the template's compilation,
//! parameters (schema defaults, validation), rendering, the manifest parser and the
//! checksum; only then the append, which writes the object, its provenance and the
//! audit record together. A dry run ([`ControlPlane::render`]) stops before the append.

use std::sync::Arc;

use serde_json::Value;

use crate::generator::{GenerateRequest, Generator};
use crate::id::{StackId, TemplateId};
use crate::manifest::ObjectKey;
use crate::model::{Actor, DeploymentObject, NewDeploymentObject, Provenance, Stack};
use crate::template::TemplateGenerator;

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};

/// What a deployment object is generated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerateSource {
    /// A template the caller may see (its own or a global one).
    Template {
        /// The template.
        id: TemplateId,
        /// The version to render; the latest when `None`.
        version: Option<i32>,
    },
    /// A generator registered in the control plane's
    /// [`GeneratorRegistry`](crate::GeneratorRegistry), by name.
    Registered(String),
}

/// A rendered deployment object, validated and hashed, not stored. Only
/// [`ControlPlane::render`] makes one, so it always records its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    object: NewDeploymentObject,
    provenance: Provenance,
    objects: Vec<ObjectKey>,
}

impl Rendered {
    /// The object as it would be appended, provenance included.
    pub fn object(&self) -> &NewDeploymentObject {
        &self.object
    }

    /// What produced it: the template version or generator, and the parameters after
    /// schema defaults.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The Kubernetes objects it holds, in order.
    pub fn objects(&self) -> &[ObjectKey] {
        &self.objects
    }

    /// The object, to append it.
    pub fn into_object(self) -> NewDeploymentObject {
        self.object
    }
}

impl ControlPlane {
    /// Renders a deployment object for a live stack the caller may see, from
    /// `source` with `parameters`, and stores nothing (a dry run). Parameters get their
    /// schema defaults and are validated (`Generate(InvalidParameters)` lists every
    /// violation); the output is validated like a deployment object sent as YAML.
    /// Admin and system on any stack; a generator on its own stacks, with its own or
    /// global templates and any registered generator.
    pub async fn render(
        &self,
        caller: &Actor,
        stack: StackId,
        source: &GenerateSource,
        parameters: Value,
    ) -> Result<Rendered> {
        let stack = self.visible_stack(caller, stack).await?;
        let resolved = self.resolve(caller, source).await?;
        let requested_by = *caller;
        let limits = self.parse_options();
        off_workers(move || resolved.run(&stack, requested_by, parameters, &limits)).await?
    }

    /// Renders like [`ControlPlane::render`], then appends the result with its
    /// provenance (template id and version, or generator name, and the parameters after
    /// defaults); its checksum is the checksum of the rendered output.
    pub async fn generate_deployment_object(
        &self,
        caller: &Actor,
        stack: StackId,
        source: &GenerateSource,
        parameters: Value,
    ) -> Result<DeploymentObject> {
        self.guarded(super::plan::GuardOptions::default())
            .generate_deployment_object(caller, stack, source, parameters)
            .await?
            .done()
    }

    /// The registered generators, by name (admin, system or any generator).
    pub fn registered_generators(&self, caller: &Actor) -> Result<Vec<Arc<dyn Generator>>> {
        access::require_admin_or_generator(caller)?;
        Ok(self.generators().iter().cloned().collect())
    }

    /// The generator registered as `name` (admin, system or any generator).
    pub fn registered_generator(&self, caller: &Actor, name: &str) -> Result<Arc<dyn Generator>> {
        access::require_admin_or_generator(caller)?;
        self.generators()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("registered generator", name))
    }

    /// Checks access to the source and loads what rendering needs; compiling a
    /// template is left to the blocking thread.
    async fn resolve(&self, caller: &Actor, source: &GenerateSource) -> Result<Resolved> {
        match source {
            GenerateSource::Template { id, version } => {
                let template = self.visible_template(caller, *id).await?;
                let version = match *version {
                    Some(v) if v != template.latest.version => {
                        self.store().get_template_version(template.id, v).await?
                    }
                    _ => template.latest,
                };
                Ok(Resolved::Template {
                    name: template.name,
                    version,
                    limits: self.settings().template_limits,
                })
            }
            GenerateSource::Registered(name) => Ok(Resolved::Registered(
                self.registered_generator(caller, name)?,
            )),
        }
    }
}

/// A source whose access was checked, ready to run on a blocking thread.
enum Resolved {
    Template {
        name: String,
        version: crate::model::TemplateVersion,
        limits: crate::template::TemplateLimits,
    },
    Registered(Arc<dyn Generator>),
}

impl Resolved {
    /// Compiles (templates), generates, validates and hashes: CPU work only.
    fn run(
        self,
        stack: &Stack,
        requested_by: Actor,
        parameters: Value,
        limits: &crate::manifest::ParseOptions,
    ) -> Result<Rendered> {
        let (generator, provenance): (Arc<dyn Generator>, _) = match self {
            Self::Template {
                name,
                version,
                limits,
            } => {
                let provenance =
                    Provenance::template(version.template_id, version.version, Value::Null);
                let generator = TemplateGenerator::new(name, &version, limits)?;
                (Arc::new(generator), provenance)
            }
            Self::Registered(generator) => {
                let provenance = Provenance::generator(generator.name(), Value::Null);
                (generator, provenance)
            }
        };
        let generated = generator
            .generate(&GenerateRequest {
                parameters: &parameters,
                stack,
                requested_by,
                limits,
            })
            .inspect_err(|err| {
                tracing::info!(generator = generator.name(), error = %err, "generation refused");
            })?;
        let objects = generated.manifests().iter().map(|m| m.key()).collect();
        // The provenance records the parameters after defaults, as `from_generated`
        // does for the stored copy.
        let mut provenance = provenance;
        provenance.parameters = generated.parameters().clone();
        let object = NewDeploymentObject::from_generated(stack.id, generated, provenance.clone());
        Ok(Rendered {
            object,
            provenance,
            objects,
        })
    }
}

/// Runs CPU work (parsing, hashing, compiling, rendering) on a blocking thread, so
/// async workers keep serving requests and long polls meanwhile, at most one task per
/// core at once ([`CPU_SLOTS`]). A panic in `work` is [`Error::Task`], not a panic of
/// the caller.
pub(crate) async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let slot = CPU_SLOTS
        .clone()
        .acquire_owned()
        .await
        .expect("the CPU slots are never closed");
    // The slot goes with the work: a caller that gives up does not free it early.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(Error::Task)
}

/// Blocking threads doing request CPU work at once: one per core. Unbounded, eight
/// expensive inputs at once got eight threads on two cores and starved the async
/// workers (probes, long polls); bounded, a burst waits its turn here.
static CPU_SLOTS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Arc::new(tokio::sync::Semaphore::new(cores))
    });
