//! Placement changes while a rollout runs (ROLLOUTS.md section 11): an agent the
//! stack is no longer placed on leaves the rollout (`removed`, its pin removed, out
//! of every count); an agent placed during the rollout joins the first wave not yet
//! started that would take it, or a wave appended for it (`late`). Until its wave
//! pins it, a joiner runs the release head (the baseline), like every waiting agent.

use crate::model::{RolloutAgentState, RolloutState, WaveState};
use crate::rollout::waves::{LATE_WAVE, WaveSelector, new_agent, new_wave};

use super::work::Work;

const REMOVED: &str = "the stack is no longer placed on it";
const JOINED: &str = "placed during the rollout";

/// Applies the fleet's placement to the rollout's agents.
pub(super) fn follow_placement(work: &mut Work<'_>) {
    use RolloutState::*;
    if !matches!(work.state, Running | Paused | Halted | Reverting) {
        return;
    }
    for i in 0..work.agents.len() {
        let agent = &work.agents[i];
        if matches!(
            agent.state,
            RolloutAgentState::Removed | RolloutAgentState::RevertedOk
        ) {
            continue;
        }
        let placed = work.view(agent.agent_id).is_some_and(|v| v.placed);
        if !placed {
            work.set_agent(i, RolloutAgentState::Removed, Some(REMOVED.into()));
        }
    }
    if work.state == Reverting {
        // Agents placed during a revert simply get the release head.
        return;
    }
    let snap = work.snap;
    let selector = WaveSelector::new(work.policy);
    let mut joined_waves = Vec::new();
    for view in snap.fleet.iter().filter(|v| v.placed) {
        let existing = work.agent_position(view.agent_id);
        if existing.is_some_and(|i| work.agents[i].state != RolloutAgentState::Removed) {
            continue;
        }
        let w = match (0..work.waves.len()).find(|&w| {
            work.waves[w].state == WaveState::Pending && selector.takes(&work.waves[w], view)
        }) {
            Some(w) => w,
            None => {
                let index = u32::try_from(work.waves.len()).unwrap_or(u32::MAX);
                work.push_wave(new_wave(work.policy, index, LATE_WAVE.to_owned(), None, 1))
            }
        };
        let index = work.waves[w].index;
        match existing {
            None => {
                let mut row = new_agent(view.agent_id, index, work.now);
                row.reason = Some(JOINED.into());
                work.push_agent(row);
            }
            Some(i) => {
                // Placed again after being removed: it starts over in its new wave.
                let old = work.agents[i].wave as usize;
                if let Some(members) = work.members.get_mut(old) {
                    members.retain(|&m| m != i);
                }
                let mut row = new_agent(view.agent_id, index, work.now);
                row.reason = Some(JOINED.into());
                work.agents[i] = row;
                work.members[w].push(i);
            }
        }
        joined_waves.push(w);
    }
    joined_waves.sort_unstable();
    joined_waves.dedup();
    for w in joined_waves {
        // A wave not yet started tolerates `max_failures` of the agents it will
        // start with, joiners included.
        let size = work.members[w]
            .iter()
            .filter(|&&i| work.agents[i].state != RolloutAgentState::Removed)
            .count();
        let policy = work.policy;
        work.waves[w].max_failures =
            u32::try_from(policy.max_failures.of(size)).unwrap_or(u32::MAX);
        let agents = &work.agents;
        work.members[w].sort_by_key(|&i| agents[i].agent_id);
    }
}
