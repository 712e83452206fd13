//! [`DefaultPlacement`]: the built-in placement.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use std::collections::BTreeSet;

use super::{
    AgentChange, Placement, PlacementDecision, PlacementInput, PlacementPolicy, PolicyError,
    Rejection, RejectionPage, Rejections, TAINTS_ANNOTATION,
};
use crate::id::AgentId;
use crate::model::Agent;

mod fit;
mod incremental;
#[cfg(test)]
mod tests;

use fit::{Candidate, Fit};

/// The built-in placement: filter, then rank, then fill the slots.
///
/// **Filter.** Each agent is checked in this order; the first failure is its
/// [`Rejection`]:
///
/// 1. deleted, or its status is not `active` → [`Rejection::NotActive`];
/// 2. the `agent_selector` → [`Rejection::LabelMismatch`];
/// 3. the `annotations` → [`Rejection::AnnotationMismatch`];
/// 4. the `requirements`, in the order Kubernetes version (a missing or unparsable
///    reported version fails), allocatable CPU, allocatable memory (missing fails),
///    then each feature by name → [`Rejection::MissingCapability`], e.g.
///    `kubernetes_version v1.29.1 < 1.30`;
/// 5. taints from the [`TAINTS_ANNOTATION`](super::TAINTS_ANNOTATION) annotation that
///    no toleration covers → [`Rejection::Taint`], e.g. `gpu=true:NoSchedule`;
/// 6. the heartbeat: an agent that is not live (stale or never seen) →
///    [`Rejection::StaleHeartbeat`].
///
/// An *incumbent* (an agent in `current`) is judged more leniently in steps 5 and 6,
/// as in Kubernetes: `NoSchedule` and `PreferNoSchedule` taints only keep new stacks
/// away, so an incumbent that gains one keeps its place, while a `NoExecute` taint
/// removes it. A taint annotation that does not parse blocks every newcomer (no
/// toleration covers it) and removes no incumbent. A stale incumbent keeps its place
/// until its last heartbeat is older than `evict_after_secs` (forever without it;
/// never-seen counts as infinitely old); a stale newcomer is never chosen. Being
/// an incumbent never excuses steps 1 to 4.
///
/// **Rank.** Agents that pass every check are ranked: incumbents first (unless
/// `rebalance`), then most allocatable CPU, then most allocatable memory (a missing
/// figure counts as 0), then ascending agent id. The order is total, so the decision
/// does not depend on the order of `agents` or `current`. `rebalance` drops only the
/// incumbents' precedence, not their leniency: a stale incumbent may lose its place
/// to a better-scoring agent, but is not evicted for being stale alone.
///
/// **Fill.** In rank order, an agent is chosen unless `max_clusters` agents are chosen
/// already ([`Rejection::LimitReached`]) or, with `spread`, `max_per_value` chosen
/// agents already share its value of the `topology_key` label
/// ([`Rejection::SpreadLimit`], e.g. `region=eu: 2 of 2`). Agents without that label
/// form one more value of their own (shown as `region missing: 1 of 1`), so they are
/// capped like any region rather than excluded or unlimited. Incumbents count against
/// both limits; when a tightened policy leaves more incumbents than the limits allow,
/// the lowest-ranked ones lose their place.
///
/// A decision lists every input agent exactly once: `chosen` and `rejected` are both
/// ordered by agent id.
///
/// Feeding a decision's `chosen` back as `current`, with the same agents and time,
/// chooses the same agents again: decisions are stable.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPlacement;

impl Placement for DefaultPlacement {
    fn place(&self, input: &PlacementInput<'_>) -> PlacementDecision {
        decide(input, Mode::Explain)
    }

    /// Counts reasons without building their details, then explains the page only.
    fn summarize(
        &self,
        input: &PlacementInput<'_>,
        exclude: &[AgentId],
        page: RejectionPage,
    ) -> (Vec<AgentId>, Rejections) {
        let decision = decide(input, Mode::Count);
        let mut summary = Rejections::summarize(decision.rejected, exclude, page);
        let wanted: HashSet<AgentId> = summary.agents.iter().map(|(id, _)| *id).collect();
        let agents: HashMap<AgentId, &Agent> = input
            .agents
            .iter()
            .filter(|a| wanted.contains(&a.id))
            .map(|a| (a.id, a))
            .collect();
        let fit = Fit::new(input.policy, input.now, input.stale_after);
        for (id, why) in &mut summary.agents {
            if let (Some(agent), Some(check)) = (agents.get(id), fit::Check::of(why)) {
                *why = fit.explain(agent, input.current.contains(id), check);
            }
        }
        (decision.chosen, summary)
    }

    /// The built-in checks ([`PlacementPolicy::validate`]); `custom` is refused, as
    /// nothing would read it.
    fn validate(&self, policy: &PlacementPolicy) -> Result<(), PolicyError> {
        if policy.custom.is_some() {
            return Err(PolicyError::new(
                "custom: the built-in placement takes no custom policy (name a registered placement in `placement`)",
            ));
        }
        policy.validate()
    }

    fn choose(&self, input: &PlacementInput<'_>) -> Vec<AgentId> {
        decide(input, Mode::Choose).chosen
    }

    fn affects(&self, change: &AgentChange<'_>) -> bool {
        let decision = PlacementDecision::choosing(change.chosen.to_vec());
        DefaultPlacement::affects(
            self,
            change.policy,
            &decision,
            change.before,
            change.after,
            change.now,
            change.stale_after,
            |id| change.inventory.get(id),
        )
    }

    fn update(&self, change: &AgentChange<'_>) -> Option<Vec<AgentId>> {
        incremental::update(change)
    }

    /// The selector's and the annotation match's keys, the spread's topology key, and
    /// the taint annotation (every policy reads taints).
    fn watched_keys(&self, policy: &PlacementPolicy) -> Option<BTreeSet<String>> {
        let selector = &policy.agent_selector;
        let mut keys: BTreeSet<String> = selector.match_labels.keys().cloned().collect();
        keys.extend(selector.match_expressions.iter().map(|e| e.key.clone()));
        keys.extend(policy.annotations.0.keys().cloned());
        keys.extend(policy.spread.iter().map(|s| s.topology_key.clone()));
        keys.insert(TAINTS_ANNOTATION.to_owned());
        Some(keys)
    }
}

/// How much of the rejections a decision builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// None: `rejected` stays empty (what [`DefaultPlacement::choose`] needs).
    Choose,
    /// Every rejection with its reason but without the details of the filter checks
    /// (empty strings, no allocation), for counting.
    Count,
    /// Every rejection with its details.
    Explain,
}

/// Places one stack, building as much of the rejections as `mode` asks.
fn decide(input: &PlacementInput<'_>, mode: Mode) -> PlacementDecision {
    let explain = mode != Mode::Choose;
    let policy = input.policy;
    let fit = Fit::new(policy, input.now, input.stale_after);
    let current: HashSet<AgentId> = input.current.iter().copied().collect();
    let mut rejected = Vec::with_capacity(if explain { input.agents.len() } else { 0 });
    let mut candidates = Vec::new();
    for agent in input.agents {
        let incumbent = current.contains(&agent.id);
        match fit.failing(agent, incumbent) {
            None => candidates.push(fit.candidate(agent, incumbent && !policy.rebalance)),
            Some(check) if mode == Mode::Explain => {
                rejected.push((agent.id, fit.explain(agent, incumbent, check)));
            }
            Some(check) if mode == Mode::Count => rejected.push((agent.id, check.unexplained())),
            Some(_) => {}
        }
    }

    let max = policy.max_clusters.map_or(usize::MAX, |n| n as usize);
    let mut chosen = Vec::with_capacity(candidates.len().min(max));
    match &policy.spread {
        // Without a spread the first `max` in rank order are chosen, whatever the
        // order among them: a partial selection, not a sort.
        None => {
            if candidates.len() > max {
                if max > 0 {
                    candidates.select_nth_unstable_by(max - 1, Candidate::rank);
                }
                if explain {
                    rejected.extend(
                        candidates[max..]
                            .iter()
                            .map(|c| (c.id, Rejection::LimitReached)),
                    );
                }
                candidates.truncate(max);
            }
            chosen.extend(candidates.iter().map(|c| c.id));
        }
        Some(spread) => {
            candidates.sort_unstable_by(Candidate::rank);
            let mut per_domain: HashMap<Option<&str>, u32> = HashMap::new();
            for candidate in candidates {
                if chosen.len() >= max {
                    if explain {
                        rejected.push((candidate.id, Rejection::LimitReached));
                    }
                    continue;
                }
                let count = per_domain.entry(candidate.domain).or_default();
                if *count >= spread.max_per_value {
                    if explain {
                        let value = match candidate.domain {
                            Some(value) => format!("{}={value}", spread.topology_key),
                            None => format!("{} missing", spread.topology_key),
                        };
                        let detail = format!("{value}: {count} of {}", spread.max_per_value);
                        rejected.push((candidate.id, Rejection::SpreadLimit(detail)));
                    }
                    continue;
                }
                *count += 1;
                chosen.push(candidate.id);
            }
        }
    }
    chosen.sort_unstable();
    // Counting needs no order (the summary picks its page by selection).
    if mode == Mode::Explain {
        rejected.sort_unstable_by_key(|(id, _)| *id);
    }
    PlacementDecision {
        chosen,
        rejected,
        leaving: Vec::new(),
    }
}

impl DefaultPlacement {
    /// The agents [`place`](Placement::place) would choose, ordered by id, without the
    /// reasons for the others: the same decision at a fraction of the cost, for
    /// recomputing many stacks when only the chosen set matters (reasons can be
    /// explained later with `place`).
    pub fn choose(&self, input: &PlacementInput<'_>) -> Vec<AgentId> {
        <Self as Placement>::choose(self, input)
    }

    /// Whether one agent's change (from `before`, `None` for a new agent, to `after`)
    /// can change which agents `decision` chooses for a stack with `policy`, so a
    /// server recomputes only the stacks for which this is true.
    ///
    /// `decision` must be the stack's current decision: what [`place`](Placement::place)
    /// (or [`choose`](Self::choose)) gives at `now` for the agents before the change
    /// (with any `current`). Only `decision.chosen` is read. `agent` looks up an agent
    /// of the inventory by id; it is only called for chosen agents, to count them in a
    /// spread value or find the lowest-ranked one (`None` is answered conservatively). When this returns
    /// `false`, placing again with the changed agent and `current = decision.chosen`
    /// chooses exactly `decision.chosen`. It may return `true` for a change that turns
    /// out to change nothing, and it says nothing about the *reasons* of agents that
    /// are not chosen: those may be outdated in a decision that is not recomputed.
    ///
    /// It is `true` when:
    /// - the agent is chosen, and no longer fits (judged as an incumbent), or changed
    ///   its spread value (with `spread`), or ranks lower (less CPU, then memory; only
    ///   with `rebalance`, where ranks compete);
    /// - the agent is not chosen and fits now, and it did not fit before, changed its
    ///   spread value, or ranks higher (with `rebalance`), and it could take a place:
    ///   a free one (fewer than `max_clusters` chosen, and fewer than `max_per_value`
    ///   chosen in its spread value), or with `rebalance` one it outranks (when the
    ///   stack is full and has no spread, the lowest-ranked chosen agent must rank
    ///   below it; otherwise any place is assumed contestable).
    ///
    /// A deleted agent is passed as `after` with `deleted_at` set.
    #[allow(clippy::too_many_arguments)] // the inputs of a decision, plus the change
    pub fn affects<'a>(
        &self,
        policy: &PlacementPolicy,
        decision: &PlacementDecision,
        before: Option<&Agent>,
        after: &Agent,
        now: DateTime<Utc>,
        stale_after: Duration,
        agent: impl Fn(&AgentId) -> Option<&'a Agent>,
    ) -> bool {
        let fit = Fit::new(policy, now, stale_after);
        let score = |agent: &Agent| {
            let capabilities = &agent.capabilities;
            (
                capabilities.allocatable_cpu_millis.unwrap_or(0),
                capabilities.allocatable_memory_bytes.unwrap_or(0),
            )
        };
        let same_domain = |before: &Agent| fit.domain(before) == fit.domain(after);
        if decision.chosen.binary_search(&after.id).is_ok() {
            let unchanged = |before: &Agent| {
                same_domain(before) && (!policy.rebalance || score(after) >= score(before))
            };
            return fit.failing(after, true).is_some() || !before.is_some_and(unchanged);
        }
        if fit.failing(after, false).is_some() {
            // Not chosen before, cannot be chosen now, and an agent that is not chosen
            // takes no slot from anyone.
            return false;
        }
        let lost_again = |before: &Agent| {
            fit.failing(before, false).is_none()
                && same_domain(before)
                && (!policy.rebalance || score(after) <= score(before))
        };
        if before.is_some_and(lost_again) {
            // It fitted before, ranks no higher, and lost; it loses again.
            return false;
        }
        if policy.rebalance {
            return match policy.max_clusters {
                // Full, and no spread: it gets in only by outranking the lowest-ranked
                // chosen agent (an unknown chosen agent could be anywhere).
                Some(max) if policy.spread.is_none() && decision.chosen.len() >= max as usize => {
                    let rank = |agent: &Agent| (score(agent), Reverse(agent.id));
                    let mut lowest = None;
                    for id in &decision.chosen {
                        let Some(chosen) = agent(id) else {
                            return true;
                        };
                        let rank = rank(chosen);
                        lowest = Some(lowest.map_or(rank, |lowest| rank.min(lowest)));
                    }
                    lowest.is_some_and(|lowest| rank(after) > lowest)
                }
                _ => true,
            };
        }
        // Without rebalance every chosen agent is an incumbent ranked first, so a
        // newcomer only gets a free slot.
        if policy
            .max_clusters
            .is_some_and(|max| decision.chosen.len() >= max as usize)
        {
            return false;
        }
        policy.spread.as_ref().is_none_or(|spread| {
            let value = fit.domain(after);
            let taken = decision
                .chosen
                .iter()
                .filter_map(&agent)
                .filter(|chosen| fit.domain(chosen) == value)
                .count();
            taken < spread.max_per_value as usize
        })
    }
}
