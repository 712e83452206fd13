//! Wave planning (ROLLOUTS.md section 4): which wave each placed agent of a rollout
//! belongs to, decided once when the rollout starts and kept while it runs.
//!
//! An agent goes into the first policy wave whose selection it matches (listed by
//! name or id, by labels, or `remaining`); agents matching none go into a final wave
//! named [`IMPLICIT_WAVE`], so no agent is ever left out (Argo CD's RollingSync never
//! synced them). `group_by` cuts a wave into one sub-wave per label value, in the
//! order of the values, agents without the label last; `split` then cuts each
//! (sub-)wave into chunks of a count or a percentage of it (rounded up), by agent id.
//! Empty waves are dropped. The result depends only on the policy and the fleet.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::id::AgentId;
use crate::model::{RolloutAgent, RolloutAgentState, RolloutWave, WaveState};

use super::{AgentView, RolloutPolicy};

/// The name of the wave of agents that no policy wave selected.
pub const IMPLICIT_WAVE: &str = "implicit";
/// The name of a wave appended for agents placed while the rollout ran.
pub const LATE_WAVE: &str = "late";

/// A rollout's waves and agents as planned at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavePlan {
    /// The waves, by index, all `pending`.
    pub waves: Vec<RolloutWave>,
    /// Every placed agent once, by agent id, `waiting` in its wave.
    pub agents: Vec<RolloutAgent>,
}

/// Plans the waves of a rollout over the placed agents of `fleet`; `now` stamps the
/// agents' rows.
pub fn plan_waves(policy: &RolloutPolicy, fleet: &[AgentView], now: DateTime<Utc>) -> WavePlan {
    let selector = WaveSelector::new(policy);
    let implicit = policy.waves.len();
    let mut seen = HashSet::new();
    let mut buckets: Vec<Vec<&AgentView>> = vec![Vec::new(); implicit + 1];
    for agent in fleet.iter().filter(|a| a.placed) {
        if seen.insert(agent.agent_id) {
            let spec = selector.first_match(agent).unwrap_or(implicit);
            buckets[spec].push(agent);
        }
    }
    let mut plan = WavePlan {
        waves: Vec::new(),
        agents: Vec::new(),
    };
    for (spec_index, bucket) in buckets.iter_mut().enumerate() {
        for (name, members) in selector.cut(spec_index, bucket) {
            let spec = policy.waves.get(spec_index).map(|w| w.name.clone());
            plan.push_wave(policy, name, spec, &members, now);
        }
    }
    plan.agents.sort_by_key(|a| a.agent_id);
    plan
}

impl WavePlan {
    fn push_wave(
        &mut self,
        policy: &RolloutPolicy,
        name: String,
        spec: Option<String>,
        members: &[AgentId],
        now: DateTime<Utc>,
    ) {
        if members.is_empty() {
            return;
        }
        let index = u32::try_from(self.waves.len()).unwrap_or(u32::MAX);
        self.waves
            .push(new_wave(policy, index, name, spec, members.len()));
        self.agents.extend(
            members
                .iter()
                .map(|&agent_id| new_agent(agent_id, index, now)),
        );
    }
}

/// A `pending` wave of `size` agents.
pub(crate) fn new_wave(
    policy: &RolloutPolicy,
    index: u32,
    name: String,
    spec: Option<String>,
    size: usize,
) -> RolloutWave {
    RolloutWave {
        index,
        name,
        spec,
        max_failures: u32::try_from(policy.max_failures.of(size)).unwrap_or(u32::MAX),
        state: WaveState::Pending,
        started_at: None,
        all_healthy_since: None,
        promoted: false,
        reason: None,
        finished_at: None,
    }
}

/// A `waiting` agent of wave `wave`.
pub(crate) fn new_agent(agent_id: AgentId, wave: u32, now: DateTime<Utc>) -> RolloutAgent {
    RolloutAgent {
        agent_id,
        wave,
        state: RolloutAgentState::Waiting,
        pinned_at: None,
        healthy_since: None,
        unhealthy_since: None,
        reason: None,
        updated_at: now,
    }
}

/// The policy's wave selections, prepared for matching many agents.
pub(crate) struct WaveSelector<'p> {
    policy: &'p RolloutPolicy,
    /// Per policy wave: the names and the ids it lists.
    listed: Vec<(HashSet<&'p str>, HashSet<AgentId>)>,
    by_name: HashMap<&'p str, usize>,
}

impl<'p> WaveSelector<'p> {
    pub(crate) fn new(policy: &'p RolloutPolicy) -> Self {
        let listed = policy
            .waves
            .iter()
            .map(|wave| {
                let names = wave.select.agents.iter().map(String::as_str).collect();
                let ids = wave
                    .select
                    .agents
                    .iter()
                    .filter_map(|entry| entry.parse::<AgentId>().ok())
                    .collect();
                (names, ids)
            })
            .collect();
        let by_name = policy
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), i))
            .collect();
        Self {
            policy,
            listed,
            by_name,
        }
    }

    /// Whether policy wave `spec` selects `agent` (ignoring earlier waves).
    pub(crate) fn matches(&self, spec: usize, agent: &AgentView) -> bool {
        let Some(wave) = self.policy.waves.get(spec) else {
            return false;
        };
        let select = &wave.select;
        if select.remaining {
            return true;
        }
        if !select.agents.is_empty() {
            let (names, ids) = &self.listed[spec];
            return names.contains(agent.name.as_str()) || ids.contains(&agent.agent_id);
        }
        !select.match_labels.is_empty()
            && select
                .match_labels
                .iter()
                .all(|(key, value)| agent.labels.get(key) == Some(value))
    }

    /// The first policy wave that selects `agent`.
    pub(crate) fn first_match(&self, agent: &AgentView) -> Option<usize> {
        (0..self.policy.waves.len()).find(|&spec| self.matches(spec, agent))
    }

    /// Whether the not yet started `wave` would take `agent`, placed after the plan:
    /// its policy wave selects it (and, when cut by `group_by`, the sub-wave is its
    /// label value's), or it is the implicit wave and no policy wave selects it, or it
    /// is a late wave.
    pub(crate) fn takes(&self, wave: &RolloutWave, agent: &AgentView) -> bool {
        match &wave.spec {
            Some(spec_name) => {
                let Some(&spec) = self.by_name.get(spec_name.as_str()) else {
                    return false;
                };
                if !self.matches(spec, agent) {
                    return false;
                }
                let base = self.group_name(spec, agent);
                wave.name == base
                    || wave
                        .name
                        .strip_prefix(base.as_str())
                        .is_some_and(|rest| rest.starts_with('#'))
            }
            None if wave.name == IMPLICIT_WAVE => self.first_match(agent).is_none(),
            None => wave.name == LATE_WAVE,
        }
    }

    /// The name of the sub-wave of policy wave `spec` that `agent` falls in, before
    /// any `split`: the wave's name, with `/key=value` (or `/key unset`) when the
    /// wave is grouped.
    fn group_name(&self, spec: usize, agent: &AgentView) -> String {
        let wave = &self.policy.waves[spec];
        match &wave.group_by {
            None => wave.name.clone(),
            Some(key) => match agent.labels.get(key) {
                Some(value) => format!("{}/{key}={value}", wave.name),
                None => format!("{}/{key} unset", wave.name),
            },
        }
    }

    /// Cuts the agents of policy wave `spec` (or of the implicit wave, one past the
    /// last) into named sub-waves, in order.
    fn cut(&self, spec: usize, agents: &mut [&AgentView]) -> Vec<(String, Vec<AgentId>)> {
        let Some(wave) = self.policy.waves.get(spec) else {
            agents.sort_by_key(|a| a.agent_id);
            let ids = agents.iter().map(|a| a.agent_id).collect();
            return vec![(IMPLICIT_WAVE.to_owned(), ids)];
        };
        let group = |agent: &AgentView| {
            wave.group_by
                .as_ref()
                .and_then(|key| agent.labels.get(key))
                .cloned()
        };
        // Agents without the label sort last: `None` after every value.
        agents.sort_by_cached_key(|a| {
            let value = group(a);
            (value.is_none(), value, a.agent_id)
        });
        let mut out = Vec::new();
        let mut start = 0;
        while start < agents.len() {
            let value = group(agents[start]);
            let end = start
                + agents[start..]
                    .iter()
                    .take_while(|a| group(a) == value)
                    .count();
            let base = self.group_name(spec, agents[start]);
            let members: Vec<AgentId> = agents[start..end].iter().map(|a| a.agent_id).collect();
            match wave.split {
                None => out.push((base, members)),
                Some(split) => {
                    let size = split.of(members.len()).max(1);
                    for (n, chunk) in members.chunks(size).enumerate() {
                        out.push((format!("{base}#{}", n + 1), chunk.to_vec()));
                    }
                }
            }
            start = end;
        }
        out
    }
}

#[cfg(test)]
mod tests;
