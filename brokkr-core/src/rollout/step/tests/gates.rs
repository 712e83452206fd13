use crate::model::GateOutcome;
use crate::rollout::GatePhase;

use super::*;

fn with_gates(gates: Value) -> Value {
    policy_with(two_waves(), json!({ "gates": gates }))
}

fn webhook(name: &str, phase: &str) -> Value {
    json!({"name": name, "type": "webhook", "phase": phase,
           "url": "https://gate.example/", "secret_ref": "s", "error_limit": 2})
}

#[test]
fn an_approval_holds_its_wave_until_an_operator_decides() {
    let gates = json!([{"name": "prod-ok", "type": "approval", "phase": "before_wave",
                        "waves": ["rest"]}]);
    let mut fx = mk_fixture(with_gates(gates), 2);
    let change = fx.tick(1);
    assert!(
        change.start_gates.is_empty(),
        "the canary has no approval gate"
    );
    fx.pinned_become_healthy();
    let change = fx.tick(1);
    assert_eq!(fx.wave_states(), [WaveState::Succeeded, WaveState::Gating]);
    assert_eq!(change.start_gates.len(), 1);
    let gate = &change.start_gates[0];
    assert_eq!(
        (gate.wave, gate.gate.as_str(), gate.phase, gate.attempt),
        (1, "prod-ok", GatePhase::BeforeWave, 1)
    );
    assert!(change.pin.is_empty());
    let reason = change.state_reason.expect("a hold");
    assert!(reason.contains("prod-ok (approval)"), "{reason}");
    // Waiting for the approval starts no second evaluation.
    let change = fx.tick(600);
    assert!(change.start_gates.is_empty() && change.pin.is_empty());
    fx.gate_outcome("prod-ok", GateOutcome::Pass, "approved");
    let change = fx.tick(1);
    assert_eq!(numbers(&change.pin), [2]);
    assert_eq!(fx.wave(1).state, WaveState::Running);
}

#[test]
fn a_webhook_gate_is_asked_again_after_wait_and_error() {
    let mut fx = mk_fixture(with_gates(json!([webhook("slo", "before_wave")])), 1);
    let change = fx.tick(1);
    assert_eq!(change.start_gates.len(), 1);
    let change = fx.tick(5);
    assert!(change.start_gates.is_empty(), "one evaluation at a time");
    let recheck = fx.now + Duration::seconds(40);
    fx.gate_outcome("slo", GateOutcome::Wait, "error budget burning");
    fx.snap.gate_evaluations.last_mut().expect("one").recheck_at = Some(recheck);
    let change = fx.tick(1);
    assert!(change.start_gates.is_empty());
    assert_eq!(change.next_eval_at, Some(recheck));
    let change = fx.tick(39);
    assert_eq!(change.start_gates.len(), 1);
    assert_eq!(change.start_gates[0].attempt, 2);
    fx.gate_outcome("slo", GateOutcome::Error, "HTTP 503");
    let change = fx.tick(1);
    assert!(
        change.start_gates.is_empty(),
        "an error is retried after a pause"
    );
    let change = fx.tick(10);
    assert_eq!(change.start_gates[0].attempt, 3);
    fx.gate_outcome("slo", GateOutcome::Pass, "");
    let change = fx.tick(1);
    assert_eq!(numbers(&change.pin), [1]);
}

#[test]
fn a_gate_failure_fails_the_wave() {
    let mut fx = mk_fixture(with_gates(json!([webhook("slo", "after_wave")])), 2);
    fx.tick(1);
    fx.pinned_become_healthy();
    let change = fx.tick(1);
    assert_eq!(
        fx.wave(0).state,
        WaveState::Verifying,
        "after_wave gates run after the bake"
    );
    assert_eq!(change.start_gates[0].phase, GatePhase::AfterWave);
    fx.gate_outcome("slo", GateOutcome::Fail, "p99 too high");
    let change = fx.tick(1);
    assert_eq!(fx.wave(0).state, WaveState::Failed);
    assert!(
        fx.wave(0)
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("p99 too high"))
    );
    assert_eq!(change.state, RolloutState::Reverting);
    assert!(change.unpin_all);
}

#[test]
fn a_gate_pause_holds_the_rollout_until_the_gate_passes() {
    let mut fx = mk_fixture(with_gates(json!([webhook("slo", "after_wave")])), 2);
    fx.tick(1);
    fx.pinned_become_healthy();
    fx.tick(1);
    fx.gate_outcome("slo", GateOutcome::Pause, "maintenance window");
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Paused);
    assert_eq!(
        change.state_reason.as_deref(),
        Some("gate slo paused the rollout: maintenance window")
    );
    // Asked again while paused; still paused.
    let change = fx.tick(30);
    assert_eq!(change.start_gates.len(), 1);
    fx.gate_outcome("slo", GateOutcome::Pause, "maintenance window");
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Paused);
    let change = fx.tick(30);
    assert_eq!(change.start_gates.len(), 1);
    fx.gate_outcome("slo", GateOutcome::Pass, "");
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Running);
    assert_eq!(fx.wave_states(), [WaveState::Succeeded, WaveState::Running]);
    assert_eq!(numbers(&change.pin), [2]);
}

#[test]
fn errors_in_a_row_pause_until_an_operator_resumes() {
    let mut fx = mk_fixture(with_gates(json!([webhook("slo", "before_wave")])), 1);
    fx.tick(1);
    fx.gate_outcome("slo", GateOutcome::Error, "timeout");
    fx.tick(10);
    fx.gate_outcome("slo", GateOutcome::Error, "timeout");
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Paused, "error_limit 2");
    let reason = change.state_reason.expect("a reason");
    assert!(reason.contains("could not answer 2 times"), "{reason}");
    let change = fx.tick(600);
    assert!(
        change.start_gates.is_empty(),
        "nobody asks until an operator resumes"
    );
    fx.command(RolloutCommandKind::Resume);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Running);
    assert_eq!(change.start_gates.len(), 1, "asked again at once");
    assert_eq!(change.start_gates[0].attempt, 3);
}

#[test]
fn errors_in_a_row_can_fail_the_wave() {
    let policy = policy_with(
        with_gates(json!([webhook("slo", "before_wave")])),
        json!({"on_gate_error": "fail"}),
    );
    let mut fx = mk_fixture(policy, 1);
    fx.tick(1);
    fx.gate_outcome("slo", GateOutcome::Error, "timeout");
    fx.tick(10);
    fx.gate_outcome("slo", GateOutcome::Error, "timeout");
    fx.tick(1);
    assert_eq!(fx.wave(0).state, WaveState::Failed);
    assert_eq!(fx.state(), RolloutState::Reverted, "nothing was pinned yet");
}

#[test]
fn a_continuous_gate_is_asked_all_along_and_its_failure_reverts() {
    let mut fx = mk_fixture(with_gates(json!([webhook("errors", "continuous")])), 3);
    let change = fx.tick(1);
    assert_eq!(change.start_gates.len(), 1);
    assert_eq!(
        numbers(&change.pin),
        [1],
        "a continuous gate does not hold pins"
    );
    fx.gate_outcome("errors", GateOutcome::Pass, "");
    let change = fx.tick(1);
    assert!(change.start_gates.is_empty());
    assert_eq!(change.next_eval_at, Some(fx.now + Duration::seconds(29)));
    let change = fx.tick(29);
    assert_eq!(change.start_gates.len(), 1, "asked again");
    fx.gate_outcome("errors", GateOutcome::Fail, "5xx rate 12%");
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Reverting);
    assert!(change.unpin_all);
    assert!(
        change
            .state_reason
            .is_some_and(|r| r.contains("5xx rate 12%"))
    );
}

#[test]
fn a_gate_runs_only_for_the_waves_it_names() {
    let mut gate = webhook("slo", "after_wave");
    gate["waves"] = json!(["rest"]);
    let mut fx = mk_fixture(with_gates(json!([gate])), 2);
    fx.tick(1);
    fx.pinned_become_healthy();
    let change = fx.tick(1);
    assert!(
        change.start_gates.is_empty(),
        "the canary has no after_wave gate"
    );
    assert_eq!(fx.wave_states(), [WaveState::Succeeded, WaveState::Running]);
    fx.pinned_become_healthy();
    let change = fx.tick(1);
    assert_eq!(
        fx.wave_states(),
        [WaveState::Succeeded, WaveState::Verifying]
    );
    assert_eq!(change.start_gates[0].wave, 1);
}

#[test]
fn a_wait_without_a_time_is_asked_again_after_the_default() {
    let mut fx = mk_fixture(with_gates(json!([webhook("slo", "before_wave")])), 1);
    fx.tick(1);
    fx.gate_outcome("slo", GateOutcome::Wait, "not yet");
    let answered = fx.now;
    let change = fx.tick(1);
    assert_eq!(change.next_eval_at, Some(answered + Duration::seconds(30)));
    let change = fx.tick(29);
    assert_eq!(change.start_gates.len(), 1);
}

#[test]
fn an_operator_pause_outlasts_a_gate_pause() {
    let mut fx = mk_fixture(with_gates(json!([webhook("slo", "before_wave")])), 1);
    fx.tick(1);
    fx.gate_outcome("slo", GateOutcome::Pause, "freeze");
    fx.tick(1);
    assert_eq!(fx.state(), RolloutState::Paused);
    let pause = fx.command(RolloutCommandKind::Pause);
    let change = fx.tick(1);
    assert!(fx.outcome_of(pause).starts_with("already paused; now held"));
    assert_eq!(
        change.state_reason.as_deref(),
        Some("paused by an operator")
    );
    // The gate is no longer asked, and passing would not resume the rollout.
    let change = fx.tick(60);
    assert!(change.start_gates.is_empty());
    assert_eq!(change.state, RolloutState::Paused);
}
