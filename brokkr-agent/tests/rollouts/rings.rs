//! A ring-shaped fleet for rollout scenarios: agents labelled `ring: 0`, `ring: 1`, ...,
//! one stack on all of them with its first version applied and reported, and a policy
//! with a wave per ring.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::fleet::{Backend, Fleet, app, eventually};

pub fn ring_labels(per_ring: usize) -> impl Fn(usize) -> BTreeMap<String, String> {
    move |i| BTreeMap::from([("ring".to_owned(), (i / per_ring).to_string())])
}

/// Three waves by the `ring` label, then whatever is left.
pub fn ring_policy(max_concurrency: u32, bake: &str) -> Value {
    json!({
        "waves": [
            {"name": "ring-0", "select": {"match_labels": {"ring": "0"}}},
            {"name": "ring-1", "select": {"match_labels": {"ring": "1"}}},
            {"name": "ring-2", "select": {"remaining": true}}
        ],
        "max_concurrency": max_concurrency,
        "bake_time": bake,
        "progress_deadline": "20s"
    })
}

/// A fleet with `rings` × `per_ring` agents and a stack on all of them, every agent on
/// `v1`, the ring policy set: ready for `v2` to roll out.
pub async fn rings_on_v1(
    backend: Backend,
    rings: usize,
    per_ring: usize,
    policy: Value,
) -> Option<(Fleet, String, String)> {
    let fleet = Fleet::start(backend, rings * per_ring, ring_labels(per_ring)).await?;
    let stack = fleet.stack_on_all("shop").await;
    let v1 = fleet.deploy(&stack, &app("shop", "1")).await;
    let all: Vec<usize> = (0..fleet.agents.len()).collect();
    fleet.wait_applied(&all, &v1).await;
    wait_reported(&fleet, &v1).await;
    fleet
        .broker
        .put(&format!("/stacks/{stack}/rollout-policy"), policy)
        .await;
    Some((fleet, stack, v1))
}

/// Waits until the server stored every agent's successful apply of `object`: an agent
/// reports after it applied, and the guard judges a removal by what was reported.
pub async fn wait_reported(fleet: &Fleet, object: &str) {
    for agent in &fleet.agents {
        let path = format!(
            "/agents/{}/events?deployment_object_id={object}&status=success&limit=1",
            agent.id
        );
        eventually(&format!("{} to report {object}", agent.name), || async {
            let page = fleet.broker.get(&path).await;
            (!page["items"].as_array().expect("items").is_empty()).then_some(())
        })
        .await;
    }
}
