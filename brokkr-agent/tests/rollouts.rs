//! Progressive rollouts end to end (ROLLOUTS.md section 12), on SQLite and
//! PostgreSQL: the reference server in this process, real agent loops over
//! `MemoryApplier`s long-polling their target state over HTTP on loopback, and the
//! driver stepping rollouts every 100 ms. Timers are seconds long so the scenarios run
//! on the server's real clock (agents' events are stamped by it); the pure `step` is
//! driven by a fake clock in `brokkr-core`'s own tests.

#[path = "rollouts/fleet.rs"]
#[allow(dead_code)]
#[macro_use]
mod fleet;
#[path = "../../brokkr-server/tests/common/pg_database.rs"]
#[allow(dead_code)]
mod pg;
#[path = "rollouts/rings.rs"]
#[allow(dead_code)]
mod rings;

use brokkr_core::health::HealthStatus;
use brokkr_core::{DeploymentObjectId, ObjectKey};
use fleet::{Backend, Fleet, app, eventually};
use rings::{ring_policy, rings_on_v1};
use serde_json::{Value, json};

fn agents_in(details: &Value, states: &[&str]) -> usize {
    details["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter(|agent| states.iter().any(|state| agent["state"] == *state))
        .count()
}

/// Scenario 1: waves in order, never more than `max_concurrency` agents in flight, an
/// agent counted healthy only once it applied the candidate; at the end every agent
/// runs the candidate from the release head, with no pin left.
async fn waves_run_in_order_within_the_budget(backend: Backend) {
    let Some((fleet, stack, _v1)) = rings_on_v1(backend, 3, 20, ring_policy(5, "1s")).await else {
        return;
    };
    let v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let rollout = fleet.newest_rollout(&stack).await;
    assert_eq!(rollout["candidate_deployment_object_id"], v2.as_str());
    let id = rollout["id"].as_str().expect("rollout id").to_owned();

    let details = eventually("the rollout to finish", || async {
        let details = fleet.rollout(&id).await;
        let in_flight = agents_in(&details, &["pinned", "applied"]);
        assert!(in_flight <= 5, "{in_flight} agents in flight: {details}");
        for agent in details["agents"].as_array().expect("agents") {
            if agent["state"] == "healthy" {
                let sim = fleet
                    .agents
                    .iter()
                    .find(|sim| agent["agent_id"] == sim.id.as_str())
                    .expect("a fleet agent");
                assert!(
                    sim.applied().contains(&v2_id),
                    "{} counted healthy before it applied the candidate",
                    sim.name
                );
            }
        }
        let waves = details["waves"].as_array().expect("waves");
        for pair in waves.windows(2) {
            if pair[1]["state"] != "pending" {
                assert_eq!(
                    pair[0]["state"], "succeeded",
                    "a wave started early: {details}"
                );
            }
        }
        (details["rollout"]["state"] == "succeeded").then_some(details)
    })
    .await;
    assert_eq!(details["waves"].as_array().expect("waves").len(), 3);
    assert_eq!(agents_in(&details, &["healthy"]), 60, "{details}");
    for agent in &fleet.agents {
        let state = fleet
            .broker
            .get(&format!("/agents/{}/target-state", agent.id))
            .await;
        assert_eq!(
            state["entries"][0]["deployment_object"]["id"], v2,
            "{} is not on the release head",
            agent.name
        );
    }
    assert_eq!(fleet.broker.pins().await, 0, "pins left after success");
    fleet.teardown().await;
}

/// Scenario 2: a crash in wave 2 reverts at once: every pin goes, wave 3 never sees
/// the candidate, the agents that had it go back to the baseline.
async fn a_crash_in_wave_two_reverts_everyone(backend: Backend) {
    let Some((fleet, stack, v1)) = rings_on_v1(backend, 3, 5, ring_policy(5, "1s")).await else {
        return;
    };
    // The candidate brings a workload that crashes on ring 1 only.
    let crasher = ObjectKey {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: "worker".into(),
    };
    for agent in &fleet.agents[5..10] {
        agent
            .cluster
            .set_health(&crasher, HealthStatus::Failed, "CrashLoopBackOff");
    }
    let candidate = format!(
        "{}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: worker\n  namespace: shop\n\
         spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: worker}}\n  template:\n    metadata:\n      labels: {{app: worker}}\n    spec:\n      containers:\n      - name: worker\n        image: worker:2\n",
        app("shop", "2")
    );
    let v2 = fleet.deploy(&stack, &candidate).await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let v1_id: DeploymentObjectId = v1.parse().expect("id");
    let id = fleet.newest_rollout_id(&stack).await;
    let details = fleet.wait_state(&id, "reverted").await;
    assert_eq!(details["waves"][1]["state"], "failed", "{details}");
    assert_eq!(fleet.broker.pins().await, 0, "pins left after the revert");
    for agent in &fleet.agents[10..15] {
        assert!(
            !agent.applied().contains(&v2_id),
            "{} in wave 3 saw the candidate",
            agent.name
        );
    }
    let had_candidate: Vec<usize> = (0..10)
        .filter(|&i| fleet.agents[i].applied().contains(&v2_id))
        .collect();
    assert!(!had_candidate.is_empty(), "nobody got the candidate");
    for &i in &had_candidate {
        let applies = fleet.agents[i].applied();
        assert_eq!(
            applies.last(),
            Some(&v1_id),
            "{} is not back on the baseline",
            fleet.agents[i].name
        );
    }
    fleet.teardown().await;
}

/// Scenario 2, refused: ring 1's clusters refuse the candidate outright (an admission
/// policy), so those agents never leave the baseline; the revert still ends
/// `reverted` at once, each of them acknowledging the baseline, rather than waiting
/// for `progress_deadline` and calling it `revert_failed`.
async fn a_refused_candidate_reverts_and_the_revert_completes(backend: Backend) {
    let Some((fleet, stack, v1)) = rings_on_v1(backend, 2, 3, ring_policy(3, "1s")).await else {
        return;
    };
    for agent in &fleet.agents[3..6] {
        agent
            .cluster
            .reject_kind("Secret", "denied by an admission policy");
    }
    let candidate = format!(
        "{}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: shop\n",
        app("shop", "2")
    );
    let v2 = fleet.deploy(&stack, &candidate).await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let v1_id: DeploymentObjectId = v1.parse().expect("id");
    let id = fleet.newest_rollout_id(&stack).await;
    let details = fleet.wait_state(&id, "reverted").await;
    assert_eq!(details["waves"][1]["state"], "failed", "{details}");
    assert_eq!(
        agents_in(&details, &["reverted_ok"]),
        6,
        "every agent acknowledged the baseline: {details}"
    );
    assert_eq!(fleet.broker.pins().await, 0, "pins left after the revert");
    for agent in &fleet.agents[3..6] {
        assert!(
            !agent.applied().contains(&v2_id),
            "{} applied it",
            agent.name
        );
        assert_eq!(agent.applied().last(), Some(&v1_id));
    }
    fleet.teardown().await;
}

/// Scenario 5: an agent offline when its wave starts is skipped and never gets the
/// candidate; after a revert it converges to the baseline without ever applying it.
async fn an_offline_agent_is_skipped(backend: Backend) {
    let Some((mut fleet, stack, _v1)) = rings_on_v1(backend, 2, 3, ring_policy(3, "1s")).await
    else {
        return;
    };
    fleet.agents[4].go_offline();
    // Stale after 3 s without a heartbeat.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let id = fleet.newest_rollout_id(&stack).await;
    let details = fleet.wait_state(&id, "succeeded").await;
    let offline = details["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|agent| agent["agent_id"] == fleet.agents[4].id.as_str())
        .expect("the offline agent is in a wave")
        .clone();
    assert_eq!(offline["state"], "skipped", "{details}");
    assert!(!fleet.agents[4].applied().contains(&v2_id));
    // Back online, it gets the release head: the candidate, now released.
    let url = fleet.broker.url.clone();
    fleet.agents[4].start(&url);
    fleet.wait_applied(&[4], &v2).await;
    fleet.teardown().await;
}

/// Scenario 5, after the pin: an agent that goes silent once pinned times out, which
/// fails its wave; the revert does not wait for it, and back online it stays on the
/// baseline without ever applying the candidate. An approval before wave 1 lets the
/// agent go silent at a known moment, while its heartbeat is still fresh.
async fn a_silent_pinned_agent_times_out_and_the_revert_goes_on(backend: Backend) {
    let mut policy = ring_policy(3, "1s");
    policy["progress_deadline"] = json!("3s");
    policy["gates"] = json!([
        {"name": "go", "type": "approval", "phase": "before_wave", "waves": ["ring-1"]}
    ]);
    let Some((mut fleet, stack, v1)) = rings_on_v1(backend, 2, 3, policy).await else {
        return;
    };
    let v1_id: DeploymentObjectId = v1.parse().expect("id");
    let v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let id = fleet.newest_rollout_id(&stack).await;
    eventually("wave 1 to wait for its approval", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][1]["state"] == "gating").then_some(())
    })
    .await;
    fleet.agents[4].go_offline();
    fleet
        .broker
        .post(&format!("/rollouts/{id}/approve"), json!({"wave": 1}))
        .await;
    let details = fleet.wait_state(&id, "reverted").await;
    let wave = &details["waves"][1];
    assert_eq!(wave["state"], "failed", "{details}");
    // The wave's reason keeps who failed and why; the agent itself is `reverted` now.
    let reason = wave["reason"].as_str().unwrap_or_default();
    let timed_out = format!("agent {} timed_out", fleet.agents[4].id);
    assert!(reason.contains(&timed_out), "{details}");
    let silent = details["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|agent| agent["agent_id"] == fleet.agents[4].id.as_str())
        .expect("the silent agent is in wave 1")
        .clone();
    assert_eq!(silent["wave"], 1, "{details}");
    assert!(
        silent["pinned_at"].is_string(),
        "it was pinned before it went silent: {details}"
    );
    assert!(!fleet.agents[4].applied().contains(&v2_id));

    let before = fleet.agents[4].applied().len();
    let url = fleet.broker.url.clone();
    fleet.agents[4].start(&url);
    let applied = eventually("the agent to apply again once back", || async {
        let applied = fleet.agents[4].applied();
        (applied.len() > before).then_some(applied)
    })
    .await;
    assert!(!applied.contains(&v2_id), "{applied:?}");
    assert_eq!(applied.last(), Some(&v1_id), "{applied:?}");
    fleet.teardown().await;
}

/// Scenario 4: a flap during the bake restarts it; a lasting one fails the agent, and
/// the wave with it.
async fn a_flap_restarts_the_bake_and_a_lasting_one_fails(backend: Backend) {
    let mut policy = ring_policy(2, "3s");
    policy["progress_deadline"] = json!("6s");
    let Some((fleet, stack, _v1)) = rings_on_v1(backend, 2, 2, policy).await else {
        return;
    };
    let web = ObjectKey {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: "web".into(),
    };
    let _v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let id = fleet.newest_rollout_id(&stack).await;
    let baking = eventually("wave 0 to bake", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][0]["state"] == "baking").then_some(details)
    })
    .await;
    let first_since = baking["waves"][0]["all_healthy_since"].clone();
    // A short flap: degraded for about a second, then healthy again.
    fleet.agents[0]
        .cluster
        .set_health(&web, HealthStatus::Degraded, "1/2 replicas ready");
    eventually("the flap to stop the bake", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][0]["state"] == "running").then_some(())
    })
    .await;
    fleet.agents[0]
        .cluster
        .set_health(&web, HealthStatus::Healthy, "recovered");
    let rebaking = eventually("wave 0 to bake again", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][0]["state"] == "baking").then_some(details)
    })
    .await;
    assert_ne!(
        rebaking["waves"][0]["all_healthy_since"], first_since,
        "the bake restarted from the recovery"
    );
    eventually("wave 0 to succeed", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][0]["state"] == "succeeded").then_some(())
    })
    .await;
    // Wave 1: degraded for longer than the progress deadline fails it.
    for agent in &fleet.agents[2..4] {
        agent
            .cluster
            .set_health(&web, HealthStatus::Degraded, "CrashLoopBackOff");
    }
    let details = fleet.wait_state(&id, "reverted").await;
    assert_eq!(details["waves"][1]["state"], "failed", "{details}");
    assert!(
        details["waves"][1]["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "a failed wave says why: {details}"
    );
    assert_eq!(
        details["waves"][0]["state"], "succeeded",
        "the flap of wave 0 did not fail it"
    );
    fleet.teardown().await;
}

/// Scenario 9: placement changes mid-rollout: an agent the stack leaves is `removed`
/// and never gets the candidate; an agent the stack gains joins a wave not yet started
/// and ends on the candidate.
async fn placement_changes_mid_rollout(backend: Backend) {
    let Some((fleet, stack, v1)) = rings_on_v1(backend, 3, 2, ring_policy(1, "2s")).await else {
        return;
    };
    // agent-005 (ring 2) starts outside the stack; it is assigned during the rollout.
    unassign_confirmed(&fleet, 5, &stack).await;
    // Until agent-005 reports the stack removed, the guard counts that removal against
    // any new object (it still prunes a Namespace there): wait for the report.
    let v2 = eventually("an append the guard lets through", || async {
        let (status, body) = fleet
            .broker
            .call(
                reqwest::Method::POST,
                &format!("/stacks/{stack}/deployment-objects"),
                Some(json!({"yaml_content": app("shop", "2")})),
            )
            .await;
        match status {
            201 => Some(body["id"].as_str().expect("id").to_owned()),
            409 if body["code"] == "blast_radius_exceeded" => None,
            other => panic!("append: {other} {body}"),
        }
    })
    .await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let id = fleet.newest_rollout_id(&stack).await;
    eventually("wave 0 to start", || async {
        let details = fleet.rollout(&id).await;
        // No waves yet while the rollout is queued.
        let started = details["waves"][0]["state"]
            .as_str()
            .is_some_and(|state| state != "pending");
        started.then_some(())
    })
    .await;
    // agent-004 (ring 2, not started) leaves; agent-005 joins.
    unassign_confirmed(&fleet, 4, &stack).await;
    fleet
        .broker
        .post(
            &format!("/agents/{}/targets", fleet.agents[5].id),
            json!({"stack_id": stack}),
        )
        .await;
    let details = fleet.wait_state(&id, "succeeded").await;
    let state_of = |agent: &str| {
        details["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["agent_id"] == agent)
            .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        state_of(&fleet.agents[4].id).as_deref(),
        Some("removed"),
        "{details}"
    );
    assert_eq!(
        state_of(&fleet.agents[5].id).as_deref(),
        Some("healthy"),
        "{details}"
    );
    assert!(
        !fleet.agents[4].applied().contains(&v2_id),
        "a removed agent got the candidate"
    );
    fleet.wait_applied(&[5], &v2).await;
    let _ = v1;
    fleet.teardown().await;
}

/// Takes `stack` off agent `i`: the guard holds the removal (it prunes a Namespace, a
/// protected kind), so the admin confirms the plan it answers; a plan the moving
/// rollout made stale meanwhile (`plan_stale`) is made again.
async fn unassign_confirmed(fleet: &Fleet, i: usize, stack: &str) {
    let path = format!("/agents/{}/targets/{stack}", fleet.agents[i].id);
    eventually("a confirmed unassignment", || async {
        let (status, held) = fleet
            .broker
            .call(reqwest::Method::DELETE, &path, None)
            .await;
        assert_eq!(status, 409, "{held}");
        assert_eq!(held["code"], "blast_radius_exceeded", "{held}");
        let plan = held["details"]["plan_id"].as_str().expect("plan id");
        let (status, body) = fleet
            .broker
            .call(
                reqwest::Method::DELETE,
                &format!("{path}?confirm_plan_id={plan}"),
                None,
            )
            .await;
        match status {
            200..=299 => Some(()),
            409 if body["code"] == "plan_stale" => None,
            other => panic!("confirm: {other} {body}"),
        }
    })
    .await;
}

/// Scenario 6: the server is killed mid-bake and started again on the same database:
/// the bake resumes from its stored start and ends on time, within a poll or two.
async fn a_restart_mid_bake_resumes_the_bake(backend: Backend) {
    let Some((mut fleet, stack, _v1)) = rings_on_v1(backend, 2, 2, ring_policy(2, "4s")).await
    else {
        return;
    };
    let _v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let id = fleet.newest_rollout_id(&stack).await;
    let baking = eventually("wave 0 to bake", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][0]["state"] == "baking").then_some(details)
    })
    .await;
    let since: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(baking["waves"][0]["all_healthy_since"].clone()).expect("since");
    fleet.broker.kill();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    fleet.broker.serve().await;
    let details = eventually("wave 0 to succeed after the restart", || async {
        let details = fleet.rollout(&id).await;
        (details["waves"][0]["state"] == "succeeded").then_some(details)
    })
    .await;
    let ended: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(details["waves"][0]["finished_at"].clone()).expect("finished");
    let bake = (ended - since).num_milliseconds();
    assert!(
        (4_000..=7_000).contains(&bake),
        "the bake took {bake} ms across the restart, not 4 s: {details}"
    );
    fleet.wait_state(&id, "succeeded").await;
    fleet.teardown().await;
}

on_both_backends!(
    waves_run_in_order_within_the_budget,
    a_crash_in_wave_two_reverts_everyone,
    a_refused_candidate_reverts_and_the_revert_completes,
    an_offline_agent_is_skipped,
    a_silent_pinned_agent_times_out_and_the_revert_goes_on,
    a_flap_restarts_the_bake_and_a_lasting_one_fails,
    placement_changes_mid_rollout,
    a_restart_mid_bake_resumes_the_bake,
);
