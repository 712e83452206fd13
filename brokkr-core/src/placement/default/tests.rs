use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::metadata::Labels;
use crate::model::{AgentStatus, Capabilities};
use crate::placement::{
    CapabilityRequirements, Spread, TAINTS_ANNOTATION, TaintEffect, Toleration, TolerationOperator,
    parse_taints,
};
use crate::selector::{AnnotationMatch, LabelSelector};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a valid timestamp")
}

const STALE_AFTER: Duration = Duration::seconds(60);

fn id(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(n))
}

/// A live, active agent with no labels, annotations or capabilities.
fn mk_agent(n: u128) -> Agent {
    Agent {
        id: id(n),
        name: format!("agent-{n}"),
        cluster_name: "c".into(),
        labels: Labels::new(),
        annotations: BTreeMap::new(),
        status: AgentStatus::Active,
        last_heartbeat: Some(now() - Duration::seconds(5)),
        capabilities: Capabilities::default(),
        created_at: now(),
        updated_at: now(),
        deleted_at: None,
    }
}

fn with_label(mut agent: Agent, key: &str, value: &str) -> Agent {
    agent.labels.insert(key.into(), value.into());
    agent
}

fn with_taints(mut agent: Agent, taints: &str) -> Agent {
    agent
        .annotations
        .insert(TAINTS_ANNOTATION.into(), taints.into());
    agent
}

fn with_cpu(mut agent: Agent, cpu: u64) -> Agent {
    agent.capabilities.allocatable_cpu_millis = Some(cpu);
    agent
}

fn selector(json: &str) -> LabelSelector {
    serde_json::from_str(json).expect("a selector")
}

fn place(policy: &PlacementPolicy, agents: &[Agent], current: &[u128]) -> PlacementDecision {
    let current: Vec<AgentId> = current.iter().copied().map(id).collect();
    DefaultPlacement.place(&PlacementInput {
        policy,
        agents,
        current: &current,
        now: now(),
        stale_after: STALE_AFTER,
    })
}

/// Places and checks the chosen agents (by number) and every rejection (as
/// `(number, Display of the rejection)`).
#[track_caller]
fn check(
    policy: &PlacementPolicy,
    agents: &[Agent],
    current: &[u128],
    chosen: &[u128],
    rejected: &[(u128, &str)],
) {
    let decision = place(policy, agents, current);
    let want_chosen: Vec<AgentId> = chosen.iter().copied().map(id).collect();
    assert_eq!(
        decision.chosen, want_chosen,
        "chosen; decision {decision:?}"
    );
    let got: Vec<(AgentId, String)> = decision
        .rejected
        .iter()
        .map(|(agent, why)| (*agent, why.to_string()))
        .collect();
    let want: Vec<(AgentId, String)> = rejected
        .iter()
        .map(|(n, why)| (id(*n), (*why).to_owned()))
        .collect();
    assert_eq!(got, want, "rejected");
}

fn reason(policy: &PlacementPolicy, agent: Agent, current: &[u128]) -> Option<Rejection> {
    let decision = place(policy, &[agent], current);
    decision.rejected.into_iter().next().map(|(_, why)| why)
}

#[test]
fn deleted_and_paused_agents_are_not_active_before_anything_else() {
    let policy = PlacementPolicy {
        agent_selector: selector(r#"{"matchLabels": {"tier": "prod"}}"#),
        ..Default::default()
    };
    let mut deleted = mk_agent(1);
    deleted.deleted_at = Some(now());
    let mut paused = with_label(mk_agent(2), "tier", "prod");
    paused.status = AgentStatus::Inactive;
    // Incumbency does not excuse it.
    check(
        &policy,
        &[paused, deleted],
        &[1, 2],
        &[],
        &[(1, "not active"), (2, "not active")],
    );
}

#[test]
fn labels_then_annotations_are_checked() {
    let mut policy = PlacementPolicy {
        agent_selector: selector(
            r#"{"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]}"#,
        ),
        ..Default::default()
    };
    policy.annotations = AnnotationMatch(BTreeMap::from([("team".into(), "a".into())]));
    let mut wrong_team = with_label(mk_agent(2), "region", "eu");
    wrong_team.annotations.insert("team".into(), "b".into());
    let mut fits = with_label(mk_agent(3), "region", "eu");
    fits.annotations.insert("team".into(), "a".into());
    check(
        &policy,
        &[with_label(mk_agent(1), "region", "us"), wrong_team, fits],
        &[],
        &[3],
        &[
            (1, "label mismatch: label region=us not matched (In [eu])"),
            (
                2,
                "annotation mismatch: annotation team=b not matched (= a)",
            ),
        ],
    );
}

/// Reported version, CPU, memory, features, and the expected reason.
type CapsCase<'a> = (
    Option<&'a str>,
    Option<u64>,
    Option<u64>,
    &'a [&'a str],
    Option<&'a str>,
);

#[test]
fn capability_requirements_are_checked_in_order() {
    let policy = PlacementPolicy {
        requirements: CapabilityRequirements {
            min_kubernetes_version: Some("1.30".into()),
            min_cpu_millis: Some(2000),
            min_memory_bytes: Some(1 << 30),
            features: BTreeSet::from(["arm".into(), "gpu".into()]),
        },
        ..Default::default()
    };
    let caps = |version: Option<&str>, cpu: Option<u64>, memory: Option<u64>, features: &[&str]| {
        let mut agent = mk_agent(1);
        agent.capabilities = Capabilities {
            kubernetes_version: version.map(Into::into),
            allocatable_cpu_millis: cpu,
            allocatable_memory_bytes: memory,
            features: features.iter().map(|f| (*f).to_owned()).collect(),
            ..Default::default()
        };
        reason(&policy, agent, &[]).map(|why| why.to_string())
    };
    let all = Some(1 << 30);
    let cases: &[CapsCase<'_>] = &[
        (
            None,
            Some(4000),
            all,
            &["arm", "gpu"],
            Some("kubernetes_version not reported (need >= 1.30)"),
        ),
        (
            Some("v1.29.1"),
            None,
            None,
            &[],
            Some("kubernetes_version v1.29.1 < 1.30"),
        ),
        (
            Some("weird"),
            None,
            None,
            &[],
            Some("kubernetes_version \"weird\" is not a version (need >= 1.30)"),
        ),
        (
            Some("v1.30.0-gke.1"),
            None,
            all,
            &[],
            Some("allocatable_cpu_millis not reported (need >= 2000)"),
        ),
        (
            Some("v1.31.2"),
            Some(1999),
            all,
            &[],
            Some("allocatable_cpu_millis 1999 < 2000"),
        ),
        (
            Some("1.30"),
            Some(2000),
            Some(5),
            &[],
            Some("allocatable_memory_bytes 5 < 1073741824"),
        ),
        (
            Some("1.30"),
            Some(2000),
            None,
            &[],
            Some("allocatable_memory_bytes not reported (need >= 1073741824)"),
        ),
        (
            Some("1.30"),
            Some(2000),
            all,
            &["gpu"],
            Some("feature arm not reported"),
        ),
        (
            Some("1.30"),
            Some(2000),
            all,
            &["arm"],
            Some("feature gpu not reported"),
        ),
        (
            Some("v1.30.0+k3s1"),
            Some(2000),
            all,
            &["arm", "gpu", "x"],
            None,
        ),
    ];
    for (version, cpu, memory, features, want) in cases {
        let want = want.map(|w| format!("missing capability: {w}"));
        assert_eq!(
            caps(*version, *cpu, *memory, features),
            want,
            "{version:?} {cpu:?} {memory:?} {features:?}"
        );
    }
}

#[test]
fn untolerated_taints_keep_newcomers_away() {
    let tolerating = |tolerations: Vec<Toleration>| PlacementPolicy {
        tolerations,
        ..Default::default()
    };
    let gpu = Toleration {
        key: "gpu".into(),
        operator: TolerationOperator::Equal,
        value: Some("true".into()),
        effect: None,
    };
    let agents = || {
        [
            with_taints(mk_agent(1), "gpu=true:NoSchedule"),
            with_taints(mk_agent(2), "gpu=true:PreferNoSchedule"),
            with_taints(mk_agent(3), "gpu=true:NoSchedule,maintenance:NoExecute"),
            with_taints(mk_agent(4), "not a taint"),
            with_taints(mk_agent(5), ""),
        ]
    };
    check(
        &tolerating(vec![]),
        &agents(),
        &[],
        &[5],
        &[
            (1, "untolerated taint: gpu=true:NoSchedule"),
            (2, "untolerated taint: gpu=true:PreferNoSchedule"),
            (3, "untolerated taint: gpu=true:NoSchedule"),
            (
                4,
                "untolerated taint: brokkr.io/taints does not parse (invalid taint \"not a taint\": expected key[=value]:Effect)",
            ),
        ],
    );
    // An unparsable list is never tolerated, not even by a toleration of everything.
    let everything = Toleration {
        key: String::new(),
        operator: TolerationOperator::Exists,
        value: None,
        effect: None,
    };
    check(
        &tolerating(vec![gpu.clone()]),
        &agents(),
        &[],
        &[1, 2, 5],
        &[
            (3, "untolerated taint: maintenance:NoExecute"),
            (
                4,
                "untolerated taint: brokkr.io/taints does not parse (invalid taint \"not a taint\": expected key[=value]:Effect)",
            ),
        ],
    );
    check(
        &tolerating(vec![everything]),
        &agents(),
        &[],
        &[1, 2, 3, 5],
        &[(
            4,
            "untolerated taint: brokkr.io/taints does not parse (invalid taint \"not a taint\": expected key[=value]:Effect)",
        )],
    );
    // A toleration limited to another effect does not cover the taint.
    let no_execute_only = Toleration {
        effect: Some(TaintEffect::NoExecute),
        ..gpu
    };
    assert_eq!(
        reason(
            &tolerating(vec![no_execute_only]),
            with_taints(mk_agent(1), "gpu=true:NoSchedule"),
            &[]
        ),
        Some(Rejection::Taint("gpu=true:NoSchedule".into())),
    );
}

#[test]
fn incumbents_keep_their_place_unless_a_taint_is_no_execute() {
    let policy = PlacementPolicy::default();
    let agents = [
        with_taints(mk_agent(1), "gpu=true:NoSchedule"),
        with_taints(mk_agent(2), "gpu=true:PreferNoSchedule"),
        with_taints(mk_agent(3), "dedicated=x:NoSchedule,maintenance:NoExecute"),
        with_taints(mk_agent(4), "not a taint"),
    ];
    check(
        &policy,
        &agents,
        &[1, 2, 3, 4],
        &[1, 2, 4],
        &[(3, "untolerated taint: maintenance:NoExecute")],
    );
}

#[test]
fn stale_agents_keep_what_they_have_but_get_nothing_new() {
    let stale = |n, age_secs| {
        let mut agent = mk_agent(n);
        agent.last_heartbeat = Some(now() - Duration::seconds(age_secs));
        agent
    };
    let never_seen = |n| {
        let mut agent = mk_agent(n);
        agent.last_heartbeat = None;
        agent
    };
    let agents = [
        stale(1, 61),
        stale(2, 10_000),
        never_seen(3),
        stale(4, 61),
        never_seen(5),
        stale(6, 60),
    ];
    let mut policy = PlacementPolicy::default();
    check(
        &policy,
        &agents,
        &[1, 2, 3],
        &[1, 2, 3, 6],
        &[(4, "stale heartbeat"), (5, "stale heartbeat")],
    );

    policy.evict_after_secs = Some(3600);
    check(
        &policy,
        &agents,
        &[1, 2, 3],
        &[1, 6],
        &[
            (2, "stale heartbeat"),
            (3, "stale heartbeat"),
            (4, "stale heartbeat"),
            (5, "stale heartbeat"),
        ],
    );
    // A bound below the staleness bound evicts as soon as the last heartbeat is older
    // than it, though the agent is not stale yet; newcomers past it are not chosen.
    policy.evict_after_secs = Some(1);
    check(
        &policy,
        &[mk_agent(1), mk_agent(2)],
        &[1],
        &[],
        &[(1, "stale heartbeat"), (2, "stale heartbeat")],
    );
    policy.evict_after_secs = Some(10);
    check(&policy, &[mk_agent(1), mk_agent(2)], &[1], &[1, 2], &[]);
    // Checks come in order: a taint is reported before staleness.
    assert_eq!(
        reason(
            &PlacementPolicy::default(),
            with_taints(stale(1, 100), "a:NoSchedule"),
            &[]
        ),
        Some(Rejection::Taint("a:NoSchedule".into())),
    );
}

#[test]
fn more_candidates_than_slots_go_by_cpu_then_memory_then_id() {
    let with_memory = |mut agent: Agent, memory| {
        agent.capabilities.allocatable_memory_bytes = Some(memory);
        agent
    };
    let agents = [
        mk_agent(1),                                  // 0 / 0
        with_cpu(mk_agent(2), 1000),                  // 1000 / 0
        with_memory(with_cpu(mk_agent(3), 4000), 10), // 4000 / 10
        with_memory(with_cpu(mk_agent(4), 4000), 20), // 4000 / 20
        with_memory(with_cpu(mk_agent(5), 4000), 20), // ties with 4, higher id
        with_memory(mk_agent(6), 1 << 40),            // no CPU figure counts as 0
    ];
    let capped = |max| PlacementPolicy {
        max_clusters: Some(max),
        ..Default::default()
    };
    check(
        &capped(2),
        &agents,
        &[],
        &[4, 5],
        &[
            (1, "limit reached"),
            (2, "limit reached"),
            (3, "limit reached"),
            (6, "limit reached"),
        ],
    );
    check(
        &capped(4),
        &agents,
        &[],
        &[2, 3, 4, 5],
        &[(1, "limit reached"), (6, "limit reached")],
    );
    check(
        &capped(5),
        &agents,
        &[],
        &[2, 3, 4, 5, 6],
        &[(1, "limit reached")],
    );
    check(&capped(0), &agents[..1], &[], &[], &[(1, "limit reached")]);
}

#[test]
fn incumbents_keep_their_place_against_better_agents_unless_rebalance() {
    let agents = [
        with_cpu(mk_agent(1), 100),
        with_cpu(mk_agent(2), 200),
        with_cpu(mk_agent(3), 9000),
    ];
    let mut policy = PlacementPolicy {
        max_clusters: Some(2),
        ..Default::default()
    };
    check(&policy, &agents, &[1, 2], &[1, 2], &[(3, "limit reached")]);
    // An incumbent that no longer fits frees its slot for the best newcomer.
    policy.agent_selector =
        selector(r#"{"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}"#);
    let mut moved = agents.clone();
    moved[0] = with_label(moved[0].clone(), "gone", "yes");
    check(
        &policy,
        &moved,
        &[1, 2],
        &[2, 3],
        &[(1, "label mismatch: label gone=yes present (DoesNotExist)")],
    );

    policy.rebalance = true;
    check(&policy, &agents, &[1, 2], &[2, 3], &[(1, "limit reached")]);
}

#[test]
fn a_tightened_limit_drops_the_lowest_ranked_incumbents() {
    let agents = [
        with_cpu(mk_agent(1), 100),
        with_cpu(mk_agent(2), 300),
        with_cpu(mk_agent(3), 200),
        mk_agent(4),
    ];
    let policy = PlacementPolicy {
        max_clusters: Some(2),
        ..Default::default()
    };
    check(
        &policy,
        &agents,
        &[1, 2, 3],
        &[2, 3],
        &[(1, "limit reached"), (4, "limit reached")],
    );
}

#[test]
fn spread_caps_each_value_and_agents_without_the_label_share_one() {
    let agents = [
        with_cpu(with_label(mk_agent(1), "region", "eu"), 300),
        with_cpu(with_label(mk_agent(2), "region", "eu"), 200),
        with_cpu(with_label(mk_agent(3), "region", "eu"), 100),
        with_label(mk_agent(4), "region", "us"),
        with_cpu(mk_agent(5), 50),
        mk_agent(6),
    ];
    let mut policy = PlacementPolicy {
        spread: Some(Spread {
            topology_key: "region".into(),
            max_per_value: 2,
        }),
        ..Default::default()
    };
    check(
        &policy,
        &agents,
        &[],
        &[1, 2, 4, 5, 6],
        &[(3, "spread limit reached: region=eu: 2 of 2")],
    );
    // Incumbents count: the low-CPU incumbent keeps its place, a better newcomer waits.
    check(
        &policy,
        &agents,
        &[3],
        &[1, 3, 4, 5, 6],
        &[(2, "spread limit reached: region=eu: 2 of 2")],
    );

    policy.spread = Some(Spread {
        topology_key: "region".into(),
        max_per_value: 1,
    });
    policy.max_clusters = Some(2);
    check(
        &policy,
        &agents,
        &[],
        &[1, 5],
        &[
            (2, "spread limit reached: region=eu: 1 of 1"),
            (3, "spread limit reached: region=eu: 1 of 1"),
            (4, "limit reached"),
            (6, "limit reached"),
        ],
    );
    policy.max_clusters = None;
    check(
        &policy,
        &agents,
        &[],
        &[1, 4, 5],
        &[
            (2, "spread limit reached: region=eu: 1 of 1"),
            (3, "spread limit reached: region=eu: 1 of 1"),
            (6, "spread limit reached: region missing: 1 of 1"),
        ],
    );
}

#[test]
fn every_agent_appears_once_in_id_order() {
    let agents: Vec<Agent> = [7, 3, 9, 1, 5]
        .into_iter()
        .map(|n| {
            if n % 3 == 0 {
                with_label(mk_agent(n), "x", "y")
            } else {
                mk_agent(n)
            }
        })
        .collect();
    let policy = PlacementPolicy {
        agent_selector: selector(r#"{"matchExpressions": [{"key": "x", "operator": "Exists"}]}"#),
        max_clusters: Some(1),
        ..Default::default()
    };
    check(
        &policy,
        &agents,
        &[],
        &[3],
        &[
            (1, "label mismatch: label x missing (Exists)"),
            (5, "label mismatch: label x missing (Exists)"),
            (7, "label mismatch: label x missing (Exists)"),
            (9, "limit reached"),
        ],
    );
}

fn affects(
    policy: &PlacementPolicy,
    decision: &PlacementDecision,
    before: Option<&Agent>,
    after: &Agent,
) -> bool {
    DefaultPlacement.affects(policy, decision, before, after, now(), STALE_AFTER, |_| {
        None
    })
}

#[test]
fn affects_ignores_what_cannot_change_the_chosen_set() {
    let eu = |n| with_label(mk_agent(n), "region", "eu");
    let mut policy = PlacementPolicy {
        agent_selector: selector(r#"{"matchLabels": {"region": "eu"}}"#),
        max_clusters: Some(2),
        ..Default::default()
    };
    let agents = [eu(1), eu(2), eu(3), mk_agent(4)];
    let decision = place(&policy, &agents, &[]);
    assert_eq!(decision.chosen, [id(1), id(2)]);

    // A chosen agent's heartbeat or unrelated label: no; losing its fit: yes.
    let mut beat = eu(1);
    beat.last_heartbeat = Some(now());
    assert!(!affects(&policy, &decision, Some(&agents[0]), &beat));
    assert!(!affects(
        &policy,
        &decision,
        Some(&agents[0]),
        &with_label(eu(1), "tier", "x")
    ));
    assert!(affects(&policy, &decision, Some(&agents[0]), &mk_agent(1)));
    // Going stale keeps the place (no eviction), so nothing changes.
    let mut stale = eu(1);
    stale.last_heartbeat = Some(now() - Duration::hours(1));
    assert!(!affects(&policy, &decision, Some(&agents[0]), &stale));
    policy.evict_after_secs = Some(60);
    assert!(affects(&policy, &decision, Some(&agents[0]), &stale));
    policy.evict_after_secs = None;

    // The stack is full: a newcomer that starts to fit gets no slot.
    assert!(!affects(&policy, &decision, Some(&agents[3]), &eu(4)));
    assert!(!affects(&policy, &decision, None, &eu(5)));
    // ... unless there is room, or rebalance may let it in.
    policy.max_clusters = Some(3);
    let roomy = place(&policy, &agents[..2], &[]);
    assert!(affects(&policy, &roomy, Some(&agents[3]), &eu(4)));
    assert!(affects(&policy, &roomy, None, &eu(5)));
    assert!(!affects(&policy, &roomy, None, &mk_agent(5)));
    policy.rebalance = true;
    assert!(affects(&policy, &decision, Some(&agents[3]), &eu(4)));
    // With rebalance a capacity change of a candidate can reorder; without, it cannot.
    assert!(affects(
        &policy,
        &decision,
        Some(&agents[2]),
        &with_cpu(eu(3), 10)
    ));
    policy.rebalance = false;
    policy.max_clusters = Some(2);
    assert!(!affects(
        &policy,
        &decision,
        Some(&agents[2]),
        &with_cpu(eu(3), 10)
    ));

    // With a spread, a chosen agent's move to another value matters.
    policy.spread = Some(Spread {
        topology_key: "zone".into(),
        max_per_value: 1,
    });
    let zoned: Vec<Agent> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| with_label(a.clone(), "zone", &i.to_string()))
        .collect();
    let decision = place(&policy, &zoned, &[]);
    assert!(affects(
        &policy,
        &decision,
        Some(&zoned[0]),
        &with_label(zoned[0].clone(), "zone", "1")
    ));
    assert!(!affects(
        &policy,
        &decision,
        Some(&zoned[0]),
        &with_label(zoned[0].clone(), "tier", "1")
    ));
}

#[test]
fn affects_with_rebalance_compares_a_newcomer_with_the_lowest_chosen() {
    let agents = [with_cpu(mk_agent(1), 100), with_cpu(mk_agent(2), 200)];
    let policy = PlacementPolicy {
        max_clusters: Some(2),
        rebalance: true,
        ..Default::default()
    };
    let decision = place(&policy, &agents, &[]);
    let lookup = |id: &AgentId| agents.iter().find(|a| a.id == *id);
    let affects = |after: &Agent| {
        DefaultPlacement.affects(&policy, &decision, None, after, now(), STALE_AFTER, lookup)
    };
    assert!(affects(&with_cpu(mk_agent(3), 150)));
    assert!(!affects(&with_cpu(mk_agent(3), 50)));
    // Same score: the lower id ranks higher.
    assert!(affects(&with_cpu(mk_agent(0), 100)));
    assert!(!affects(&with_cpu(mk_agent(3), 100)));
}

#[test]
fn affects_counts_the_spread_value_of_a_newcomer() {
    let in_region = |n, region| with_label(mk_agent(n), "region", region);
    let policy = PlacementPolicy {
        spread: Some(Spread {
            topology_key: "region".into(),
            max_per_value: 1,
        }),
        ..Default::default()
    };
    let agents = [in_region(1, "eu"), in_region(2, "us"), mk_agent(3)];
    let decision = place(&policy, &agents, &[]);
    assert_eq!(decision.chosen, [id(1), id(2), id(3)]);
    let lookup = |id: &AgentId| agents.iter().find(|a| a.id == *id);
    let affects = |after: &Agent| {
        DefaultPlacement.affects(&policy, &decision, None, after, now(), STALE_AFTER, lookup)
    };
    assert!(!affects(&in_region(4, "eu")));
    assert!(!affects(&mk_agent(4)));
    assert!(affects(&in_region(4, "ap")));
    // Without the lookup every value looks free.
    assert!(DefaultPlacement.affects(
        &policy,
        &decision,
        None,
        &in_region(4, "eu"),
        now(),
        STALE_AFTER,
        |_| None
    ));
}

// Property tests: random agents from small value sets, random policies.

const REGIONS: &[&str] = &["eu", "us", "ap"];
const TAINT_LISTS: &[&str] = &[
    "",
    "gpu=true:NoSchedule",
    "gpu=true:PreferNoSchedule",
    "maintenance:NoExecute",
    "gpu=true:NoSchedule,maintenance:NoExecute",
    "not a taint",
];
const VERSIONS: &[&str] = &["v1.29.1", "1.30", "v1.30.2-gke.1", "v1.31.0+k3s1", "weird"];
const FEATURES: &[&str] = &["gpu", "arm"];

fn option_of<T: Clone + std::fmt::Debug + 'static>(
    values: &'static [T],
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(prop::sample::select(values))
}

fn agent_body(n: u128) -> impl Strategy<Value = Agent> {
    (
        (
            option_of(REGIONS),
            option_of(&["prod", "dev"]),
            option_of(&["a", "b"]),
            prop::sample::select(TAINT_LISTS),
        ),
        (
            option_of(VERSIONS),
            option_of(&[500u64, 2000, 8000]),
            option_of(&[1u64 << 30, 8 << 30]),
            btree_set(prop::sample::select(FEATURES), 0..=2),
        ),
        (
            prop::option::of(prop::sample::select(&[5i64, 59, 61, 600, 100_000][..])),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            move |(
                (region, tier, team, taints),
                (version, cpu, memory, features),
                (age, inactive, deleted),
            )| {
                let mut agent = mk_agent(n);
                if let Some(region) = region {
                    agent.labels.insert("region".into(), region.into());
                }
                if let Some(tier) = tier {
                    agent.labels.insert("tier".into(), tier.into());
                }
                if let Some(team) = team {
                    agent.annotations.insert("team".into(), team.into());
                }
                if !taints.is_empty() {
                    agent
                        .annotations
                        .insert(TAINTS_ANNOTATION.into(), taints.into());
                }
                agent.capabilities = Capabilities {
                    kubernetes_version: version.map(Into::into),
                    allocatable_cpu_millis: cpu,
                    allocatable_memory_bytes: memory,
                    features: features.into_iter().map(Into::into).collect(),
                    ..Default::default()
                };
                agent.last_heartbeat = age.map(|secs| now() - Duration::seconds(secs));
                if inactive {
                    agent.status = AgentStatus::Inactive;
                }
                if deleted {
                    agent.deleted_at = Some(now());
                }
                agent
            },
        )
}

/// Up to 12 agents with ids 1..=n, and which of them are current.
fn agents_and_current() -> impl Strategy<Value = (Vec<Agent>, Vec<AgentId>)> {
    (0u128..12)
        .prop_flat_map(|n| {
            (
                (1..=n).map(agent_body).collect::<Vec<_>>(),
                vec(any::<bool>(), n as usize),
            )
        })
        .prop_map(|(agents, current)| {
            let current = agents
                .iter()
                .zip(current)
                .filter(|(_, c)| *c)
                .map(|(a, _)| a.id)
                .collect();
            (agents, current)
        })
}

fn policy() -> impl Strategy<Value = PlacementPolicy> {
    let selectors = prop::sample::select(vec![
        "{}",
        r#"{"matchLabels": {"tier": "prod"}}"#,
        r#"{"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]}"#,
        r#"{"matchExpressions": [{"key": "region", "operator": "Exists"}, {"key": "tier", "operator": "NotIn", "values": ["dev"]}]}"#,
    ]);
    let toleration = prop::sample::select(vec![
        Toleration {
            key: "gpu".into(),
            operator: TolerationOperator::Equal,
            value: Some("true".into()),
            effect: None,
        },
        Toleration {
            key: "maintenance".into(),
            operator: TolerationOperator::Exists,
            value: None,
            effect: Some(TaintEffect::NoExecute),
        },
        Toleration {
            key: String::new(),
            operator: TolerationOperator::Exists,
            value: None,
            effect: None,
        },
    ]);
    (
        (
            selectors,
            option_of(&["a", "b"]),
            option_of(&["1.30", "v1.31.0"]),
            option_of(&[1000u64, 4000]),
            option_of(&[2u64 << 30]),
            btree_set(prop::sample::select(FEATURES), 0..=1),
        ),
        (
            vec(toleration, 0..=2),
            prop::option::of(0u32..5),
            prop::option::of((prop::sample::select(vec!["region", "tier"]), 1u32..3)),
            option_of(&[30u64, 300, 10_000]),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (sel, team, version, cpu, memory, features),
                (tolerations, max_clusters, spread, evict_after_secs, rebalance),
            )| PlacementPolicy {
                agent_selector: selector(sel),
                annotations: AnnotationMatch(
                    team.map(|t| ("team".to_owned(), t.to_owned()))
                        .into_iter()
                        .collect(),
                ),
                requirements: CapabilityRequirements {
                    min_kubernetes_version: version.map(Into::into),
                    min_cpu_millis: cpu,
                    min_memory_bytes: memory,
                    features: features.into_iter().map(Into::into).collect(),
                },
                tolerations,
                eviction_grace_secs: None,
                max_clusters,
                spread: spread.map(|(key, max_per_value)| Spread {
                    topology_key: key.into(),
                    max_per_value,
                }),
                evict_after_secs,
                rebalance,
                placement: None,
                custom: None,
            },
        )
}

/// A seeded permutation, independent of the implementation.
fn shuffle<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

fn decide(policy: &PlacementPolicy, agents: &[Agent], current: &[AgentId]) -> PlacementDecision {
    DefaultPlacement.place(&PlacementInput {
        policy,
        agents,
        current,
        now: now(),
        stale_after: STALE_AFTER,
    })
}

/// The requirements, restated without the implementation's code.
fn meets_requirements(requirements: &CapabilityRequirements, capabilities: &Capabilities) -> bool {
    let version = |text: &str| -> Option<(u32, u32, u32)> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let parts: Vec<u32> = core
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        match parts[..] {
            [major, minor] => Some((major, minor, 0)),
            [major, minor, patch] => Some((major, minor, patch)),
            _ => None,
        }
    };
    let version_ok = requirements
        .min_kubernetes_version
        .as_deref()
        .is_none_or(|min| {
            match (
                version(min),
                capabilities.kubernetes_version.as_deref().and_then(version),
            ) {
                (Some(min), Some(have)) => have >= min,
                _ => false,
            }
        });
    let at_least = |min: Option<u64>, have: Option<u64>| {
        min.is_none_or(|min| have.is_some_and(|have| have >= min))
    };
    version_ok
        && at_least(
            requirements.min_cpu_millis,
            capabilities.allocatable_cpu_millis,
        )
        && at_least(
            requirements.min_memory_bytes,
            capabilities.allocatable_memory_bytes,
        )
        && requirements.features.is_subset(&capabilities.features)
}

/// Whether some taint of `agent` with an effect in `effects` is tolerated by none of the
/// policy's tolerations; an unparsable list counts when `effects` has `NoSchedule`.
fn untolerated(policy: &PlacementPolicy, agent: &Agent, effects: &[TaintEffect]) -> bool {
    match agent
        .annotations
        .get(TAINTS_ANNOTATION)
        .map(|text| parse_taints(text))
    {
        None => false,
        Some(Err(_)) => effects.contains(&TaintEffect::NoSchedule),
        Some(Ok(taints)) => taints.iter().any(|t| {
            effects.contains(&t.effect) && !policy.tolerations.iter().any(|tol| t.tolerated_by(tol))
        }),
    }
}

fn spread_counts<'a>(
    policy: &PlacementPolicy,
    agents: &'a [Agent],
    chosen: &[AgentId],
) -> BTreeMap<Option<&'a str>, u32> {
    let mut counts = BTreeMap::new();
    if let Some(spread) = &policy.spread {
        for agent in agents.iter().filter(|a| chosen.contains(&a.id)) {
            *counts
                .entry(agent.labels.get(&spread.topology_key).map(String::as_str))
                .or_default() += 1;
        }
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chosen_agents_fit_the_policy((agents, current) in agents_and_current(), policy in policy()) {
        prop_assert!(policy.validate().is_ok());
        let decision = decide(&policy, &agents, &current);
        for agent in agents.iter().filter(|a| decision.chosen.contains(&a.id)) {
            prop_assert!(agent.deleted_at.is_none() && agent.status == AgentStatus::Active);
            prop_assert!(policy.agent_selector.matches(&agent.labels));
            prop_assert!(policy.annotations.matches(&agent.annotations));
            prop_assert!(meets_requirements(&policy.requirements, &agent.capabilities));
            prop_assert!(!untolerated(&policy, agent, &[TaintEffect::NoExecute]));
            if !current.contains(&agent.id) {
                prop_assert!(!untolerated(&policy, agent, &[TaintEffect::NoSchedule, TaintEffect::PreferNoSchedule]));
                prop_assert_eq!(agent.liveness(now(), STALE_AFTER), crate::model::Liveness::Active, "a stale newcomer was chosen");
            }
        }
    }

    #[test]
    fn limits_hold_and_are_truthful((agents, current) in agents_and_current(), policy in policy()) {
        let decision = decide(&policy, &agents, &current);
        if let Some(max) = policy.max_clusters {
            prop_assert!(decision.chosen.len() <= max as usize);
        }
        let counts = spread_counts(&policy, &agents, &decision.chosen);
        if let Some(spread) = &policy.spread {
            prop_assert!(counts.values().all(|&n| n <= spread.max_per_value), "{:?}", counts);
        }
        // An agent rejected for a limit is rejected for one that is actually reached.
        for (agent, why) in &decision.rejected {
            let agent = agents.iter().find(|a| a.id == *agent).unwrap();
            match why {
                Rejection::LimitReached => prop_assert_eq!(Some(decision.chosen.len() as u32), policy.max_clusters),
                Rejection::SpreadLimit(_) => {
                    let spread = policy.spread.as_ref().unwrap();
                    let value = agent.labels.get(&spread.topology_key).map(String::as_str);
                    prop_assert_eq!(counts.get(&value).copied(), Some(spread.max_per_value));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn every_agent_appears_once_in_order((agents, current) in agents_and_current(), policy in policy()) {
        let decision = decide(&policy, &agents, &current);
        let mut all: Vec<AgentId> = decision.chosen.iter().copied().chain(decision.rejected.iter().map(|(a, _)| *a)).collect();
        prop_assert!(decision.chosen.is_sorted());
        prop_assert!(decision.rejected.is_sorted_by_key(|(a, _)| *a));
        all.sort_unstable();
        let mut want: Vec<AgentId> = agents.iter().map(|a| a.id).collect();
        want.sort_unstable();
        prop_assert_eq!(all, want);
    }

    #[test]
    fn decisions_are_deterministic(
        (agents, current) in agents_and_current(),
        policy in policy(),
        seed in any::<u64>(),
    ) {
        let decision = decide(&policy, &agents, &current);
        prop_assert_eq!(&decide(&policy, &agents, &current), &decision);
        let agents = shuffle(agents, seed);
        let current = shuffle(current, seed ^ 1);
        prop_assert_eq!(decide(&policy, &agents, &current), decision);
    }

    #[test]
    fn choose_gives_the_chosen_agents_of_place((agents, current) in agents_and_current(), policy in policy()) {
        let input = PlacementInput { policy: &policy, agents: &agents, current: &current, now: now(), stale_after: STALE_AFTER };
        prop_assert_eq!(DefaultPlacement.choose(&input), DefaultPlacement.place(&input).chosen);
    }

    #[test]
    fn decisions_are_stable((agents, current) in agents_and_current(), policy in policy()) {
        let decision = decide(&policy, &agents, &current);
        let again = decide(&policy, &agents, &decision.chosen);
        prop_assert_eq!(&again.chosen, &decision.chosen);
        prop_assert_eq!(decide(&policy, &agents, &again.chosen), again);
    }

    #[test]
    fn newcomers_never_displace_fitting_incumbents((agents, current) in agents_and_current(), policy in policy()) {
        let policy = PlacementPolicy { rebalance: false, ..policy };
        let decision = decide(&policy, &agents, &current);
        let agent = |id: &AgentId| agents.iter().find(|a| a.id == *id).unwrap();
        let value = |id: &AgentId| {
            policy.spread.as_ref().and_then(|s| agent(id).labels.get(&s.topology_key))
        };
        let newcomers: Vec<&AgentId> = decision.chosen.iter().filter(|a| !current.contains(a)).collect();
        for (id, why) in decision.rejected.iter().filter(|(id, _)| current.contains(id)) {
            match why {
                // A fitting incumbent lost to the cap: no newcomer took a slot.
                Rejection::LimitReached => prop_assert!(newcomers.is_empty()),
                // ... or to the spread: no newcomer took a slot of its value.
                Rejection::SpreadLimit(_) => {
                    prop_assert!(newcomers.iter().all(|n| value(n) != value(id)));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn affects_false_means_the_chosen_set_stays(
        (agents, current) in agents_and_current(),
        policy in policy(),
        pick in any::<prop::sample::Index>(),
        replacement in agent_body(0),
        heartbeat_only in any::<bool>(),
    ) {
        prop_assume!(!agents.is_empty());
        let decision = decide(&policy, &agents, &current);
        let i = pick.index(agents.len());
        let before = agents[i].clone();
        let after = if heartbeat_only {
            Agent { last_heartbeat: replacement.last_heartbeat, ..before.clone() }
        } else {
            Agent { id: before.id, ..replacement }
        };
        let mut changed = agents.clone();
        changed[i] = after.clone();
        let redone = decide(&policy, &changed, &decision.chosen);
        if !DefaultPlacement.affects(&policy, &decision, Some(&before), &after, now(), STALE_AFTER, |id| agents.iter().find(|a| a.id == *id)) {
            prop_assert_eq!(redone.chosen, decision.chosen);
        }
    }

    #[test]
    fn affects_false_for_a_new_agent_means_the_chosen_set_stays(
        (agents, current) in agents_and_current(),
        policy in policy(),
        new in agent_body(1000),
    ) {
        let decision = decide(&policy, &agents, &current);
        let mut grown = agents.clone();
        grown.push(new.clone());
        let redone = decide(&policy, &grown, &decision.chosen);
        if !DefaultPlacement.affects(&policy, &decision, None, &new, now(), STALE_AFTER, |id| agents.iter().find(|a| a.id == *id)) {
            prop_assert_eq!(redone.chosen, decision.chosen);
        }
    }

    #[test]
    fn summarize_counts_and_explains_as_place_does(
        (agents, current) in agents_and_current(),
        policy in policy(),
        limit in 1usize..8,
    ) {
        let input = PlacementInput { policy: &policy, agents: &agents, current: &current, now: now(), stale_after: STALE_AFTER };
        let placed = DefaultPlacement.place(&input);
        let mut after = None;
        loop {
            let page = RejectionPage { after, limit };
            let (chosen, summary) = Placement::summarize(&DefaultPlacement, &input, &[], page);
            prop_assert_eq!(&chosen, &placed.chosen);
            prop_assert_eq!(&summary, &Rejections::summarize(placed.rejected.clone(), &[], page));
            match summary.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }

    #[test]
    fn update_answers_what_a_full_decision_chooses(
        (agents, current) in agents_and_current(),
        policy in policy(),
        pick in any::<prop::sample::Index>(),
        replacement in agent_body(0),
        labels_only in any::<bool>(),
        new in agent_body(1000),
        grow in any::<bool>(),
    ) {
        prop_assume!(!agents.is_empty());
        let decision = decide(&policy, &agents, &current);
        let (before, after, changed) = if grow {
            let mut grown = agents.clone();
            grown.push(new.clone());
            (None, new, grown)
        } else {
            let i = pick.index(agents.len());
            let before = agents[i].clone();
            let after = if labels_only {
                Agent { labels: replacement.labels, ..before.clone() }
            } else {
                Agent { id: before.id, ..replacement }
            };
            let mut changed = agents.clone();
            changed[i] = after.clone();
            (Some(before), after, changed)
        };
        let inventory = TestInventory(&changed);
        let change = AgentChange {
            policy: &policy,
            chosen: &decision.chosen,
            before: before.as_ref(),
            after: &after,
            now: now(),
            stale_after: STALE_AFTER,
            inventory: &inventory,
        };
        if let Some(next) = Placement::update(&DefaultPlacement, &change) {
            prop_assert_eq!(next, decide(&policy, &changed, &decision.chosen).chosen);
        }
    }
}

/// Agents as a runtime's inventory would hold them.
struct TestInventory<'a>(&'a [Agent]);

impl crate::placement::Inventory for TestInventory<'_> {
    fn get(&self, id: &AgentId) -> Option<&Agent> {
        self.0.iter().find(|a| a.id == *id)
    }

    fn visit_by_capacity(&self, visit: &mut dyn FnMut(&Agent) -> bool) {
        let mut agents: Vec<&Agent> = self.0.iter().collect();
        agents.sort_by_key(|a| {
            let c = &a.capabilities;
            (
                std::cmp::Reverse(c.allocatable_cpu_millis.unwrap_or(0)),
                std::cmp::Reverse(c.allocatable_memory_bytes.unwrap_or(0)),
                a.id,
            )
        });
        for agent in agents {
            if !visit(agent) {
                return;
            }
        }
    }
}
