//! The seeded world's plans: a stack whose placement decision the guard holds, and a
//! plan of the main stack, stored as the control plane would have made them.

use brokkr_core::model::{NewPlan, PlanOrigin};
use brokkr_core::runtime::plan::PlannedChange;
use brokkr_core::{
    Actor, DeploymentObjectId, GeneratorId, NewDeploymentObject, NewStack, StackId, Store,
    id::PlanId,
};

use super::{CONFIGMAP_YAML, seeded_policy};

/// What [`seed`] made.
pub struct Seeded {
    /// `stack-guarded`.
    pub stack: StackId,
    /// Its older deployment object.
    pub old_object: DeploymentObjectId,
    /// Its held decision.
    pub held_plan: PlanId,
    /// A plan of the main stack's deletion.
    pub plan: PlanId,
}

/// Seeds `stack-guarded` of `generator` (two deployment objects, the seeded policy, no
/// agent, a held decision) and a plan of `stack`'s deletion.
pub async fn seed(store: &dyn Store, generator: GeneratorId, stack: StackId) -> Seeded {
    let sys = Actor::System;
    let guarded = store
        .create_stack(
            &sys,
            NewStack {
                name: "stack-guarded".into(),
                generator_id: Some(generator),
                ..Default::default()
            },
        )
        .await
        .expect("create the guarded stack");
    let mut objects = Vec::new();
    for value in ["old", "new"] {
        let yaml = CONFIGMAP_YAML.replace("key: value", &format!("key: {value}"));
        let new = NewDeploymentObject::from_yaml(guarded.id, &yaml).expect("valid yaml");
        let object = store
            .append_deployment_object(&sys, new)
            .await
            .expect("append to the guarded stack");
        objects.push(object.id);
    }
    store
        .set_placement_policy(&sys, guarded.id, Some(seeded_policy()))
        .await
        .expect("set the guarded stack's placement policy");
    let held_plan = seed_plan(
        store,
        guarded.id,
        PlanOrigin::Held,
        &PlannedChange::PlacementDecision { chosen: Vec::new() },
    )
    .await;
    let plan = seed_plan(store, stack, PlanOrigin::Requested, &PlannedChange::Delete).await;
    Seeded {
        stack: guarded.id,
        old_object: objects[0],
        held_plan,
        plan,
    }
}

/// Stores a plan of `change` for `stack` as if the control plane had made it over a
/// stack where no agent has a target or applied anything (so the plan moves nobody and
/// its digest is what the control plane would compute now).
pub async fn seed_plan(
    store: &dyn Store,
    stack: StackId,
    origin: PlanOrigin,
    change: &PlannedChange,
) -> PlanId {
    let change = serde_json::to_value(change).expect("a change serializes");
    let plan = brokkr_core::plan::compute(
        &change,
        &[],
        &Default::default(),
        &brokkr_core::plan::GuardPolicy::default(),
    )
    .expect("a plan that moves nobody");
    let new = NewPlan {
        stack_id: stack,
        origin,
        change,
        digest: plan.digest.clone(),
        body: serde_json::to_value(&plan).expect("a plan serializes"),
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(15),
        holds_change: false,
    };
    store
        .create_plan(&Actor::System, new)
        .await
        .expect("store a plan")
        .id
}
