use super::*;

#[test]
fn queued_without_the_slot_waits_and_looks_again_in_a_minute() {
    let mut fx = mk_fixture(two_waves(), 3);
    fx.snap.slot_free = false;
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Queued);
    assert!(change.waves.is_empty() && change.agents.is_empty() && change.transitions.is_empty());
    assert_eq!(change.next_eval_at, Some(fx.now + Duration::seconds(60)));
    assert_eq!(change.started_at, None);
}

#[test]
fn a_free_slot_plans_the_waves_and_pins_the_first() {
    let mut fx = mk_fixture(
        policy_with(two_waves(), json!({"rollout_deadline": "1h"})),
        3,
    );
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Running);
    assert_eq!(change.started_at, Some(fx.now));
    assert_eq!(change.deadline_at, Some(fx.now + Duration::hours(1)));
    assert_eq!(change.waves.len(), 2, "every planned wave is written");
    assert_eq!(change.agents.len(), 3, "every planned agent is written");
    assert_eq!(numbers(&change.pin), [1], "only the canary is pinned");
    assert_eq!(fx.wave_states(), [WaveState::Running, WaveState::Pending]);
    assert_eq!(fx.state_of(1), RolloutAgentState::Pinned);
    assert_eq!(fx.agent(1).pinned_at, Some(fx.now));
    assert_eq!(
        change.transitions,
        [
            Transition::Rollout {
                from: RolloutState::Queued,
                to: RolloutState::Running,
                reason: None
            },
            Transition::Wave {
                index: 0,
                from: WaveState::Pending,
                to: WaveState::Running,
                reason: None
            },
        ]
    );
    // The next look is the canary's progress deadline (15 minutes by default).
    assert_eq!(change.next_eval_at, Some(fx.now + Duration::minutes(15)));
}

#[test]
fn a_stack_placed_nowhere_succeeds_at_once() {
    let mut fx = mk_fixture(two_waves(), 0);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Succeeded);
    assert!(change.release);
    assert_eq!(change.finished_at, Some(fx.now));
    assert_eq!(change.next_eval_at, None);
    assert_eq!(
        fx.rollout_path(),
        [
            (RolloutState::Queued, RolloutState::Running),
            (RolloutState::Running, RolloutState::Succeeded)
        ]
    );
}

#[test]
fn waves_run_in_order_bake_and_the_last_one_releases() {
    let mut fx = mk_fixture(policy_with(two_waves(), json!({"bake_time": "5m"})), 3);
    fx.tick(1);
    assert_eq!(fx.pinned(), [1]);
    fx.tick(10);
    fx.pinned_become_healthy();
    let change = fx.tick(10);
    assert_eq!(fx.state_of(1), RolloutAgentState::Healthy);
    assert_eq!(fx.agent(1).healthy_since, Some(fx.now));
    assert_eq!(fx.wave_states(), [WaveState::Baking, WaveState::Pending]);
    assert_eq!(fx.wave(0).all_healthy_since, Some(fx.now));
    assert_eq!(
        change.next_eval_at,
        Some(fx.now + Duration::minutes(5)),
        "the bake's end"
    );
    assert!(change.pin.is_empty(), "wave 2 waits for wave 1's bake");
    let change = fx.tick(299);
    assert_eq!(fx.wave_states(), [WaveState::Baking, WaveState::Pending]);
    assert!(change.transitions.is_empty() && change.waves.is_empty());
    let change = fx.tick(1);
    assert_eq!(fx.wave_states(), [WaveState::Succeeded, WaveState::Running]);
    assert_eq!(numbers(&change.pin), [2, 3]);
    fx.tick(10);
    fx.pinned_become_healthy();
    fx.tick(10);
    let change = fx.tick(300);
    assert_eq!(change.state, RolloutState::Succeeded);
    assert!(change.release && !change.unpin_all);
    assert_eq!(change.next_eval_at, None);
    assert_eq!(
        fx.wave_states(),
        [WaveState::Succeeded, WaveState::Succeeded]
    );
}

#[test]
fn a_step_with_nothing_new_writes_nothing() {
    let mut fx = mk_fixture(two_waves(), 3);
    fx.tick(1);
    let change = fx.tick(5);
    assert!(change.waves.is_empty(), "{:?}", change.waves);
    assert!(change.agents.is_empty(), "{:?}", change.agents);
    assert!(change.transitions.is_empty() && change.pin.is_empty() && change.unpin.is_empty());
    assert!(change.start_gates.is_empty());
    assert_eq!(change.state, RolloutState::Running);
}

#[test]
fn a_final_rollout_only_answers_its_commands() {
    let mut fx = mk_fixture(two_waves(), 0);
    fx.tick(1);
    let id = fx.command(RolloutCommandKind::Pause);
    let change = fx.tick(1);
    assert_eq!(change.state, RolloutState::Succeeded);
    assert!(change.transitions.is_empty() && !change.release);
    assert_eq!(change.next_eval_at, None);
    assert!(fx.outcome_of(id).contains("already ended"));
}

#[test]
fn the_implicit_wave_takes_agents_no_wave_selects() {
    let policy = json!({"waves": [
        {"name": "z1", "select": {"match_labels": {"zone": "z1"}}}
    ]});
    let mut fx = mk_fixture(policy, 4);
    fx.tick(1);
    let names: Vec<&str> = fx.snap.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["z1", "implicit"]);
    assert_eq!(fx.agent(2).wave, 1);
    assert_eq!(fx.agent(1).wave, 0);
    assert_eq!(fx.pinned(), [1, 3]);
}
