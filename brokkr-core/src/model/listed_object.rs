//! Deployment objects as a listing returns them: the YAML only when asked for, and
//! then within a byte budget per page.
//!
//! A stack's history may hold many objects of several MiB each. A listing bounded
//! only by a count of rows would hold all of them in memory at once (60 objects of
//! 8 MiB answered 503 MB), so a listing leaves the YAML out unless asked, and a page
//! that carries YAML ends before it passes its byte budget.

use chrono::{DateTime, Utc};

use super::stack::{DeploymentObject, Provenance};
use crate::id::{DeploymentObjectId, StackId};
#[cfg(doc)]
use crate::page::ContentListing;

/// A deployment object in a listing: everything [`DeploymentObject`] holds, with the
/// YAML only when the listing asked for it ([`ContentListing::Include`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDeploymentObject {
    /// Its id.
    pub id: DeploymentObjectId,
    /// The stack it belongs to.
    pub stack_id: StackId,
    /// As [`DeploymentObject::sequence`]; the listing's order and cursor.
    pub sequence: i64,
    /// Multi-document YAML (empty for a deletion marker); `None` when the listing left
    /// it out.
    pub yaml_content: Option<String>,
    /// Size of the YAML in bytes, also when it was left out.
    pub yaml_bytes: u64,
    /// Lower-case hex SHA-256 of the YAML.
    pub yaml_checksum: String,
    /// `true` when this object says "remove this stack".
    pub is_deletion_marker: bool,
    /// What produced it, when a template or generator did.
    pub provenance: Option<Provenance>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl ListedDeploymentObject {
    /// The same entry without its YAML, as a listing with [`ContentListing::Omit`] returns it.
    pub fn without_yaml(self) -> Self {
        Self {
            yaml_content: None,
            ..self
        }
    }

    /// The whole deployment object, when the listing carried its YAML.
    pub fn into_object(self) -> Option<DeploymentObject> {
        Some(DeploymentObject {
            id: self.id,
            stack_id: self.stack_id,
            sequence: self.sequence,
            yaml_content: self.yaml_content?,
            yaml_checksum: self.yaml_checksum,
            is_deletion_marker: self.is_deletion_marker,
            provenance: self.provenance,
            created_at: self.created_at,
        })
    }
}

/// The entry of a listing that carries the YAML.
impl From<DeploymentObject> for ListedDeploymentObject {
    fn from(object: DeploymentObject) -> Self {
        Self {
            id: object.id,
            stack_id: object.stack_id,
            sequence: object.sequence,
            yaml_bytes: object.yaml_content.len() as u64,
            yaml_content: Some(object.yaml_content),
            yaml_checksum: object.yaml_checksum,
            is_deletion_marker: object.is_deletion_marker,
            provenance: object.provenance,
            created_at: object.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_object_converts_back_only_with_its_yaml() {
        let object = DeploymentObject {
            id: DeploymentObjectId::new(),
            stack_id: StackId::new(),
            sequence: 7,
            yaml_content: "kind: ConfigMap\n".into(),
            yaml_checksum: super::super::checksum("kind: ConfigMap\n"),
            is_deletion_marker: false,
            provenance: None,
            created_at: Utc::now(),
        };
        let listed = ListedDeploymentObject::from(object.clone());
        assert_eq!(listed.yaml_bytes, 16);
        assert_eq!(listed.clone().into_object(), Some(object));
        let bare = listed.without_yaml();
        assert_eq!(bare.yaml_bytes, 16);
        assert_eq!(bare.into_object(), None);
    }
}
