//! The applier conformance suite: every [`Applier`] implementation must pass it.
//!
//! Each case is an `async fn(&dyn ApplierFixture)` that panics on failure and expects a
//! fresh cluster (or a shared one, with [`ApplierFixture::unique`] names).
//! [`applier_conformance_tests!`](crate::applier_conformance_tests) expands into one
//! `#[tokio::test]` per case for a fixture maker, so an implementation runs the whole
//! suite with one line; [`CASE_NAMES`] lists the cases.
//!
//! The cases are the [`Applier`] contract, written down as checks:
//! - [`apply`]: stamping, apply order, idempotency, drift put back, pruning, identity
//!   by group, kind, namespace and name, dry runs that change nothing, refusals that
//!   name the object, health of workloads only;
//! - [`ownership`]: removal deletes the inventory and nothing else, in reverse order;
//!   an object Brokkr did not create is never deleted and never taken over without
//!   an explicit opt-in, and one taken over with it is released, not deleted.
//!
//! A case's list is the cases themselves: each group is one `cases!` invocation that
//! defines the `async fn`s, their names, and the hidden macro that expands them into
//! tests, so nothing lists a case twice.
//!
//! ```no_run
//! use brokkr_core::Applier;
//! use brokkr_core::manifest::{Manifest, ObjectKey};
//! use brokkr_core::testing::{ApplierFixture, MemoryApplier};
//! use serde_json::Value;
//!
//! struct Fixture(MemoryApplier);
//!
//! #[async_trait::async_trait]
//! impl ApplierFixture for Fixture {
//!     fn applier(&self) -> &dyn Applier {
//!         &self.0
//!     }
//!     async fn create_foreign(&self, object: &Manifest) {
//!         self.0.create_unmanaged(object);
//!     }
//!     async fn get(&self, key: &ObjectKey) -> Option<Value> {
//!         self.0.get(key)
//!     }
//!     async fn edit_by_hand(&self, key: &ObjectKey, patch: &Value) {
//!         self.0.edit(key, |live| brokkr_core::testing::merge_patch(live, patch));
//!     }
//!     async fn delete_by_hand(&self, key: &ObjectKey) {
//!         self.0.delete_by_hand(key);
//!     }
//! }
//!
//! async fn make_fixture() -> Option<Fixture> {
//!     let cluster = MemoryApplier::new();
//!     // A real API server refuses to change a Job's template.
//!     cluster.make_immutable("Job", "spec.template");
//!     Some(Fixture(cluster))
//! }
//!
//! brokkr_core::applier_conformance_tests!(make_fixture);
//! # fn main() {}
//! ```

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::applier::{Applier, ApplyPolicy, STACK_LABEL, StackRef};
use crate::health::{HealthStatus, ObjectHealth};
use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::{Manifest, ObjectKey};

pub mod apply;
pub mod ownership;

/// How long a case waits for something that happens in the background (a workload
/// reaching its health) before it fails.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster prepared for one case and the hand of "someone else" in it: a person with
/// `kubectl`, another tool. Cases run in parallel, each with its own fixture.
///
/// The methods panic when the cluster fails them: they are test scaffolding.
#[async_trait]
pub trait ApplierFixture: Send + Sync {
    /// The applier under test.
    fn applier(&self) -> &dyn Applier;

    /// Creates `object` as someone other than Brokkr would: it carries no stack label
    /// and is in no inventory.
    async fn create_foreign(&self, object: &Manifest);

    /// The live object, or `None` when it does not exist (or is being deleted).
    async fn get(&self, key: &ObjectKey) -> Option<Value>;

    /// Changes the live object by hand with a JSON merge patch (RFC 7386; `null`
    /// removes a field), as `kubectl edit` or `kubectl patch --type merge` would.
    async fn edit_by_hand(&self, key: &ObjectKey, patch: &Value);

    /// Deletes the live object by hand.
    async fn delete_by_hand(&self, key: &ObjectKey);

    /// `base` made unique to this fixture, for a cluster shared between cases. Names
    /// must stay valid Kubernetes names (DNS labels); the default keeps `base`.
    fn unique(&self, base: &str) -> String {
        base.to_owned()
    }

    /// Releases what the fixture created; by default nothing.
    async fn teardown(&self) {}
}

/// Applies a JSON merge patch (RFC 7386) to `target`: objects merge key by key, `null`
/// removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Defines one group of cases, its name list and the hidden macro that expands them.
///
/// `$d` is a literal `$`, passed in so the generated macro can have metavariables of
/// its own.
macro_rules! cases {
    (
        $d:tt $expand:ident, $group:ident;
        $(
            $(#[$attr:meta])*
            async fn $case:ident($fixture:ident: &dyn ApplierFixture) $body:block
        )*
    ) => {
        $(
            $(#[$attr])*
            pub async fn $case($fixture: &dyn ApplierFixture) $body
        )*

        /// This group's cases, in the order they are defined.
        pub const NAMES: &[&str] = &[$(::core::stringify!($case)),*];

        /// Expands this group's cases into tests. Not part of the public API.
        #[doc(hidden)]
        #[macro_export]
        macro_rules! $expand {
            ($d make:path) => {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some(fixture) = $d make().await else {
                            return;
                        };
                        $crate::testing::applier_conformance::$group::$case(&fixture).await;
                        $crate::testing::ApplierFixture::teardown(&fixture).await;
                    }
                )*
            };
        }
    };
}
pub(crate) use cases;

/// Expands into one `#[tokio::test]` per applier conformance case for a fixture.
///
/// `$make` is an `async fn() -> Option<impl ApplierFixture>` that prepares a cluster for
/// one case; `None` skips the case (the maker prints why, e.g. "no cluster
/// configured"). The expanding crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features. See the [module documentation](crate::testing::applier_conformance)
/// for an example.
#[macro_export]
macro_rules! applier_conformance_tests {
    ($make:path) => {
        $crate::__brokkr_applier_cases_apply!($make);
        $crate::__brokkr_applier_cases_ownership!($make);
    };
}

/// The name of every case, group by group.
pub const CASE_NAMES: [&[&str]; 2] = [apply::NAMES, ownership::NAMES];

// ---------------------------------------------------------------------------------------
// Fixture builders, shared by the groups.

/// A reference to a new deployment object of `stack_id`, with the default policy
/// (no adoption, no recreation).
pub fn mk_stack_ref(stack_id: StackId) -> StackRef {
    let deployment_object_id = DeploymentObjectId::new();
    StackRef {
        stack_id,
        checksum: format!("sum-{deployment_object_id}"),
        deployment_object_id,
        policy: ApplyPolicy::default(),
    }
}

/// Manifests from JSON values; panics on an invalid one (a bug in the case).
pub fn mk_manifests(values: &[Value]) -> Vec<Manifest> {
    values
        .iter()
        .map(|v| Manifest::from_value(v.clone()).expect("a valid fixture manifest"))
        .collect()
}

/// The key of `api_version` `kind` `namespace`/`name`.
pub fn mk_key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

/// A Namespace.
pub fn mk_namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A ConfigMap in `namespace` whose `key` is `value`.
pub fn mk_config_map(namespace: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": {"key": value}})
}

/// A one-replica Deployment in `namespace`.
pub fn mk_deployment(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}})
}

/// The CRD of namespaced `Widget`s in `group`, served at `v1beta1` and `v1`.
pub fn mk_widget_crd(group: &str) -> Value {
    let version = |name: &str, storage: bool| {
        json!({"name": name, "served": true, "storage": storage,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
    };
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [version("v1beta1", false), version("v1", true)]}})
}

/// A Widget of `group`, addressed at `version`.
pub fn mk_widget(group: &str, version: &str, namespace: &str, name: &str) -> Value {
    json!({"apiVersion": format!("{group}/{version}"), "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace}, "spec": {"size": 3}})
}

/// `value` with `annotation` set to `"true"`.
pub fn with_annotation(mut value: Value, annotation: &str) -> Value {
    value["metadata"]["annotations"][annotation] = json!("true");
    value
}

/// The stack label of a live object, if it has one.
pub fn stack_label(live: &Value) -> Option<&str> {
    live.pointer("/metadata/labels")?.get(STACK_LABEL)?.as_str()
}

/// Polls the stack's health until `done` accepts it or [`SETTLE_TIMEOUT`] passes;
/// returns the last answer.
pub async fn settled_health(
    applier: &dyn Applier,
    stack_id: StackId,
    done: impl Fn(&[ObjectHealth]) -> bool,
) -> Vec<ObjectHealth> {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let health = applier.health(stack_id).await.expect("health");
        if done(&health) || tokio::time::Instant::now() >= deadline {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every entry is healthy.
pub fn all_healthy(health: &[ObjectHealth]) -> bool {
    health.iter().all(|h| h.status == HealthStatus::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut target,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            target,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
        let mut scalar = json!("s");
        merge_patch(&mut scalar, &json!({"k": null, "v": 1}));
        assert_eq!(scalar, json!({"v": 1}));
    }

    #[test]
    fn every_case_is_listed_once() {
        let names: Vec<&str> = CASE_NAMES.iter().flat_map(|g| g.iter().copied()).collect();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(names.len() >= 15, "{names:?}");
    }
}
