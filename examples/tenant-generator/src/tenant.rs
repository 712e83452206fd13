//! The tenant generator: one tenant spec in, three manifests out.
//!
//! Parameters are checked in two steps, and both report violations by JSON pointer:
//! the JSON Schema (shape, ranges, defaults), then the rules a schema cannot say, such
//! as "replicas must fit the plan's pod quota". Manifests are built as JSON values and
//! validated by the core, so the generator never writes YAML by hand.

use brokkr_core::Manifest;
use brokkr_core::generator::{self, GenerateRequest, Generated, Generator, ParameterViolation};
use brokkr_core::manifest::ParseOptions;
use brokkr_core::schema::ParameterSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The label every generated object carries, with the tenant's name as its value.
pub const TENANT_LABEL: &str = "example.com/tenant";

/// The image the deployment runs when the spec names none.
pub const DEFAULT_IMAGE: &str = "nginx:1.27";

/// What each pod requests; the quota is sized in multiples of it.
const POD_CPU: &str = "100m";
const POD_MEMORY: &str = "128Mi";

/// A tenant's plan: it sizes the quota and the default number of replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// The default plan.
    #[default]
    Free,
    /// The paid plan.
    Pro,
}

/// What a plan's namespace may use, as Kubernetes quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// `requests.cpu`.
    pub cpu: &'static str,
    /// `requests.memory`.
    pub memory: &'static str,
    /// `pods`.
    pub pods: u32,
}

impl Plan {
    /// The name used in specs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
        }
    }

    /// The namespace's resource quota.
    pub fn quota(self) -> Quota {
        match self {
            Self::Free => Quota {
                cpu: "2",
                memory: "4Gi",
                pods: 10,
            },
            Self::Pro => Quota {
                cpu: "16",
                memory: "32Gi",
                pods: 100,
            },
        }
    }

    /// Replicas when the spec gives none.
    pub fn default_replicas(self) -> u32 {
        match self {
            Self::Free => 1,
            Self::Pro => 3,
        }
    }
}

/// A tenant as a caller describes it; absent fields take their defaults. Serialises to
/// the generator's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSpec {
    /// A DNS label of at most 56 characters; the namespace is `tenant-<name>`.
    pub name: String,
    /// `free` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// 1 to 20, within the plan's pod quota; the plan's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// [`DEFAULT_IMAGE`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl TenantSpec {
    /// A spec with every default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The generator's parameters.
    pub fn to_parameters(&self) -> Value {
        serde_json::to_value(self).expect("a spec of strings and integers is valid JSON")
    }
}

/// A tenant with every default applied: what the manifests are made from, and what
/// provenance records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The container image.
    pub image: String,
    /// The tenant's name.
    pub name: String,
    /// Its plan.
    pub plan: Plan,
    /// Pods of its deployment.
    pub replicas: u32,
}

impl Tenant {
    /// `tenant-<name>`: the namespace, and the name of the tenant's stack.
    pub fn namespace(&self) -> String {
        namespace_of(&self.name)
    }
}

/// `tenant-<name>`.
pub fn namespace_of(name: &str) -> String {
    format!("tenant-{name}")
}

/// The `tenant` generator. Register it in a [`brokkr_core::GeneratorRegistry`] to make
/// it callable over HTTP, or call [`TenantGenerator::render`] directly.
#[derive(Debug)]
pub struct TenantGenerator {
    schema: ParameterSchema,
}

impl Default for TenantGenerator {
    fn default() -> Self {
        let schema = ParameterSchema::compile(&parameters_schema())
            .expect("the tenant schema is a valid JSON Schema (checked by the tests)");
        Self { schema }
    }
}

/// The JSON Schema of a tenant spec. The per-plan default of `replicas` cannot be
/// written as a schema default, so [`TenantGenerator`] fills it in afterwards.
fn parameters_schema() -> Value {
    json!({
        "title": "tenant",
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": {
                "description": "DNS label; the namespace is tenant-<name>",
                "type": "string",
                "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$",
                "maxLength": 56
            },
            "plan": {
                "description": "sizes the resource quota",
                "enum": ["free", "pro"],
                "default": "free"
            },
            "replicas": {
                "description": "pods of the deployment; default 1 on free, 3 on pro",
                "type": "integer",
                "minimum": 1,
                "maximum": 20
            },
            "image": {
                "description": "container image of the deployment",
                "type": "string",
                "pattern": "^\\S+$",
                "default": DEFAULT_IMAGE
            }
        }
    })
}

impl TenantGenerator {
    /// The generator, with its schema compiled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies defaults and checks every rule; lists every violation by JSON pointer.
    pub fn resolve(&self, parameters: &Value) -> Result<Tenant, Vec<ParameterViolation>> {
        let mut prepared = self.schema.prepare(parameters)?;
        let plan: Plan = serde_json::from_value(prepared["plan"].clone())
            .map_err(|e| vec![ParameterViolation::new("/plan", e.to_string())])?;
        if let Some(object) = prepared.as_object_mut() {
            object
                .entry("replicas")
                .or_insert_with(|| plan.default_replicas().into());
        }
        let tenant: Tenant = serde_json::from_value(prepared)
            .map_err(|e| vec![ParameterViolation::new("", e.to_string())])?;
        // A rule across two fields: the schema cannot know each plan's pod quota.
        let pods = plan.quota().pods;
        if tenant.replicas > pods {
            return Err(vec![ParameterViolation::new(
                "/replicas",
                format!(
                    "{} replicas exceed the {} plan's quota of {pods} pods",
                    tenant.replicas,
                    plan.as_str()
                ),
            )]);
        }
        Ok(tenant)
    }

    /// Produces the tenant's manifests without a stack: the output depends only on the
    /// parameters, so a caller can validate a spec before creating anything.
    pub fn render(
        &self,
        parameters: &Value,
        limits: &ParseOptions,
    ) -> generator::Result<Generated> {
        let tenant = self.resolve(parameters)?;
        let manifests = manifests(&tenant)?;
        let recorded = serde_json::to_value(&tenant)
            .map_err(|e| generator::Error::RenderFailed(e.to_string()))?;
        Generated::from_manifests(&manifests, recorded, limits)
    }
}

impl Generator for TenantGenerator {
    fn name(&self) -> &str {
        "tenant"
    }

    fn description(&self) -> &str {
        "a tenant: namespace tenant-<name>, a resource quota sized by plan, and a deployment"
    }

    fn parameters_schema(&self) -> Value {
        self.schema.as_value().clone()
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> generator::Result<Generated> {
        self.render(request.parameters, request.limits)
    }
}

/// The namespace, its quota and the deployment, in the order they must be applied.
fn manifests(tenant: &Tenant) -> brokkr_core::manifest::Result<Vec<Manifest>> {
    let namespace = tenant.namespace();
    let labels = json!({ TENANT_LABEL: tenant.name });
    let quota = tenant.plan.quota();
    [
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "tenant-quota", "namespace": namespace, "labels": labels},
            "spec": {"hard": {
                "requests.cpu": quota.cpu,
                "requests.memory": quota.memory,
                // Quantities are strings in Kubernetes, also when they look like numbers.
                "pods": quota.pods.to_string(),
            }},
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": tenant.name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": tenant.replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "app",
                        "image": tenant.image,
                        // A quota on requests admits only pods that state them.
                        "resources": {"requests": {"cpu": POD_CPU, "memory": POD_MEMORY}},
                    }]},
                },
            },
        }),
    ]
    .into_iter()
    .map(Manifest::from_value)
    .collect()
}
