//! The health of one workload, from its live object and, while it is not healthy,
//! its pods: `kubectl rollout status` warns about a pod stuck in `CrashLoopBackOff` or
//! unschedulable, and so does the agent (see [`health::assess_with_pods`]).
//!
//! Pods are listed only for workloads that are progressing or degraded, with the
//! workload's `spec.selector.matchLabels`, at most [`MAX_PODS`] of them. The listing
//! is best effort: without RBAC to list pods (or on any error) the verdict is the
//! workload's own.

use brokkr_core::ObjectKey;
use brokkr_core::applier::{Error, Result};
use brokkr_core::health::{self, HealthStatus, ObjectHealth};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::KubeApplier;
use super::discovery::Lookup;

/// Most pods read for one workload: enough to find one that is stuck.
const MAX_PODS: u32 = 100;

impl KubeApplier {
    /// The health of the workload at `key`; failed `Missing` when it is gone.
    pub(super) async fn workload_health(
        &self,
        key: &ObjectKey,
        lookup: &mut Lookup<'_>,
    ) -> Result<Option<ObjectHealth>> {
        let Some(live) = self.live(key, lookup).await? else {
            return Ok(Some(ObjectHealth {
                object: key.clone(),
                status: HealthStatus::Failed,
                reason: Some("Missing".to_owned()),
                message: Some("the object is in the inventory but not in the cluster".to_owned()),
            }));
        };
        let live = serde_json::to_value(&live)
            .map_err(|e| Error::Unavailable(format!("{key}: cannot read the live object: {e}")))?;
        let Some(verdict) = health::assess(key.clone(), &live) else {
            return Ok(None);
        };
        let waiting = matches!(
            verdict.status,
            HealthStatus::Progressing | HealthStatus::Degraded
        );
        if !waiting || key.kind == "Pod" {
            return Ok(Some(verdict));
        }
        let (Some(namespace), Some(selector)) = (key.namespace.as_deref(), selector(&live)) else {
            return Ok(Some(verdict));
        };
        let pods = self.pods(key, namespace, &selector).await;
        Ok(health::assess_with_pods(key.clone(), &live, &pods).or(Some(verdict)))
    }

    /// The pods `selector` matches in `namespace`, as JSON; none when they cannot be
    /// read.
    async fn pods(&self, key: &ObjectKey, namespace: &str, selector: &str) -> Vec<Value> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().labels(selector).limit(MAX_PODS);
        match api.list(&params).await {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|pod| serde_json::to_value(pod).ok())
                .collect(),
            Err(error) => {
                tracing::debug!(object = %key, %error, "cannot list the workload's pods; judging it without them");
                Vec::new()
            }
        }
    }
}

/// The label selector of a workload's `spec.selector.matchLabels`, as `k=v,k=v`; `None`
/// when it has none or also has `matchExpressions` (which a plain label selector
/// cannot say, and the agent would read other workloads' pods).
fn selector(workload: &Value) -> Option<String> {
    let selector = workload.pointer("/spec/selector")?;
    if selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
    {
        return None;
    }
    let labels = selector.get("matchLabels")?.as_object()?;
    let pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| Some(format!("{key}={}", value.as_str()?)))
        .collect::<Option<_>>()?;
    (!pairs.is_empty()).then(|| pairs.join(","))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_match_labels_make_a_selector() {
        let with = |selector: Value| json!({"spec": {"selector": selector}});
        assert_eq!(
            selector(&with(
                json!({"matchLabels": {"app": "web", "tier": "front"}})
            ))
            .as_deref(),
            Some("app=web,tier=front")
        );
        assert_eq!(
            selector(&with(json!({"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "x", "operator": "Exists"}]}))),
            None
        );
        assert_eq!(selector(&with(json!({"matchLabels": {}}))), None);
        assert_eq!(selector(&with(json!({"matchLabels": {"n": 1}}))), None);
        assert_eq!(selector(&json!({"spec": {}})), None);
    }
}
