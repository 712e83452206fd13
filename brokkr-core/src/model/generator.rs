//! Generators (external systems with their own key) and versioned templates.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StoredKey, validate_name, validate_optional_description};
use crate::id::{GeneratorId, TemplateId};
use crate::metadata::{Annotations, Labels};

// ---------------------------------------------------------------------------------------
// Generators

/// An external system that creates stacks through the API with its own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    /// Its id.
    pub id: GeneratorId,
    /// Unique among generators that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What [`Store::create_generator`](crate::Store::create_generator) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGenerator {
    /// Unique among generators that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Its first key, stored in the same transaction.
    pub key: StoredKey,
}

/// A change to a generator; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratorUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

// ---------------------------------------------------------------------------------------
// Templates

/// A versioned minijinja template with a JSON Schema for its parameters. The fields of
/// its latest version are in `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Its id, shared by all its versions.
    pub id: TemplateId,
    /// Unique among templates that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The owning generator; `None` for a global (admin) template.
    pub generator_id: Option<GeneratorId>,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// The newest version.
    pub latest: TemplateVersion,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a new version counts).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One immutable version of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersion {
    /// The template.
    pub template_id: TemplateId,
    /// 1 for the first, then +1 per update.
    pub version: i32,
    /// minijinja source.
    pub content: String,
    /// JSON Schema of the parameters.
    pub parameters_schema: serde_json::Value,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

/// What [`Store::create_template`](crate::Store::create_template) needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTemplate {
    /// Unique among templates that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The owning generator; `None` for a global template.
    pub generator_id: Option<GeneratorId>,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
    /// minijinja source of version 1.
    pub content: String,
    /// JSON Schema of version 1's parameters.
    pub parameters_schema: serde_json::Value,
}

/// The body of a new template version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTemplateVersion {
    /// minijinja source.
    pub content: String,
    /// JSON Schema of the parameters.
    pub parameters_schema: serde_json::Value,
}

impl NewGenerator {
    /// Checks name and description.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_optional_description(self.description.as_deref())?;
        Ok(())
    }
}

impl GeneratorUpdate {
    /// Checks the fields that are set.
    pub fn validate(&self) -> crate::store::Result<()> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        validate_optional_description(self.description.as_ref().and_then(Option::as_deref))?;
        Ok(())
    }
}

impl NewTemplate {
    /// Checks name, description, labels and annotations.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_optional_description(self.description.as_deref())?;
        crate::metadata::validate_labels(&self.labels)?;
        crate::metadata::validate_annotations(&self.annotations)?;
        Ok(())
    }
}
