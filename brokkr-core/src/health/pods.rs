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
    let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|p| live.pointer(p).and_then(Value::as_array))
        .flatten();
    let mut restarts = 0;
    for status in statuses {
        restarts += status
            .get("restartCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(waiting) = status.pointer("/state/waiting") {
            let reason = text(waiting, "reason");
            if FATAL_WAITING.contains(&reason) {
                let name = text(status, "name");
                let detail = text(waiting, "message");
                return Verdict::new(
                    HealthStatus::Failed,
                    reason,
                    format!("container {name}: {reason} {detail}")
                        .trim_end()
                        .to_owned(),
                );
            }
        }
    }
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
