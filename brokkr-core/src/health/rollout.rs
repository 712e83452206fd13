//! Rollout health of Deployments, StatefulSets and DaemonSets.
//!
//! A workload is healthy exactly when `kubectl rollout status` would say its rollout
//! finished. The rules follow kubectl's status viewers, in their order
//! (kubernetes/kubernetes, `staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go`).
//! Each starts with whether the controller has observed the latest spec
//! (`metadata.generation` against `status.observedGeneration`): every other field of a
//! status written for an older spec says nothing about the current one, not even a
//! `ProgressDeadlineExceeded` condition left over from the previous rollout.
//!
//! Where kubectl only says "not finished yet", Brokkr tells two cases apart:
//! - failed: a Deployment whose `Progressing` condition has reason
//!   `ProgressDeadlineExceeded` (kubectl stops with an error there too);
//! - degraded: a Deployment whose rollout had completed and that has lost available
//!   replicas since. The controller keeps the `Progressing` reason
//!   `NewReplicaSetAvailable` until the next rollout starts (kubernetes.io,
//!   "Deployments", Complete Deployment), so that reason tells a lost pod from one
//!   still starting.
//!
//! Everything else that is not finished is progressing.

use serde_json::Value;

use super::{HealthStatus, Verdict, condition, int, text};

/// The strategy under which a controller replaces pods itself; under any other
/// (`OnDelete`) it waits for someone to delete them.
const ROLLING_UPDATE: &str = "RollingUpdate";

/// `spec.replicas`, which the API server defaults to 1.
fn desired_replicas(live: &Value) -> i64 {
    live.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Whether the controller has written a status for the latest spec.
fn observed(live: &Value) -> bool {
    int(live, "/metadata/generation") <= int(live, "/status/observedGeneration")
}

/// `spec.updateStrategy.type`, which the API server defaults to `RollingUpdate`.
fn strategy(live: &Value) -> &str {
    live.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or(ROLLING_UPDATE)
}

fn pending(what: &str) -> Verdict {
    Verdict::new(
        HealthStatus::Progressing,
        "RolloutPending",
        format!("waiting for the {what} controller to observe the latest spec"),
    )
}

fn rolling_out(message: String) -> Verdict {
    Verdict::new(HealthStatus::Progressing, "RollingOut", message)
}

/// kubectl's `DeploymentStatusViewer`: observed, then the progress deadline, then
/// updated replicas against `spec.replicas`, old replicas still running (during a
/// surge `status.replicas` exceeds the updated count), and updated replicas not yet
/// available.
pub(super) fn deployment(live: &Value) -> Verdict {
    if !observed(live) {
        return pending("deployment");
    }
    let progressing = condition(live, "Progressing");
    if let Some(progressing) = progressing
        && text(progressing, "reason") == "ProgressDeadlineExceeded"
    {
        return Verdict::new(
            HealthStatus::Failed,
            "ProgressDeadlineExceeded",
            text(progressing, "message"),
        );
    }
    let desired = desired_replicas(live);
    let updated = int(live, "/status/updatedReplicas");
    let total = int(live, "/status/replicas");
    let available = int(live, "/status/availableReplicas");
    if updated < desired {
        return rolling_out(format!("{updated} of {desired} new replicas updated"));
    }
    if total > updated {
        return Verdict::new(
            HealthStatus::Progressing,
            "OldReplicasPending",
            format!("{} old replicas pending termination", total - updated),
        );
    }
    if available < updated {
        let message = format!("{available} of {updated} updated replicas available");
        let completed = progressing.is_some_and(|c| text(c, "reason") == "NewReplicaSetAvailable");
        return if completed {
            Verdict::new(HealthStatus::Degraded, "UnavailableReplicas", message)
        } else {
            Verdict::new(HealthStatus::Progressing, "WaitingForAvailable", message)
        };
    }
    Verdict::healthy()
}

/// kubectl's `StatefulSetStatusViewer`: observed (a zero `observedGeneration` counts as
/// not observed), then ready replicas against `spec.replicas`, then either the
/// partition (pods at or above the ordinal `partition` updated) or, without one, the
/// current revision reaching the update revision.
///
/// Under `OnDelete` kubectl reports the rollout finished at once ("rollout status is
/// only available for RollingUpdate"): the controller never replaces a pod by itself,
/// so there is no rollout to wait for. Brokkr still waits for the spec to be observed
/// and the pods to be ready, which needs nobody to delete anything.
pub(super) fn stateful_set(live: &Value) -> Verdict {
    if int(live, "/status/observedGeneration") == 0 || !observed(live) {
        return pending("statefulset");
    }
    let desired = desired_replicas(live);
    let ready = int(live, "/status/readyReplicas");
    if ready < desired {
        return Verdict::new(
            HealthStatus::Progressing,
            "WaitingForReady",
            format!("{ready} of {desired} pods ready"),
        );
    }
    if strategy(live) != ROLLING_UPDATE {
        return Verdict::healthy();
    }
    let updated = int(live, "/status/updatedReplicas");
    if let Some(partition) = live
        .pointer("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
    {
        // Pods with an ordinal below the partition keep the old revision on purpose,
        // so the current and update revisions never meet while it is set.
        let target = desired.saturating_sub(partition).max(0);
        if updated < target {
            return rolling_out(format!(
                "partitioned rollout: {updated} of {target} new pods updated"
            ));
        }
        return Verdict::healthy();
    }
    let update_revision = live
        .pointer("/status/updateRevision")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let current_revision = live
        .pointer("/status/currentRevision")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if update_revision != current_revision {
        return rolling_out(format!(
            "{updated} pods updated to revision {update_revision}"
        ));
    }
    Verdict::healthy()
}

/// kubectl's `DaemonSetStatusViewer`: observed, then updated pods against the desired
/// number scheduled, then available pods against it.
///
/// Under `OnDelete` kubectl reports the rollout finished at once, as for StatefulSets;
/// Brokkr waits for the spec to be observed and the scheduled pods to be available,
/// never for updated ones.
pub(super) fn daemon_set(live: &Value) -> Verdict {
    if !observed(live) {
        return pending("daemon set");
    }
    let desired = int(live, "/status/desiredNumberScheduled");
    let updated = int(live, "/status/updatedNumberScheduled");
    let available = int(live, "/status/numberAvailable");
    if strategy(live) == ROLLING_UPDATE && updated < desired {
        return rolling_out(format!("{updated} of {desired} new pods updated"));
    }
    if available < desired {
        return Verdict::new(
            HealthStatus::Progressing,
            "WaitingForAvailable",
            format!("{available} of {desired} pods available"),
        );
    }
    Verdict::healthy()
}
