//! Stacks and their deployment objects.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{checksum, validate_name, validate_optional_description};
use crate::id::{DeploymentObjectId, GeneratorId, StackId, TemplateId};
use crate::manifest;
use crate::metadata::{Annotations, Labels};
use crate::plan::ItemDigest;

// ---------------------------------------------------------------------------------------
// Stacks

/// A named group of Kubernetes resources managed as one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// Its id.
    pub id: StackId,
    /// Unique among stacks that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The generator that created it; `None` when an admin did.
    pub generator_id: Option<GeneratorId>,
    /// Labels, for selection.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its name, description, labels or annotations last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion); `None` while it lives.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What [`Store::create_stack`](crate::Store::create_stack) needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStack {
    /// Unique among stacks that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The generator creating it, `None` for an admin.
    pub generator_id: Option<GeneratorId>,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
}

/// A change to a stack's name or description; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

// ---------------------------------------------------------------------------------------
// Deployment objects

/// An immutable snapshot of every resource of one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentObject {
    /// Its id.
    pub id: DeploymentObjectId,
    /// The stack it belongs to.
    pub stack_id: StackId,
    /// Unique in the store and strictly increasing within its stack, in commit order.
    /// Appends to different stacks do not wait for each other, so across stacks a
    /// smaller sequence may commit after a larger one.
    pub sequence: i64,
    /// Multi-document YAML; empty for a deletion marker.
    pub yaml_content: String,
    /// Lower-case hex SHA-256 of `yaml_content`.
    pub yaml_checksum: String,
    /// `true` when this object says "remove this stack".
    pub is_deletion_marker: bool,
    /// What produced it, when a template or generator did.
    pub provenance: Option<Provenance>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Which template version or generator, with which parameters, produced a deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The template, when one was instantiated.
    pub template_id: Option<TemplateId>,
    /// The template version used.
    pub template_version: Option<i32>,
    /// The registered generator's name, when a Rust generator produced it.
    pub generator: Option<String>,
    /// The parameters, after schema defaults were applied.
    pub parameters: serde_json::Value,
}

impl Provenance {
    /// Produced by version `version` of template `template_id`.
    pub fn template(template_id: TemplateId, version: i32, parameters: serde_json::Value) -> Self {
        Self {
            template_id: Some(template_id),
            template_version: Some(version),
            generator: None,
            parameters,
        }
    }

    /// Produced by the registered generator `name`.
    pub fn generator(name: impl Into<String>, parameters: serde_json::Value) -> Self {
        Self {
            template_id: None,
            template_version: None,
            generator: Some(name.into()),
            parameters,
        }
    }
}

/// A deployment object ready to be appended: its YAML has been parsed and validated and
/// its checksum computed. Build it with [`NewDeploymentObject::from_yaml`] or
/// [`NewDeploymentObject::deletion_marker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploymentObject {
    stack_id: StackId,
    yaml_content: String,
    yaml_checksum: String,
    is_deletion_marker: bool,
    provenance: Option<Provenance>,
    items: Vec<ItemDigest>,
    immediate: bool,
}

impl NewDeploymentObject {
    /// Parses and validates `yaml` with the default limits of [`manifest::parse`].
    pub fn from_yaml(stack_id: StackId, yaml: impl Into<String>) -> Result<Self, manifest::Error> {
        Self::from_yaml_with(stack_id, yaml, &manifest::ParseOptions::default())
    }

    /// Parses and validates `yaml` with the given limits.
    pub fn from_yaml_with(
        stack_id: StackId,
        yaml: impl Into<String>,
        options: &manifest::ParseOptions,
    ) -> Result<Self, manifest::Error> {
        let yaml_content = yaml.into();
        let manifests = manifest::parse_with(&yaml_content, options)?;
        Ok(Self {
            stack_id,
            yaml_checksum: checksum(&yaml_content),
            yaml_content,
            is_deletion_marker: false,
            provenance: None,
            items: ItemDigest::of_all(&manifests),
            immediate: false,
        })
    }

    /// A generator's output with its provenance. The output was validated when it was
    /// built (see [`Generated`](crate::Generated)), so it is not parsed again. The
    /// provenance takes the output's parameters.
    pub fn from_generated(
        stack_id: StackId,
        generated: crate::generator::Generated,
        mut provenance: Provenance,
    ) -> Self {
        let items = ItemDigest::of_all(generated.manifests());
        let (yaml_content, parameters) = generated.into_parts();
        provenance.parameters = parameters;
        Self {
            stack_id,
            yaml_checksum: checksum(&yaml_content),
            yaml_content,
            is_deletion_marker: false,
            provenance: Some(provenance),
            items,
            immediate: false,
        }
    }

    /// A marker that tells agents to remove every object of the stack.
    pub fn deletion_marker(stack_id: StackId) -> Self {
        Self {
            stack_id,
            yaml_checksum: checksum(""),
            yaml_content: String::new(),
            is_deletion_marker: true,
            provenance: None,
            items: Vec::new(),
            immediate: false,
        }
    }

    /// Records what produced this object.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = Some(provenance);
        self
    }

    /// Releases this object at once, past the stack's rollout policy: every agent gets
    /// it with the commit, and the stack's queued and active rollouts are cancelled
    /// (an admin's hotfix; who may ask is the caller's rule). A deletion marker is
    /// always immediate.
    pub fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }

    /// Whether it goes out at once, past the stack's rollout policy
    /// ([`NewDeploymentObject::immediate`], or a deletion marker).
    pub fn is_immediate(&self) -> bool {
        self.immediate || self.is_deletion_marker
    }

    /// The stack it will belong to.
    pub fn stack_id(&self) -> StackId {
        self.stack_id
    }

    /// The validated YAML.
    pub fn yaml_content(&self) -> &str {
        &self.yaml_content
    }

    /// Hex SHA-256 of the YAML.
    pub fn yaml_checksum(&self) -> &str {
        &self.yaml_checksum
    }

    /// Whether this is a deletion marker.
    pub fn is_deletion_marker(&self) -> bool {
        self.is_deletion_marker
    }

    /// What produced it.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }

    /// Its objects' identities and content hashes, ordered by identity (none for a
    /// deletion marker): stored with it, for plans.
    pub fn items(&self) -> &[ItemDigest] {
        &self.items
    }
}

impl NewStack {
    /// Checks name, description, labels and annotations.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_optional_description(self.description.as_deref())?;
        crate::metadata::validate_labels(&self.labels)?;
        crate::metadata::validate_annotations(&self.annotations)?;
        Ok(())
    }
}

impl StackUpdate {
    /// Checks the fields that are set.
    pub fn validate(&self) -> crate::store::Result<()> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        validate_optional_description(self.description.as_ref().and_then(Option::as_deref))?;
        Ok(())
    }
}
