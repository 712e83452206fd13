//! CustomResourceDefinitions: which kinds a deployment object defines itself, and
//! waiting for a CRD to be established.

use std::time::Duration;

use brokkr_core::applier::Error;
use brokkr_core::{Manifest, ObjectKey};
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::time::Instant;

use super::errors::object_error;

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

/// First and longest pause between two reads of a CRD's status.
const FIRST_POLL: Duration = Duration::from_millis(50);
const LONGEST_POLL: Duration = Duration::from_secs(1);

/// Whether `group`/`kind` is a CustomResourceDefinition.
pub(crate) fn is_crd(group: &str, kind: &str) -> bool {
    group == CRD_GROUP && kind == CRD_KIND
}

/// The kind a CRD manifest defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Definition {
    group: String,
    kind: String,
    served_versions: Vec<String>,
    /// Whether its objects live in namespaces (`spec.scope: Namespaced`).
    pub namespaced: bool,
}

impl Definition {
    /// What a CRD manifest defines; `None` when it is not a CRD or too malformed to
    /// tell (the cluster will say what is wrong with it).
    pub(crate) fn of(manifest: &Manifest) -> Option<Self> {
        if !is_crd(manifest.group(), manifest.kind()) {
            return None;
        }
        let spec = manifest.as_value().get("spec")?;
        let text = |pointer: &str| spec.pointer(pointer).and_then(Value::as_str);
        let served_versions = spec
            .get("versions")?
            .as_array()?
            .iter()
            .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        Some(Self {
            group: text("/group")?.to_owned(),
            kind: text("/names/kind")?.to_owned(),
            served_versions,
            namespaced: text("/scope") != Some("Cluster"),
        })
    }

    /// Whether this CRD defines objects of `kind` in `api_version`.
    pub(crate) fn defines(&self, api_version: &str, kind: &str) -> bool {
        let Some((group, version)) = api_version.split_once('/') else {
            return false;
        };
        group == self.group
            && kind == self.kind
            && self.served_versions.iter().any(|v| v == version)
    }

    /// The `apiVersion`s its kind is served in.
    pub(crate) fn api_versions(&self) -> impl Iterator<Item = String> + '_ {
        self.served_versions
            .iter()
            .map(|version| format!("{}/{version}", self.group))
    }

    /// Its kind.
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }
}

/// The definition among `definitions` that defines `kind` in `api_version`.
pub(crate) fn defined_by<'d>(
    definitions: &'d [Definition],
    api_version: &str,
    kind: &str,
) -> Option<&'d Definition> {
    definitions.iter().find(|d| d.defines(api_version, kind))
}

/// Reads the CRD until its `Established` condition is true, or `deadline` passes.
pub(crate) async fn wait_established(
    api: &Api<DynamicObject>,
    crd: &ObjectKey,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), Error> {
    let mut pause = FIRST_POLL;
    loop {
        let live = api
            .get_opt(&crd.name)
            .await
            .map_err(|e| object_error(crd, e))?;
        if live.as_ref().is_some_and(|live| is_established(&live.data)) {
            return Ok(());
        }
        if Instant::now() + pause > deadline {
            return Err(Error::NotEstablished {
                object: crd.clone(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_POLL);
    }
}

/// Whether a CRD's `status.conditions` has `Established=True`.
fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crd(scope: &str) -> Manifest {
        Manifest::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": scope,
                "versions": [
                    {"name": "v1", "served": true, "storage": true},
                    {"name": "v1beta1", "served": false, "storage": false}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_crd_defines_its_kind_in_its_served_versions() {
        let definition = Definition::of(&crd("Namespaced")).unwrap();
        assert!(definition.namespaced);
        assert!(definition.defines("example.com/v1", "Widget"));
        assert!(!definition.defines("example.com/v1beta1", "Widget"));
        assert!(!definition.defines("example.com/v1", "Gadget"));
        assert!(!definition.defines("other.com/v1", "Widget"));
        assert!(!definition.defines("v1", "Widget"));
        assert_eq!(
            definition.api_versions().collect::<Vec<_>>(),
            ["example.com/v1"]
        );
        assert!(!Definition::of(&crd("Cluster")).unwrap().namespaced);

        let config_map = Manifest::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .unwrap();
        assert_eq!(Definition::of(&config_map), None);
    }

    #[test]
    fn established_means_the_condition_is_true() {
        let with = |status: &str| {
            json!({"status": {"conditions": [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": status}]}})
        };
        assert!(is_established(&with("True")));
        assert!(!is_established(&with("False")));
        assert!(!is_established(&json!({"spec": {}})));
    }
}
