use crate::model::GateOutcome;

use super::*;

#[test]
fn pause_stops_pinning_and_resume_goes_on() {
    let mut fx = mk_fixture(two_waves(), 3);
    fx.tick(1);
    let pause = fx.command(RolloutCommandKind::Pause);
    fx.pinned_become_healthy();
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Paused);
    assert_eq!(fx.outcome_of(pause), "paused");
    assert!(change.pin.is_empty(), "nothing is pinned while paused");
    assert_eq!(
        fx.state_of(1),
        RolloutAgentState::Healthy,
        "agents are still followed"
    );
    let again = fx.command(RolloutCommandKind::Pause);
    fx.tick(1);
    assert_eq!(fx.outcome_of(again), "already paused");
    let resume = fx.command(RolloutCommandKind::Resume);
    let change = fx.tick(1);
    assert_eq!(fx.outcome_of(resume), "resumed");
    assert_eq!(change.state, RolloutState::Running);
    assert_eq!(numbers(&change.pin), [2, 3]);
    let stray = fx.command(RolloutCommandKind::Resume);
    fx.tick(1);
    assert_eq!(fx.outcome_of(stray), "not paused (running)");
}

#[test]
fn commands_that_do_not_apply_say_why() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.tick(1);
    let retry = fx.command(RolloutCommandKind::RetryWave);
    fx.tick(1);
    assert_eq!(fx.outcome_of(retry), "not halted (running)");
    let mut fx = mk_fixture(two_waves(), 2);
    fx.snap.slot_free = false;
    let promote = fx.command(RolloutCommandKind::Promote);
    fx.tick(1);
    assert_eq!(fx.outcome_of(promote), "not running (queued)");
}

#[test]
fn every_command_of_a_step_is_consumed_in_order() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.tick(1);
    let pause = fx.command(RolloutCommandKind::Pause);
    let resume = fx.command(RolloutCommandKind::Resume);
    let change = fx.tick(1);
    assert_eq!(change.consumed_commands.len(), 2);
    assert_eq!(fx.outcome_of(pause), "paused");
    assert_eq!(fx.outcome_of(resume), "resumed");
    assert_eq!(change.state, RolloutState::Running);
    assert_eq!(
        fx.rollout_path()[1..],
        [
            (RolloutState::Running, RolloutState::Paused),
            (RolloutState::Paused, RolloutState::Running)
        ]
    );
}

#[test]
fn abort_reverts_a_running_rollout() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.tick(1);
    let abort = fx.command(RolloutCommandKind::Abort);
    let change = fx.tick(1);
    assert_eq!(fx.outcome_of(abort), "reverting");
    assert_eq!(change.state, RolloutState::Reverting);
    assert!(change.unpin_all && change.pin.is_empty());
    assert_eq!(fx.state_of(1), RolloutAgentState::Reverted);
    assert_eq!(fx.state_of(2), RolloutAgentState::Waiting, "never pinned");
    assert_eq!(fx.wave_states(), [WaveState::Failed, WaveState::Pending]);
}

#[test]
fn abort_ends_a_queued_rollout_before_it_starts() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.snap.slot_free = false;
    fx.command(RolloutCommandKind::Abort);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Reverted);
    assert!(change.waves.is_empty() && change.pin.is_empty());
    assert_eq!(change.next_eval_at, None);
}

#[test]
fn promote_skips_the_bake_and_the_after_wave_gates() {
    let gates = json!([{"name": "slo", "type": "webhook", "phase": "after_wave",
                        "url": "https://gate.example/", "secret_ref": "s"}]);
    let policy = policy_with(two_waves(), json!({"bake_time": "1h", "gates": gates}));
    let mut fx = mk_fixture(policy, 2);
    fx.tick(1);
    fx.pinned_become_healthy();
    fx.tick(1);
    assert_eq!(fx.wave(0).state, WaveState::Baking);
    let promote = fx.command(RolloutCommandKind::Promote);
    let change = fx.tick(1);
    assert!(
        fx.outcome_of(promote)
            .starts_with("wave 0 (canary) promoted")
    );
    assert!(fx.wave(0).promoted);
    assert_eq!(fx.wave_states(), [WaveState::Succeeded, WaveState::Running]);
    assert!(
        change.start_gates.is_empty(),
        "the after_wave gate is skipped"
    );
    assert_eq!(numbers(&change.pin), [2]);
    // The next wave bakes and is verified again.
    fx.pinned_become_healthy();
    fx.tick(1);
    assert_eq!(fx.wave(1).state, WaveState::Baking);
    assert!(!fx.wave(1).promoted);
}

#[test]
fn retry_wave_runs_a_halted_wave_again() {
    let policy = policy_with(two_waves(), json!({"on_failure": "halt"}));
    let mut fx = mk_fixture(policy, 3);
    fx.tick(1);
    fx.pinned_become_healthy();
    fx.tick(1);
    fx.event(2, EventStatus::Failure);
    fx.event(3, EventStatus::Success);
    fx.health(3, candidate(), HealthStatus::Healthy);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Halted);
    assert!(
        !change.unpin_all && change.unpin.is_empty(),
        "a halt keeps the pins"
    );
    assert_eq!(fx.wave(1).state, WaveState::Failed);
    let promote = fx.command(RolloutCommandKind::Promote);
    fx.tick(1);
    assert!(fx.outcome_of(promote).contains("retry_wave or abort"));
    let retry = fx.command(RolloutCommandKind::RetryWave);
    let change = fx.tick(1);
    assert!(
        fx.outcome_of(retry).contains("1 failed agents wait again"),
        "{}",
        fx.outcome_of(retry)
    );
    assert_eq!(change.state, RolloutState::Running);
    assert_eq!(fx.wave(1).state, WaveState::Running);
    // Agent 2 is pinned anew: no unpin, no pin, and its old failure no longer counts.
    assert!(change.pin.is_empty() && change.unpin.is_empty());
    assert_eq!(fx.state_of(2), RolloutAgentState::Pinned);
    assert_eq!(fx.agent(2).pinned_at, Some(fx.now));
    assert_eq!(
        fx.state_of(3),
        RolloutAgentState::Healthy,
        "healthy agents stay"
    );
    fx.event(2, EventStatus::Success);
    fx.health(2, candidate(), HealthStatus::Healthy);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Succeeded);
}

#[test]
fn abort_reverts_a_halted_rollout() {
    let policy = policy_with(two_waves(), json!({"on_failure": "halt"}));
    let mut fx = mk_fixture(policy, 2);
    fx.tick(1);
    fx.event(1, EventStatus::Failure);
    fx.tick(1);
    assert_eq!(fx.state(), RolloutState::Halted);
    fx.command(RolloutCommandKind::Abort);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Reverting);
    assert!(change.unpin_all);
}

#[test]
fn a_gate_that_failed_before_the_wave_is_asked_again_on_retry() {
    let gates = json!([{"name": "ok", "type": "approval", "phase": "before_wave"}]);
    let policy = policy_with(two_waves(), json!({"on_failure": "halt", "gates": gates}));
    let mut fx = mk_fixture(policy, 1);
    fx.tick(1);
    fx.gate_outcome("ok", GateOutcome::Fail, "not today");
    fx.tick(1);
    assert_eq!(fx.state(), RolloutState::Halted);
    fx.command(RolloutCommandKind::RetryWave);
    let change = fx.tick(1);
    assert_eq!(fx.wave(0).state, WaveState::Gating);
    assert_eq!(change.start_gates.len(), 1);
    assert_eq!(change.start_gates[0].attempt, 2);
}
