//! Placement cost over 10,000 agents: one decision for a few policy shapes, then the
//! cost of keeping 10,000 stacks' decisions current after one agent changes (find the
//! affected stacks with `DefaultPlacement::affects`, recompute only those), against
//! recomputing every decision; then the same changes through the runtime's placement
//! index (stacks found by the keys they read and the agents they chose, updated
//! incrementally when an agent joins or drops out), and the cost of explaining one
//! stack's placement from the index, as `GET /stacks/{id}/placement` does.
//!
//! `cargo bench -p brokkr-core --bench placement`

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use brokkr_core::model::{Agent, AgentStatus, Capabilities};
use brokkr_core::placement::{
    CapabilityRequirements, Spread, TAINTS_ANNOTATION, Toleration, TolerationOperator,
};
use brokkr_core::selector::{AnnotationMatch, LabelSelector};
use brokkr_core::{
    AgentId, DefaultPlacement, Placement, PlacementDecision, PlacementInput, PlacementPolicy,
};
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

const AGENTS: usize = 10_000;
const STACKS: usize = 10_000;
const RUNS: usize = 200;
const REGIONS: &[&str] = &["eu-west", "eu-central", "us-east", "us-west", "ap-south"];
const TIERS: &[&str] = &["prod", "prod", "prod", "staging", "staging", "dev"];
const TEAMS: &[&str] = &["payments", "search", "platform", "data"];
const VERSIONS: &[&str] = &[
    "v1.28.9",
    "v1.29.4",
    "v1.30.2-gke.1",
    "v1.31.1",
    "v1.32.0+k3s1",
];
const STALE_AFTER: TimeDelta = TimeDelta::seconds(90);

/// SplitMix64: a seeded generator, so every run benchmarks the same inventory.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a valid timestamp")
}

fn mk_agent(rng: &mut Rng, n: usize) -> Agent {
    let region = rng.pick(REGIONS);
    let labels = BTreeMap::from([
        ("region".to_owned(), region.to_owned()),
        (
            "zone".to_owned(),
            format!("{region}-{}", ["a", "b", "c"][rng.below(3)]),
        ),
        ("tier".to_owned(), rng.pick(TIERS).to_owned()),
        (
            "provider".to_owned(),
            rng.pick(&["gke", "eks", "k3s"]).to_owned(),
        ),
    ]);
    let mut annotations = BTreeMap::from([("team".to_owned(), rng.pick(TEAMS).to_owned())]);
    match rng.below(100) {
        0..3 => annotations.insert(TAINTS_ANNOTATION.into(), "gpu=true:NoSchedule".into()),
        3 => annotations.insert(TAINTS_ANNOTATION.into(), "maintenance:NoExecute".into()),
        _ => None,
    };
    let mut features = BTreeSet::new();
    if rng.chance(10) {
        features.insert("gpu".to_owned());
    }
    if rng.chance(20) {
        features.insert("arm".to_owned());
    }
    Agent {
        id: AgentId(Uuid::from_u128(n as u128 + 1)),
        name: format!("agent-{n}"),
        cluster_name: format!("cluster-{n}"),
        labels,
        annotations,
        status: AgentStatus::Active,
        last_heartbeat: Some(now() - TimeDelta::seconds(if rng.chance(2) { 600 } else { 10 })),
        capabilities: Capabilities {
            kubernetes_version: Some(rng.pick(VERSIONS).to_owned()),
            node_count: Some(3),
            allocatable_cpu_millis: Some(1000 * (2 + rng.below(63) as u64)),
            allocatable_memory_bytes: Some((4 + rng.below(252) as u64) << 30),
            features,
            extra: BTreeMap::new(),
        },
        created_at: now(),
        updated_at: now(),
        deleted_at: None,
    }
}

fn selector(json: &str) -> LabelSelector {
    serde_json::from_str(json).expect("a selector")
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

fn choose(policy: &PlacementPolicy, agents: &[Agent], current: &[AgentId]) -> Vec<AgentId> {
    DefaultPlacement.choose(&PlacementInput {
        policy,
        agents,
        current,
        now: now(),
        stale_after: STALE_AFTER,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A mix of policies, as many tenants would write them.
fn mk_policy(rng: &mut Rng) -> PlacementPolicy {
    let region = rng.pick(REGIONS);
    let tier = rng.pick(TIERS);
    let gpu = Toleration {
        key: "gpu".into(),
        operator: TolerationOperator::Exists,
        value: None,
        effect: None,
    };
    match rng.below(10) {
        // A region and a tier, a few clusters.
        0..4 => PlacementPolicy {
            agent_selector: selector(&format!(
                r#"{{"matchLabels": {{"region": "{region}", "tier": "{tier}"}}}}"#
            )),
            max_clusters: Some(1 + rng.below(10) as u32),
            ..Default::default()
        },
        // Several regions, requirements, spread over regions.
        4..6 => PlacementPolicy {
            agent_selector: selector(
                r#"{"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod", "staging"]}]}"#,
            ),
            requirements: CapabilityRequirements {
                min_kubernetes_version: Some("1.30".into()),
                min_cpu_millis: Some(8000),
                min_memory_bytes: Some(16 << 30),
                features: BTreeSet::new(),
            },
            max_clusters: Some(3 + rng.below(18) as u32),
            spread: Some(Spread {
                topology_key: "region".into(),
                max_per_value: 2,
            }),
            ..Default::default()
        },
        // Every matching cluster of one team in one region and tier (~100 agents).
        6..8 => PlacementPolicy {
            agent_selector: selector(&format!(
                r#"{{"matchLabels": {{"region": "{region}", "tier": "{tier}"}}}}"#
            )),
            annotations: AnnotationMatch(BTreeMap::from([(
                "team".to_owned(),
                rng.pick(TEAMS).to_owned(),
            )])),
            ..Default::default()
        },
        // GPU clusters, tolerating the GPU taint.
        8 => PlacementPolicy {
            requirements: CapabilityRequirements {
                features: BTreeSet::from(["gpu".to_owned()]),
                ..Default::default()
            },
            tolerations: vec![gpu],
            max_clusters: Some(5),
            ..Default::default()
        },
        // Best five production clusters, re-chosen as capacity changes.
        _ => PlacementPolicy {
            agent_selector: selector(r#"{"matchLabels": {"tier": "prod"}}"#),
            max_clusters: Some(5),
            rebalance: true,
            ..Default::default()
        },
    }
}

fn one_stack(agents: &[Agent]) {
    println!(
        "one decision over {AGENTS} agents (steady state: current = previous choice), {RUNS} runs"
    );
    let shapes = [
        ("empty policy (every agent)", PlacementPolicy::default()),
        (
            "selector only (tier=prod)",
            PlacementPolicy {
                agent_selector: selector(r#"{"matchLabels": {"tier": "prod"}}"#),
                ..Default::default()
            },
        ),
        (
            "selector+requirements+spread+max 50",
            PlacementPolicy {
                agent_selector: selector(
                    r#"{"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu-west", "eu-central", "us-east"]},
                                             {"key": "tier", "operator": "NotIn", "values": ["dev"]}]}"#,
                ),
                requirements: CapabilityRequirements {
                    min_kubernetes_version: Some("1.30".into()),
                    min_cpu_millis: Some(8000),
                    min_memory_bytes: Some(16 << 30),
                    features: BTreeSet::new(),
                },
                max_clusters: Some(50),
                spread: Some(Spread {
                    topology_key: "zone".into(),
                    max_per_value: 6,
                }),
                ..Default::default()
            },
        ),
    ];
    println!(
        "  {:<38} {:>6}   {:>19}   {:>19}   {:>19}",
        "policy", "chosen", "place p50 / p99 ms", "choose p50 / p99", "place, no current"
    );
    for (name, policy) in shapes {
        policy.validate().expect("a valid policy");
        let first = decide(&policy, agents, &[]);
        let (mut place, mut choose_only, mut cold) = (vec![], vec![], vec![]);
        for _ in 0..RUNS {
            let started = Instant::now();
            black_box(decide(&policy, agents, &[]));
            cold.push(started.elapsed());
            let started = Instant::now();
            let decision = decide(&policy, agents, &first.chosen);
            place.push(started.elapsed());
            assert_eq!(decision.chosen, first.chosen);
            let started = Instant::now();
            let chosen = choose(&policy, agents, &first.chosen);
            choose_only.push(started.elapsed());
            assert_eq!(chosen, first.chosen);
        }
        let p = |mut samples: Vec<Duration>| {
            samples.sort_unstable();
            format!(
                "{:>8.2} / {:>6.2}",
                ms(percentile(&samples, 0.50)),
                ms(percentile(&samples, 0.99))
            )
        };
        println!(
            "  {name:<38} {:>6}   {}   {}   {}",
            first.chosen.len(),
            p(place),
            p(choose_only),
            p(cold)
        );
    }
}

struct Stack {
    policy: PlacementPolicy,
    /// Only `chosen` is kept: `affects` reads nothing else, and 10,000 full decisions
    /// over 10,000 agents would hold 10^8 rejections.
    decision: PlacementDecision,
}

fn many_stacks(agents: &[Agent]) -> Vec<Stack> {
    let mut rng = Rng(7);
    let policies: Vec<PlacementPolicy> = (0..STACKS).map(|_| mk_policy(&mut rng)).collect();
    println!("\n{STACKS} stacks (mixed policies) over {AGENTS} agents");

    // The naive way: recompute every decision. With reasons (`place`) it is measured
    // on the first 500 stacks and extrapolated; chosen sets only (`choose`) are
    // computed for all, as the starting state.
    let started = Instant::now();
    for policy in &policies[..500] {
        black_box(decide(policy, agents, &[]));
    }
    let first_500 = started.elapsed();
    println!(
        "  naive, place (with reasons): 500 decisions {:.0} ms -> all {STACKS} extrapolated {:.1} s",
        ms(first_500),
        first_500.as_secs_f64() * STACKS as f64 / 500.0,
    );
    let started = Instant::now();
    let stacks: Vec<Stack> = policies
        .into_iter()
        .map(|policy| {
            let chosen = choose(&policy, agents, &[]);
            Stack {
                policy,
                decision: PlacementDecision::choosing(chosen),
            }
        })
        .collect();
    let all = started.elapsed();
    println!(
        "  naive, choose (chosen only): all {STACKS} decisions measured {:.2} s ({:.3} ms per decision)",
        all.as_secs_f64(),
        ms(all) / STACKS as f64,
    );

    // The agent chosen by the most stacks, so its changes touch the most decisions.
    let mut times_chosen: BTreeMap<AgentId, usize> = BTreeMap::new();
    for stack in &stacks {
        for agent in &stack.decision.chosen {
            *times_chosen.entry(*agent).or_default() += 1;
        }
    }
    let (busiest, busiest_count) = times_chosen
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        .map(|(id, n)| (*id, *n))
        .expect("some agent is chosen");
    let index = agents
        .iter()
        .position(|a| a.id == busiest)
        .expect("present");
    let quiet = agents.len() / 2;
    println!(
        "  changed agents: #{index} (chosen by {busiest_count} stacks, {}/{}), #{quiet} (chosen by {})",
        agents[index].labels["region"],
        agents[index].labels["tier"],
        times_chosen.get(&agents[quiet].id).copied().unwrap_or(0),
    );

    let moved = |agent: &Agent| {
        let mut after = agent.clone();
        after.labels.insert("region".into(), "us-west".into());
        after.labels.insert("tier".into(), "prod".into());
        after
    };
    let bigger = |agent: &Agent| {
        let mut after = agent.clone();
        after.capabilities.allocatable_cpu_millis = Some(256_000);
        after
    };
    let stale = |agent: &Agent| {
        let mut after = agent.clone();
        after.last_heartbeat = Some(now() - TimeDelta::hours(1));
        after
    };
    let heartbeat = |agent: &Agent| {
        let mut after = agent.clone();
        after.last_heartbeat = Some(now());
        after
    };
    type Change<'a> = (&'a str, usize, &'a dyn Fn(&Agent) -> Agent);
    let changes: [Change<'_>; 8] = [
        ("busiest: region+tier labels change", index, &moved),
        ("busiest: allocatable CPU grows", index, &bigger),
        ("busiest: goes stale", index, &stale),
        ("busiest: heartbeat only", index, &heartbeat),
        ("other: region+tier labels change", quiet, &moved),
        ("other: allocatable CPU grows", quiet, &bigger),
        ("other: goes stale", quiet, &stale),
        ("other: heartbeat only", quiet, &heartbeat),
    ];
    println!(
        "  {:<38} {:>9} {:>11} {:>10} {:>10}",
        "change (redo with choose)", "affected", "affects ms", "redo ms", "total ms"
    );
    for (name, i, change) in changes {
        let before = &agents[i];
        let after = change(before);
        let mut changed = agents.to_vec();
        changed[i] = after.clone();
        incremental(name, &stacks, &changed, Some(before), &after);
    }
    let mut rng = Rng(99);
    let mut new = mk_agent(&mut rng, AGENTS);
    new.labels.insert("tier".into(), "prod".into());
    let mut grown = agents.to_vec();
    grown.push(new.clone());
    incremental("a new agent registers (prod)", &stacks, &grown, None, &new);
    stacks
}

/// The same changes through the runtime's index, and `GET` of one placement.
fn indexed(agents: &[Agent], stacks: &[Stack]) {
    use brokkr_core::placement::PlacementRegistry;
    use brokkr_core::runtime::placement::RejectionPage;
    use brokkr_core::runtime::placement::index::{Clock, Index};
    use brokkr_core::{StackId, StackPlacement};

    let registry = PlacementRegistry::default();
    let clock = Clock {
        now: now(),
        stale_after: STALE_AFTER,
    };
    let load = |agents: &[Agent]| {
        let placements = stacks
            .iter()
            .enumerate()
            .map(|(i, stack)| StackPlacement {
                stack_id: StackId(Uuid::from_u128(i as u128 + 1)),
                policy: stack.policy.clone(),
                decision: Some(stack.decision.clone()),
                updated_at: now(),
                decided_at: Some(now()),
            })
            .collect();
        Index::load(agents.to_vec(), placements, &registry)
    };
    println!("\nthrough the runtime's placement index ({STACKS} stacks, {AGENTS} agents)");
    let busiest = {
        let mut times: HashMap<AgentId, usize> = HashMap::new();
        for stack in stacks {
            for agent in &stack.decision.chosen {
                *times.entry(*agent).or_default() += 1;
            }
        }
        times
            .into_iter()
            .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)))
            .expect("some agent is chosen")
    };
    let index_of = |id: AgentId| agents.iter().position(|a| a.id == id).expect("present");
    let (busy, quiet) = (index_of(busiest.0), agents.len() / 2);
    let relabel = |agent: &Agent| {
        let mut after = agent.clone();
        after.labels.insert("region".into(), "us-west".into());
        after.labels.insert("tier".into(), "prod".into());
        after
    };
    let bigger = |agent: &Agent| {
        let mut after = agent.clone();
        after.capabilities.allocatable_cpu_millis = Some(256_000);
        after
    };
    let disabled = |agent: &Agent| {
        let mut after = agent.clone();
        after.status = AgentStatus::Inactive;
        after
    };
    type Change<'a> = (&'a str, usize, &'a dyn Fn(&Agent) -> Agent);
    let changes: [Change<'_>; 5] = [
        ("busiest: region+tier labels change", busy, &relabel),
        ("busiest: disabled", busy, &disabled),
        ("busiest: allocatable CPU grows", busy, &bigger),
        ("other: region+tier labels change", quiet, &relabel),
        ("other: allocatable CPU grows", quiet, &bigger),
    ];
    println!(
        "  {:<38} {:>10} {:>10}   (busiest chosen by {} stacks)",
        "change", "ms", "changed", busiest.1
    );
    for (name, i, change) in changes {
        let mut index = load(agents);
        let after = change(&agents[i]);
        let started = Instant::now();
        let changed = index.agent_changed(after.id, Some(after.clone()), &registry, clock);
        let took = started.elapsed();
        // Soundness spot check (not timed): every changed or sampled stack chooses what
        // a full decision over the changed agents chooses.
        let mut all = agents.to_vec();
        all[i] = after;
        let changed_ids: HashMap<StackId, &Vec<AgentId>> =
            changed.iter().map(|(id, c)| (*id, c)).collect();
        for (n, stack) in stacks.iter().enumerate().step_by(53) {
            let id = StackId(Uuid::from_u128(n as u128 + 1));
            let now_chosen = changed_ids.get(&id).map_or(&stack.decision.chosen, |c| *c);
            assert_eq!(
                &choose(&stack.policy, &all, &stack.decision.chosen),
                now_chosen,
                "{name}: stack {n}"
            );
        }
        println!("  {name:<38} {:>10.1} {:>10}", ms(took), changed.len());
    }

    // A GET also merges the heartbeats not yet written (here: a tenth of the fleet).
    let mut index = load(agents);
    let pending = brokkr_core::runtime::heartbeat::HeartbeatBuffer::default();
    for agent in agents.iter().step_by(10) {
        pending.record(brokkr_core::Heartbeat {
            agent_id: agent.id,
            at: now(),
            capabilities: None,
        });
    }
    let mut samples = Vec::with_capacity(RUNS);
    let mut rng = Rng(5);
    for _ in 0..RUNS {
        let n = rng.below(stacks.len());
        let stack = &stacks[n];
        let started = Instant::now();
        let current = &stack.decision.chosen;
        index.merge_pending(&pending);
        let summary = index.summarize(
            &DefaultPlacement,
            &stack.policy,
            current,
            current,
            clock,
            RejectionPage::default(),
        );
        samples.push(started.elapsed());
        black_box(summary);
    }
    samples.sort_unstable();
    println!(
        "  GET of one placement (pending heartbeats merged, reasons counted, 100 explained): p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99))
    );
}

/// Finds the stacks one agent's change affects, recomputes them, and checks a sample
/// of the others would indeed not change.
fn incremental(
    name: &str,
    stacks: &[Stack],
    agents: &[Agent],
    before: Option<&Agent>,
    after: &Agent,
) {
    // A server keeps its inventory indexed by id; building the index is not timed.
    let inventory: HashMap<AgentId, &Agent> = agents.iter().map(|a| (a.id, a)).collect();
    let started = Instant::now();
    let affected: Vec<usize> = stacks
        .iter()
        .enumerate()
        .filter(|(_, stack)| {
            DefaultPlacement.affects(
                &stack.policy,
                &stack.decision,
                before,
                after,
                now(),
                STALE_AFTER,
                |id| inventory.get(id).copied(),
            )
        })
        .map(|(i, _)| i)
        .collect();
    let found = started.elapsed();
    let mut changed_decisions = 0;
    for &i in &affected {
        let stack = &stacks[i];
        let chosen = choose(&stack.policy, agents, &stack.decision.chosen);
        changed_decisions += usize::from(chosen != stack.decision.chosen);
        black_box(chosen);
    }
    let total = started.elapsed();
    println!(
        "  {name:<38} {:>9} {:>11.2} {:>10.1} {:>10.1}   ({changed_decisions} chosen sets changed)",
        affected.len(),
        ms(found),
        ms(total - found),
        ms(total),
    );
    // Soundness spot check (not timed): unaffected stacks keep their choice.
    for (i, stack) in stacks.iter().enumerate().step_by(97) {
        if affected.binary_search(&i).is_err() {
            let chosen = choose(&stack.policy, agents, &stack.decision.chosen);
            assert_eq!(
                chosen, stack.decision.chosen,
                "stack {i} changed but was not flagged"
            );
        }
    }
}

fn main() {
    let mut rng = Rng(42);
    let agents: Vec<Agent> = (0..AGENTS).map(|n| mk_agent(&mut rng, n)).collect();
    one_stack(&agents);
    let stacks = many_stacks(&agents);
    indexed(&agents, &stacks);
}
