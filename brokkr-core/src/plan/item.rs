//! [`ItemDigest`]: one object of a deployment object, as a plan compares it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::manifest::{Manifest, ObjectKey};

/// One Kubernetes object of a deployment object: its identity and a hash of its
/// content. Written with the deployment object, so a plan compares versions without
/// parsing their YAML again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDigest {
    /// Which object (identity: group, kind, namespace, name).
    pub key: ObjectKey,
    /// Hex SHA-256 of the object's content with its keys sorted, so two documents that
    /// differ only in key order or YAML formatting hash alike.
    pub sha256: String,
}

impl ItemDigest {
    /// The digest of one validated manifest.
    pub fn of(manifest: &Manifest) -> Self {
        let mut hasher = Sha256::new();
        hash_canonical(manifest.as_value(), &mut hasher);
        Self {
            key: manifest.key(),
            sha256: crate::model::hex(&hasher.finalize()),
        }
    }

    /// The digests of a deployment object's manifests, ordered by identity.
    pub fn of_all(manifests: &[Manifest]) -> Vec<Self> {
        let mut items: Vec<Self> = manifests.iter().map(Self::of).collect();
        items.sort_by(|a, b| a.key.cmp(&b.key));
        items
    }
}

/// Feeds `value` to `hasher` as JSON with every object's keys sorted, without building
/// a sorted copy (an object can be several MiB).
fn hash_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            hasher.update(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                hash_scalar(&Value::String(key.clone()), hasher);
                hasher.update(b":");
                hash_canonical(&map[key], hasher);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                hash_canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        scalar => hash_scalar(scalar, hasher),
    }
}

fn hash_scalar(value: &Value, hasher: &mut Sha256) {
    // Serialising a scalar cannot fail; an empty update would only weaken the hash.
    if let Ok(bytes) = serde_json::to_vec(value) {
        hasher.update(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    #[test]
    fn key_order_and_formatting_do_not_change_the_hash_and_content_does() {
        let a = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\ndata: {x: '1', y: '2'}\n").unwrap();
        let b = parse("kind: ConfigMap\napiVersion: v1\ndata:\n  y: '2'\n  x: '1'\nmetadata:\n  namespace: n\n  name: a\n").unwrap();
        let c = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\ndata: {x: '1', y: '3'}\n").unwrap();
        assert_eq!(ItemDigest::of(&a[0]), ItemDigest::of(&b[0]));
        assert_ne!(ItemDigest::of(&a[0]).sha256, ItemDigest::of(&c[0]).sha256);
        assert_eq!(ItemDigest::of(&a[0]).key, ItemDigest::of(&c[0]).key);
    }

    #[test]
    fn items_are_ordered_by_identity() {
        let manifests = parse("apiVersion: v1\nkind: Secret\nmetadata: {name: z}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n").unwrap();
        let items = ItemDigest::of_all(&manifests);
        assert_eq!(items[0].key.kind, "ConfigMap");
        assert_eq!(items[1].key.kind, "Secret");
    }
}
