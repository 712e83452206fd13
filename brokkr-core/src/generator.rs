//! The [`Generator`] trait: validated manifests from parameters.
//!
//! A control plane implements `Generator` in plain Rust and registers it by name in a
//! [`GeneratorRegistry`]; the server calls registered generators without knowing them.
//! Templates ([`crate::template::TemplateGenerator`]) are one implementation.
//!
//! A generator's output is a [`Generated`]: YAML that has been through the core
//! manifest parser, plus the parameters it was made from (after schema defaults), so
//! what is stored can always say where it came from.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::manifest::{self, Manifest, ParseOptions};
use crate::model::{Actor, Stack};

/// One parameter that broke the generator's schema or rules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParameterViolation {
    /// JSON pointer to the offending parameter (`""` for the whole object).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl ParameterViolation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Why a generator produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The parameters are wrong; every violation is listed.
    #[error("{} invalid parameter(s): {}", .0.len(), summary(.0))]
    InvalidParameters(Vec<ParameterViolation>),
    /// Rendering failed (template error, limit reached, ...).
    #[error("rendering failed: {0}")]
    RenderFailed(String),
    /// The output is not valid manifests; the error names the document.
    #[error("generated output is invalid: {0}")]
    InvalidOutput(#[source] manifest::Error),
}

impl From<Vec<ParameterViolation>> for Error {
    fn from(violations: Vec<ParameterViolation>) -> Self {
        Self::InvalidParameters(violations)
    }
}

impl From<manifest::Error> for Error {
    fn from(err: manifest::Error) -> Self {
        Self::InvalidOutput(err)
    }
}

fn summary(violations: &[ParameterViolation]) -> String {
    let shown: Vec<String> = violations
        .iter()
        .take(3)
        .map(|v| format!("{}: {}", display_pointer(&v.pointer), v.message))
        .collect();
    let more = violations.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

/// Result of a generator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a generator is asked to produce.
#[derive(Debug, Clone)]
pub struct GenerateRequest<'a> {
    /// The parameters as JSON, as the caller sent them.
    pub parameters: &'a Value,
    /// The stack the output is for.
    pub stack: &'a Stack,
    /// Who asked.
    pub requested_by: Actor,
    /// Limits the output must respect (size, document count).
    pub limits: &'a ParseOptions,
}

/// A generator's validated output: YAML that the core manifest parser accepted, the
/// manifests it holds, and the parameters it was made from.
///
/// The fields are private and both constructors validate, so holding a `Generated`
/// proves the YAML is valid manifests within the request's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    yaml: String,
    manifests: Vec<Manifest>,
    parameters: Value,
}

impl Generated {
    /// Validates rendered YAML with the core parser. `parameters` are what produced it
    /// (after defaults), recorded as provenance with their keys sorted.
    pub fn from_yaml(yaml: String, parameters: Value, limits: &ParseOptions) -> Result<Self> {
        let manifests = manifest::parse_with(&yaml, limits)?;
        Ok(Self {
            yaml,
            manifests,
            parameters: crate::schema::canonical(parameters),
        })
    }

    /// Serialises manifests built in Rust to multi-document YAML, then validates that
    /// YAML like any other (so limits, duplicates and the round trip are all checked).
    pub fn from_manifests(
        manifests: &[Manifest],
        parameters: Value,
        limits: &ParseOptions,
    ) -> Result<Self> {
        let yaml = serde_saphyr::to_string_multiple(manifests)
            .map_err(|e| Error::RenderFailed(format!("cannot serialise manifests: {e}")))?;
        let generated = Self::from_yaml(yaml, parameters, limits)?;
        // The YAML dialect must read back exactly what was written; a difference would
        // mean the cluster receives something other than what the generator built.
        if generated.manifests != manifests {
            return Err(Error::RenderFailed(
                "manifests do not survive a YAML round trip".into(),
            ));
        }
        Ok(generated)
    }

    /// The YAML to store.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    /// The manifests the YAML holds, in order.
    pub fn manifests(&self) -> &[Manifest] {
        &self.manifests
    }

    /// The parameters the output was made from, after schema defaults.
    pub fn parameters(&self) -> &Value {
        &self.parameters
    }

    /// Takes the YAML and parameters out.
    pub fn into_parts(self) -> (String, Value) {
        (self.yaml, self.parameters)
    }
}

/// Produces validated manifests from parameters. Implementations are pure and
/// deterministic: the same request gives the same output. They may take CPU time, so
/// async callers run them on a blocking thread.
pub trait Generator: Send + Sync {
    /// The name it is registered and called by.
    fn name(&self) -> &str;

    /// One line on what it produces, shown in listings.
    fn description(&self) -> &str {
        ""
    }

    /// JSON Schema of its parameters, published so callers can build requests.
    fn parameters_schema(&self) -> Value;

    /// Produces the output, or says which parameter or which document is wrong.
    fn generate(&self, request: &GenerateRequest<'_>) -> Result<Generated>;
}

/// Registered generators by name.
#[derive(Default, Clone)]
pub struct GeneratorRegistry {
    generators: BTreeMap<String, Arc<dyn Generator>>,
}

impl GeneratorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

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

    /// How many are registered.
    pub fn len(&self) -> usize {
        self.generators.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.generators.is_empty()
    }
}

impl std::fmt::Debug for GeneratorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.generators.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn manifest(value: Value) -> Manifest {
        Manifest::from_value(value).unwrap()
    }

    #[test]
    fn manifests_round_trip_through_yaml() {
        let tricky = manifest(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "team-a"},
            "data": {"mode": "0755", "flag": "yes", "empty": "", "multi": "a\nb\n", "num": "1e3"}
        }));
        let ns = manifest(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        );
        let generated =
            Generated::from_manifests(&[ns, tricky.clone()], json!({}), &ParseOptions::default())
                .unwrap();
        assert_eq!(generated.manifests().len(), 2);
        assert_eq!(generated.manifests()[1], tricky);
    }

    #[test]
    fn output_over_the_limit_is_refused() {
        let big = manifest(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
            "data": {"blob": "x".repeat(4096)}
        }));
        let limits = ParseOptions {
            max_bytes: 1024,
            ..ParseOptions::default()
        };
        let err = Generated::from_manifests(&[big], json!({}), &limits).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidOutput(manifest::Error::TooLarge { .. })
        ));
    }

    #[test]
    fn violations_are_summarised_in_the_message() {
        let err = Error::InvalidParameters(vec![
            ParameterViolation::new("/replicas", "must be >= 1"),
            ParameterViolation::new("", "\"name\" is a required property"),
        ]);
        assert_eq!(
            err.to_string(),
            "2 invalid parameter(s): /replicas: must be >= 1; /: \"name\" is a required property"
        );
    }
}
