//! Health of applied workloads, judged from their live Kubernetes status.
//!
//! [`assess`] reads the `status` of a Deployment, StatefulSet, DaemonSet, Job or Pod
//! (as the cluster returns it) and says healthy, progressing, degraded or failed, with
//! the reason a person would look for first (`CrashLoopBackOff`, `ImagePullBackOff`,
//! unavailable replicas, a failed Job). Other kinds have no health of their own. Pure
//! logic: the agent fetches the objects, the server stores the verdicts.
//!
//! - `rollout`: Deployments, StatefulSets and DaemonSets are healthy exactly when
//!   `kubectl rollout status` would say the rollout finished (see that module for the
//!   rules and where they come from); a few not-finished states are told apart as
//!   degraded or failed.
//! - `pods`: Jobs by their `Complete` and `Failed` conditions, Pods by phase,
//!   readiness and container waiting reasons; and, for [`assess_with_pods`], why the
//!   pods of an unfinished rollout do not run, as kubectl warns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manifest::ObjectKey;

mod pods;
mod rollout;
#[cfg(test)]
mod tests;

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

/// Judges one live object. `None` for kinds without health (see [`is_workload`]),
/// and for a custom resource that shares a built-in workload's kind (a Volcano
/// `batch.volcano.sh` Job): its status is not the built-in one, and reading it as
/// such would say progressing forever.
pub fn assess(object: ObjectKey, live: &Value) -> Option<ObjectHealth> {
    let verdict = match (object.group(), object.kind.as_str()) {
        ("apps", "Deployment") => rollout::deployment(live),
        ("apps", "StatefulSet") => rollout::stateful_set(live),
        ("apps", "DaemonSet") => rollout::daemon_set(live),
        ("batch", "Job") => pods::job(live),
        ("", "Pod") => pods::pod(live),
        _ => return None,
    };
    Some(ObjectHealth {
        object,
        status: verdict.status,
        reason: verdict.reason,
        message: verdict.message,
    })
}

/// Judges a workload together with its pods, the way `kubectl rollout status` warns
/// about them: while the workload is not healthy, a pod with a container that will not
/// start without a change (`CrashLoopBackOff`, `ImagePullBackOff`, ...) makes it failed
/// with that reason, and a pod the scheduler cannot place (`Unschedulable`) says why
/// the rollout waits. A failed verdict of the workload's own (a progress deadline)
/// stands.
///
/// `pods` are the live pods the workload's selector matches; the caller lists them.
/// With none this is [`assess`].
pub fn assess_with_pods(object: ObjectKey, live: &Value, pods: &[Value]) -> Option<ObjectHealth> {
    let mut health = assess(object, live)?;
    let waiting = matches!(
        health.status,
        HealthStatus::Progressing | HealthStatus::Degraded
    );
    if waiting
        && health.object.kind != "Pod"
        && let Some(warning) = pods::warning(pods)
    {
        // An unschedulable pod explains a rollout still waiting; it does not make
        // a degraded workload look better than it is.
        if warning.status >= health.status {
            health.status = warning.status;
            health.reason = warning.reason;
            health.message = warning.message;
        }
    }
    Some(health)
}

/// What one rule concluded, before it is attached to its object.
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

/// An integer field, 0 when absent (as Kubernetes omits zero counts).
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

/// Whether a condition's `status` is `"True"`.
fn is_true(condition: &Value) -> bool {
    condition.get("status").and_then(Value::as_str) == Some("True")
}

/// A string field, empty when absent.
fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}
