//! Labels and annotations as subresources of stacks, agents and templates.

use crate::id::{AgentId, StackId, TemplateId};

/// The resource whose labels or annotations are being changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataTarget {
    /// A stack's.
    Stack(StackId),
    /// An agent's.
    Agent(AgentId),
    /// A template's.
    Template(TemplateId),
}

/// Which of the two maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataField {
    /// Labels (strict value syntax).
    Labels,
    /// Annotations (free-text values).
    Annotations,
}

impl MetadataField {
    /// Checks one key and value for this map (label values are strict, annotation
    /// values free text).
    pub fn validate_entry(self, key: &str, value: &str) -> crate::store::Result<()> {
        crate::metadata::validate_key(key)?;
        match self {
            Self::Labels => crate::metadata::validate_label_value(key, value)?,
            Self::Annotations => crate::metadata::validate_annotation_value(key, value)?,
        }
        Ok(())
    }
}
