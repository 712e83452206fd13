use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::metadata::Labels;
use crate::rollout::Quantity;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a valid time")
}

fn id(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(n))
}

/// Agent `n`, named `a<n>`, placed, with `labels` given as "k=v" pairs.
fn mk_agent(n: u128, labels: &[&str]) -> AgentView {
    let labels: Labels = labels
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    AgentView {
        agent_id: id(n),
        name: format!("a{n}"),
        labels,
        placed: true,
        last_heartbeat: Some(now()),
        candidate_event: None,
        baseline_event: None,
        health: None,
    }
}

fn mk_policy(waves: serde_json::Value) -> RolloutPolicy {
    serde_json::from_value(json!({ "waves": waves })).expect("a policy")
}

/// The plan as (wave name, agent numbers) in wave order, agents by id.
fn check(policy: &RolloutPolicy, fleet: &[AgentView], expected: &[(&str, &[u128])]) {
    let plan = plan_waves(policy, fleet, now());
    let found: Vec<(String, Vec<u128>)> = plan
        .waves
        .iter()
        .map(|w| {
            let mut members: Vec<u128> = plan
                .agents
                .iter()
                .filter(|a| a.wave == w.index)
                .map(|a| a.agent_id.0.as_u128())
                .collect();
            members.sort_unstable();
            (w.name.clone(), members)
        })
        .collect();
    let expected: Vec<(String, Vec<u128>)> = expected
        .iter()
        .map(|(name, members)| (name.to_string(), members.to_vec()))
        .collect();
    assert_eq!(found, expected);
    for (i, wave) in plan.waves.iter().enumerate() {
        assert_eq!(wave.index as usize, i, "indexes follow the order");
        assert_eq!(wave.state, WaveState::Pending);
    }
    assert!(
        plan.agents
            .windows(2)
            .all(|w| w[0].agent_id < w[1].agent_id),
        "agents once each, by id"
    );
}

#[test]
fn listed_agents_match_by_name_or_id() {
    let policy = mk_policy(json!([
        {"name": "canary", "select": {"agents": ["a2", id(5).to_string()]}},
        {"name": "rest", "select": {"remaining": true}}
    ]));
    let fleet: Vec<_> = (1..=6).map(|n| mk_agent(n, &[])).collect();
    check(
        &policy,
        &fleet,
        &[("canary", &[2, 5]), ("rest", &[1, 3, 4, 6])],
    );
}

#[test]
fn the_first_matching_wave_wins_and_unmatched_agents_go_last() {
    let policy = mk_policy(json!([
        {"name": "eu", "select": {"match_labels": {"region": "eu"}}},
        {"name": "prod", "select": {"match_labels": {"tier": "prod"}}}
    ]));
    let fleet = [
        mk_agent(1, &["region=eu", "tier=prod"]),
        mk_agent(2, &["region=us", "tier=prod"]),
        mk_agent(3, &["region=us", "tier=dev"]),
        mk_agent(4, &["region=eu"]),
    ];
    check(
        &policy,
        &fleet,
        &[("eu", &[1, 4]), ("prod", &[2]), ("implicit", &[3])],
    );
}

#[test]
fn only_placed_agents_are_planned_and_empty_waves_dropped() {
    let policy = mk_policy(json!([
        {"name": "canary", "select": {"agents": ["nobody"]}},
        {"name": "rest", "select": {"remaining": true}}
    ]));
    let mut fleet: Vec<_> = (1..=3).map(|n| mk_agent(n, &[])).collect();
    fleet[1].placed = false;
    check(&policy, &fleet, &[("rest", &[1, 3])]);
    check(&policy, &[], &[]);
}

#[test]
fn group_by_makes_a_sub_wave_per_value_with_unlabelled_agents_last() {
    let policy = mk_policy(json!([
        {"name": "all", "select": {"remaining": true}, "group_by": "zone"}
    ]));
    let fleet = [
        mk_agent(1, &["zone=b"]),
        mk_agent(2, &[]),
        mk_agent(3, &["zone=a"]),
        mk_agent(4, &["zone=b"]),
        mk_agent(5, &["zone="]),
    ];
    check(
        &policy,
        &fleet,
        &[
            ("all/zone=", &[5]),
            ("all/zone=a", &[3]),
            ("all/zone=b", &[1, 4]),
            ("all/zone unset", &[2]),
        ],
    );
}

#[test]
fn split_chunks_by_count_or_rounded_up_percentage_in_id_order() {
    let fleet: Vec<_> = (1..=5).map(|n| mk_agent(n, &[])).collect();
    let mut policy = mk_policy(json!([{"name": "all", "select": {"remaining": true}}]));
    policy.waves[0].split = Some(Quantity::Count(2));
    check(
        &policy,
        &fleet,
        &[("all#1", &[1, 2]), ("all#2", &[3, 4]), ("all#3", &[5])],
    );
    // 30% of 5 is 1.5, rounded up to 2.
    policy.waves[0].split = Some(Quantity::Percent(30));
    check(
        &policy,
        &fleet,
        &[("all#1", &[1, 2]), ("all#2", &[3, 4]), ("all#3", &[5])],
    );
    // 1% of 5 is 0.05, rounded up to 1.
    policy.waves[0].split = Some(Quantity::Percent(1));
    assert_eq!(plan_waves(&policy, &fleet, now()).waves.len(), 5);
}

#[test]
fn split_cuts_each_group_and_takes_its_percentage_of_the_group() {
    let policy: RolloutPolicy = serde_json::from_value(json!({"waves": [
        {"name": "eu", "select": {"remaining": true}, "group_by": "zone", "split": "50%"}
    ]}))
    .expect("a policy");
    let fleet = [
        mk_agent(1, &["zone=a"]),
        mk_agent(2, &["zone=a"]),
        mk_agent(3, &["zone=a"]),
        mk_agent(4, &["zone=b"]),
    ];
    check(
        &policy,
        &fleet,
        &[
            ("eu/zone=a#1", &[1, 2]),
            ("eu/zone=a#2", &[3]),
            ("eu/zone=b#1", &[4]),
        ],
    );
}

#[test]
fn max_failures_is_the_policy_quantity_of_each_wave() {
    let mut policy = mk_policy(json!([
        {"name": "small", "select": {"agents": ["a1"]}},
        {"name": "rest", "select": {"remaining": true}}
    ]));
    policy.max_failures = Quantity::Percent(10);
    let fleet: Vec<_> = (1..=21).map(|n| mk_agent(n, &[])).collect();
    let plan = plan_waves(&policy, &fleet, now());
    let failures: Vec<u32> = plan.waves.iter().map(|w| w.max_failures).collect();
    assert_eq!(failures, [1, 2], "10% of 1 and of 20, rounded up");
}

#[test]
fn the_plan_does_not_depend_on_the_fleet_order() {
    let policy = mk_policy(json!([
        {"name": "eu", "select": {"match_labels": {"region": "eu"}}, "group_by": "zone",
         "split": 2},
        {"name": "rest", "select": {"remaining": true}}
    ]));
    let mut fleet: Vec<_> = (1..=40)
        .map(|n| {
            let region = if n % 3 == 0 { "region=us" } else { "region=eu" };
            let zone = ["zone=a", "zone=b", "zone=c"][(n % 5) as usize % 3];
            mk_agent(n, &[region, zone])
        })
        .collect();
    let first = plan_waves(&policy, &fleet, now());
    fleet.reverse();
    assert_eq!(plan_waves(&policy, &fleet, now()), first);
}

#[test]
fn a_late_agent_is_taken_by_its_own_sub_wave_only() {
    let policy = mk_policy(json!([
        {"name": "eu", "select": {"match_labels": {"region": "eu"}}, "group_by": "zone",
         "split": 1},
        {"name": "prod", "select": {"match_labels": {"tier": "prod"}}}
    ]));
    let selector = WaveSelector::new(&policy);
    let wave = |name: &str, spec: Option<&str>| {
        new_wave(&policy, 0, name.to_owned(), spec.map(str::to_owned), 1)
    };
    let eu_a = mk_agent(9, &["region=eu", "zone=a"]);
    assert!(selector.takes(&wave("eu/zone=a#2", Some("eu")), &eu_a));
    assert!(!selector.takes(&wave("eu/zone=b#1", Some("eu")), &eu_a));
    assert!(!selector.takes(&wave("eu/zone=ab#1", Some("eu")), &eu_a));
    assert!(!selector.takes(&wave("prod", Some("prod")), &eu_a));
    assert!(!selector.takes(&wave(IMPLICIT_WAVE, None), &eu_a));
    assert!(selector.takes(&wave(LATE_WAVE, None), &eu_a));
    let other = mk_agent(10, &["tier=dev"]);
    assert!(selector.takes(&wave(IMPLICIT_WAVE, None), &other));
}
