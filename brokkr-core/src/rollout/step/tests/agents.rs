use super::*;

#[test]
fn health_on_the_baseline_never_makes_an_agent_healthy() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.tick(1);
    fx.tick(10);
    // The canary keeps reporting that the baseline is healthy (OCM #1201).
    fx.health(1, baseline(), HealthStatus::Healthy);
    fx.tick(10);
    assert_eq!(fx.state_of(1), RolloutAgentState::Pinned);
    fx.event(1, EventStatus::Success);
    fx.health(1, baseline(), HealthStatus::Healthy);
    fx.tick(10);
    assert_eq!(fx.state_of(1), RolloutAgentState::Applied);
    assert_eq!(fx.wave_states(), [WaveState::Running, WaveState::Pending]);
}

#[test]
fn reports_from_before_the_pin_do_not_count() {
    let mut fx = mk_fixture(two_waves(), 2);
    // Reports about the candidate recorded at the very time of the pin (a failure
    // from an earlier attempt, say) do not count.
    fx.now += Duration::seconds(1) - Duration::milliseconds(1);
    fx.event(1, EventStatus::Failure);
    fx.health(1, candidate(), HealthStatus::Failed);
    fx.now = t0();
    fx.tick(1);
    assert_eq!(fx.agent(1).pinned_at, Some(t0() + Duration::seconds(1)));
    assert_eq!(
        fx.state_of(1),
        RolloutAgentState::Pinned,
        "reports at the pin's time"
    );
    fx.tick(1);
    assert_eq!(fx.state_of(1), RolloutAgentState::Pinned);
    fx.event(1, EventStatus::Success);
    fx.tick(1);
    assert_eq!(fx.state_of(1), RolloutAgentState::Applied);
}

#[test]
fn a_failure_event_or_failed_health_fails_the_agent() {
    let policy = policy_with(two_waves(), json!({"max_failures": 5}));
    let mut fx = mk_fixture(policy, 3);
    fx.tick(1);
    fx.pinned_become_healthy();
    fx.tick(10);
    fx.tick(10);
    assert_eq!(fx.pinned(), [1, 2, 3]);
    fx.event(2, EventStatus::Failure);
    fx.health(3, candidate(), HealthStatus::Failed);
    fx.tick(10);
    assert_eq!(fx.state_of(2), RolloutAgentState::Failed);
    assert_eq!(fx.state_of(3), RolloutAgentState::Failed);
    assert_eq!(
        fx.state(),
        RolloutState::Succeeded,
        "5 failures tolerated: the wave settled and went on"
    );
}

#[test]
fn a_pinned_agent_that_stays_silent_times_out_and_fails_the_wave() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.tick(1);
    fx.offline.insert(1);
    let change = fx.tick(15 * 60 - 1);
    assert_eq!(fx.state_of(1), RolloutAgentState::Pinned);
    assert_eq!(change.next_eval_at, Some(fx.now + Duration::seconds(1)));
    fx.tick(1);
    assert_eq!(
        fx.state_of(1),
        RolloutAgentState::Reverted,
        "timed out, then reverted"
    );
    let reverted = fx.changes.last().expect("a change");
    assert!(reverted.unpin_all);
    assert_eq!(fx.wave_states(), [WaveState::Failed, WaveState::Pending]);
    assert!(
        fx.wave(0)
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("1 agents failed")),
        "{:?}",
        fx.wave(0).reason
    );
}

#[test]
fn a_flap_restarts_the_bake_and_a_long_one_fails_the_agent() {
    let policy = policy_with(
        two_waves(),
        json!({"bake_time": "10m", "progress_deadline": "5m"}),
    );
    let mut fx = mk_fixture(policy, 2);
    fx.tick(1);
    fx.pinned_become_healthy();
    fx.tick(10);
    assert_eq!(fx.wave(0).state, WaveState::Baking);
    fx.tick(60);
    fx.health(1, candidate(), HealthStatus::Degraded);
    fx.tick(1);
    assert_eq!(fx.state_of(1), RolloutAgentState::Applied);
    assert_eq!(fx.agent(1).unhealthy_since, Some(fx.now));
    assert_eq!(fx.wave(0).state, WaveState::Running);
    assert_eq!(fx.wave(0).all_healthy_since, None);
    fx.health(1, candidate(), HealthStatus::Healthy);
    fx.tick(1);
    assert_eq!(fx.wave(0).state, WaveState::Baking);
    assert_eq!(
        fx.wave(0).all_healthy_since,
        Some(fx.now),
        "the bake starts over"
    );
    fx.health(1, candidate(), HealthStatus::Progressing);
    fx.tick(1);
    fx.tick(5 * 60 - 1);
    assert_eq!(fx.state_of(1), RolloutAgentState::Applied);
    fx.tick(1);
    assert_eq!(
        fx.wave(0).state,
        WaveState::Failed,
        "unhealthy for progress_deadline"
    );
    assert_eq!(fx.state(), RolloutState::Reverting);
}

#[test]
fn max_concurrency_caps_agents_in_flight_and_says_so() {
    let policy = json!({"waves": [{"name": "all", "select": {"remaining": true}}],
                        "max_concurrency": 2});
    let mut fx = mk_fixture(policy, 5);
    let change = fx.tick(1);
    assert_eq!(numbers(&change.pin), [1, 2]);
    let reason = change.state_reason.expect("a hold");
    assert!(reason.contains("max_concurrency reached"), "{reason}");
    fx.event(1, EventStatus::Success);
    fx.tick(1);
    assert_eq!(fx.pinned(), [1, 2], "applied is still in flight");
    fx.health(1, candidate(), HealthStatus::Healthy);
    let change = fx.tick(1);
    assert_eq!(numbers(&change.pin), [3]);
}

#[test]
fn max_unavailable_counts_agents_unhealthy_before_the_rollout() {
    let policy = json!({"waves": [{"name": "all", "select": {"remaining": true}}],
                        "max_unavailable": 2});
    let mut fx = mk_fixture(policy, 5);
    for n in 1..=5 {
        fx.health(n, baseline(), HealthStatus::Healthy);
    }
    fx.health(4, baseline(), HealthStatus::Degraded);
    let change = fx.tick(1);
    // Agent 4 is already unavailable: one more may go, and agent 4 itself, whose pin
    // makes nothing worse.
    assert_eq!(numbers(&change.pin), [1, 4]);
    let reason = change.state_reason.expect("a hold");
    assert!(
        reason.contains("max_unavailable reached: 2 of 5"),
        "{reason}"
    );
}

#[test]
fn both_caps_floor_at_one() {
    // Validation refuses an explicit 0; a policy stored before that rule still moves.
    let policy = json!({"waves": [{"name": "all", "select": {"remaining": true}}],
                        "max_concurrency": 0, "max_unavailable": "0%"});
    let mut fx = mk_fixture(policy, 5);
    let change = fx.tick(1);
    assert_eq!(numbers(&change.pin), [1]);
}

#[test]
fn offline_agents_are_skipped_by_default() {
    let mut fx = mk_fixture(two_waves(), 3);
    fx.offline.insert(3);
    fx.tick(100);
    fx.pinned_become_healthy();
    let change = fx.tick(10);
    assert_eq!(numbers(&change.pin), [2]);
    assert_eq!(fx.state_of(3), RolloutAgentState::Skipped);
    assert!(!change.unpin.contains(&agent_id(3)));
    fx.pinned_become_healthy();
    let change = fx.tick(10);
    assert_eq!(
        change.state,
        RolloutState::Succeeded,
        "skipped agents do not hold it"
    );
}

#[test]
fn offline_agents_can_fail_the_wave() {
    let policy = policy_with(two_waves(), json!({"offline_agents": "fail"}));
    let mut fx = mk_fixture(policy, 1);
    fx.offline.insert(1);
    fx.tick(100);
    assert_eq!(fx.state_of(1), RolloutAgentState::Failed);
    assert_eq!(fx.wave(0).state, WaveState::Failed);
    assert_eq!(fx.state(), RolloutState::Reverted, "nothing was pinned");
}

#[test]
fn a_wave_waits_for_an_offline_agent_until_the_progress_deadline() {
    let policy = policy_with(
        two_waves(),
        json!({"offline_agents": "wait", "progress_deadline": "2m"}),
    );
    let mut fx = mk_fixture(policy, 2);
    fx.offline.insert(1);
    let change = fx.tick(100);
    assert_eq!(fx.state_of(1), RolloutAgentState::Waiting);
    assert!(change.pin.is_empty());
    assert_eq!(change.next_eval_at, Some(fx.now + Duration::seconds(30)));
    fx.offline.remove(&1);
    let change = fx.tick(30);
    assert_eq!(numbers(&change.pin), [1], "back online: pinned");
    // Agent 2 goes away before its turn, and never comes back.
    fx.offline.insert(2);
    fx.pinned_become_healthy();
    fx.tick(100);
    assert_eq!(fx.state_of(2), RolloutAgentState::Waiting);
    fx.tick(119);
    assert_eq!(fx.state_of(2), RolloutAgentState::Waiting);
    fx.tick(1);
    assert_eq!(fx.wave(1).state, WaveState::Failed);
    assert_eq!(
        fx.state_of(2),
        RolloutAgentState::TimedOut,
        "never pinned, so not reverted"
    );
    assert_eq!(fx.state(), RolloutState::Reverting);
}

#[test]
fn failures_within_max_failures_let_the_wave_go_on() {
    let policy = json!({"waves": [{"name": "all", "select": {"remaining": true}}],
                        "max_failures": "50%"});
    let mut fx = mk_fixture(policy, 4);
    fx.tick(1);
    fx.event(1, EventStatus::Failure);
    fx.event(2, EventStatus::Failure);
    for n in [3, 4] {
        fx.event(n, EventStatus::Success);
        fx.health(n, candidate(), HealthStatus::Healthy);
    }
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Succeeded, "2 of 4 tolerated");
    let mut fx = mk_fixture(
        json!({"waves": [{"name": "all", "select": {"remaining": true}}],
               "max_failures": "25%"}),
        4,
    );
    fx.tick(1);
    fx.event(1, EventStatus::Failure);
    fx.event(2, EventStatus::Failure);
    let change = fx.tick(1);
    assert_eq!(
        change.state,
        RolloutState::Reverting,
        "2 of 4 is more than 1"
    );
}
