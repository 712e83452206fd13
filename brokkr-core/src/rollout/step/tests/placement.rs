use super::*;

fn add_agent(fx: &mut Fixture, n: u128, zone: &str) {
    fx.snap.fleet.push(AgentView {
        agent_id: agent_id(n),
        name: format!("a{n}"),
        labels: Labels::from([("zone".to_owned(), zone.to_owned())]),
        placed: true,
        last_heartbeat: Some(fx.now),
        candidate_event: None,
        baseline_event: None,
        health: None,
    });
}

#[test]
fn an_agent_no_longer_placed_is_removed_and_unpinned() {
    let mut fx = mk_fixture(two_waves(), 3);
    fx.tick(1);
    fx.view(1).placed = false;
    fx.view(3).placed = false;
    let change = fx.tick(1);
    assert_eq!(numbers(&change.unpin), [1]);
    assert_eq!(fx.state_of(1), RolloutAgentState::Removed);
    assert_eq!(fx.state_of(3), RolloutAgentState::Removed);
    // The canary wave is left with nobody: it succeeds, and agent 2 is pinned.
    assert_eq!(numbers(&change.pin), [2]);
}

#[test]
fn a_new_agent_joins_the_first_unstarted_wave_that_takes_it() {
    let policy = json!({"waves": [
        {"name": "canary", "select": {"agents": ["a1"]}},
        {"name": "zones", "select": {"remaining": true}, "group_by": "zone"}
    ]});
    let mut fx = mk_fixture(policy, 4);
    fx.tick(1);
    let names: Vec<&str> = fx.snap.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["canary", "zones/zone=z0", "zones/zone=z1"]);
    let max_failures_before = fx.wave(2).max_failures;
    add_agent(&mut fx, 9, "z1");
    let change = fx.tick(1);
    assert!(
        change.pin.is_empty(),
        "it runs the baseline until its wave pins it"
    );
    assert_eq!(fx.agent(9).wave, 2);
    assert_eq!(fx.state_of(9), RolloutAgentState::Waiting);
    assert_eq!(fx.wave(2).max_failures, max_failures_before);
}

#[test]
fn a_new_agent_with_no_unstarted_wave_gets_a_late_wave() {
    let mut fx = mk_fixture(two_waves(), 2);
    fx.tick(1);
    fx.pinned_become_healthy();
    fx.tick(1);
    assert_eq!(fx.wave_states(), [WaveState::Succeeded, WaveState::Running]);
    add_agent(&mut fx, 7, "z1");
    add_agent(&mut fx, 8, "z0");
    let change = fx.tick(1);
    assert_eq!(fx.snap.waves.len(), 3);
    assert_eq!(fx.wave(2).name, "late");
    assert_eq!(fx.wave(2).spec, None);
    assert_eq!((fx.agent(7).wave, fx.agent(8).wave), (2, 2));
    assert!(change.pin.is_empty(), "the late wave waits for wave 1");
    fx.pinned_become_healthy();
    let change = fx.tick(1);
    assert_eq!(numbers(&change.pin), [7, 8]);
    fx.pinned_become_healthy();
    assert_eq!(fx.tick(1).state, RolloutState::Succeeded);
}

#[test]
fn an_agent_placed_again_starts_over() {
    let mut fx = mk_fixture(two_waves(), 3);
    fx.tick(1);
    fx.view(3).placed = false;
    fx.tick(1);
    assert_eq!(fx.state_of(3), RolloutAgentState::Removed);
    fx.view(3).placed = true;
    fx.tick(1);
    assert_eq!(fx.state_of(3), RolloutAgentState::Waiting);
    assert_eq!(fx.agent(3).wave, 1, "the rest wave has not started");
}
