//! Health of Jobs and Pods: things that run to an end or run as they are, without a
//! rollout.
//!
//! A Job is judged by the conditions its controller sets when it ends (`Complete`,
//! `Failed`; kubernetes.io, "Jobs", Job termination and cleanup); until then it is
//! progressing, or degraded while failed pods are being retried. A Pod by the waiting
//! reasons of its containers first (a crash loop or an image that cannot be pulled
//! does not go away without a change), then by its phase and `Ready` condition.

use serde_json::Value;

use super::{HealthStatus, Verdict, condition, int, is_true, text};

pub(super) fn job(live: &Value) -> Verdict {
    if let Some(failed) = condition(live, "Failed").filter(|c| is_true(c)) {
        let reason = match text(failed, "reason") {
            "" => "JobFailed",
            reason => reason,
        };
        return Verdict::new(HealthStatus::Failed, reason, text(failed, "message"));
    }
    if condition(live, "Complete").is_some_and(is_true) {
        return Verdict::healthy();
    }
    if condition(live, "Suspended").is_some_and(is_true) {
        return Verdict::new(
            HealthStatus::Progressing,
            "Suspended",
            "the job is suspended",
        );
    }
    let failed = int(live, "/status/failed");
    if failed > 0 {
        // Below its backoff limit the Job retries; it has not failed, but it is not
        // running as asked either.
        return Verdict::new(
            HealthStatus::Degraded,
            "PodsFailed",
            format!("{failed} pod(s) failed; retrying"),
        );
    }
    Verdict::new(
        HealthStatus::Progressing,
        "Running",
        "the job has not completed yet",
    )
}

/// Waiting reasons that do not go away without a change.
const FATAL_WAITING: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

pub(super) fn pod(live: &Value) -> Verdict {
    if let Some(verdict) = fatal_waiting(live) {
        return verdict;
    }
    let restarts: i64 = container_statuses(live)
        .map(|status| {
            status
                .get("restartCount")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        })
        .sum();
    match text(live.get("status").unwrap_or(&Value::Null), "phase") {
        "Succeeded" => Verdict::healthy(),
        "Failed" => Verdict::new(HealthStatus::Failed, "PodFailed", "the pod failed"),
        "Running" if condition(live, "Ready").is_some_and(is_true) => {
            if restarts > 0 {
                Verdict::new(
                    HealthStatus::Degraded,
                    "Restarts",
                    format!("ready, but restarted {restarts} time(s)"),
                )
            } else {
                Verdict::healthy()
            }
        }
        "Running" => Verdict::new(HealthStatus::Progressing, "NotReady", "running, not ready"),
        _ => Verdict::new(HealthStatus::Progressing, "Pending", "the pod is pending"),
    }
}

/// The statuses of a pod's init containers, then of its containers.
fn container_statuses(pod: &Value) -> impl Iterator<Item = &Value> {
    ["/status/initContainerStatuses", "/status/containerStatuses"]
        .into_iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
}

/// Failed, when a container of `pod` waits for a reason in [`FATAL_WAITING`].
fn fatal_waiting(pod: &Value) -> Option<Verdict> {
    container_statuses(pod).find_map(|status| {
        let waiting = status.pointer("/state/waiting")?;
        let reason = text(waiting, "reason");
        FATAL_WAITING.contains(&reason).then(|| {
            let name = text(status, "name");
            let detail = text(waiting, "message");
            Verdict::new(
                HealthStatus::Failed,
                reason,
                format!("container {name}: {reason} {detail}")
                    .trim_end()
                    .to_owned(),
            )
        })
    })
}

/// Why the pods of an unfinished rollout do not run: a container waiting for good makes
/// the workload failed, a pod the scheduler cannot place names why the rollout waits.
///
/// This goes beyond `kubectl rollout status`, whose status viewers read only the
/// workload object; it never calls a rollout healthy early (it only looks at a rollout
/// that is not done), but a crash-looping pod of the *old* revision can mark a rollout
/// failed while it is still replacing that pod. Telling revisions apart needs the new
/// ReplicaSet's `pod-template-hash`, not read yet.
pub(super) fn warning(pods: &[Value]) -> Option<Verdict> {
    let named = |pod: &Value, verdict: Verdict| {
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Verdict {
            message: verdict.message.map(|m| format!("pod {name}: {m}")),
            ..verdict
        }
    };
    if let Some((pod, verdict)) = pods
        .iter()
        .find_map(|pod| fatal_waiting(pod).map(|v| (pod, v)))
    {
        return Some(named(pod, verdict));
    }
    pods.iter().find_map(|pod| {
        let scheduled = condition(pod, "PodScheduled")?;
        (text(scheduled, "status") == "False" && text(scheduled, "reason") == "Unschedulable").then(
            || {
                let verdict = Verdict::new(
                    HealthStatus::Progressing,
                    "Unschedulable",
                    text(scheduled, "message"),
                );
                named(pod, verdict)
            },
        )
    })
}
