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

    /// Checks the whole map a write would store: an object's annotations stay within
    /// [`MAX_ANNOTATIONS_BYTES`](crate::metadata::MAX_ANNOTATIONS_BYTES) together
    /// (labels have no cap beyond their entries'). Stores call it inside the write's
    /// transaction, after the row is locked.
    pub fn validate_map(self, map: &crate::metadata::Labels) -> crate::store::Result<()> {
        if self == Self::Annotations {
            crate::metadata::validate_annotations_size(map)?;
        }
        Ok(())
    }
}
