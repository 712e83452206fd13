//! The [`Generator`] trait: manifests from parameters.
//!
//! A control plane implements `Generator` in plain Rust and registers it by name in a
//! [`GeneratorRegistry`]; the server calls registered generators without knowing them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::id::StackId;
use crate::manifest::{self, Manifest};
use crate::model::Actor;

/// One parameter that broke the generator's schema or rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterViolation {
    /// JSON pointer to the offending parameter (`""` for the whole object).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why a generator produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The parameters are wrong; every violation is listed.
    #[error("{} invalid parameter(s)", .0.len())]
    InvalidParameters(Vec<ParameterViolation>),
    /// Rendering failed (template error, limit reached, ...).
    #[error("rendering failed: {0}")]
    RenderFailed(String),
    /// The output is not valid manifests.
    #[error("generated output is invalid")]
    InvalidOutput(#[source] manifest::Error),
}

/// Result of a generator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a generator is asked to produce.
#[derive(Debug, Clone)]
pub struct GenerateRequest<'a> {
    /// The parameters as JSON.
    pub parameters: &'a serde_json::Value,
    /// The stack the output is for.
    pub stack_id: StackId,
    /// Who asked.
    pub requested_by: Actor,
}

/// Produces validated manifests from parameters. Implementations are pure and
/// deterministic: the same request gives the same manifests.
pub trait Generator: Send + Sync {
    /// The name it is registered and called by.
    fn name(&self) -> &str;

    /// JSON Schema of its parameters, published so callers can build requests.
    fn parameters_schema(&self) -> serde_json::Value;

    /// Produces the manifests, or says which parameter or document is wrong.
    fn generate(&self, request: &GenerateRequest<'_>) -> Result<Vec<Manifest>>;
}

/// Registered generators by name.
#[derive(Default, Clone)]
pub struct GeneratorRegistry {
    generators: BTreeMap<String, Arc<dyn Generator>>,
}

impl GeneratorRegistry {
    /// Registers a generator under its name, replacing one of the same name.
    pub fn register(&mut self, generator: impl Generator + 'static) -> &mut Self {
        self.generators
            .insert(generator.name().to_owned(), Arc::new(generator));
        self
    }

    /// The generator registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Generator>> {
        self.generators.get(name)
    }

    /// All registered generators, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Generator>> {
        self.generators.values()
    }
}

impl std::fmt::Debug for GeneratorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.generators.keys()).finish()
    }
}

/// Parses a generator's YAML output with the core manifest rules.
pub fn parse_output(yaml: &str) -> Result<Vec<Manifest>> {
    manifest::parse(yaml).map_err(Error::InvalidOutput)
}
