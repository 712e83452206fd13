//! The control plane's placement machinery: the [`Index`] (loaded from the store once,
//! then kept current from changes) and the path from a change to recorded decisions.
//!
//! Recorded decisions take turns, so the index's chosen sets and the store's never
//! diverge by two writers interleaving: work on one stack (setting or removing its
//! policy) takes that stack's turn, and many stacks' work at once (an agent changed,
//! the periodic run) takes every turn; stacks of different tenants are placed side by
//! side. Reads (a `GET`, a preview) only take the index's short lock. A failed write
//! forgets the index: the next use reloads it from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use chrono::{DateTime, Utc};

use super::controller::{all_placements, chrono_duration, live_agents};
use super::index::{Clock, Index};
use crate::runtime::{ControlPlane, Result};
use crate::store::Error as StoreError;
use crate::{Actor, Agent, AgentId, PlacementDecision, StackId};

/// The placement index and the lock that orders recorded decisions.
#[derive(Debug, Default)]
pub struct PlacementState {
    index: Mutex<Option<Index>>,
    /// Heartbeats that found the index busy, latest per agent (so bounded by the
    /// agents): applied by whoever holds the index next. A heartbeat is answered on
    /// an async worker, and the index may be held for as long as every stack takes to
    /// decide; waiting for it there would stall every request on that worker.
    deferred_beats: Mutex<HashMap<AgentId, DateTime<Utc>>>,
    /// Shared by work on one stack, exclusive for work on many.
    record: tokio::sync::RwLock<()>,
    /// Work on one stack also takes that stack's turn.
    stack_turns: Mutex<HashMap<StackId, Arc<tokio::sync::Mutex<()>>>>,
}

/// The right to record one stack's decisions; see [`ControlPlane::stack_turn`].
pub(crate) struct StackTurn<'a> {
    state: &'a PlacementState,
    stack: StackId,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    _shared: tokio::sync::RwLockReadGuard<'a, ()>,
}

impl Drop for StackTurn<'_> {
    fn drop(&mut self) {
        drop(self.turn.take());
        let mut turns = crate::sync::lock(&self.state.stack_turns);
        // Only the map holds it now: nobody waits for this stack's turn.
        if turns
            .get(&self.stack)
            .is_some_and(|turn| Arc::strong_count(turn) == 1)
        {
            turns.remove(&self.stack);
        }
    }
}

impl PlacementState {
    pub(super) fn lock(&self) -> MutexGuard<'_, Option<Index>> {
        // Every update of the index is applied whole under the lock; a panic in the
        // middle of one is a bug in a placement, and the next failed write or resync
        // rebuilds the index anyway.
        crate::sync::lock(&self.index)
    }

    /// The index, unless another thread holds it.
    pub(super) fn try_lock(&self) -> Option<MutexGuard<'_, Option<Index>>> {
        match self.index.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Applies the heartbeats deferred while the index was busy; the agents they
    /// revive (stale or never seen before the beat).
    fn apply_deferred_beats(&self, index: &mut Index, clock: Clock) -> Vec<AgentId> {
        let beats = std::mem::take(&mut *crate::sync::lock(&self.deferred_beats));
        beats
            .into_iter()
            .filter(|&(agent, at)| index.note_heartbeat(agent, at, clock))
            .map(|(agent, _)| agent)
            .collect()
    }
}

/// What a batch of recorded decisions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Decisions written.
    pub recorded: usize,
    /// Of those, decisions that moved the stack (placement targets added or removed).
    pub moved: usize,
    /// Decisions the blast-radius guard held instead of recording.
    pub held: usize,
}

impl ControlPlane {
    pub(crate) fn placement_state(&self) -> &Arc<PlacementState> {
        &self.inner.placement_state
    }

    pub(crate) fn placement_clock(&self) -> Clock {
        Clock {
            now: Utc::now(),
            stale_after: chrono_duration(self.inner.settings.stale_after),
        }
    }

    /// Loads the index from the store unless it is loaded. Never waits for the index
    /// on an async worker: a held index is in use, hence loaded (or being replaced,
    /// which `with_index` notices and comes back here for).
    async fn ensure_index(&self) -> Result<()> {
        let missing = self
            .placement_state()
            .try_lock()
            .is_some_and(|guard| guard.is_none());
        if missing {
            self.reload_index().await?;
        }
        Ok(())
    }

    /// Reloads every live agent and placement from the store: the start, and the
    /// periodic safety net.
    pub(crate) async fn reload_index(&self) -> Result<()> {
        let agents = live_agents(self.inner.store.as_ref(), &self.inner.heartbeats).await?;
        self.load_index(agents).await
    }

    /// Replaces the index with one built from `agents` and every stored placement.
    async fn load_index(&self, agents: Vec<Agent>) -> Result<()> {
        let placements = all_placements(self.inner.store.as_ref()).await?;
        let registry = self.inner.placements.clone();
        let state = Arc::clone(self.placement_state());
        // Building the index and swapping it in (the lock may be held by a long
        // recompute) both stay off the async workers.
        tokio::task::spawn_blocking(move || {
            let index = Index::load(agents, placements, &registry);
            *state.lock() = Some(index);
        })
        .await
        .map_err(crate::runtime::Error::Task)
    }

    /// Runs `f` on the loaded index (loading it first), with pending heartbeats merged,
    /// off the async workers.
    pub(crate) async fn with_index<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Index, Clock) -> T + Send + 'static,
    {
        let mut f = f;
        loop {
            self.ensure_index().await?;
            let state = Arc::clone(self.placement_state());
            let heartbeats = Arc::clone(&self.inner.heartbeats);
            let signals = Arc::clone(&self.inner.placement_signals);
            let clock = self.placement_clock();
            let outcome = tokio::task::spawn_blocking(move || {
                let mut guard = state.lock();
                match guard.as_mut() {
                    Some(index) => {
                        // Deferred beats first: merged as pending beats, a reviving
                        // agent would turn fresh without its stacks being decided.
                        let mut revived = state.apply_deferred_beats(index, clock);
                        index.merge_pending(&heartbeats);
                        let value = f(index, clock);
                        // And the beats deferred while `f` ran, before letting go.
                        revived.extend(state.apply_deferred_beats(index, clock));
                        drop(guard);
                        signals.agents_changed(revived);
                        Ok(value)
                    }
                    None => Err(f),
                }
            })
            .await
            .map_err(crate::runtime::Error::Task)?;
            match outcome {
                Ok(value) => return Ok(value),
                // Forgotten meanwhile by a failed write: load it again.
                Err(back) => f = back,
            }
        }
    }

    /// An agent beat at `at`: its liveness in the placement index, at once (no I/O,
    /// one short lock). An agent that was stale or never seen is signalled to the
    /// placement controller, which places it. The runtime calls this for every
    /// heartbeat it records; without it, heartbeats reach the index only while they
    /// wait to be written and at the periodic reload.
    ///
    /// It never waits for the index: while another thread holds it (a decision over
    /// every stack may take a while), the beat is set aside and applied, with the same
    /// effect, by that thread before it lets go or by the next use of the index.
    pub fn note_heartbeat(&self, agent: AgentId, at: DateTime<Utc>) {
        let clock = self.placement_clock();
        let state = self.placement_state();
        let Some(mut guard) = state.try_lock() else {
            let mut deferred = crate::sync::lock(&state.deferred_beats);
            let held = deferred.entry(agent).or_insert(at);
            *held = (*held).max(at);
            return;
        };
        let revived = guard
            .as_mut()
            .is_some_and(|index| index.note_heartbeat(agent, at, clock));
        drop(guard);
        if revived {
            self.inner.placement_signals.agent_changed(agent);
        }
    }

    /// An agent was registered, changed (labels, annotations, status, capabilities)
    /// or deleted: updates the placement index at once and records the decisions that
    /// change, recomputing only the stacks the change can affect. Call it after the
    /// change is stored; when it returns, placement reads and decisions reflect it.
    pub async fn agent_changed(&self, agent: AgentId) -> Result<Recorded> {
        self.agents_changed(&[agent]).await
    }

    /// [`ControlPlane::agent_changed`] for several agents.
    pub async fn agents_changed(&self, agents: &[AgentId]) -> Result<Recorded> {
        let _turn = self.placement_state().record.write().await;
        let mut total = Recorded::default();
        for &id in agents {
            let after = match self.inner.store.get_agent(id).await {
                Ok(agent) if agent.deleted_at.is_none() => Some(agent),
                Ok(_) | Err(StoreError::NotFound { .. }) => None,
                Err(err) => return Err(err.into()),
            };
            let registry = self.inner.placements.clone();
            let changed = self
                .with_index(move |index, clock| index.agent_changed(id, after, &registry, clock))
                .await?;
            let done = self.record_chosen(changed, true).await?;
            total.recorded += done.recorded;
            total.moved += done.moved;
            total.held += done.held;
        }
        Ok(total)
    }

    /// Decides every stack again, after reloading the index from the store with
    /// `reload`, else after reading the agents again (the periodic safety net, which
    /// also notices agents going stale or fresh and `evict_after_secs` running out).
    pub(crate) async fn resync_placements(&self, reload: bool) -> Result<(usize, Recorded)> {
        let _turn = self.placement_state().record.write().await;
        // Between reloads the agents still come from the store: other replicas write
        // the heartbeats (and capabilities) of the agents beating to them and announce
        // none of it, so without this those agents would look stale here for up to
        // RELOAD_EVERY periods, and this replica would record decisions that pass them
        // over or evict them while the others keep them.
        let agents = live_agents(self.inner.store.as_ref(), &self.inner.heartbeats).await?;
        // An empty listing while agents are known is far likelier a listing gone wrong
        // than a fleet gone: it must never become empty decisions (Argo CD #18480),
        // whether it would refresh the index or replace it. Deleted agents leave one by
        // one through `agents_changed`.
        if agents.is_empty()
            && self
                .with_index(|index, _| !index.agents.all().is_empty())
                .await?
        {
            tracing::warn!("the agent listing came back empty; decisions kept as they are");
            return Ok((0, Recorded::default()));
        }
        let agents = if reload {
            self.load_index(agents).await?;
            None
        } else {
            Some(agents)
        };
        let registry = self.inner.placements.clone();
        let (computed, changed, leaving) = self
            .with_index(move |index, clock| {
                if let Some(agents) = agents {
                    index.refresh_agents(agents);
                }
                (
                    index.stack_ids().len(),
                    index.recompute_all(&registry, clock),
                    index.stacks_leaving(),
                )
            })
            .await?;
        // Stacks with leaving agents are looked at whether or not their decision
        // changed: deadlines pass, other replicas store health reports.
        let mut work: Vec<(StackId, Option<Vec<AgentId>>)> = changed
            .into_iter()
            .map(|(stack, chosen)| (stack, Some(chosen)))
            .collect();
        let decided: std::collections::HashSet<StackId> =
            work.iter().map(|(stack, _)| *stack).collect();
        work.extend(
            leaving
                .into_iter()
                .filter(|stack| !decided.contains(stack))
                .map(|stack| (stack, None)),
        );
        Ok((computed, self.record_stacks(work, true).await?))
    }

    /// A stack's policy changed elsewhere (another path than this control plane's
    /// operations): reload it and decide it again.
    pub(crate) async fn stack_policy_changed(&self, stack: StackId) -> Result<Recorded> {
        let _turn = self.stack_turn(stack).await;
        self.decide_stack_locked(stack, true).await
    }

    /// Reloads one stack's placement from the store, decides it and records the
    /// decision if it changed, through the guard with `hold` (an automatic decision).
    /// The caller holds the stack's turn (or every turn).
    pub(crate) async fn decide_stack_locked(&self, stack: StackId, hold: bool) -> Result<Recorded> {
        let stored = match self.inner.store.get_placement(stack).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound { .. }) => None,
            Err(err) => return Err(err.into()),
        };
        let registry = self.inner.placements.clone();
        let changed = self
            .with_index(move |index, clock| {
                let Some(stored) = stored else {
                    index.remove_stack(stack);
                    return Vec::new();
                };
                let decided = stored.decision.is_some();
                let (current, leaving) = stored
                    .decision
                    .map(|d| (d.chosen, d.leaving))
                    .unwrap_or_default();
                let Ok(placement) = registry.for_policy(&stored.policy) else {
                    index.set_stack(stack, stored.policy, current, &registry);
                    index.set_leaving(stack, leaving);
                    return Vec::new();
                };
                let chosen = index
                    .decide(placement.as_ref(), &stored.policy, &current, clock, false)
                    .chosen;
                // An undecided stack records even an empty choice, so it has a decision;
                // one with leaving agents is recorded to look at them again.
                let unchanged = decided && chosen == current && leaving.is_empty();
                index.set_stack(stack, stored.policy, chosen.clone(), &registry);
                index.set_leaving(stack, leaving);
                if unchanged {
                    Vec::new()
                } else {
                    vec![(stack, chosen)]
                }
            })
            .await?;
        self.record_chosen(changed, hold).await
    }

    /// Waits for the turn to record `stack`'s decisions: after any work on many stacks,
    /// and after earlier work on this one.
    pub(crate) async fn stack_turn(&self, stack: StackId) -> StackTurn<'_> {
        let state = self.placement_state();
        let shared = state.record.read().await;
        let turn = Arc::clone(
            crate::sync::lock(&state.stack_turns)
                .entry(stack)
                .or_default(),
        );
        StackTurn {
            state,
            stack,
            turn: Some(turn.lock_owned().await),
            _shared: shared,
        }
    }

    /// Writes chosen sets already in the index; see [`ControlPlane::record_stacks`].
    pub(crate) async fn record_chosen(
        &self,
        changed: Vec<(StackId, Vec<AgentId>)>,
        hold: bool,
    ) -> Result<Recorded> {
        let work = changed
            .into_iter()
            .map(|(stack, chosen)| (stack, Some(chosen)))
            .collect();
        self.record_stacks(work, hold).await
    }

    /// Writes decisions: each stack with the chosen set already in the index, or with
    /// `None` its stored chosen set again (to look at its leaving agents). Each
    /// decision is checked against the stored policy first: another replica may have
    /// set a new one this index has not seen, and a decision for the old policy must
    /// not overwrite the new one's (the stack is then reloaded and decided again). A
    /// stack deleted, or whose policy was removed, meanwhile is dropped from the index;
    /// any other failure forgets the index, so the next use reloads what the store
    /// really holds. With `hold` (automatic decisions) each decision that changes the
    /// chosen set passes the blast-radius guard first, and a violating one is held.
    /// The leaving agents are worked out for each ([`ControlPlane::eviction`]); a
    /// decision equal to the stored one writes nothing.
    pub(crate) async fn record_stacks(
        &self,
        work: Vec<(StackId, Option<Vec<AgentId>>)>,
        hold: bool,
    ) -> Result<Recorded> {
        let mut done = Recorded::default();
        for (stack, chosen) in work {
            let decided_with = self
                .placement_state()
                .lock()
                .as_ref()
                .and_then(|index| index.policy(stack).cloned());
            let stored = match self.inner.store.get_placement(stack).await {
                Ok(stored) => stored,
                Err(StoreError::NotFound { .. }) => None,
                Err(err) => return Err(self.forget_index(err)),
            };
            let stored = match stored {
                None => {
                    self.drop_stack(stack);
                    continue;
                }
                Some(stored) if Some(&stored.policy) != decided_with.as_ref() => {
                    let again = Box::pin(self.decide_stack_locked(stack, hold)).await?;
                    done.recorded += again.recorded;
                    done.moved += again.moved;
                    done.held += again.held;
                    continue;
                }
                Some(stored) => stored,
            };
            let recorded = stored.decision;
            let recorded_chosen = recorded
                .as_ref()
                .map(|d| d.chosen.clone())
                .unwrap_or_default();
            let chosen = chosen.unwrap_or_else(|| recorded_chosen.clone());
            let (leaving, released) = self
                .eviction(stack, &stored.policy, recorded.as_ref(), &chosen)
                .await?;
            let moves = chosen != recorded_chosen;
            if !moves && recorded.as_ref().is_some_and(|d| d.leaving == leaving) {
                continue;
            }
            // Releasing a leaving agent is not a new decision: the guard judged its
            // removal when the decision that dropped it was made.
            if hold
                && moves
                && self
                    .hold_if_over_guard(stack, &chosen, recorded_chosen)
                    .await?
            {
                done.held += 1;
                continue;
            }
            let count = chosen.len();
            let decision = PlacementDecision {
                leaving: leaving.clone(),
                ..PlacementDecision::choosing(chosen)
            };
            match self
                .inner
                .store
                .record_placement(&Actor::System, stack, decision)
                .await
            {
                Ok(change) => {
                    done.recorded += 1;
                    super::eviction::log_released(stack, &released);
                    if !change.added.is_empty() || !change.removed.is_empty() {
                        done.moved += 1;
                        tracing::info!(
                            %stack,
                            chosen = count,
                            leaving = leaving.len(),
                            added = change.added.len(),
                            removed = change.removed.len(),
                            "placement decision changed"
                        );
                    }
                    self.with_index(move |index, _| index.set_leaving(stack, leaving))
                        .await?;
                }
                Err(StoreError::NotFound { .. }) => self.drop_stack(stack),
                Err(err) => return Err(self.forget_index(err)),
            }
        }
        Ok(done)
    }

    pub(crate) fn drop_stack(&self, stack: StackId) {
        if let Some(index) = self.placement_state().lock().as_mut() {
            index.remove_stack(stack);
        }
    }

    pub(crate) fn forget_index(&self, err: StoreError) -> crate::runtime::Error {
        *self.placement_state().lock() = None;
        err.into()
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Pak;
    use crate::runtime::placement::Trigger;
    use crate::testing::MemoryStore;

    /// A heartbeat is answered on an async worker: while another thread holds the
    /// index (deciding every stack), it must not wait for it, and the beat must still
    /// revive its agent once the index is free.
    #[tokio::test]
    async fn a_heartbeat_does_not_wait_for_a_busy_index() {
        let cp = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
        let agent = cp
            .store()
            .create_agent(
                &Actor::Admin,
                crate::testing::conformance::new_agent("a", "c", &Pak::generate()),
            )
            .await
            .unwrap();
        // Loaded with the agent never seen.
        cp.with_index(|_, _| ()).await.unwrap();
        assert_eq!(cp.placement_signals().take(), None);

        let state = Arc::clone(cp.placement_state());
        let (held, is_held) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _index = state.lock();
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        is_held.recv().unwrap();
        let started = Instant::now();
        cp.note_heartbeat(agent.id, Utc::now());
        let waited = started.elapsed();
        holder.join().unwrap();
        assert!(
            waited < Duration::from_millis(250),
            "the heartbeat waited {waited:?} for the index"
        );

        // The next use of the index applies the beat: the agent revives.
        cp.with_index(|_, _| ()).await.unwrap();
        assert_eq!(
            cp.placement_signals().take(),
            Some(Trigger::Changed {
                agents: [agent.id].into_iter().collect(),
                stacks: BTreeSet::new(),
            })
        );
    }
}
