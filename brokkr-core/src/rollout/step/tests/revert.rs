use super::*;

/// A rollout whose canary failed: agents 1 (failed) and 2, 3 (never pinned) of a
/// rollout where agent 4 is pinned in the canary as well.
fn failed_canary() -> Fixture {
    let policy = json!({"waves": [
        {"name": "canary", "select": {"agents": ["a1", "a4"]}},
        {"name": "rest", "select": {"remaining": true}}
    ]});
    let mut fx = mk_fixture(policy, 4);
    fx.tick(1);
    fx.event(4, EventStatus::Success);
    fx.health(4, candidate(), HealthStatus::Healthy);
    fx.event(1, EventStatus::Failure);
    fx.tick(1);
    fx
}

#[test]
fn a_revert_unpins_everything_and_waits_for_the_baseline() {
    let mut fx = failed_canary();
    let change = fx.changes.last().expect("a change").clone();
    assert_eq!(change.state, RolloutState::Reverting);
    assert!(change.unpin_all && change.pin.is_empty() && change.unpin.is_empty());
    assert_eq!(fx.state_of(1), RolloutAgentState::Reverted);
    assert_eq!(fx.state_of(4), RolloutAgentState::Reverted);
    assert_eq!(
        fx.state_of(2),
        RolloutAgentState::Waiting,
        "later waves never noticed"
    );
    assert_eq!(fx.wave_states(), [WaveState::Failed, WaveState::Pending]);
    // A baseline report from before the revert does not count.
    fx.now -= Duration::seconds(5);
    fx.baseline_event(1, EventStatus::Success);
    fx.now += Duration::seconds(5);
    fx.tick(1);
    assert_eq!(fx.state_of(1), RolloutAgentState::Reverted);
    fx.baseline_event(1, EventStatus::Success);
    // The agent's event for the baseline may repeat an old id; a health report on the
    // baseline shows it is back too.
    fx.health(4, baseline(), HealthStatus::Healthy);
    let change = fx.tick(1);
    assert_eq!(fx.state_of(1), RolloutAgentState::RevertedOk);
    assert_eq!(fx.state_of(4), RolloutAgentState::RevertedOk);
    assert_eq!(change.state, RolloutState::Reverted);
    assert_eq!(change.next_eval_at, None);
    assert!(!change.release);
}

#[test]
fn a_baseline_failure_ends_in_revert_failed() {
    let mut fx = failed_canary();
    fx.baseline_event(1, EventStatus::Failure);
    fx.baseline_event(4, EventStatus::Success);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::RevertFailed);
    assert!(
        change
            .state_reason
            .is_some_and(|r| r.starts_with("1 agents did not go back"))
    );
}

#[test]
fn silent_or_removed_agents_do_not_hold_a_revert() {
    let mut fx = failed_canary();
    fx.offline.insert(1);
    fx.view(4).placed = false;
    let change = fx.tick(60);
    assert_eq!(fx.state_of(4), RolloutAgentState::Removed);
    assert_eq!(
        change.state,
        RolloutState::Reverting,
        "agent 1 is not stale yet"
    );
    assert_eq!(
        change.next_eval_at,
        Some(fx.now + Duration::seconds(30) + Duration::milliseconds(1)),
        "when agent 1 turns stale"
    );
    let change = fx.tick(31);
    assert_eq!(change.state, RolloutState::Reverted);
}

#[test]
fn an_agent_that_never_reports_the_baseline_fails_the_revert() {
    let mut fx = failed_canary();
    fx.baseline_event(4, EventStatus::Success);
    fx.tick(15 * 60 - 1);
    assert_eq!(fx.state(), RolloutState::Reverting);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::RevertFailed);
}

#[test]
fn without_a_baseline_a_failure_halts() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.snap.rollout.baseline = None;
    fx.tick(1);
    fx.event(1, EventStatus::Failure);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Halted);
    assert!(!change.unpin_all, "the pins stay");
    let abort = fx.command(RolloutCommandKind::Abort);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Halted);
    assert!(fx.outcome_of(abort).starts_with("cannot revert"));
    // Even an explicit revert policy halts: there is nothing to go back to.
    let policy = policy_with(two_waves(), json!({"on_failure": "revert"}));
    let mut fx = mk_fixture(policy, 2);
    fx.snap.rollout.baseline = None;
    fx.tick(1);
    fx.event(1, EventStatus::Failure);
    assert_eq!(fx.tick(1).state, RolloutState::Halted);
}

#[test]
fn the_rollout_deadline_reverts() {
    let policy = policy_with(two_waves(), json!({"rollout_deadline": "10m"}));
    let mut fx = mk_fixture(policy, 2);
    let change = fx.tick(1);
    let deadline = change.deadline_at.expect("a deadline");
    assert_eq!(
        change.next_eval_at,
        Some(deadline),
        "sooner than the progress deadline"
    );
    fx.event(1, EventStatus::Success);
    let change = fx.tick(599);
    assert_eq!(change.state, RolloutState::Running);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Reverting);
    assert_eq!(
        change.state_reason.as_deref(),
        Some("the rollout deadline passed")
    );
    assert_eq!(fx.wave(0).state, WaveState::Failed);
}

#[test]
fn a_halted_rollout_past_its_deadline_reverts() {
    let policy = policy_with(
        two_waves(),
        json!({"on_failure": "halt", "rollout_deadline": "30m"}),
    );
    let mut fx = mk_fixture(policy, 2);
    fx.tick(1);
    fx.event(1, EventStatus::Failure);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Halted);
    assert_eq!(
        change.next_eval_at, change.deadline_at,
        "the deadline still counts"
    );
    fx.tick(30 * 60);
    assert_eq!(fx.state(), RolloutState::Reverting);
    assert_eq!(
        fx.rollout_path().last(),
        Some(&(RolloutState::Halted, RolloutState::Reverting))
    );
}
