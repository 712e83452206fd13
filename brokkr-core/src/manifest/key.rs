//! [`ObjectKey`]: which Kubernetes object a manifest or an inventory entry names.
//!
//! Identity is group, kind, namespace and name. The version is how the API is
//! addressed, not part of the object: `example.com/v1beta1 Widget w` and
//! `example.com/v1 Widget w` are one stored object served at two versions, as the API
//! server, cli-utils (`ObjMetadata`: group, kind, namespace, name) and Flux's inventory
//! see it. Comparing with the version in would put an object whose manifest moved from
//! `v1beta1` to `v1` on the prune list right after it was applied.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// The identity of a Kubernetes object, plus the `apiVersion` to address it with.
///
/// Equality, hashing and ordering use the group, kind, namespace and name only:
/// `example.com/v1beta1 Widget w` and `example.com/v1 Widget w` are one stored object
/// served at two versions, as the API server, cli-utils (`ObjMetadata`) and Flux's
/// inventory see it. [`ObjectKey::same_version`] compares versions too.
/// Displays as `apps/v1 Deployment default/web`, or `v1 Namespace web` for an object
/// without a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectKey {
    /// `v1` or `group/version`: how to address the object, not part of its identity.
    pub api_version: String,
    /// The object's kind, such as `Deployment`.
    pub kind: String,
    /// `metadata.namespace`, if set.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// The API group: `""` for the core group (`v1`), `apps` for `apps/v1`.
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// The API version without its group: `v1` for both `v1` and `apps/v1`.
    pub fn version(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((_, version)) => version,
            None => &self.api_version,
        }
    }

    /// Whether `other` is the same object addressed through the same `apiVersion`.
    pub fn same_version(&self, other: &ObjectKey) -> bool {
        self == other && self.api_version == other.api_version
    }

    /// What identity compares: group, kind, namespace, name.
    fn identity(&self) -> (&str, &str, Option<&str>, &str) {
        (
            self.group(),
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

impl PartialEq for ObjectKey {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for ObjectKey {}

impl Hash for ObjectKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.identity().cmp(&other.identity())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.api_version, self.kind)?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        f.write_str(&self.name)
    }
}

/// `keys` with entries naming the same object collapsed into one: each object keeps the
/// position of its first entry and the `apiVersion` of its last, the most recently
/// recorded way to address it.
///
/// Inventories written before identity ignored the version may hold an object twice,
/// once per `apiVersion` it was applied with; this is how they are read now.
pub fn collapse_versions(keys: Vec<ObjectKey>) -> Vec<ObjectKey> {
    let mut collapsed: Vec<ObjectKey> = Vec::with_capacity(keys.len());
    let mut index = std::collections::HashMap::with_capacity(keys.len());
    for key in keys {
        match index.get(&key) {
            Some(&at) => {
                let slot: &mut ObjectKey = &mut collapsed[at];
                slot.api_version = key.api_version;
            }
            None => {
                index.insert(key.clone(), collapsed.len());
                collapsed.push(key);
            }
        }
    }
    collapsed
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn identity_is_group_kind_namespace_and_name() {
        let beta = key("example.com/v1beta1", "Widget", Some("a"), "w");
        let v1 = key("example.com/v1", "Widget", Some("a"), "w");
        assert_eq!(beta, v1);
        assert!(!beta.same_version(&v1));
        assert!(v1.same_version(&v1.clone()));
        assert_eq!(HashSet::from([beta.clone()]).get(&v1), Some(&beta));
        assert_eq!(beta.cmp(&v1), Ordering::Equal);

        for other in [
            key("other.com/v1", "Widget", Some("a"), "w"),
            key("example.com/v1", "Gadget", Some("a"), "w"),
            key("example.com/v1", "Widget", Some("b"), "w"),
            key("example.com/v1", "Widget", None, "w"),
            key("example.com/v1", "Widget", Some("a"), "x"),
        ] {
            assert_ne!(other, v1, "{other}");
        }
        // The core group and a group merely named like a version are different groups.
        assert_ne!(
            key("v1", "Service", None, "s"),
            key("v1/v1", "Service", None, "s")
        );
        assert_eq!(v1.group(), "example.com");
        assert_eq!(v1.version(), "v1");
        let core = key("v1", "ConfigMap", Some("a"), "c");
        assert_eq!((core.group(), core.version()), ("", "v1"));
        assert_eq!(v1.to_string(), "example.com/v1 Widget a/w");
    }

    #[test]
    fn collapsing_keeps_the_first_position_and_the_last_version() {
        let keys = vec![
            key("v1", "Namespace", None, "team"),
            key("example.com/v1beta1", "Widget", Some("team"), "w"),
            key("v1", "ConfigMap", Some("team"), "c"),
            key("example.com/v1", "Widget", Some("team"), "w"),
        ];
        let collapsed = collapse_versions(keys);
        let shown: Vec<String> = collapsed.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "v1 Namespace team",
                "example.com/v1 Widget team/w",
                "v1 ConfigMap team/c"
            ]
        );
    }

    #[test]
    fn serialises_as_before() {
        let v1 = key("example.com/v1", "Widget", Some("a"), "w");
        let json = serde_json::to_value(&v1).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"api_version": "example.com/v1", "kind": "Widget", "namespace": "a", "name": "w"})
        );
        let back: ObjectKey = serde_json::from_value(json).unwrap();
        assert!(back.same_version(&v1));
    }
}
