//! The seeded world's rollout: a stack whose second deployment object is rolling out,
//! its only wave waiting for an approval, stepped by the real `step` and stored as the
//! driver would have stored it, with its next evaluation a day away so no driver of the
//! test touches it before a command makes it due.

use brokkr_core::rollout::{AgentView, RolloutPolicy, step};
use brokkr_core::store::RolloutFilter;
use brokkr_core::{
    Actor, AgentId, GeneratorId, NewDeploymentObject, NewStack, PageRequest, RolloutId, StackId,
    Store,
};
use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::CONFIGMAP_YAML;

/// What [`seed`] made.
pub struct Seeded {
    /// `stack-rollout`, with a rollout policy.
    pub stack: StackId,
    /// Its running rollout, wave 0 waiting for approval.
    pub rollout: RolloutId,
}

/// Seeds `stack-rollout` of `generator` and a rollout of its second object whose one
/// wave (holding `agent`) waits for an approval gate.
pub async fn seed(store: &dyn Store, generator: GeneratorId, agent: AgentId) -> Seeded {
    let sys = Actor::System;
    let stack = store
        .create_stack(
            &sys,
            NewStack {
                name: "stack-rollout".into(),
                generator_id: Some(generator),
                ..Default::default()
            },
        )
        .await
        .expect("create the rollout stack")
        .id;
    let append = |yaml: String| async move {
        let new = NewDeploymentObject::from_yaml(stack, yaml).expect("valid YAML");
        store
            .append_deployment_object(&sys, new)
            .await
            .expect("append")
    };
    append(CONFIGMAP_YAML.to_owned()).await;
    let policy: RolloutPolicy = serde_json::from_value(json!({
        "waves": [{"name": "all", "select": {"remaining": true}}],
        "gates": [{"name": "go", "type": "approval", "phase": "before_wave"}]
    }))
    .expect("a policy");
    store
        .set_rollout_policy(&sys, stack, Some(policy))
        .await
        .expect("set the rollout policy");
    append(CONFIGMAP_YAML.replace("value", "value-2")).await;
    let filter = RolloutFilter {
        stack_id: Some(stack),
        state: None,
    };
    let rollout = store
        .list_rollouts(&filter, &PageRequest::default())
        .await
        .expect("list rollouts")
        .items
        .remove(0)
        .id;

    let now = Utc::now();
    let claimed = store
        .claim_due_rollouts("seed", now, now + TimeDelta::minutes(1), 10)
        .await
        .expect("claim");
    assert!(claimed.contains(&rollout), "the new rollout is due");
    let mut snapshot = store.rollout_snapshot(rollout).await.expect("snapshot");
    // The stack is placed on no agent (other tests count `agent`'s targets): the wave
    // is planned over `agent` as if it were.
    snapshot.fleet.push(AgentView {
        agent_id: agent,
        name: "agent-a".into(),
        labels: Default::default(),
        placed: true,
        last_heartbeat: Some(now),
        candidate_event: None,
        baseline_event: None,
        health: None,
    });
    let mut change = step(&snapshot, now, TimeDelta::seconds(90));
    assert_eq!(
        change.start_gates.len(),
        1,
        "the wave waits for its approval"
    );
    change.next_eval_at = Some(now + TimeDelta::days(1));
    store
        .apply_rollout_change("seed", change)
        .await
        .expect("apply the first step");
    Seeded { stack, rollout }
}
