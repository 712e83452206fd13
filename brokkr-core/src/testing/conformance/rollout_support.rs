//! Fixtures the rollout cases share: a policy, stacks under it, and changes built by
//! hand (the cases test the store, not `step`).

use chrono::{DateTime, Duration, SubsecRound, Utc};

use super::fixtures::{ADMIN, mk_agent, mk_object, mk_stack, mk_target};
use super::support::all;
use crate::id::{AgentId, DeploymentObjectId, StackId};
use crate::model::{
    Rollout, RolloutAgent, RolloutAgentState, RolloutState, RolloutWave, WaveState,
};
use crate::rollout::{OnNewVersion, RolloutChange, RolloutPolicy, Transition};
use crate::store::{RolloutFilter, Store};
use crate::target_state::TargetState;

/// The claimant of the cases' changes.
pub(super) const DRIVER: &str = "driver-1";

/// Now, at the precision every store keeps.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// An hour from now: a timer that does not fire during a case.
pub(super) fn later() -> DateTime<Utc> {
    now() + Duration::hours(1)
}

/// One wave taking every agent, with `on_new_version` as given.
pub(super) fn rollout_policy(on_new_version: OnNewVersion) -> RolloutPolicy {
    serde_json::from_value::<RolloutPolicy>(serde_json::json!({
        "waves": [{"name": "all", "select": {"remaining": true}}]
    }))
    .map(|policy| RolloutPolicy {
        on_new_version,
        ..policy
    })
    .expect("the fixture policy parses")
}

/// A stack with a released first object (`v1`), two agents with targets on it, and
/// then a rollout policy.
pub(super) struct Released {
    pub(super) stack: StackId,
    pub(super) v1: DeploymentObjectId,
    pub(super) a: AgentId,
    pub(super) b: AgentId,
}

/// See [`Released`].
pub(super) async fn released(
    store: &dyn Store,
    name: &str,
    on_new_version: OnNewVersion,
) -> Released {
    let stack = mk_stack(store, name).await.id;
    let v1 = mk_object(store, stack, "1").await.id;
    let a = mk_agent(store, &format!("{name}-a")).await.id;
    let b = mk_agent(store, &format!("{name}-b")).await.id;
    mk_target(store, a, stack).await;
    mk_target(store, b, stack).await;
    store
        .set_rollout_policy(&ADMIN, stack, Some(rollout_policy(on_new_version)))
        .await
        .expect("set the fixture policy");
    Released { stack, v1, a, b }
}

/// The stack's rollouts, oldest first.
pub(super) async fn rollouts_of(store: &dyn Store, stack: StackId) -> Vec<Rollout> {
    let filter = RolloutFilter {
        stack_id: Some(stack),
        state: None,
    };
    all(async |p| store.list_rollouts(&filter, &p).await).await
}

/// The stack's only rollout in `state`.
pub(super) async fn the_rollout(store: &dyn Store, stack: StackId, state: RolloutState) -> Rollout {
    let found: Vec<Rollout> = rollouts_of(store, stack)
        .await
        .into_iter()
        .filter(|r| r.state == state)
        .collect();
    assert_eq!(found.len(), 1, "one {state:?} rollout of the stack");
    found.into_iter().next().expect("checked above")
}

/// A change of `rollout` that changes nothing but its version and timer.
pub(super) fn keep(rollout: &Rollout) -> RolloutChange {
    RolloutChange {
        rollout_id: rollout.id,
        expected_version: rollout.version,
        at: now(),
        state: rollout.state,
        state_reason: rollout.state_reason.clone(),
        started_at: rollout.started_at,
        deadline_at: rollout.deadline_at,
        next_eval_at: Some(later()),
        finished_at: rollout.finished_at,
        waves: Vec::new(),
        agents: Vec::new(),
        pin: Vec::new(),
        unpin: Vec::new(),
        unpin_all: false,
        release: false,
        start_gates: Vec::new(),
        consumed_commands: Vec::new(),
        transitions: Vec::new(),
    }
}

/// The wave `index` in `state`.
pub(super) fn wave(index: u32, state: WaveState, at: DateTime<Utc>) -> RolloutWave {
    RolloutWave {
        index,
        name: format!("wave-{index}"),
        spec: Some("all".into()),
        max_failures: 0,
        state,
        started_at: Some(at),
        all_healthy_since: None,
        promoted: false,
        reason: None,
        finished_at: None,
    }
}

/// Agent `agent` of wave 0 in `state`.
pub(super) fn rollout_agent(
    agent: AgentId,
    state: RolloutAgentState,
    at: DateTime<Utc>,
) -> RolloutAgent {
    RolloutAgent {
        agent_id: agent,
        wave: 0,
        state,
        pinned_at: (state == RolloutAgentState::Pinned).then_some(at),
        healthy_since: None,
        unhealthy_since: None,
        reason: None,
        updated_at: at,
    }
}

/// Starts a queued rollout: running, one wave running, `pin` pinned, the others of
/// `agents` waiting.
pub(super) fn start(rollout: &Rollout, agents: &[AgentId], pin: &[AgentId]) -> RolloutChange {
    let at = now();
    let state_of = |agent| {
        if pin.contains(agent) {
            RolloutAgentState::Pinned
        } else {
            RolloutAgentState::Waiting
        }
    };
    RolloutChange {
        state: RolloutState::Running,
        started_at: Some(at),
        waves: vec![wave(0, WaveState::Running, at)],
        agents: agents
            .iter()
            .map(|agent| rollout_agent(*agent, state_of(agent), at))
            .collect(),
        pin: pin.to_vec(),
        transitions: vec![
            Transition::Rollout {
                from: RolloutState::Queued,
                to: RolloutState::Running,
                reason: None,
            },
            Transition::Wave {
                index: 0,
                from: WaveState::Pending,
                to: WaveState::Running,
                reason: None,
            },
        ],
        ..keep(rollout)
    }
}

/// Applies `change` as [`DRIVER`], expecting success.
pub(super) async fn apply(store: &dyn Store, change: RolloutChange) -> Rollout {
    store
        .apply_rollout_change(DRIVER, change)
        .await
        .expect("apply the change")
}

/// Ends a running rollout as `to`, with nothing else changed yet.
fn finish(rollout: &Rollout, to: RolloutState, reason: Option<&str>) -> RolloutChange {
    RolloutChange {
        state: to,
        next_eval_at: None,
        finished_at: Some(now()),
        transitions: vec![Transition::Rollout {
            from: rollout.state,
            to,
            reason: reason.map(str::to_owned),
        }],
        ..keep(rollout)
    }
}

/// Ends a running rollout as `succeeded`, releasing its candidate.
pub(super) fn succeed(rollout: &Rollout) -> RolloutChange {
    RolloutChange {
        release: true,
        ..finish(rollout, RolloutState::Succeeded, None)
    }
}

/// Ends a running rollout as `reverted` (its pins removed), as a failed wave does.
pub(super) fn revert(rollout: &Rollout) -> RolloutChange {
    RolloutChange {
        unpin_all: true,
        ..finish(rollout, RolloutState::Reverted, Some("wave 0 failed"))
    }
}

/// The object the target state names for `stack`, if the stack is in it.
pub(super) fn object_in(state: &TargetState, stack: StackId) -> Option<DeploymentObjectId> {
    state
        .entries
        .iter()
        .find(|e| e.stack_id == stack)
        .map(|e| e.deployment_object.id)
}

/// A stack with a released `v1`, agents `a` and `b` on it, a policy, and `v2`'s
/// rollout running, with `a` pinned when `pin_a`.
pub(super) async fn running(
    store: &dyn Store,
    name: &str,
    on_new_version: OnNewVersion,
    pin_a: bool,
) -> (Released, Rollout) {
    let fixture = released(store, name, on_new_version).await;
    mk_object(store, fixture.stack, "2").await;
    let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
    let pin = if pin_a { vec![fixture.a] } else { Vec::new() };
    let rollout = apply(store, start(&queued, &[fixture.a, fixture.b], &pin)).await;
    (fixture, rollout)
}
