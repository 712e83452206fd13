use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, 0).expect("a valid timestamp")
}

fn id(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(n))
}

fn ids(ns: &[u128]) -> Vec<AgentId> {
    ns.iter().map(|&n| id(n)).collect()
}

const GRACE: Duration = Duration::seconds(600);

fn mk_leaving(agent: u128, replacements: &[u128], since: i64) -> Leaving {
    Leaving {
        agent_id: id(agent),
        replacements: ids(replacements),
        since: at(since),
        until: at(since) + GRACE,
    }
}

fn mk_decision(chosen: &[u128], leaving: Vec<Leaving>) -> PlacementDecision {
    PlacementDecision {
        leaving,
        ..PlacementDecision::choosing(ids(chosen))
    }
}

/// The world the decision is judged in: agents that cannot keep a stack, and when each
/// agent last reported it healthy.
#[derive(Default)]
struct World {
    gone: BTreeSet<u128>,
    healthy_at: BTreeMap<u128, i64>,
}

fn mk_world() -> World {
    World::default()
}

/// Runs [`next_leaving`] at `now` and answers the leaving and the released agents.
fn check(
    world: &World,
    before: Option<&PlacementDecision>,
    chosen: &[u128],
    grace: Duration,
    now: i64,
) -> (Vec<Leaving>, Vec<(AgentId, Release)>) {
    let keepable = |agent: AgentId| !world.gone.iter().any(|&g| id(g) == agent);
    let healthy_since = |agent: AgentId, since: DateTime<Utc>| {
        world
            .healthy_at
            .iter()
            .any(|(&n, &t)| id(n) == agent && at(t) >= since)
    };
    let chosen = ids(chosen);
    let (leaving, released) = next_leaving(&EvictionInput {
        before,
        chosen: &chosen,
        grace,
        now: at(now),
        keepable: &keepable,
        healthy_since: &healthy_since,
    });
    let released = released
        .into_iter()
        .map(|r| (r.agent_id, r.reason))
        .collect();
    (leaving, released)
}

#[test]
fn a_move_keeps_the_dropped_agent_waiting_for_every_added_one() {
    let before = mk_decision(&[1, 2], vec![]);
    let (leaving, released) = check(&mk_world(), Some(&before), &[2, 3, 4], GRACE, 0);
    assert_eq!(leaving, vec![mk_leaving(1, &[3, 4], 0)]);
    assert!(released.is_empty());
}

#[test]
fn a_shrink_a_zero_grace_a_first_decision_or_an_inactive_agent_leave_at_once() {
    let before = mk_decision(&[1, 2], vec![]);
    // Nobody added: a shrink, not a move.
    assert_eq!(
        check(&mk_world(), Some(&before), &[2], GRACE, 0),
        (vec![], vec![])
    );
    // Grace zero: as before graceful eviction.
    assert_eq!(
        check(&mk_world(), Some(&before), &[3], Duration::zero(), 0),
        (vec![], vec![])
    );
    // Nothing was chosen before.
    assert_eq!(check(&mk_world(), None, &[3], GRACE, 0), (vec![], vec![]));
    // A stale, paused or deleted agent cannot keep anything.
    let world = World {
        gone: [1].into(),
        ..mk_world()
    };
    assert_eq!(
        check(&world, Some(&before), &[2, 3], GRACE, 0),
        (vec![], vec![])
    );
}

#[test]
fn healthy_replacements_release_the_leaving_agent() {
    let before = mk_decision(&[3, 4], vec![mk_leaving(1, &[3, 4], 0)]);
    // One of two healthy: still waiting.
    let mut world = World {
        healthy_at: [(3, 10)].into(),
        ..mk_world()
    };
    let (leaving, released) = check(&world, Some(&before), &[3, 4], GRACE, 20);
    assert_eq!(leaving, vec![mk_leaving(1, &[3, 4], 0)]);
    assert!(released.is_empty());
    // Both: released.
    world.healthy_at.insert(4, 15);
    let (leaving, released) = check(&world, Some(&before), &[3, 4], GRACE, 20);
    assert!(leaving.is_empty());
    assert_eq!(released, vec![(id(1), Release::ReplacementsHealthy)]);
}

#[test]
fn a_healthy_report_from_before_the_move_does_not_count() {
    // Agent 3 ran the stack once and said healthy; that was before this move.
    let world = World {
        healthy_at: [(3, -5)].into(),
        ..mk_world()
    };
    let before = mk_decision(&[3], vec![mk_leaving(1, &[3], 0)]);
    let (leaving, released) = check(&world, Some(&before), &[3], GRACE, 30);
    assert_eq!(leaving.len(), 1);
    assert!(released.is_empty());
}

#[test]
fn the_deadline_releases_whatever_the_replacements_say() {
    let before = mk_decision(&[3], vec![mk_leaving(1, &[3], 0)]);
    let (leaving, _) = check(&mk_world(), Some(&before), &[3], GRACE, 599);
    assert_eq!(leaving.len(), 1);
    let (leaving, released) = check(&mk_world(), Some(&before), &[3], GRACE, 600);
    assert!(leaving.is_empty());
    assert_eq!(released, vec![(id(1), Release::GraceElapsed)]);
}

#[test]
fn a_leaving_agent_follows_its_replacements_and_its_own_state() {
    let before = mk_decision(&[3, 4], vec![mk_leaving(1, &[3, 4], 0)]);
    // A replacement dropped out: only the other is waited for.
    let world = World {
        healthy_at: [(3, 5)].into(),
        ..mk_world()
    };
    let (leaving, released) = check(&world, Some(&before), &[3], GRACE, 10);
    assert!(leaving.is_empty());
    assert_eq!(released, vec![(id(1), Release::ReplacementsHealthy)]);
    // Every replacement dropped out: nobody to wait for.
    let (leaving, released) = check(&mk_world(), Some(&before), &[5], GRACE, 10);
    // Agents 3 and 4 were chosen and are dropped for 5: they start leaving themselves.
    assert_eq!(
        leaving,
        vec![mk_leaving(3, &[5], 10), mk_leaving(4, &[5], 10)]
    );
    assert_eq!(released, vec![(id(1), Release::NoReplacement)]);
    // The leaving agent went stale: it loses the stack now.
    let world = World {
        gone: [1].into(),
        ..mk_world()
    };
    let (leaving, released) = check(&world, Some(&before), &[3, 4], GRACE, 10);
    assert!(leaving.is_empty());
    assert_eq!(released, vec![(id(1), Release::NotActive)]);
    // Chosen again: it simply has the stack, neither leaving nor released.
    let (leaving, released) = check(&mk_world(), Some(&before), &[1, 3, 4], GRACE, 10);
    assert!(leaving.is_empty());
    assert!(released.is_empty());
}

#[test]
fn leaving_lists_are_ordered_and_a_leaving_agent_is_not_added_twice() {
    let before = mk_decision(&[2, 5], vec![mk_leaving(9, &[2], 0)]);
    let (leaving, _) = check(&mk_world(), Some(&before), &[2, 7], GRACE, 10);
    assert_eq!(
        leaving,
        vec![mk_leaving(5, &[7], 10), mk_leaving(9, &[2], 0)]
    );
}

#[test]
fn stored_decisions_without_leaving_read_and_write_as_before() {
    let old = serde_json::json!({"chosen": [id(1)], "rejected": []});
    let decision: PlacementDecision = serde_json::from_value(old.clone()).unwrap();
    assert!(decision.leaving.is_empty());
    assert_eq!(serde_json::to_value(&decision).unwrap(), old);
    let with = mk_decision(&[3], vec![mk_leaving(1, &[3], 0)]);
    let back: PlacementDecision =
        serde_json::from_value(serde_json::to_value(&with).unwrap()).unwrap();
    assert_eq!(back, with);
    assert_eq!(with.keeps(), [id(1), id(3)].into());
}

#[test]
fn the_grace_defaults_to_ten_minutes_and_zero_turns_it_off() {
    let mut policy = crate::PlacementPolicy::default();
    assert_eq!(policy.eviction_grace(), Duration::minutes(10));
    policy.eviction_grace_secs = Some(0);
    assert_eq!(policy.eviction_grace(), Duration::zero());
    policy.eviction_grace_secs = Some(u64::MAX);
    assert!(policy.eviction_grace() > Duration::days(365));
    // The control plane's field, not a built-in placement field.
    let custom = crate::PlacementPolicy {
        eviction_grace_secs: Some(30),
        ..crate::PlacementPolicy::named("x", serde_json::json!({}))
    };
    assert!(!custom.has_builtin_fields());
}
