//! The placement controller's memory: every live agent (labels, annotations, taints,
//! capabilities, liveness with the heartbeats not yet written) and every placed stack
//! (policy and chosen agents), indexed so that one agent's change finds the stacks it
//! can affect without scanning them all.
//!
//! Stacks are found through the keys their policies read
//! ([`Placement::watched_keys`]) and through the agents they chose: a change to an
//! agent's labels or annotations only looks at the stacks that read a changed key,
//! that chose the agent, or whose placement reads any key. Other changes (status,
//! capabilities, liveness, registration, deletion) may matter to any stack; each is
//! then asked [`Placement::affects`], which is cheap. An affected stack is updated
//! with [`Placement::update`] when the placement can (an agent joining or dropping
//! out), and decided in full only otherwise.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use crate::placement::{AgentChange, Inventory, PlacementRegistry, RejectionPage, Rejections};
use crate::{
    Agent, AgentId, Placement, PlacementDecision, PlacementInput, PlacementPolicy, StackId,
    StackPlacement,
};

use crate::runtime::heartbeat::HeartbeatBuffer;

type RankKey = (Reverse<u64>, Reverse<u64>, AgentId);

fn rank_key(agent: &Agent) -> RankKey {
    let capabilities = &agent.capabilities;
    (
        Reverse(capabilities.allocatable_cpu_millis.unwrap_or(0)),
        Reverse(capabilities.allocatable_memory_bytes.unwrap_or(0)),
        agent.id,
    )
}

/// The live agents, in a vector (what [`PlacementInput::agents`] takes) with a
/// position per id and the built-in ranking order.
#[derive(Debug, Default)]
pub struct AgentIndex {
    list: Vec<Agent>,
    position: HashMap<AgentId, usize>,
    ranked: BTreeSet<RankKey>,
}

impl AgentIndex {
    /// Every live agent, in no particular order.
    pub fn all(&self) -> &[Agent] {
        &self.list
    }

    /// Adds or replaces an agent; the previous version, if any.
    pub fn upsert(&mut self, agent: Agent) -> Option<Agent> {
        self.ranked.insert(rank_key(&agent));
        match self.position.get(&agent.id) {
            Some(&at) => {
                let old = std::mem::replace(&mut self.list[at], agent);
                if rank_key(&old) != rank_key(&self.list[at]) {
                    self.ranked.remove(&rank_key(&old));
                }
                Some(old)
            }
            None => {
                self.position.insert(agent.id, self.list.len());
                self.list.push(agent);
                None
            }
        }
    }

    /// Removes an agent; what it was, if present.
    pub fn remove(&mut self, id: AgentId) -> Option<Agent> {
        let at = self.position.remove(&id)?;
        let old = self.list.swap_remove(at);
        if let Some(moved) = self.list.get(at) {
            self.position.insert(moved.id, at);
        }
        self.ranked.remove(&rank_key(&old));
        Some(old)
    }

    /// Merges the heartbeats `buffer` holds but has not written (an agent is fresh the
    /// moment it beats, as the API shows it), except for agents in `skip`.
    fn merge_pending(&mut self, buffer: &HeartbeatBuffer, skip: &HashMap<AgentId, DateTime<Utc>>) {
        for agent in &mut self.list {
            if !skip.contains_key(&agent.id) {
                agent.last_heartbeat = agent.last_heartbeat.max(buffer.pending_at(agent.id));
            }
        }
    }
}

impl Inventory for AgentIndex {
    fn get(&self, id: &AgentId) -> Option<&Agent> {
        self.position.get(id).map(|&at| &self.list[at])
    }

    fn visit_by_capacity(&self, visit: &mut dyn FnMut(&Agent) -> bool) {
        for (_, _, id) in &self.ranked {
            if let Some(agent) = self.get(id)
                && !visit(agent)
            {
                return;
            }
        }
    }
}

#[derive(Debug)]
struct StackEntry {
    policy: PlacementPolicy,
    chosen: Vec<AgentId>,
    /// `None`: the placement may read any key.
    watched: Option<BTreeSet<String>>,
}

/// Agents and placed stacks; see the [module documentation](self).
#[derive(Debug, Default)]
pub struct Index {
    /// The live agents.
    pub agents: AgentIndex,
    stacks: HashMap<StackId, StackEntry>,
    by_key: HashMap<String, HashSet<StackId>>,
    any_key: HashSet<StackId>,
    by_agent: HashMap<AgentId, HashSet<StackId>>,
    /// Agents that beat after being stale or unseen, with that beat: kept out of the
    /// index until the controller applies them as a change (so the stacks they may
    /// now join are decided again), rather than merged silently.
    reviving: HashMap<AgentId, DateTime<Utc>>,
    /// The agents leaving each stack's decision (graceful eviction), as stored; only
    /// stacks with some. Kept apart from the chosen sets: a leaving agent is no
    /// incumbent (see [`super::eviction`]).
    pub(super) leaving: HashMap<StackId, Vec<crate::placement::Leaving>>,
}

/// When a decision is judged.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now.
    pub now: DateTime<Utc>,
    /// A heartbeat older than this is stale.
    pub stale_after: Duration,
}

impl Index {
    /// Merges heartbeats not yet written; see [`AgentIndex`].
    pub fn merge_pending(&mut self, buffer: &HeartbeatBuffer) {
        self.agents.merge_pending(buffer, &self.reviving);
    }

    /// Notes a heartbeat; `true` when the agent was stale or never seen, so the caller
    /// should apply it as a change ([`Index::agent_changed`]) to place it.
    pub fn note_heartbeat(&mut self, id: AgentId, at: DateTime<Utc>, clock: Clock) -> bool {
        if let Some(held) = self.reviving.get_mut(&id) {
            *held = (*held).max(at);
            return false;
        }
        let Some(&position) = self.agents.position.get(&id) else {
            return false;
        };
        let agent = &mut self.agents.list[position];
        if agent.liveness(clock.now, clock.stale_after) == crate::Liveness::Active {
            agent.last_heartbeat = agent.last_heartbeat.max(Some(at));
            return false;
        }
        self.reviving.insert(id, at);
        true
    }

    /// An index of `agents` (deleted ones are skipped) and `placements`.
    pub fn load(
        agents: Vec<Agent>,
        placements: Vec<StackPlacement>,
        registry: &PlacementRegistry,
    ) -> Self {
        let mut index = Self::default();
        for agent in agents.into_iter().filter(|a| a.deleted_at.is_none()) {
            index.agents.upsert(agent);
        }
        for placement in placements {
            let (chosen, leaving) = placement
                .decision
                .map(|d| (d.chosen, d.leaving))
                .unwrap_or_default();
            index.set_stack(placement.stack_id, placement.policy, chosen, registry);
            index.set_leaving(placement.stack_id, leaving);
        }
        index
    }

    /// Replaces the agents with `agents`, as the store holds them now (deleted ones
    /// are skipped), keeping a newer heartbeat this index holds for any of them. The
    /// caller decides every stack again afterwards ([`Index::recompute_all`]).
    pub fn refresh_agents(&mut self, agents: Vec<Agent>) {
        let mut fresh = AgentIndex::default();
        for mut agent in agents.into_iter().filter(|a| a.deleted_at.is_none()) {
            if let Some(known) = self.agents.get(&agent.id) {
                agent.last_heartbeat = agent.last_heartbeat.max(known.last_heartbeat);
            }
            fresh.upsert(agent);
        }
        self.agents = fresh;
    }

    /// The stacks with a policy.
    pub fn stack_ids(&self) -> Vec<StackId> {
        let mut ids: Vec<StackId> = self.stacks.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The agents a stack's decision chose, as this index knows them.
    pub fn chosen(&self, stack: StackId) -> Option<&[AgentId]> {
        self.stacks.get(&stack).map(|e| e.chosen.as_slice())
    }

    /// The policy this index decides a stack with.
    pub fn policy(&self, stack: StackId) -> Option<&PlacementPolicy> {
        self.stacks.get(&stack).map(|e| &e.policy)
    }

    /// Adds or replaces a stack's policy and chosen agents; its leaving agents are
    /// forgotten (set them with [`Index::set_leaving`]).
    pub fn set_stack(
        &mut self,
        stack: StackId,
        policy: PlacementPolicy,
        chosen: Vec<AgentId>,
        registry: &PlacementRegistry,
    ) {
        self.remove_stack(stack);
        let watched = registry
            .for_policy(&policy)
            .ok()
            .and_then(|placement| placement.watched_keys(&policy));
        match &watched {
            Some(keys) => {
                for key in keys {
                    self.by_key.entry(key.clone()).or_default().insert(stack);
                }
            }
            None => {
                self.any_key.insert(stack);
            }
        }
        for agent in &chosen {
            self.by_agent.entry(*agent).or_default().insert(stack);
        }
        self.stacks.insert(
            stack,
            StackEntry {
                policy,
                chosen,
                watched,
            },
        );
    }

    /// Forgets a stack (its policy was removed, or it was deleted).
    pub fn remove_stack(&mut self, stack: StackId) {
        self.leaving.remove(&stack);
        let Some(entry) = self.stacks.remove(&stack) else {
            return;
        };
        for key in entry.watched.iter().flatten() {
            if let Some(set) = self.by_key.get_mut(key) {
                set.remove(&stack);
            }
        }
        self.any_key.remove(&stack);
        self.unlink_chosen(stack, &entry.chosen);
    }

    fn unlink_chosen(&mut self, stack: StackId, chosen: &[AgentId]) {
        for agent in chosen {
            if let Some(set) = self.by_agent.get_mut(agent) {
                set.remove(&stack);
                if set.is_empty() {
                    self.by_agent.remove(agent);
                }
            }
        }
    }

    /// Replaces a stack's chosen agents.
    pub fn set_chosen(&mut self, stack: StackId, chosen: Vec<AgentId>) {
        let Some(old) = self
            .stacks
            .get_mut(&stack)
            .map(|e| std::mem::take(&mut e.chosen))
        else {
            return;
        };
        self.unlink_chosen(stack, &old);
        for agent in &chosen {
            self.by_agent.entry(*agent).or_default().insert(stack);
        }
        if let Some(entry) = self.stacks.get_mut(&stack) {
            entry.chosen = chosen;
        }
    }

    /// Decides `policy` over the indexed agents, keeping `current` while they fit; with
    /// `explain`, every other agent's reason too.
    pub fn decide(
        &self,
        placement: &dyn Placement,
        policy: &PlacementPolicy,
        current: &[AgentId],
        clock: Clock,
        explain: bool,
    ) -> PlacementDecision {
        let input = PlacementInput {
            policy,
            agents: self.agents.all(),
            current,
            now: clock.now,
            stale_after: clock.stale_after,
        };
        let mut decision = if explain {
            placement.place(&input)
        } else {
            PlacementDecision::choosing(placement.choose(&input))
        };
        // Leaving agents are the control plane's to keep, never a placement's.
        decision.leaving.clear();
        // A custom placement may answer in any order; stored sets, lookups and pages
        // rely on id order.
        decision.chosen.sort_unstable();
        decision.chosen.dedup();
        decision.rejected.sort_by_key(|(id, _)| *id);
        decision
    }

    /// Decides `policy` as [`Index::decide`] does, and summarizes the agents not chosen
    /// (leaving out `exclude`, ordered by id) with one `page` explained.
    #[allow(clippy::too_many_arguments)] // a decision's inputs, plus what to list
    pub fn summarize(
        &self,
        placement: &dyn Placement,
        policy: &PlacementPolicy,
        current: &[AgentId],
        exclude: &[AgentId],
        clock: Clock,
        page: RejectionPage,
    ) -> (Vec<AgentId>, Rejections) {
        let input = PlacementInput {
            policy,
            agents: self.agents.all(),
            current,
            now: clock.now,
            stale_after: clock.stale_after,
        };
        let (mut chosen, rejections) = placement.summarize(&input, exclude, page);
        chosen.sort_unstable();
        chosen.dedup();
        (chosen, rejections)
    }

    /// Every stack's decision again, from scratch: the chosen sets that differ from
    /// the indexed ones (which are updated).
    pub fn recompute_all(
        &mut self,
        registry: &PlacementRegistry,
        clock: Clock,
    ) -> Vec<(StackId, Vec<AgentId>)> {
        let mut changed = Vec::new();
        for stack in self.stack_ids() {
            let entry = &self.stacks[&stack];
            let Ok(placement) = registry.for_policy(&entry.policy) else {
                continue;
            };
            let chosen = self
                .decide(
                    placement.as_ref(),
                    &entry.policy,
                    &entry.chosen,
                    clock,
                    false,
                )
                .chosen;
            if chosen != entry.chosen {
                changed.push((stack, chosen));
            }
        }
        for (stack, chosen) in &changed {
            self.set_chosen(*stack, chosen.clone());
        }
        changed
    }

    /// Applies one agent's change (`after`: `None` when it is deleted or gone) and
    /// answers the stacks whose chosen set changed, with the new sets (already in the
    /// index).
    pub fn agent_changed(
        &mut self,
        id: AgentId,
        after: Option<Agent>,
        registry: &PlacementRegistry,
        clock: Clock,
    ) -> Vec<(StackId, Vec<AgentId>)> {
        let revived = self.reviving.remove(&id);
        let (before, after) = match after {
            Some(mut after) => {
                let before = self.agents.get(&id).cloned();
                // The index may hold a newer heartbeat than the store (merged pending,
                // or the beat that revived the agent).
                after.last_heartbeat = after
                    .last_heartbeat
                    .max(before.as_ref().and_then(|b| b.last_heartbeat))
                    .max(revived);
                self.agents.upsert(after.clone());
                (before, after)
            }
            None => {
                let Some(before) = self.agents.remove(id) else {
                    return Vec::new();
                };
                let mut gone = before.clone();
                gone.deleted_at = Some(clock.now);
                (Some(before), gone)
            }
        };
        let candidates = self.candidates(before.as_ref(), &after);
        let mut changed = Vec::new();
        for stack in candidates {
            let Some(entry) = self.stacks.get(&stack) else {
                continue;
            };
            let Ok(placement) = registry.for_policy(&entry.policy) else {
                continue;
            };
            let change = AgentChange {
                policy: &entry.policy,
                chosen: &entry.chosen,
                before: before.as_ref(),
                after: &after,
                now: clock.now,
                stale_after: clock.stale_after,
                inventory: &self.agents,
            };
            if !placement.affects(&change) {
                continue;
            }
            let chosen = placement.update(&change).unwrap_or_else(|| {
                self.decide(
                    placement.as_ref(),
                    &entry.policy,
                    &entry.chosen,
                    clock,
                    false,
                )
                .chosen
            });
            if chosen != entry.chosen {
                changed.push((stack, chosen));
            }
        }
        for (stack, chosen) in &changed {
            self.set_chosen(*stack, chosen.clone());
        }
        changed
    }

    /// The stacks `before` → `after` may affect, ordered by id.
    fn candidates(&self, before: Option<&Agent>, after: &Agent) -> Vec<StackId> {
        let metadata_only = before.is_some_and(|before| {
            before.status == after.status
                && before.deleted_at == after.deleted_at
                && before.capabilities == after.capabilities
                && before.last_heartbeat == after.last_heartbeat
        });
        let mut found: Vec<StackId> = match before {
            Some(before) if metadata_only => {
                let mut found: HashSet<StackId> = self.any_key.clone();
                let changed_keys = changed_keys(&before.labels, &after.labels)
                    .chain(changed_keys(&before.annotations, &after.annotations));
                for key in changed_keys {
                    found.extend(self.by_key.get(key).into_iter().flatten());
                }
                found.extend(self.by_agent.get(&after.id).into_iter().flatten());
                found.into_iter().collect()
            }
            _ => self.stacks.keys().copied().collect(),
        };
        found.sort_unstable();
        found
    }
}

/// Keys whose value differs between two maps (added, removed or changed).
fn changed_keys<'a>(
    before: &'a std::collections::BTreeMap<String, String>,
    after: &'a std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = &'a String> {
    let removed_or_changed = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k);
    let added = after.keys().filter(|k| !before.contains_key(*k));
    removed_or_changed.chain(added)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::placement::PlacementRegistry;
    use crate::{AgentStatus, Capabilities};

    /// A placement that reads any key (the trait's defaults).
    struct Anything;

    impl Placement for Anything {
        fn place(&self, _: &PlacementInput<'_>) -> PlacementDecision {
            PlacementDecision::default()
        }
    }

    fn agent(n: u128, labels: &[(&str, &str)]) -> Agent {
        Agent {
            id: AgentId(uuid::Uuid::from_u128(n)),
            name: format!("a{n}"),
            cluster_name: format!("a{n}"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
            status: AgentStatus::Active,
            last_heartbeat: Some(Utc::now()),
            capabilities: Capabilities::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted_at: None,
        }
    }

    #[test]
    fn a_label_change_looks_only_at_stacks_that_read_the_key_or_chose_the_agent() {
        let registry = PlacementRegistry::default().with("any", Arc::new(Anything));
        let (a, b) = (agent(1, &[("region", "eu")]), agent(2, &[("region", "us")]));
        let mut index = Index::load(vec![a.clone(), b.clone()], Vec::new(), &registry);
        let by_region: PlacementPolicy = serde_json::from_value(
            serde_json::json!({"agent_selector": {"matchLabels": {"region": "eu"}}}),
        )
        .unwrap();
        let (s1, s2, s3) = (StackId::new(), StackId::new(), StackId::new());
        index.set_stack(s1, by_region, vec![a.id], &registry);
        index.set_stack(s2, PlacementPolicy::default(), vec![a.id, b.id], &registry);
        index.set_stack(
            s3,
            PlacementPolicy::named("any", serde_json::json!({})),
            vec![],
            &registry,
        );
        let sorted = |mut v: Vec<StackId>| {
            v.sort();
            v
        };
        let relabel = |agent: &Agent, key: &str, value: &str| {
            let mut after = agent.clone();
            after.labels.insert(key.into(), value.into());
            after
        };
        // b's team: only the stack that chose b and the one reading any key.
        assert_eq!(
            index.candidates(Some(&b), &relabel(&b, "team", "x")),
            sorted(vec![s2, s3])
        );
        // b's region: also the stack whose selector reads it.
        assert_eq!(
            index.candidates(Some(&b), &relabel(&b, "region", "eu")),
            sorted(vec![s1, s2, s3])
        );
        // Anything but metadata: every stack.
        let mut disabled = b.clone();
        disabled.status = AgentStatus::Inactive;
        assert_eq!(
            index.candidates(Some(&b), &disabled),
            sorted(vec![s1, s2, s3])
        );
        // And the region change moves s1 to b.
        let clock = Clock {
            now: Utc::now(),
            stale_after: Duration::seconds(90),
        };
        let changed =
            index.agent_changed(b.id, Some(relabel(&b, "region", "eu")), &registry, clock);
        let mut both = vec![a.id, b.id];
        both.sort();
        assert_eq!(changed, vec![(s1, both)]);
    }
}
