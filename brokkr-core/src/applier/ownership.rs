//! The pure rules of the [`Applier`](super::Applier) contract, shared by every
//! implementation: who may take an existing object ([`claim`]), what becomes of an
//! object the stack lets go ([`disposal`]), in which order objects are applied and
//! removed, and the stack-wide [`ApplyPolicy`] a deployment object may carry.

use serde::Deserialize;

use super::{ApplyPolicy, Error, Result};
use crate::id::StackId;
use crate::manifest::{Manifest, ObjectKey};

/// `apiVersion` of the policy document of a deployment object (see [`split_policy`]).
pub const POLICY_API_VERSION: &str = "brokkr.io/v1";
/// `kind` of the policy document of a deployment object.
pub const POLICY_KIND: &str = "ApplyPolicy";

/// Namespaces the cluster itself owns: never deleted, whatever an inventory says.
const CLUSTER_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The API groups a Kubernetes API server serves itself (v1.33). A kind of any other
/// group is a custom resource (or an aggregated API), which an operator may need to
/// finalize before it goes.
const BUILT_IN_GROUPS: [&str; 23] = [
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// How an apply may take the object at a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// It does not exist: Brokkr creates it.
    Create,
    /// It carries this stack's label already.
    Owned,
    /// It exists without a stack label and adoption is allowed.
    Adopt,
}

/// Decides whether the stack `stack_id` may apply to the object at `object`.
///
/// `live` is `None` when the object does not exist, else the value of its
/// [`STACK_LABEL`](super::STACK_LABEL) (`None` or empty when unlabelled).
/// `may_adopt` is [`ApplyPolicy::allows_adoption`] for its manifest.
// The error is the trait's, which every applier returns; refusals are rare and off the
// hot path, so its size does not matter here.
#[allow(clippy::result_large_err)]
pub fn claim(
    object: &ObjectKey,
    stack_id: StackId,
    live: Option<Option<&str>>,
    may_adopt: bool,
) -> Result<Claim> {
    let stack = stack_id.to_string();
    match live {
        None => Ok(Claim::Create),
        Some(Some(owner)) if owner == stack => Ok(Claim::Owned),
        Some(Some(owner)) if !owner.is_empty() => Err(Error::NotOwned {
            object: object.clone(),
            owner: Some(owner.to_owned()),
        }),
        Some(_) if may_adopt => Ok(Claim::Adopt),
        Some(_) => Err(Error::NotOwned {
            object: object.clone(),
            owner: None,
        }),
    }
}

/// What prune and removal do with an object of the stack that still carries its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// Delete it: Brokkr created it.
    Delete,
    /// Remove Brokkr's label and annotations and leave it: it was adopted, or it is
    /// one of the cluster's own namespaces.
    Release,
}

/// What becomes of `object` when its stack lets it go; `adopted` is what the inventory
/// says ([`Inventory::is_adopted`](super::Inventory::is_adopted)).
pub fn disposal(object: &ObjectKey, adopted: bool) -> Disposal {
    if adopted || is_cluster_namespace(object) {
        Disposal::Release
    } else {
        Disposal::Delete
    }
}

/// Whether `object` is one of the namespaces the cluster owns (`default`,
/// `kube-system`, `kube-public`, `kube-node-lease`).
pub fn is_cluster_namespace(object: &ObjectKey) -> bool {
    is_namespace(object) && CLUSTER_NAMESPACES.contains(&object.name.as_str())
}

/// Whether `object` is a custom resource: its group is not one the API server serves
/// itself.
pub fn is_custom_resource(object: &ObjectKey) -> bool {
    !BUILT_IN_GROUPS.contains(&object.group())
}

fn is_namespace(object: &ObjectKey) -> bool {
    object.group().is_empty() && object.kind == "Namespace"
}

fn is_crd(group: &str, kind: &str) -> bool {
    group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition"
}

/// Orders manifests for applying: Namespaces, then CustomResourceDefinitions, then the
/// rest in their given order.
pub fn apply_order(manifests: &[Manifest]) -> Vec<&Manifest> {
    let rank = |m: &Manifest| match (m.group(), m.kind()) {
        ("", "Namespace") => 0,
        (group, kind) if is_crd(group, kind) => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Manifest> = manifests.iter().collect();
    ordered.sort_by_key(|m| rank(m));
    ordered
}

/// Groups object keys into the tiers they are deleted in, each waited for before the
/// next: custom resources (while the operators that finalize them still run), then
/// every other object but CRDs and Namespaces, then CustomResourceDefinitions, then
/// Namespaces. Within a tier, the reverse of the given (apply) order. Empty tiers are
/// left out.
pub fn removal_tiers(objects: &[ObjectKey]) -> Vec<Vec<&ObjectKey>> {
    let rank = |k: &ObjectKey| {
        if is_namespace(k) {
            3
        } else if is_crd(k.group(), &k.kind) {
            2
        } else if is_custom_resource(k) {
            0
        } else {
            1
        }
    };
    let mut tiers: [Vec<&ObjectKey>; 4] = Default::default();
    for key in objects.iter().rev() {
        tiers[rank(key)].push(key);
    }
    tiers.into_iter().filter(|t| !t.is_empty()).collect()
}

/// [`removal_tiers`] flattened: the order objects are deleted in.
pub fn removal_order(objects: &[ObjectKey]) -> Vec<&ObjectKey> {
    removal_tiers(objects).into_iter().flatten().collect()
}

/// The `spec` of an `ApplyPolicy` document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpec {
    #[serde(default)]
    adopt: bool,
    #[serde(default)]
    recreate_on_immutable: bool,
}

/// Takes the stack's [`ApplyPolicy`] out of a deployment object's manifests.
///
/// A deployment object sets stack-wide permissions with at most one document of its
/// own kind, which is never sent to the cluster:
///
/// ```yaml
/// apiVersion: brokkr.io/v1
/// kind: ApplyPolicy
/// metadata:
///   name: policy
/// spec:
///   adopt: true                # adopt every unlabelled object of the stack
///   recreateOnImmutable: true  # delete and recreate on an immutable-field change
/// ```
///
/// Without one, the policy is the default (neither). The error says what is wrong
/// with the document.
pub fn split_policy(
    manifests: Vec<Manifest>,
) -> std::result::Result<(ApplyPolicy, Vec<Manifest>), String> {
    let (policies, objects): (Vec<Manifest>, Vec<Manifest>) = manifests
        .into_iter()
        .partition(|m| m.api_version() == POLICY_API_VERSION && m.kind() == POLICY_KIND);
    let policy = match policies.as_slice() {
        [] => ApplyPolicy::default(),
        [document] => {
            let spec = match document.as_value().get("spec") {
                None | Some(serde_json::Value::Null) => PolicySpec::default(),
                Some(spec) => PolicySpec::deserialize(spec)
                    .map_err(|e| format!("{POLICY_KIND} {}: invalid spec: {e}", document.name()))?,
            };
            ApplyPolicy {
                adopt: spec.adopt,
                recreate_on_immutable: spec.recreate_on_immutable,
            }
        }
        _ => return Err(format!("more than one {POLICY_KIND} document")),
    };
    Ok((policy, objects))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn manifest(api_version: &str, kind: &str, name: &str) -> Manifest {
        Manifest::from_value(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
        )
        .unwrap()
    }

    fn key(api_version: &str, kind: &str, name: &str) -> ObjectKey {
        manifest(api_version, kind, name).key()
    }

    #[test]
    fn namespaces_then_crds_then_the_rest_and_back_in_tiers() {
        let manifests = [
            manifest("apps/v1", "Deployment", "operator"),
            manifest(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            ),
            manifest("v1", "ConfigMap", "cfg"),
            manifest("example.com/v1", "Widget", "w"),
            manifest("v1", "Namespace", "team"),
        ];
        let order: Vec<&str> = apply_order(&manifests).iter().map(|m| m.name()).collect();
        assert_eq!(
            order,
            ["team", "widgets.example.com", "operator", "cfg", "w"]
        );

        let keys: Vec<ObjectKey> = apply_order(&manifests)
            .into_iter()
            .map(Manifest::key)
            .collect();
        let tiers: Vec<Vec<&str>> = removal_tiers(&keys)
            .iter()
            .map(|t| t.iter().map(|k| k.name.as_str()).collect())
            .collect();
        assert_eq!(
            tiers,
            [
                vec!["w"],
                vec!["cfg", "operator"],
                vec!["widgets.example.com"],
                vec!["team"]
            ]
        );
        let order: Vec<&str> = removal_order(&keys)
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(
            order,
            ["w", "cfg", "operator", "widgets.example.com", "team"]
        );
        assert!(removal_tiers(&[]).is_empty());
    }

    #[test]
    fn built_in_groups_are_not_custom_resources() {
        assert!(!is_custom_resource(&key("v1", "Service", "s")));
        assert!(!is_custom_resource(&key("apps/v1", "Deployment", "d")));
        assert!(!is_custom_resource(&key(
            "networking.k8s.io/v1",
            "Ingress",
            "i"
        )));
        assert!(is_custom_resource(&key("example.com/v1", "Widget", "w")));
        // Installed by CRD, though its group looks official.
        assert!(is_custom_resource(&key(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            "g"
        )));
    }

    #[test]
    fn only_the_stack_itself_or_an_allowed_adoption_takes_an_object() {
        let stack = StackId::new();
        let object = key("v1", "ConfigMap", "c");
        let ours = stack.to_string();
        assert_eq!(claim(&object, stack, None, false).unwrap(), Claim::Create);
        assert_eq!(
            claim(&object, stack, Some(Some(&ours)), false).unwrap(),
            Claim::Owned
        );
        assert_eq!(
            claim(&object, stack, Some(None), true).unwrap(),
            Claim::Adopt
        );
        assert_eq!(
            claim(&object, stack, Some(Some("")), true).unwrap(),
            Claim::Adopt
        );
        match claim(&object, stack, Some(None), false) {
            Err(error @ Error::NotOwned { owner: None, .. }) => {
                let message = error.to_string();
                assert!(message.starts_with("v1 ConfigMap c: exists"), "{message}");
                assert!(message.contains("brokkr.io/adopt"), "{message}");
                assert!(!error.is_transient());
            }
            other => panic!("{other:?}"),
        }
        // Another stack's object is never taken, even with adoption allowed.
        let theirs = StackId::new().to_string();
        match claim(&object, stack, Some(Some(&theirs)), true) {
            Err(error @ Error::NotOwned { .. }) => {
                assert!(error.to_string().contains(&theirs), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn adopted_objects_and_the_clusters_namespaces_are_only_released() {
        let config_map = key("v1", "ConfigMap", "c");
        assert_eq!(disposal(&config_map, false), Disposal::Delete);
        assert_eq!(disposal(&config_map, true), Disposal::Release);
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let namespace = key("v1", "Namespace", name);
            assert_eq!(disposal(&namespace, false), Disposal::Release, "{name}");
        }
        assert_eq!(
            disposal(&key("v1", "Namespace", "team"), false),
            Disposal::Delete
        );
        // A ConfigMap named like a cluster namespace is an ordinary object.
        assert_eq!(
            disposal(&key("v1", "ConfigMap", "default"), false),
            Disposal::Delete
        );
    }

    #[test]
    fn a_policy_document_is_taken_out_of_the_manifests() {
        let cm = manifest("v1", "ConfigMap", "c");
        let (policy, rest) = split_policy(vec![cm.clone()]).unwrap();
        assert_eq!(policy, ApplyPolicy::default());
        assert_eq!(rest, std::slice::from_ref(&cm));

        let document = |spec: serde_json::Value| {
            Manifest::from_value(
                json!({"apiVersion": POLICY_API_VERSION, "kind": POLICY_KIND,
                "metadata": {"name": "policy"}, "spec": spec}),
            )
            .unwrap()
        };
        let (policy, rest) = split_policy(vec![
            document(json!({"adopt": true, "recreateOnImmutable": true})),
            cm.clone(),
        ])
        .unwrap();
        assert!(policy.adopt && policy.recreate_on_immutable);
        assert_eq!(rest, std::slice::from_ref(&cm));
        let (policy, _) = split_policy(vec![document(json!({"adopt": true}))]).unwrap();
        assert!(policy.adopt && !policy.recreate_on_immutable);

        let error = split_policy(vec![document(json!({"adopt": "yes"}))]).unwrap_err();
        assert!(error.contains("invalid spec"), "{error}");
        let error = split_policy(vec![document(json!({"adpot": true}))]).unwrap_err();
        assert!(error.contains("adpot"), "{error}");
        let error = split_policy(vec![document(json!({})), document(json!({}))]).unwrap_err();
        assert!(error.contains("more than one"), "{error}");
    }

    #[test]
    fn annotations_allow_per_object() {
        let annotated = |annotation: &str, value: &str| {
            Manifest::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "annotations": {annotation: value}}}))
            .unwrap()
        };
        let none = ApplyPolicy::default();
        assert!(none.allows_adoption(&annotated(super::super::ADOPT_ANNOTATION, "true")));
        assert!(!none.allows_adoption(&annotated(super::super::ADOPT_ANNOTATION, "yes")));
        assert!(!none.allows_adoption(&annotated(super::super::RECREATE_ANNOTATION, "true")));
        assert!(none.allows_recreation(&annotated(super::super::RECREATE_ANNOTATION, "true")));
        let all = ApplyPolicy {
            adopt: true,
            recreate_on_immutable: true,
        };
        let plain = manifest("v1", "ConfigMap", "c");
        assert!(all.allows_adoption(&plain) && all.allows_recreation(&plain));
        assert!(!none.allows_adoption(&plain) && !none.allows_recreation(&plain));
    }
}
