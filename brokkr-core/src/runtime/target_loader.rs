//! Target states read for cache misses, many agents per read.
//!
//! A change that reaches a fleet (a new object in a stack ten thousand agents run)
//! wakes every agent's long poll at once, and every one misses the cache. Read one by
//! one, that is queries per agent while the fleet waits; instead, misses that arrive
//! together share one [`Store::target_states`] call. The first miss opens a batch and
//! starts its read on a task of its own, which yields once before taking the batch,
//! so the polls woken with it (already queued on the runtime) join first. A lone miss
//! costs one yield more than a direct read. A batch is closed before it is read, so
//! every agent in it asked before the read began: what it gets is never older than
//! its request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::store::{Error, Store};
use crate::sync::lock;
use crate::{AgentId, AgentTargetState};

/// Most agents one batch reads.
const MAX_BATCH: usize = 1_000;

/// What a batch read: each found agent's state with the number of its waiters still to
/// take it (the last one takes it without a copy), or the store's error for all.
type Loaded = Result<Mutex<HashMap<AgentId, (AgentTargetState, usize)>>, Arc<Error>>;

/// The batch misses join while it waits for its read. Agents are added only while it
/// is in [`TargetLoader`]'s open slot, under that slot's lock.
struct OpenBatch {
    id: u64,
    agents: Arc<Mutex<Vec<AgentId>>>,
    done: watch::Receiver<Option<Arc<Loaded>>>,
}

/// Reads target states for misses in batches. See the [module documentation](self).
#[derive(Default)]
pub(crate) struct TargetLoader {
    open: Mutex<Option<OpenBatch>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TargetLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetLoader").finish_non_exhaustive()
    }
}

impl TargetLoader {
    /// The agent's target state and status, read with whichever misses arrive with it.
    /// `NotFound` for a missing or deleted agent.
    pub(crate) async fn load(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        agent: AgentId,
    ) -> Result<AgentTargetState, Error> {
        let mut done = self.join(store, agent);
        let loaded = match done.wait_for(Option::is_some).await {
            Ok(loaded) => loaded.clone(),
            Err(_) => None,
        };
        let Some(loaded) = loaded else {
            return Err(Error::Backend("the target-state read stopped".into()));
        };
        match &*loaded {
            Ok(states) => take(&mut lock(states), agent),
            Err(err) => {
                let shared = Box::new(BatchFailed(Arc::clone(err)));
                Err(match **err {
                    Error::Unavailable(_) => Error::Unavailable(shared),
                    _ => Error::Backend(shared),
                })
            }
        }
    }

    /// Adds `agent` to the open batch, or opens one and starts its read.
    fn join(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        agent: AgentId,
    ) -> watch::Receiver<Option<Arc<Loaded>>> {
        let mut open = lock(&self.open);
        if let Some(batch) = open.as_ref() {
            let mut agents = lock(&batch.agents);
            if agents.len() < MAX_BATCH {
                agents.push(agent);
                return batch.done.clone();
            }
        }
        // No batch, or a full one: replacing it closes it, and its task reads it.
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, done) = watch::channel(None);
        let agents = Arc::new(Mutex::new(vec![agent]));
        *open = Some(OpenBatch {
            id,
            agents: Arc::clone(&agents),
            done: done.clone(),
        });
        drop(open);
        let loader = Arc::clone(self);
        let store = Arc::clone(store);
        tokio::spawn(async move {
            // Let the misses woken with this one join before the batch closes.
            tokio::task::yield_now().await;
            loader.close(id);
            let agents = std::mem::take(&mut *lock(&agents));
            let mut waiters: HashMap<AgentId, usize> = HashMap::with_capacity(agents.len());
            for &agent in &agents {
                *waiters.entry(agent).or_default() += 1;
            }
            let asked: Vec<AgentId> = waiters.keys().copied().collect();
            let loaded = store
                .target_states(&asked)
                .await
                .map(|states| {
                    let states = states.into_iter().map(|state| {
                        let agent = state.state.agent_id;
                        (agent, (state, waiters.get(&agent).copied().unwrap_or(1)))
                    });
                    Mutex::new(states.collect())
                })
                .map_err(Arc::new);
            // Waiters that went away are no reason to fail.
            let _ = sender.send(Some(Arc::new(loaded)));
        });
        done
    }

    /// Takes the batch `id` out of the open slot if it is still there, so no agent
    /// joins it any more.
    fn close(&self, id: u64) {
        let mut open = lock(&self.open);
        if open.as_ref().is_some_and(|batch| batch.id == id) {
            *open = None;
        }
    }
}

/// Takes `agent`'s state out of a batch's answer: a copy while other waiters for the
/// same agent are still to come, the state itself for the last.
fn take(
    states: &mut HashMap<AgentId, (AgentTargetState, usize)>,
    agent: AgentId,
) -> Result<AgentTargetState, Error> {
    let Some((state, waiting)) = states.get_mut(&agent) else {
        return Err(Error::not_found("agent", agent));
    };
    if *waiting > 1 {
        *waiting -= 1;
        return Ok(state.clone());
    }
    states
        .remove(&agent)
        .map(|(state, _)| state)
        .ok_or_else(|| Error::not_found("agent", agent))
}

/// The error every agent of a failed batch gets.
#[derive(Debug, thiserror::Error)]
#[error("reading a batch of target states failed")]
struct BatchFailed(#[source] Arc<Error>);
