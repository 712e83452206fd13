//! Table tests of the health rules: one row per situation, each naming what it proves.

use serde_json::{Value, json};

use super::*;

fn mk_key(kind: &str) -> ObjectKey {
    let api_version = match kind {
        "Job" => "batch/v1",
        "Pod" | "ConfigMap" => "v1",
        _ => "apps/v1",
    };
    ObjectKey {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some("default".into()),
        name: "web".into(),
    }
}

/// A live object of generation 2 with `spec` and `status`.
fn mk_live(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "web", "generation": 2}, "spec": spec, "status": status})
}

/// Asserts that `live`, as a `kind`, is judged `expected` (status and reason).
fn check(kind: &str, case: &str, live: &Value, expected: (HealthStatus, Option<&str>)) {
    let health = assess(mk_key(kind), live).expect("a workload kind");
    assert_eq!(
        (health.status, health.reason.as_deref()),
        expected,
        "{kind}: {case}: {:?}",
        health.message
    );
    assert_eq!(
        health.reason.is_none(),
        health.status == HealthStatus::Healthy,
        "{kind}: {case}: a reason exactly when not healthy"
    );
}

use HealthStatus::{Degraded, Failed, Healthy, Progressing};

#[test]
fn deployments_follow_kubectl_rollout_status() {
    let deadline = json!([{"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing"}]);
    let updating =
        json!([{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]);
    let complete =
        json!([{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]);
    let cases = [
        (
            "rolled out",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
            ),
            (Healthy, None),
        ),
        (
            "surge: an old replica still runs beside three updated ones",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 4, "availableReplicas": 3}),
            ),
            (Progressing, Some("OldReplicasPending")),
        ),
        (
            "fewer updated replicas than asked",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}),
            ),
            (Progressing, Some("RollingOut")),
        ),
        (
            "updated replicas not yet available during a rollout",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2, "conditions": updating}),
            ),
            (Progressing, Some("WaitingForAvailable")),
        ),
        (
            "a replica lost after the rollout completed",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2, "conditions": complete}),
            ),
            (Degraded, Some("UnavailableReplicas")),
        ),
        (
            "progress deadline exceeded for the observed spec",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "conditions": deadline}),
            ),
            (Failed, Some("ProgressDeadlineExceeded")),
        ),
        (
            "a deadline left over from the previous spec does not judge the new one",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "conditions": deadline}),
            ),
            (Progressing, Some("RolloutPending")),
        ),
        (
            "a status written for an older spec",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
            ),
            (Progressing, Some("RolloutPending")),
        ),
        (
            "no status yet",
            mk_live(json!({"replicas": 1}), json!({})),
            (Progressing, Some("RolloutPending")),
        ),
        (
            "scaled to zero",
            mk_live(json!({"replicas": 0}), json!({"observedGeneration": 2})),
            (Healthy, None),
        ),
        (
            "scaled to zero while old pods terminate",
            mk_live(
                json!({"replicas": 0}),
                json!({"observedGeneration": 2, "replicas": 2}),
            ),
            (Progressing, Some("OldReplicasPending")),
        ),
        (
            "spec.replicas absent means one",
            mk_live(json!({}), json!({"observedGeneration": 2})),
            (Progressing, Some("RollingOut")),
        ),
    ];
    for (case, live, expected) in &cases {
        check("Deployment", case, live, *expected);
    }
}

#[test]
fn stateful_sets_finish_with_a_partition_or_on_delete() {
    let revisions = |current: &str, update: &str, ready: i64, updated: i64| {
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": ready,
            "updatedReplicas": updated, "currentRevision": current, "updateRevision": update})
    };
    let partition = |n: i64| json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": n}}});
    let on_delete = json!({"replicas": 3, "updateStrategy": {"type": "OnDelete"}});
    let cases = [
        (
            "rolled out",
            mk_live(json!({"replicas": 3}), revisions("web-2", "web-2", 3, 3)),
            (Healthy, None),
        ),
        (
            "pods still on the old revision",
            mk_live(json!({"replicas": 3}), revisions("web-1", "web-2", 3, 1)),
            (Progressing, Some("RollingOut")),
        ),
        (
            "pods not ready",
            mk_live(json!({"replicas": 3}), revisions("web-2", "web-2", 2, 3)),
            (Progressing, Some("WaitingForReady")),
        ),
        (
            "partition 2: one pod updated is all that was asked",
            mk_live(partition(2), revisions("web-1", "web-2", 3, 1)),
            (Healthy, None),
        ),
        (
            "partition 1: two pods must be updated",
            mk_live(partition(1), revisions("web-1", "web-2", 3, 1)),
            (Progressing, Some("RollingOut")),
        ),
        (
            "partition 0 is a full rollout",
            mk_live(partition(0), revisions("web-1", "web-2", 3, 3)),
            (Healthy, None),
        ),
        (
            "a partition above the replicas updates nothing",
            mk_live(partition(5), revisions("web-1", "web-2", 3, 0)),
            (Healthy, None),
        ),
        (
            "a partition still waits for ready pods",
            mk_live(partition(2), revisions("web-1", "web-2", 2, 1)),
            (Progressing, Some("WaitingForReady")),
        ),
        (
            "OnDelete: nothing updated until someone deletes pods, and that is done",
            mk_live(on_delete.clone(), revisions("web-1", "web-2", 3, 0)),
            (Healthy, None),
        ),
        (
            "OnDelete still waits for ready pods",
            mk_live(on_delete.clone(), revisions("web-1", "web-2", 1, 0)),
            (Progressing, Some("WaitingForReady")),
        ),
        (
            "OnDelete still waits for the spec to be observed",
            mk_live(
                on_delete,
                json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3}),
            ),
            (Progressing, Some("RolloutPending")),
        ),
        (
            "a status written for an older spec",
            mk_live(
                json!({"replicas": 3}),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3}),
            ),
            (Progressing, Some("RolloutPending")),
        ),
        (
            "observedGeneration 0 is never observed, whatever the generation",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 0}, "status": {}}),
            (Progressing, Some("RolloutPending")),
        ),
    ];
    for (case, live, expected) in &cases {
        check("StatefulSet", case, live, *expected);
    }
}

#[test]
fn daemon_sets_follow_kubectl_rollout_status() {
    let status = |updated: i64, available: i64| {
        json!({"observedGeneration": 2, "desiredNumberScheduled": 3,
            "updatedNumberScheduled": updated, "numberAvailable": available})
    };
    let on_delete = json!({"updateStrategy": {"type": "OnDelete"}});
    let cases = [
        (
            "rolled out",
            mk_live(json!({}), status(3, 3)),
            (Healthy, None),
        ),
        (
            "pods not yet updated",
            mk_live(json!({}), status(1, 3)),
            (Progressing, Some("RollingOut")),
        ),
        (
            "updated pods not yet available",
            mk_live(json!({}), status(3, 1)),
            (Progressing, Some("WaitingForAvailable")),
        ),
        (
            "a status written for an older spec",
            mk_live(
                json!({}),
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}),
            ),
            (Progressing, Some("RolloutPending")),
        ),
        (
            "OnDelete: old pods available is done",
            mk_live(on_delete.clone(), status(0, 3)),
            (Healthy, None),
        ),
        (
            "OnDelete still waits for available pods",
            mk_live(on_delete, status(0, 2)),
            (Progressing, Some("WaitingForAvailable")),
        ),
        (
            "no node to schedule on",
            mk_live(json!({}), json!({"observedGeneration": 2})),
            (Healthy, None),
        ),
    ];
    for (case, live, expected) in &cases {
        check("DaemonSet", case, live, *expected);
    }
}

#[test]
fn jobs_by_their_conditions() {
    let cases = [
        (
            "complete",
            json!({"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}),
            (Healthy, None),
        ),
        (
            "failed, with the controller's reason",
            json!({"status": {"conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "too many"}]}}),
            (Failed, Some("BackoffLimitExceeded")),
        ),
        (
            "failed, without a reason",
            json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
            (Failed, Some("JobFailed")),
        ),
        (
            "a condition that is not True does not count",
            json!({"status": {"active": 1, "conditions": [{"type": "Complete", "status": "False"}]}}),
            (Progressing, Some("Running")),
        ),
        (
            "running",
            json!({"status": {"active": 1}}),
            (Progressing, Some("Running")),
        ),
        (
            "retrying failed pods below the backoff limit",
            json!({"status": {"active": 1, "failed": 2}}),
            (Degraded, Some("PodsFailed")),
        ),
        (
            "suspended",
            json!({"spec": {"suspend": true}, "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
            (Progressing, Some("Suspended")),
        ),
    ];
    for (case, live, expected) in &cases {
        check("Job", case, live, *expected);
    }
}

#[test]
fn pods_by_waiting_reason_phase_and_readiness() {
    let ready = json!([{"type": "Ready", "status": "True"}]);
    let cases = [
        (
            "crash loop",
            json!({"status": {"phase": "Running", "containerStatuses": [{"name": "app", "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}}]}}),
            (Failed, Some("CrashLoopBackOff")),
        ),
        (
            "image pull in an init container",
            json!({"status": {"phase": "Pending", "initContainerStatuses": [{"name": "init",
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}),
            (Failed, Some("ImagePullBackOff")),
        ),
        (
            "ready",
            json!({"status": {"phase": "Running", "conditions": ready,
                "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"running": {}}}]}}),
            (Healthy, None),
        ),
        (
            "ready after restarts",
            json!({"status": {"phase": "Running", "conditions": ready,
                "containerStatuses": [{"name": "app", "restartCount": 2, "state": {"running": {}}}]}}),
            (Degraded, Some("Restarts")),
        ),
        (
            "running, not ready",
            json!({"status": {"phase": "Running"}}),
            (Progressing, Some("NotReady")),
        ),
        (
            "succeeded",
            json!({"status": {"phase": "Succeeded"}}),
            (Healthy, None),
        ),
        (
            "failed",
            json!({"status": {"phase": "Failed"}}),
            (Failed, Some("PodFailed")),
        ),
        (
            "pending",
            json!({"status": {"phase": "Pending"}}),
            (Progressing, Some("Pending")),
        ),
        (
            "no status at all",
            json!({}),
            (Progressing, Some("Pending")),
        ),
    ];
    for (case, live, expected) in &cases {
        check("Pod", case, live, *expected);
    }
    let crash = &cases[0].1;
    let message = assess(mk_key("Pod"), crash).unwrap().message.unwrap();
    assert_eq!(message, "container app: CrashLoopBackOff back-off 5m0s");
}

#[test]
fn pods_explain_a_rollout_that_does_not_finish() {
    let rolling = mk_live(
        json!({"replicas": 3}),
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
    );
    let done = mk_live(
        json!({"replicas": 3}),
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
    );
    let lost = mk_live(
        json!({"replicas": 3}),
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
    );
    let deadline = mk_live(
        json!({"replicas": 3}),
        json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "timed out"}]}),
    );
    let crashing = json!({"metadata": {"name": "web-7"}, "status": {"phase": "Running",
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    let unschedulable = json!({"metadata": {"name": "web-8"}, "status": {"phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu."}]}});
    let running = json!({"metadata": {"name": "web-1"}, "status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let cases = [
        (
            "no pods: the workload alone",
            &rolling,
            vec![],
            (Progressing, Some("RollingOut")),
        ),
        (
            "a crash loop fails a rollout",
            &rolling,
            vec![running.clone(), crashing.clone()],
            (Failed, Some("CrashLoopBackOff")),
        ),
        (
            "a crash loop outranks an unschedulable pod",
            &rolling,
            vec![unschedulable.clone(), crashing.clone()],
            (Failed, Some("CrashLoopBackOff")),
        ),
        (
            "an unschedulable pod says why it waits",
            &rolling,
            vec![unschedulable.clone()],
            (Progressing, Some("Unschedulable")),
        ),
        (
            "healthy pods change nothing",
            &rolling,
            vec![running.clone()],
            (Progressing, Some("RollingOut")),
        ),
        (
            "a finished rollout stays healthy",
            &done,
            vec![crashing.clone()],
            (Healthy, None),
        ),
        (
            "a crash loop fails a degraded workload",
            &lost,
            vec![crashing.clone()],
            (Failed, Some("CrashLoopBackOff")),
        ),
        (
            "an unschedulable pod does not soften degraded",
            &lost,
            vec![unschedulable.clone()],
            (Degraded, Some("UnavailableReplicas")),
        ),
        (
            "the workload's own failure stands",
            &deadline,
            vec![crashing.clone()],
            (Failed, Some("ProgressDeadlineExceeded")),
        ),
    ];
    for (case, live, pods, expected) in &cases {
        let health = assess_with_pods(mk_key("Deployment"), live, pods).expect("a workload");
        assert_eq!(
            (health.status, health.reason.as_deref()),
            *expected,
            "{case}: {:?}",
            health.message
        );
    }
    let health = assess_with_pods(mk_key("Deployment"), &rolling, &[crashing]).unwrap();
    assert_eq!(
        health.message.as_deref(),
        Some("pod web-7: container app: CrashLoopBackOff")
    );
    let health = assess_with_pods(mk_key("Deployment"), &rolling, &[unschedulable]).unwrap();
    assert_eq!(
        health.message.as_deref(),
        Some("pod web-8: 0/3 nodes are available: 3 Insufficient cpu.")
    );
    assert!(assess_with_pods(mk_key("ConfigMap"), &json!({}), &[running]).is_none());
}

#[test]
fn input_of_the_wrong_shape_is_judged_not_panicked_on() {
    for live in [
        json!(null),
        json!([1, 2]),
        json!({"status": "up"}),
        json!({"metadata": {"generation": "2"}, "spec": {"replicas": "3"}, "status": {"conditions": "none"}}),
    ] {
        for kind in ["Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"] {
            assert!(assess(mk_key(kind), &live).is_some(), "{kind}: {live}");
        }
    }
}

#[test]
fn worst_status_wins_and_other_kinds_have_none() {
    assert!(assess(mk_key("ConfigMap"), &json!({})).is_none());
    // A custom resource named like a built-in workload has a status of its own.
    let volcano = ObjectKey {
        api_version: "batch.volcano.sh/v1alpha1".into(),
        ..mk_key("Job")
    };
    let running = json!({"status": {"state": {"phase": "Running"}}});
    assert!(assess(volcano, &running).is_none());
    let custom = ObjectKey {
        api_version: "example.com/v1".into(),
        ..mk_key("Deployment")
    };
    assert!(assess(custom, &json!({"status": {}})).is_none());
    let objects = [Healthy, Failed, Progressing].map(|status| ObjectHealth {
        object: mk_key("Pod"),
        status,
        reason: None,
        message: None,
    });
    assert_eq!(summarize(&objects), Failed);
    assert_eq!(summarize(&[]), Healthy);
    for s in [Healthy, Progressing, Degraded, Failed] {
        assert_eq!(HealthStatus::parse(s.as_str()), Some(s));
    }
}

mod properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        /// Healthy exactly when `kubectl rollout status` says the rollout finished (and
        /// no progress deadline passed); a stale status is never failed, a surge never
        /// healthy.
        #[test]
        fn a_deployment_is_healthy_exactly_when_kubectl_is_done(
            generation in 1i64..4,
            observed in 0i64..4,
            desired in 0i64..5,
            replicas in 0i64..7,
            updated in 0i64..6,
            available in 0i64..6,
            deadline in any::<bool>(),
        ) {
            let mut status = json!({"observedGeneration": observed, "replicas": replicas,
                "updatedReplicas": updated, "availableReplicas": available});
            if deadline {
                status["conditions"] = json!([{"type": "Progressing", "status": "False",
                    "reason": "ProgressDeadlineExceeded"}]);
            }
            let live = json!({"metadata": {"generation": generation},
                "spec": {"replicas": desired}, "status": status});
            let health = assess(mk_key("Deployment"), &live).expect("a workload");
            let seen = observed >= generation;
            let done = seen && !deadline && updated >= desired && replicas <= updated
                && available >= updated;
            prop_assert_eq!(health.status == Healthy, done, "{:?}", health);
            if !seen {
                prop_assert_eq!(health.status, Progressing);
            }
            if replicas > updated {
                prop_assert_ne!(health.status, Healthy);
            }
        }

        /// With a partition, healthy once every pod is ready and the pods at or above
        /// the partition are updated, whatever the revisions say; under `OnDelete`,
        /// once every pod is ready.
        #[test]
        fn a_stateful_set_finishes_with_a_partition_or_on_delete(
            desired in 0i64..5,
            ready in 0i64..6,
            updated in 0i64..6,
            partition in proptest::option::of(0i64..6),
            on_delete in any::<bool>(),
        ) {
            let strategy = match (on_delete, partition) {
                (true, _) => json!({"type": "OnDelete"}),
                (false, Some(partition)) => json!({"type": "RollingUpdate",
                    "rollingUpdate": {"partition": partition}}),
                (false, None) => json!({"type": "RollingUpdate"}),
            };
            let live = json!({"metadata": {"generation": 1},
                "spec": {"replicas": desired, "updateStrategy": strategy},
                "status": {"observedGeneration": 1, "readyReplicas": ready,
                    "updatedReplicas": updated, "currentRevision": "a", "updateRevision": "b"}});
            let health = assess(mk_key("StatefulSet"), &live).expect("a workload");
            let done = ready >= desired
                && (on_delete
                    || partition.is_some_and(|p| updated >= (desired - p).max(0)));
            prop_assert_eq!(health.status == Healthy, done, "{:?}", health);
        }

        /// Healthy once the updated and the available pods reach the desired number
        /// (under `OnDelete`, the available ones).
        #[test]
        fn a_daemon_set_is_healthy_exactly_when_kubectl_is_done(
            desired in 0i64..5,
            updated in 0i64..6,
            available in 0i64..6,
            on_delete in any::<bool>(),
        ) {
            let strategy = if on_delete { "OnDelete" } else { "RollingUpdate" };
            let live = json!({"metadata": {"generation": 1},
                "spec": {"updateStrategy": {"type": strategy}},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": desired,
                    "updatedNumberScheduled": updated, "numberAvailable": available}});
            let health = assess(mk_key("DaemonSet"), &live).expect("a workload");
            let done = available >= desired && (on_delete || updated >= desired);
            prop_assert_eq!(health.status == Healthy, done, "{:?}", health);
        }
    }
}
