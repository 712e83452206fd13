//! Graceful eviction end to end (ROLLOUTS.md section 11), on SQLite and PostgreSQL: the
//! reference server in this process and real agent loops over `MemoryApplier`s,
//! long-polling over loopback. A relabel moves a placed stack from agent 0 to agent 1;
//! agent 0 keeps running it until agent 1 reports it healthy (no moment without the
//! workload), or, when agent 1 never gets healthy, until the policy's grace ends.

#[path = "rollouts/fleet.rs"]
#[allow(dead_code)]
#[macro_use]
mod fleet;
#[path = "../../brokkr-server/tests/common/pg_database.rs"]
#[allow(dead_code)]
mod pg;

use std::collections::BTreeMap;
use std::time::Instant;

use brokkr_core::health::HealthStatus;
use brokkr_core::{DeploymentObjectId, ObjectKey};
use fleet::{Backend, Fleet, eventually};
use serde_json::{Value, json};

/// A ConfigMap and a Deployment in `default`: nothing the guard protects, so the
/// automatic decision that moves it is not held.
fn app(version: &str) -> String {
    [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: web-config",
        "  namespace: default",
        "data:",
        &format!("  version: '{version}'"),
        "---",
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata:",
        "  name: web",
        "  namespace: default",
        "spec:",
        "  replicas: 1",
        "  selector:",
        "    matchLabels: {app: web}",
        "  template:",
        "    metadata:",
        "      labels: {app: web}",
        "    spec:",
        "      containers:",
        "      - name: web",
        &format!("        image: web:{version}"),
    ]
    .join("\n")
}

fn deployment() -> ObjectKey {
    ObjectKey {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("default".into()),
        name: "web".into(),
    }
}

/// Two agents, a stack placed on agent 0 (`tier=web`, one cluster) and running there;
/// agent 1 fits too but waits (incumbents first). With `degraded`, agent 1's cluster
/// reports the Deployment degraded forever.
async fn placed_on_agent_0(
    backend: Backend,
    grace_secs: u64,
    degraded: bool,
) -> Option<(Fleet, String, String)> {
    let labels = |i: usize| BTreeMap::from([("tier".to_owned(), ["web", "none"][i].to_owned())]);
    let fleet = Fleet::start(backend, 2, labels).await?;
    if degraded {
        fleet.agents[1].cluster.set_health(
            &deployment(),
            HealthStatus::Degraded,
            "CrashLoopBackOff",
        );
    }
    let stack = fleet.broker.post("/stacks", json!({"name": "web"})).await["id"]
        .as_str()
        .expect("stack id")
        .to_owned();
    let v1 = fleet.deploy(&stack, &app("1")).await;
    // Agents are placed once they beat: wait for the decision to choose agent 0.
    let policy = json!({
        "agent_selector": {"matchLabels": {"tier": "web"}},
        "max_clusters": 1,
        "eviction_grace_secs": grace_secs,
    });
    eventually("the stack placed on agent 0", || async {
        let placement = fleet
            .broker
            .put(&format!("/stacks/{stack}/placement"), policy.clone())
            .await;
        (placement["decision"]["chosen"] == json!([fleet.agents[0].id])).then_some(())
    })
    .await;
    fleet.wait_applied(&[0], &v1).await;
    fleet
        .broker
        .post(
            &format!("/agents/{}/labels", fleet.agents[1].id),
            json!({"key": "tier", "value": "web"}),
        )
        .await;
    Some((fleet, stack, v1))
}

/// Relabels agent 0 out of the selector: the decision moves the stack to agent 1.
async fn move_to_agent_1(fleet: &Fleet, stack: &str) -> Value {
    fleet
        .broker
        .post(
            &format!("/agents/{}/labels", fleet.agents[0].id),
            json!({"key": "tier", "value": "batch"}),
        )
        .await;
    let placement = fleet
        .broker
        .get(&format!("/stacks/{stack}/placement"))
        .await;
    assert_eq!(
        placement["decision"]["chosen"],
        json!([fleet.agents[1].id]),
        "{placement}"
    );
    placement
}

fn runs_it(fleet: &Fleet, agent: usize) -> bool {
    fleet.agents[agent].cluster.get(&deployment()).is_some()
}

/// Agent 0 keeps the workload until agent 1 reports it healthy: at no moment does
/// neither cluster run it. The decision shows agent 0 leaving, waiting for agent 1.
async fn the_old_agent_keeps_the_stack_until_the_new_one_is_healthy(backend: Backend) {
    let Some((fleet, stack, v1)) = placed_on_agent_0(backend, 600, false).await else {
        return;
    };
    // Agent 1's workload starts out progressing, so that agent 0 is still leaving when
    // the test reads the decision: a healthy report can otherwise reach the server, and
    // release agent 0, between the relabel and the read.
    let cluster_1 = &fleet.agents[1].cluster;
    cluster_1.set_health(
        &deployment(),
        HealthStatus::Progressing,
        "ContainerCreating",
    );
    let placement = move_to_agent_1(&fleet, &stack).await;
    let leaving = &placement["decision"]["leaving"];
    assert_eq!(
        leaving[0]["agent_id"],
        fleet.agents[0].id.as_str(),
        "{placement}"
    );
    assert_eq!(leaving[0]["waiting_for"], json!([fleet.agents[1].id]));
    cluster_1.set_health(&deployment(), HealthStatus::Healthy, "Available");
    let v1_id: DeploymentObjectId = v1.parse().expect("id");
    let started = Instant::now();
    eventually("agent 0 released", || async {
        let old = runs_it(&fleet, 0);
        let new = runs_it(&fleet, 1);
        assert!(old || new, "neither cluster runs the workload");
        (!old).then_some(())
    })
    .await;
    let moved_in = started.elapsed();
    assert!(
        fleet.agents[1].applied().contains(&v1_id),
        "agent 0 lost the stack before agent 1 applied it"
    );
    let health = fleet.broker.get(&format!("/stacks/{stack}/health")).await;
    let reported = health["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|r| r["agent_id"] == fleet.agents[1].id.as_str() && r["status"] == "healthy");
    assert!(
        reported,
        "released before agent 1 reported healthy: {health}"
    );
    let placement = fleet
        .broker
        .get(&format!("/stacks/{stack}/placement"))
        .await;
    assert!(
        placement["decision"].get("leaving").is_none(),
        "{placement}"
    );
    eprintln!("moved from agent 0 to agent 1 in {moved_in:?}");
    fleet.teardown().await;
}

/// Agent 1 never reports the stack healthy: agent 0 keeps it for the grace (3 s),
/// then loses it.
async fn a_replacement_never_healthy_ends_the_grace(backend: Backend) {
    let Some((fleet, stack, _v1)) = placed_on_agent_0(backend, 3, true).await else {
        return;
    };
    let placement = move_to_agent_1(&fleet, &stack).await;
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(placement["decision"]["leaving"][0]["until"].clone())
            .expect("until");
    eventually("agent 0 released", || async {
        (!runs_it(&fleet, 0)).then_some(())
    })
    .await;
    let released = chrono::Utc::now();
    assert!(
        released >= until,
        "released before the grace ended ({until})"
    );
    assert!(
        released - until < chrono::Duration::seconds(10),
        "released long after the grace ended ({until}, {released})"
    );
    assert!(runs_it(&fleet, 1), "agent 1 runs it, degraded");
    fleet.teardown().await;
}

/// Scenario 9, a spread move mid-rollout: agent 0 runs the candidate (pinned, baking)
/// when the stack moves to agent 1. Agent 0 stays placed, so it stays in the rollout,
/// until agent 1 runs the release head healthy; then it is `removed`, agent 1 rolls
/// out in a wave appended for it, and the rollout releases the candidate.
async fn a_spread_move_mid_rollout_keeps_the_old_agent_until_the_new_one_is_healthy(
    backend: Backend,
) {
    let Some((fleet, stack, v1)) = placed_on_agent_0(backend, 600, false).await else {
        return;
    };
    let policy = json!({
        "waves": [{"name": "all", "select": {"remaining": true}}],
        "bake_time": "3s",
        "progress_deadline": "20s"
    });
    fleet
        .broker
        .put(&format!("/stacks/{stack}/rollout-policy"), policy)
        .await;
    let v2 = fleet.deploy(&stack, &app("2")).await;
    let rollout = fleet.newest_rollout_id(&stack).await;
    fleet.wait_applied(&[0], &v2).await;

    move_to_agent_1(&fleet, &stack).await;
    let v1_id: DeploymentObjectId = v1.parse().expect("id");
    eventually("agent 0 released", || async {
        let old = runs_it(&fleet, 0);
        assert!(
            old || runs_it(&fleet, 1),
            "neither cluster runs the workload"
        );
        (!old).then_some(())
    })
    .await;
    assert!(
        fleet.agents[1].applied().contains(&v1_id),
        "agent 0 lost the stack before agent 1 ran the release head"
    );

    let details = fleet.wait_state(&rollout, "succeeded").await;
    let state_of = |i: usize| {
        details["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["agent_id"] == fleet.agents[i].id.as_str())
            .map(|a| a["state"].clone())
    };
    assert_eq!(state_of(0), Some(json!("removed")), "{details}");
    assert_eq!(state_of(1), Some(json!("healthy")), "{details}");
    fleet.wait_applied(&[1], &v2).await;
    assert_eq!(fleet.broker.pins().await, 0, "pins left after the rollout");
    fleet.teardown().await;
}

on_both_backends!(
    the_old_agent_keeps_the_stack_until_the_new_one_is_healthy,
    a_replacement_never_healthy_ends_the_grace,
    a_spread_move_mid_rollout_keeps_the_old_agent_until_the_new_one_is_healthy,
);
