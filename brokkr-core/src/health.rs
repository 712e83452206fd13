//! Health of applied workloads, judged from their live Kubernetes status.
//!
//! [`assess`] reads the `status` of a Deployment, StatefulSet, DaemonSet, Job or Pod
//! (as the cluster returns it) and says healthy, progressing, degraded or failed, with
//! the reason a person would look for first (`CrashLoopBackOff`, `ImagePullBackOff`,
//! unavailable replicas, a failed Job). Other kinds have no health of their own. Pure
//! logic: the agent fetches the objects, the server stores the verdicts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manifest::ObjectKey;

/// How a workload is doing. Ordered from best to worst, so the worst of several is
/// their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Running as asked.
    Healthy,
    /// Rolling out or starting; not yet there, nothing wrong seen.
    Progressing,
    /// Running, but not as asked (some replicas unavailable, restarts).
    Degraded,
    /// Not running and not going to without a change (crash loop, image pull
    /// failure, failed Job).
    Failed,
}

impl HealthStatus {
    /// The stable name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Progressing => "progressing",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
        }
    }

    /// Parses [`HealthStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "healthy" => Self::Healthy,
            "progressing" => Self::Progressing,
            "degraded" => Self::Degraded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// The health of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    /// Which object.
    pub object: ObjectKey,
    /// How it is doing.
    pub status: HealthStatus,
    /// A short machine-friendly reason, e.g. `CrashLoopBackOff`; absent when healthy.
    pub reason: Option<String>,
    /// A sentence for people.
    pub message: Option<String>,
}

/// The worst status of `objects`; healthy when there is none (nothing to watch).
pub fn summarize(objects: &[ObjectHealth]) -> HealthStatus {
    objects
        .iter()
        .map(|o| o.status)
        .max()
        .unwrap_or(HealthStatus::Healthy)
}

/// Whether objects of `kind` have a health of their own.
pub fn is_workload(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod"
    )
}

/// Judges one live object. `None` for kinds without health (see [`is_workload`]).
pub fn assess(object: ObjectKey, live: &Value) -> Option<ObjectHealth> {
    let verdict = match object.kind.as_str() {
        "Deployment" | "StatefulSet" => replicated(live),
        "DaemonSet" => daemon_set(live),
        "Job" => job(live),
        "Pod" => pod(live),
        _ => return None,
    };
    Some(ObjectHealth {
        object,
        status: verdict.status,
        reason: verdict.reason,
        message: verdict.message,
    })
}

struct Verdict {
    status: HealthStatus,
    reason: Option<String>,
    message: Option<String>,
}

impl Verdict {
    fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            reason: None,
            message: None,
        }
    }

    fn new(status: HealthStatus, reason: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason: Some(reason.to_owned()),
            message: Some(message.into()),
        }
    }
}

fn int(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The condition of `type_` in `status.conditions`, if present.
fn condition<'a>(live: &'a Value, type_: &str) -> Option<&'a Value> {
    live.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn is_true(condition: &Value) -> bool {
    condition.get("status").and_then(Value::as_str) == Some("True")
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// Deployments and StatefulSets: observed generation, then updated, ready and
/// available replicas against the desired count.
fn replicated(live: &Value) -> Verdict {
    let desired = live
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = int(live, "/metadata/generation");
    let observed = int(live, "/status/observedGeneration");
    if let Some(progressing) = condition(live, "Progressing")
        && text(progressing, "reason") == "ProgressDeadlineExceeded"
    {
        return Verdict::new(
            HealthStatus::Failed,
            "ProgressDeadlineExceeded",
            text(progressing, "message"),
        );
    }
    if observed < generation {
        return Verdict::new(
            HealthStatus::Progressing,
            "RolloutPending",
            "the controller has not yet seen the latest spec",
        );
    }
    let updated = int(live, "/status/updatedReplicas");
    let ready = int(live, "/status/readyReplicas");
    let available = live
        .pointer("/status/availableReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(ready);
    if desired == 0 {
        return Verdict::healthy();
    }
    if available >= desired && updated >= desired {
        return Verdict::healthy();
    }
    let message =
        format!("{available} of {desired} replicas available, {updated} updated, {ready} ready");
    if available == 0 && updated >= desired {
        // Everything rolled out and nothing is available: stuck, not progressing.
        return Verdict::new(HealthStatus::Degraded, "UnavailableReplicas", message);
    }
    if updated < desired {
        return Verdict::new(HealthStatus::Progressing, "RollingOut", message);
    }
    Verdict::new(HealthStatus::Degraded, "UnavailableReplicas", message)
}

fn daemon_set(live: &Value) -> Verdict {
    let generation = int(live, "/metadata/generation");
    let observed = int(live, "/status/observedGeneration");
    if observed < generation {
        return Verdict::new(
            HealthStatus::Progressing,
            "RolloutPending",
            "the controller has not yet seen the latest spec",
        );
    }
    let desired = int(live, "/status/desiredNumberScheduled");
    let updated = int(live, "/status/updatedNumberScheduled");
    let available = int(live, "/status/numberAvailable");
    let message = format!("{available} of {desired} pods available, {updated} updated");
    if available >= desired && updated >= desired {
        Verdict::healthy()
    } else if updated < desired {
        Verdict::new(HealthStatus::Progressing, "RollingOut", message)
    } else {
        Verdict::new(HealthStatus::Degraded, "UnavailablePods", message)
    }
}

fn job(live: &Value) -> Verdict {
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
    let failed = int(live, "/status/failed");
    if failed > 0 {
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

fn pod(live: &Value) -> Verdict {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(kind: &str) -> ObjectKey {
        ObjectKey {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: "web".into(),
        }
    }

    fn status_of(kind: &str, live: Value) -> (HealthStatus, Option<String>) {
        let health = assess(key(kind), &live).expect("a workload");
        (health.status, health.reason)
    }

    #[test]
    fn deployments() {
        let ok = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}});
        assert_eq!(status_of("Deployment", ok).0, HealthStatus::Healthy);

        let rolling = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}});
        assert_eq!(
            status_of("Deployment", rolling),
            (HealthStatus::Progressing, Some("RollingOut".into()))
        );

        let stale = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1}, "status": {"observedGeneration": 2}});
        assert_eq!(status_of("Deployment", stale).0, HealthStatus::Progressing);

        let short = json!({"metadata": {"generation": 1}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 1, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}});
        assert_eq!(
            status_of("StatefulSet", short),
            (HealthStatus::Degraded, Some("UnavailableReplicas".into()))
        );

        let stuck = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}]}});
        assert_eq!(
            status_of("Deployment", stuck),
            (
                HealthStatus::Failed,
                Some("ProgressDeadlineExceeded".into())
            )
        );

        let scaled_to_zero = json!({"metadata": {"generation": 1}, "spec": {"replicas": 0}, "status": {"observedGeneration": 1}});
        assert_eq!(
            status_of("Deployment", scaled_to_zero).0,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn pods() {
        let crash = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}}]}});
        let health = assess(key("Pod"), &crash).unwrap();
        assert_eq!(health.status, HealthStatus::Failed);
        assert_eq!(health.reason.as_deref(), Some("CrashLoopBackOff"));
        assert!(health.message.unwrap().contains("container app"));

        let pull = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(
            status_of("Pod", pull),
            (HealthStatus::Failed, Some("ImagePullBackOff".into()))
        );

        let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(status_of("Pod", ready).0, HealthStatus::Healthy);

        let pending = json!({"status": {"phase": "Pending"}});
        assert_eq!(status_of("Pod", pending).0, HealthStatus::Progressing);
    }

    #[test]
    fn jobs_and_daemon_sets() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(status_of("Job", done).0, HealthStatus::Healthy);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many"}]}});
        assert_eq!(
            status_of("Job", failed),
            (HealthStatus::Failed, Some("BackoffLimitExceeded".into()))
        );
        let running = json!({"status": {"active": 1}});
        assert_eq!(status_of("Job", running).0, HealthStatus::Progressing);

        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}});
        assert_eq!(status_of("DaemonSet", ds).0, HealthStatus::Degraded);
    }

    #[test]
    fn worst_status_wins_and_other_kinds_have_none() {
        assert!(assess(key("ConfigMap"), &json!({})).is_none());
        let objects = [
            HealthStatus::Healthy,
            HealthStatus::Failed,
            HealthStatus::Progressing,
        ]
        .map(|status| ObjectHealth {
            object: key("Pod"),
            status,
            reason: None,
            message: None,
        });
        assert_eq!(summarize(&objects), HealthStatus::Failed);
        assert_eq!(summarize(&[]), HealthStatus::Healthy);
        for s in [
            HealthStatus::Healthy,
            HealthStatus::Progressing,
            HealthStatus::Degraded,
            HealthStatus::Failed,
        ] {
            assert_eq!(HealthStatus::parse(s.as_str()), Some(s));
        }
    }
}
