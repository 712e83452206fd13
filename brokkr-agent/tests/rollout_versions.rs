//! Rollout scenario 8 (ROLLOUTS.md section 12): objects appended while a rollout
//! runs, under each `on_new_version` rule (`queue`, `supersede`, `reject`) and an
//! admin's `?rollout=immediate` hotfix, on SQLite and PostgreSQL, with the reference
//! server in this process and real agent loops over `MemoryApplier`s.

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

use brokkr_core::DeploymentObjectId;
use fleet::{Backend, app};
use rings::{ring_policy, rings_on_v1};
use serde_json::{Value, json};

/// Scenario 8: objects appended during a rollout queue; only the newest waiting one
/// is kept, and it rolls out after the running one.
async fn a_burst_queues_only_the_newest(backend: Backend) {
    let Some((fleet, stack, _v1)) = rings_on_v1(backend, 2, 2, ring_policy(1, "2s")).await else {
        return;
    };
    let v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    // v2's rollout runs before the burst, or v3 would replace it while queued.
    let first = fleet.newest_rollout_id(&stack).await;
    fleet::eventually("v2's rollout to start", || async {
        let details = fleet.rollout(&first).await;
        (details["rollout"]["state"] == "running").then_some(())
    })
    .await;
    let _v3 = fleet.deploy(&stack, &app("shop", "3")).await;
    let v4 = fleet.deploy(&stack, &app("shop", "4")).await;
    let page = fleet
        .broker
        .get(&format!("/stacks/{stack}/rollouts?limit=10"))
        .await;
    let states: Vec<(String, String)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["candidate_deployment_object_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 3, "{states:?}");
    assert_eq!(states[0], (v4.clone(), "queued".to_owned()), "{states:?}");
    assert_eq!(states[1].1, "superseded", "{states:?}");
    assert_eq!(states[2].0, v2);
    let newest = page["items"][0]["id"].as_str().expect("id").to_owned();
    fleet.wait_state(&newest, "succeeded").await;
    let all: Vec<usize> = (0..fleet.agents.len()).collect();
    fleet.wait_applied(&all, &v4).await;
    fleet.teardown().await;
}

/// Scenario 8, `supersede`: an object appended while wave 0 bakes ends the running
/// rollout (its pins removed) and rolls out at once in its place; the later rings
/// never apply the superseded version.
async fn a_superseding_rollout_takes_over(backend: Backend) {
    let mut policy = ring_policy(2, "30s");
    policy["on_new_version"] = json!("supersede");
    let Some((fleet, stack, _v1)) = rings_on_v1(backend, 3, 2, policy).await else {
        return;
    };
    let v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let v2_id: DeploymentObjectId = v2.parse().expect("id");
    let first = fleet.newest_rollout_id(&stack).await;
    fleet.wait_applied(&[0, 1], &v2).await;
    fleet::eventually("wave 0 to bake", || async {
        let details = fleet.rollout(&first).await;
        (details["waves"][0]["state"] == "baking").then_some(())
    })
    .await;

    let v3 = fleet.deploy(&stack, &app("shop", "3")).await;
    let details = fleet.wait_state(&first, "superseded").await;
    assert!(details["rollout"]["finished_at"].is_string(), "{details}");
    let second = fleet.newest_rollout(&stack).await;
    assert_eq!(second["candidate_deployment_object_id"], v3.as_str());
    let second = second["id"].as_str().expect("rollout id").to_owned();
    assert_ne!(second, first);
    // Its bake is 30 s a wave: promote each wave rather than wait.
    for wave in 0..3 {
        let state = fleet::eventually(
            &format!("wave {wave} of the new rollout to bake"),
            || async {
                let details = fleet.rollout(&second).await;
                let state = details["waves"][wave]["state"].clone();
                (state == "baking" || state == "succeeded").then_some(state)
            },
        )
        .await;
        if state == "baking" {
            let path = format!("/rollouts/{second}/promote");
            fleet.broker.post(&path, json!({})).await;
        }
    }
    fleet.wait_state(&second, "succeeded").await;
    let all: Vec<usize> = (0..fleet.agents.len()).collect();
    fleet.wait_applied(&all, &v3).await;
    for agent in &fleet.agents[2..] {
        assert!(
            !agent.applied().contains(&v2_id),
            "{} is in a later ring and applied the superseded version",
            agent.name
        );
    }
    assert_eq!(fleet.broker.pins().await, 0, "pins left after the rollout");
    fleet.teardown().await;
}

/// A reverted candidate is rejected: appending the same content again is held by the
/// guard (409 `blast_radius_exceeded`, rule `rejected_by_rollout`) until an admin
/// confirms the plan, and then rolls out again.
async fn a_reverted_candidate_needs_a_confirmation_to_return(backend: Backend) {
    let Some((fleet, stack, _v1)) = rings_on_v1(backend, 2, 1, ring_policy(1, "30s")).await else {
        return;
    };
    let v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let rollout = fleet.newest_rollout_id(&stack).await;
    fleet.wait_applied(&[0], &v2).await;
    fleet
        .broker
        .post(&format!("/rollouts/{rollout}/abort"), json!({}))
        .await;
    fleet.wait_state(&rollout, "reverted").await;

    let path = format!("/stacks/{stack}/deployment-objects");
    let again = json!({"yaml_content": app("shop", "2")});
    let (status, held) = fleet
        .broker
        .call(reqwest::Method::POST, &path, Some(again.clone()))
        .await;
    assert_eq!(status, 409, "{held}");
    assert_eq!(held["code"], "blast_radius_exceeded", "{held}");
    let violations = held["details"]["violations"]
        .as_array()
        .expect("violations");
    let rejected = violations
        .iter()
        .find(|v| v["rule"] == "rejected_by_rollout")
        .unwrap_or_else(|| panic!("no rejected_by_rollout violation: {held}"));
    assert_eq!(rejected["rollout_id"], rollout.as_str(), "{held}");
    assert_eq!(rejected["deployment_object_id"], v2.as_str(), "{held}");
    // Held means nothing was stored: the stack's rollouts are as they were.
    assert_eq!(fleet.newest_rollout(&stack).await["id"], rollout.as_str());

    let plan = held["details"]["plan_id"].as_str().expect("plan id");
    let confirmed = fleet
        .broker
        .post(&format!("{path}?confirm_plan_id={plan}"), again)
        .await;
    let v2_again = confirmed["id"].as_str().expect("object id").to_owned();
    assert_ne!(v2_again, v2, "a new object, as objects are append-only");
    let second = fleet.newest_rollout(&stack).await;
    assert_ne!(second["id"], rollout.as_str(), "a new rollout: {second}");
    assert_eq!(second["candidate_deployment_object_id"], v2_again.as_str());
    fleet.teardown().await;
}

/// Scenario 8, `reject`: an append while a rollout runs is refused with 409
/// `rollout_in_progress` and stores nothing; `?rollout=immediate` (admin) goes past the
/// policy, cancels the rollout and reaches every agent.
async fn a_rejecting_policy_refuses_and_a_hotfix_goes_past_it(backend: Backend) {
    let mut policy = ring_policy(1, "30s");
    policy["on_new_version"] = json!("reject");
    let Some((fleet, stack, _v1)) = rings_on_v1(backend, 2, 1, policy).await else {
        return;
    };
    let _v2 = fleet.deploy(&stack, &app("shop", "2")).await;
    let rollout = fleet.newest_rollout_id(&stack).await;
    let objects = |body: Value| body["items"].as_array().map_or(0, Vec::len);
    let before = objects(
        fleet
            .broker
            .get(&format!("/stacks/{stack}/deployment-objects"))
            .await,
    );
    let (status, refused) = fleet
        .broker
        .call(
            reqwest::Method::POST,
            &format!("/stacks/{stack}/deployment-objects"),
            Some(json!({"yaml_content": app("shop", "3")})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["code"], "rollout_in_progress", "{refused}");
    let after = objects(
        fleet
            .broker
            .get(&format!("/stacks/{stack}/deployment-objects"))
            .await,
    );
    assert_eq!(after, before, "a refused append stored an object");

    let hotfix = fleet
        .broker
        .post(
            &format!("/stacks/{stack}/deployment-objects?rollout=immediate"),
            json!({"yaml_content": app("shop", "hotfix")}),
        )
        .await;
    let hotfix = hotfix["id"].as_str().expect("id").to_owned();
    fleet.wait_state(&rollout, "cancelled").await;
    fleet.wait_applied(&[0, 1], &hotfix).await;
    assert_eq!(fleet.broker.pins().await, 0, "pins left after the hotfix");
    fleet.teardown().await;
}

on_both_backends!(
    a_burst_queues_only_the_newest,
    a_superseding_rollout_takes_over,
    a_reverted_candidate_needs_a_confirmation_to_return,
    a_rejecting_policy_refuses_and_a_hotfix_goes_past_it,
);
