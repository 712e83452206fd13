//! Placement through the control plane: who may manage a stack's placement, decisions
//! that follow agents at once, `evict_after_secs`, named custom placements with their
//! own policies and reasons, and rejections counted and paged.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;

use super::callers::{Answer, Who, World, assert_no_mismatches, matrix};
use crate::placement::{
    Placement, PlacementDecision, PlacementInput, PlacementPolicy, PolicyError, Rejection,
    RejectionPage,
};
use crate::runtime::{ControlPlane, Error};
use crate::testing::conformance::mk_stack;
use crate::{Actor, AgentId, Heartbeat, MetadataField, MetadataTarget, NewAgent, Pak, StackId};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

/// A live agent labelled `region`, that beat `age_secs` ago.
pub(super) async fn agent(cp: &ControlPlane, name: &str, region: &str, age_secs: i64) -> AgentId {
    let agent = cp
        .store()
        .create_agent(
            &Actor::Admin,
            NewAgent {
                name: name.into(),
                cluster_name: name.into(),
                labels: [("region".to_owned(), region.to_owned())].into(),
                annotations: Default::default(),
                key: Pak::generate().stored(),
            },
        )
        .await
        .expect("create agent");
    let beat = Heartbeat {
        agent_id: agent.id,
        at: Utc::now() - Duration::seconds(age_secs),
        capabilities: None,
    };
    cp.store()
        .record_heartbeats(&[beat])
        .await
        .expect("record a heartbeat");
    cp.agent_changed(agent.id).await.expect("index the agent");
    agent.id
}

fn policy(value: serde_json::Value) -> PlacementPolicy {
    serde_json::from_value(value).expect("a policy")
}

async fn chosen(cp: &ControlPlane, stack: StackId) -> Vec<AgentId> {
    let view = cp
        .stack_placement(&Actor::Admin, stack, RejectionPage::default())
        .await
        .expect("read the placement");
    view.placement.decision.expect("decided").chosen
}

/// Chooses agents whose name starts with `custom.prefix`; refuses the others with its
/// own code.
struct NamePrefix;

fn prefix(policy: &PlacementPolicy) -> Option<&str> {
    policy.custom.as_ref()?.get("prefix")?.as_str()
}

impl Placement for NamePrefix {
    fn validate(&self, policy: &PlacementPolicy) -> Result<(), PolicyError> {
        prefix(policy)
            .map(drop)
            .ok_or_else(|| PolicyError::new("custom.prefix is required"))
    }

    fn place(&self, input: &PlacementInput<'_>) -> PlacementDecision {
        let mut decision = PlacementDecision::default();
        let prefix = prefix(input.policy).unwrap_or_default();
        // Deliberately unordered: the runtime orders what a placement answers.
        for agent in input.agents.iter().rev() {
            if agent.name.starts_with(prefix) {
                decision.chosen.push(agent.id);
            } else {
                let why = Rejection::custom("name_prefix", &agent.name);
                decision.rejected.push((agent.id, why));
            }
        }
        decision
    }
}

crate::runtime_cases! {
    async fn placement_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let row_owner = [OK, OK, NO, NO, OK, NF];
        let page = RejectionPage::default();
        let mut bad = Vec::new();
        bad.extend(matrix("preview_placement", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.preview_placement(&w.actor(who, w.agent), w.stack, policy(json!({})), page).await }
        }).await);
        bad.extend(matrix("set_placement_policy", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.set_placement_policy(&w.actor(who, w.agent), w.stack, policy(json!({})), page).await }
        }).await);
        bad.extend(matrix("stack_placement", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.stack_placement(&w.actor(who, w.agent), w.stack, page).await }
        }).await);
        // Removing succeeds once; ask the refused callers first.
        for who in [Who::Agent, Who::OtherAgent, Who::OtherGenerator, Who::Generator] {
            let got = cp.remove_placement_policy(&w.actor(who, w.agent), w.stack).await;
            let ok = matches!(
                (who, &got),
                (Who::Agent | Who::OtherAgent, Err(Error::Forbidden(_)))
                    | (Who::OtherGenerator, Err(Error::Store(crate::store::Error::NotFound { .. })))
                    | (Who::Generator, Ok(()))
            );
            if !ok {
                bad.push(format!("remove_placement_policy as {who:?}: {got:?}"));
            }
        }
        assert_no_mismatches(bad);
        // Without a policy there is no placement.
        let gone = cp.stack_placement(&Actor::Admin, w.stack, page).await;
        assert!(matches!(gone, Err(Error::Store(crate::store::Error::NotFound { .. }))));
    }

    async fn decisions_follow_agent_label_changes_before_the_change_returns(cp: ControlPlane) {
        let eu = agent(&cp, "eu", "eu", 0).await;
        let us = agent(&cp, "us", "us", 0).await;
        let stack = mk_stack(cp.store().as_ref(), "web").await.id;
        let selector = json!({"agent_selector": {"matchLabels": {"region": "eu"}}});
        let view = cp
            .set_placement_policy(&Actor::Admin, stack, policy(selector), RejectionPage::default())
            .await
            .expect("set the policy");
        assert_eq!(view.placement.decision.expect("decided").chosen, vec![eu]);
        assert_eq!(view.rejected.expect("explained").by_reason["label_mismatch"], 1);

        let relabel = |agent, region: &'static str| {
            let cp = cp.clone();
            async move {
                cp.put_metadata(&Actor::Admin, MetadataTarget::Agent(agent), MetadataField::Labels, "region", region)
                    .await
                    .expect("relabel");
                cp.agent_changed(agent).await.expect("apply the change");
            }
        };
        relabel(us, "eu").await;
        let mut both = vec![eu, us];
        both.sort();
        assert_eq!(chosen(&cp, stack).await, both);
        relabel(eu, "us").await;
        assert_eq!(chosen(&cp, stack).await, vec![us]);
        // The store holds the same decision and the targets that follow it.
        let stored = cp.store().get_placement(stack).await.unwrap().unwrap();
        assert_eq!(stored.decision.unwrap().chosen, vec![us]);
    }

    async fn evict_after_secs_applies_before_the_staleness_window(cp: ControlPlane) {
        // Beat 30 s ago: not stale (90 s by default), but older than a 10 s eviction.
        let quiet = agent(&cp, "quiet", "eu", 30).await;
        let stack = mk_stack(cp.store().as_ref(), "web").await.id;
        let page = RejectionPage::default();
        let lenient = policy(json!({"evict_after_secs": 60}));
        cp.set_placement_policy(&Actor::Admin, stack, lenient, page).await.unwrap();
        assert_eq!(chosen(&cp, stack).await, vec![quiet]);
        let strict = policy(json!({"evict_after_secs": 10}));
        let view = cp.set_placement_policy(&Actor::Admin, stack, strict, page).await.unwrap();
        assert_eq!(view.placement.decision.unwrap().chosen, Vec::<AgentId>::new());
        let rejected = view.rejected.unwrap();
        assert_eq!(rejected.agents, vec![(quiet, Rejection::StaleHeartbeat)]);
    }

    async fn a_named_custom_placement_decides_with_its_own_policy_and_reasons(cp: ControlPlane) {
        let custom = ControlPlane::builder(cp.store().clone())
            .register_placement("name-prefix", Arc::new(NamePrefix))
            .build();
        let edge = agent(&custom, "edge-1", "eu", 0).await;
        let core = agent(&custom, "core-1", "eu", 0).await;
        let stack = mk_stack(cp.store().as_ref(), "web").await.id;
        let page = RejectionPage::default();
        let named = PlacementPolicy::named("name-prefix", json!({"prefix": "edge-"}));
        let view = custom
            .set_placement_policy(&Actor::Admin, stack, named.clone(), page)
            .await
            .expect("a custom policy is stored and decided, with no default policy");
        assert_eq!(view.placement.policy, named);
        assert_eq!(view.placement.decision.unwrap().chosen, vec![edge]);
        let rejected = view.rejected.unwrap();
        assert_eq!(rejected.by_reason["name_prefix"], 1);
        assert_eq!(rejected.agents, vec![(core, Rejection::custom("name_prefix", "core-1"))]);

        // Its policy is its own to validate; unknown names and stray custom policies
        // are refused before anything is stored.
        let refused = [
            (PlacementPolicy::named("name-prefix", json!({})), "invalid_policy"),
            (PlacementPolicy::named("nearest", json!({})), "unknown_placement"),
            (policy(json!({"custom": {"prefix": "edge-"}})), "invalid_policy"),
        ];
        for (bad, code) in refused {
            let got = custom.set_placement_policy(&Actor::Admin, stack, bad.clone(), page).await;
            let matched = match (&got, code) {
                (Err(Error::InvalidPolicy(_)), "invalid_policy") => true,
                (Err(Error::Invalid { code: c, .. }), _) => *c == code,
                _ => false,
            };
            assert!(matched, "{bad:?}: {got:?}");
        }
        let stored = cp.store().get_placement(stack).await.unwrap().unwrap();
        assert_eq!(stored.policy, named);
    }

    async fn rejections_are_counted_and_paged(cp: ControlPlane) {
        let mut others = Vec::new();
        for i in 0..5 {
            others.push(agent(&cp, &format!("us-{i}"), "us", 0).await);
        }
        others.sort();
        let stack = mk_stack(cp.store().as_ref(), "web").await.id;
        let selector = policy(json!({"agent_selector": {"matchLabels": {"region": "eu"}}}));
        let mut page = RejectionPage { after: None, limit: 2 };
        let mut listed = Vec::new();
        loop {
            let preview = cp
                .preview_placement(&Actor::Admin, stack, selector.clone(), page)
                .await
                .expect("preview");
            assert_eq!((preview.rejected.total, preview.rejected.by_reason["label_mismatch"]), (5, 5));
            assert!(preview.rejected.agents.len() <= 2);
            listed.extend(preview.rejected.agents.iter().map(|(id, _)| *id));
            match preview.rejected.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, others);
    }

    async fn a_decision_for_an_old_policy_never_overwrites_one_set_elsewhere(cp: ControlPlane) {
        // Another replica over the same store.
        let other = ControlPlane::builder(cp.store().clone()).build();
        let eu = agent(&cp, "eu", "eu", 0).await;
        let us = agent(&cp, "us", "us", 0).await;
        other.agent_changed(eu).await.unwrap();
        let stack = mk_stack(cp.store().as_ref(), "web").await.id;
        let page = RejectionPage::default();
        let region = |r: &str| policy(json!({"agent_selector": {"matchLabels": {"region": r}}}));
        cp.set_placement_policy(&Actor::Admin, stack, region("eu"), page).await.unwrap();
        other.set_placement_policy(&Actor::Admin, stack, region("us"), page).await.unwrap();
        // This replica still holds the old policy; a change it applies must decide with
        // the stored one.
        cp.put_metadata(&Actor::Admin, MetadataTarget::Agent(eu), MetadataField::Labels, "tier", "web")
            .await
            .unwrap();
        cp.agent_changed(eu).await.unwrap();
        let label = MetadataTarget::Agent(us);
        cp.put_metadata(&Actor::Admin, label, MetadataField::Labels, "tier", "web").await.unwrap();
        cp.agent_changed(us).await.unwrap();
        let stored = cp.store().get_placement(stack).await.unwrap().unwrap();
        assert_eq!(stored.policy, region("us"));
        assert_eq!(stored.decision.unwrap().chosen, vec![us]);
    }

    async fn policies_set_at_once_on_many_stacks_record_the_decisions_they_imply(cp: ControlPlane) {
        // Different stacks are placed side by side; changes to one stack take turns, so
        // each stack's recorded decision is the one its last stored policy implies.
        let eu = agent(&cp, "eu", "eu", 0).await;
        let us = agent(&cp, "us", "us", 0).await;
        let region = |r: &str| policy(json!({"agent_selector": {"matchLabels": {"region": r}}}));
        let mut stacks = Vec::new();
        for i in 0..6 {
            stacks.push(mk_stack(cp.store().as_ref(), &format!("tenant-{i}")).await.id);
        }
        let page = RejectionPage::default();
        let changes = stacks.iter().flat_map(|&stack| {
            ["eu", "us", "eu", "us"].into_iter().map(move |r| (stack, r))
        });
        let set = changes.map(|(stack, r)| {
            let cp = cp.clone();
            async move { cp.set_placement_policy(&Actor::Admin, stack, region(r), page).await }
        });
        for result in futures::future::join_all(set).await {
            result.expect("set a policy");
        }
        for stack in stacks {
            let stored = cp.store().get_placement(stack).await.unwrap().unwrap();
            let expected = if stored.policy == region("eu") { eu } else { us };
            assert_eq!(stored.decision.unwrap().chosen, vec![expected], "{stack}");
            assert_eq!(chosen(&cp, stack).await, vec![expected], "{stack}");
        }
    }

    async fn a_replica_that_missed_a_decision_decides_again(cp: ControlPlane) {
        // Two control planes on one store, as two replicas. Each decides a new policy
        // from what its own index knows of the stack; when the other replica decided
        // the stack since, the store refuses the write and the replica decides again
        // from the stored decision, keeping the agent that still fits.
        let eu = agent(&cp, "eu", "eu", 0).await;
        let us = agent(&cp, "us", "us", 0).await;
        let other = ControlPlane::builder(Arc::clone(cp.store())).build();
        other.agents_changed(&[eu, us]).await.expect("index");
        let stack = mk_stack(cp.store().as_ref(), "tenant").await.id;
        let page = RejectionPage::default();
        let one_of = |selector: serde_json::Value| {
            policy(json!({"agent_selector": selector, "max_clusters": 1}))
        };
        let placed = |view: crate::runtime::placement::PlacementView| view.placement.decision.unwrap().chosen;

        let view = other.set_placement_policy(&Actor::Admin, stack, one_of(json!({"matchLabels": {"region": "eu"}})), page);
        assert_eq!(placed(view.await.unwrap()), vec![eu]);
        // This replica never saw the stack, and the store holds a decision.
        let view = cp.set_placement_policy(&Actor::Admin, stack, one_of(json!({"matchLabels": {"region": "us"}})), page);
        assert_eq!(placed(view.await.unwrap()), vec![us]);
        // The other one still believes `eu` is chosen; either agent fits the new
        // policy, and the stored choice (`us`) is the one kept.
        let both = one_of(json!({}));
        let view = other.set_placement_policy(&Actor::Admin, stack, both.clone(), page).await.unwrap();
        assert_eq!(view.placement.policy, both);
        assert_eq!(placed(view), vec![us], "decided from the stored choice");
        let stored = cp.store().get_placement(stack).await.unwrap().unwrap();
        assert_eq!((stored.policy, stored.decision.unwrap().chosen), (both, vec![us]));
    }

    async fn an_agent_is_placed_soon_after_its_first_heartbeat(cp: ControlPlane) {
        let new = cp
            .store()
            .create_agent(
                &Actor::Admin,
                crate::testing::conformance::new_agent("new", "new", &Pak::generate()),
            )
            .await
            .unwrap()
            .id;
        cp.agent_changed(new).await.unwrap();
        let stack = mk_stack(cp.store().as_ref(), "web").await.id;
        let page = RejectionPage::default();
        let view = cp.set_placement_policy(&Actor::Admin, stack, policy(json!({})), page).await.unwrap();
        assert_eq!(view.placement.decision.unwrap().chosen, Vec::<AgentId>::new());
        // The beat alone places it: well before the controller's periodic reload
        // (every tenth 200 ms run in this suite).
        cp.record_heartbeat(&Actor::Agent(new), new, None).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while chosen(&cp, stack).await != vec![new] {
            assert!(tokio::time::Instant::now() < deadline, "not placed within 1 s of its beat");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
