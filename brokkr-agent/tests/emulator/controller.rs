//! A stand-in for the controllers of a real cluster: the status each kind would reach
//! once everything went well, written synchronously on every spec change.
//!
//! Statuses carry no timestamps, so recomputing them for an unchanged object gives the
//! same value and a no-op apply stays a no-op.

use serde_json::{Value, json};

/// The status an object of `group`/`kind` settles at, or `None` for kinds no
/// controller here looks after (their status is left as it was).
///
/// `establish_crds` is false while a test holds CRD establishment back.
pub fn settled_status(
    group: &str,
    kind: &str,
    object: &Value,
    establish_crds: bool,
) -> Option<Value> {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match (group, kind) {
        ("", "Namespace") => Some(json!({ "phase": "Active" })),
        ("", "Pod") => Some(json!({
            "phase": "Running",
            "conditions": [
                { "type": "Ready", "status": "True" },
                { "type": "ContainersReady", "status": "True" },
            ],
        })),
        ("apps", "Deployment") => Some(json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" },
                { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" },
            ],
        })),
        ("apps", "StatefulSet") => Some(json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": format!("{name}-emulated"),
            "updateRevision": format!("{name}-emulated"),
        })),
        ("apps", "DaemonSet") => Some(json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1,
            "numberReady": 1,
            "numberAvailable": 1,
            "numberMisscheduled": 0,
        })),
        ("batch", "Job") => Some(json!({
            "succeeded": object["spec"]["completions"].as_i64().unwrap_or(1),
            "conditions": [{ "type": "Complete", "status": "True" }],
        })),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            Some(crd_status(object, establish_crds))
        }
        _ => None,
    }
}

/// The field manager that writes a kind's status on a real cluster, if the emulator's
/// controller looks after it (a Namespace's phase is set on creation, unattributed).
pub fn status_manager(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("apps", _) | ("batch", _) => Some("kube-controller-manager"),
        ("", "Pod") => Some("kubelet"),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Some("kube-apiserver"),
        _ => None,
    }
}

fn crd_status(crd: &Value, established: bool) -> Value {
    let (status, reason) = if established {
        ("True", "InitialNamesAccepted")
    } else {
        ("False", "Installing")
    };
    let stored_versions: Vec<&Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| &v["name"])
        .collect();
    json!({
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found" },
            { "type": "Established", "status": status, "reason": reason, "message": "the initial names have been accepted" },
        ],
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": stored_versions,
    })
}

/// Whether a CRD's status says it is established (what the catalog follows).
pub fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}
