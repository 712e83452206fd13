//! Target states by agent, each with its ETag, valid until a change notification.
//!
//! A target-state poll answered from here costs one map lookup: no query, no hashing,
//! no serialization (the JSON body is built once per entry, by the first request that
//! needs it). Entries are dropped when the store's [`ChangeFeed`] names their agent (or
//! everybody), so the cache never outlives a change by more than the notification
//! delay; the capacity bounds memory (an arbitrary entry is evicted rather than grow).
//!
//! Two rules keep it from ever serving a state older than the latest notification:
//!
//! - A fetch that was running when its agent was invalidated does not insert its
//!   result: the store may have answered before the change. Every invalidation stamps
//!   the agent (or, for [`TargetChange::All`], everybody) with a tick of a logical
//!   clock, and a fetch inserts only if no stamp is newer than the tick it started at.
//!   Stamps are kept only for agents with a fetch in flight, so they stay bounded.
//! - A change this process committed is dropped before the next read: the store
//!   publishes it into its hub before the write returns, and every read first drains
//!   the changes already published (a non-blocking receive under the lock it takes
//!   anyway), so a control plane reads its own writes without waiting for the
//!   invalidator task.
//! - Long polls watch the cache's own relay ([`TargetStateCache::watch`]), which
//!   republishes each change *after* dropping the entries it names. A poll that makes
//!   its watch and then reads a stale entry is therefore woken when that entry goes,
//!   and its re-read misses and goes to the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::target_loader::TargetLoader;
use crate::store::Error;
use crate::{
    AgentId, AgentStatus, ChangeFeed, ChangeHub, Store, TargetChange, TargetState, TargetStateWatch,
};

/// One agent's target state as served to polls.
#[derive(Debug)]
pub struct CachedTargetState {
    /// The state.
    pub state: TargetState,
    /// Its strong ETag, without quotes.
    pub etag: String,
    /// The agent's admin status when the state was read (an inactive agent may not
    /// fetch); a status change notifies the agent, so it is as fresh as the state.
    pub agent_status: AgentStatus,
    /// The response body, serialized by the first request that needs it and reused by
    /// every later one.
    pub json: OnceLock<Vec<u8>>,
}

impl CachedTargetState {
    /// Wraps a freshly read state, computing its ETag.
    pub fn new(state: TargetState, agent_status: AgentStatus) -> Self {
        Self {
            etag: state.etag(),
            state,
            agent_status,
            json: OnceLock::new(),
        }
    }
}

/// Fetches in flight for one agent and the latest tick at which it was invalidated.
#[derive(Debug, Default)]
struct InFlight {
    count: usize,
    invalidated_at: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<AgentId, Arc<CachedTargetState>>,
    /// Advances at every invalidation.
    clock: u64,
    /// The tick of the latest `All`.
    all_invalidated_at: u64,
    fetches: HashMap<AgentId, InFlight>,
    /// Changes published but perhaps not yet seen by the invalidator task, drained by
    /// every read.
    published: Option<ChangeFeed>,
}

/// Target states by agent, bounded, invalidated by the store's change feed. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct TargetStateCache {
    capacity: usize,
    inner: Mutex<Inner>,
    /// Changes, republished after their entries were dropped.
    relay: ChangeHub,
    /// Reads misses in batches.
    loader: Arc<TargetLoader>,
}

impl Default for TargetStateCache {
    fn default() -> Self {
        Self::new(super::Settings::default().target_state_cache_capacity)
    }
}

impl TargetStateCache {
    /// A cache holding at most `capacity` agents' states (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            relay: ChangeHub::default(),
            loader: Arc::default(),
        }
    }

    /// The agent's target state: from the cache, or read from the store (the agent's
    /// row and its target state, together with other agents' misses: see
    /// [`target_loader`](super::target_loader)) and cached unless the agent was
    /// invalidated meanwhile.
    /// `NotFound` for a missing or deleted agent.
    pub async fn get(
        &self,
        store: &Arc<dyn Store>,
        agent: AgentId,
    ) -> Result<Arc<CachedTargetState>, Error> {
        {
            let mut inner = self.lock();
            drain_published(&mut inner);
            if let Some(hit) = inner.entries.get(&agent) {
                return Ok(Arc::clone(hit));
            }
        }
        let fetch = self.begin_fetch(agent);
        let loaded = self.loader.load(store, agent).await?;
        let entry = Arc::new(CachedTargetState::new(loaded.state, loaded.agent_status));
        fetch.finish(Arc::clone(&entry));
        Ok(entry)
    }

    /// A watch that wakes when the agent's target state may have changed, after the
    /// cache has dropped the agent's entry. Make it before [`TargetStateCache::get`].
    /// It wakes only while the task of [`TargetStateCache::spawn_invalidator`] runs.
    pub fn watch(&self, agent: AgentId) -> TargetStateWatch {
        self.relay.watch(agent)
    }

    /// Drops the agent's entry now (e.g. after a change made through this replica, so
    /// it shows before the notification arrives).
    pub fn invalidate(&self, agent: AgentId) {
        self.apply(&TargetChange::Agents(vec![agent]));
    }

    /// Drops the entries each change of `feed` names, then republishes the change to
    /// the watches of [`TargetStateCache::watch`], until the returned task is aborted.
    ///
    /// The entries are dropped through a second feed of the same hub, which every read
    /// drains too: whoever sees a change first applies it, exactly once, and the task
    /// relays it only after it was applied.
    ///
    /// Whatever the cache holds when this is called is dropped: it may have been read
    /// before a change that no feed of this cache saw (made before the invalidator
    /// ran, or published between `feed`'s subscription and the second feed's).
    pub fn spawn_invalidator(self: Arc<Self>, mut feed: ChangeFeed) -> tokio::task::JoinHandle<()> {
        {
            let mut inner = self.lock();
            inner.published = Some(feed.resubscribe());
            apply_to(&mut inner, &TargetChange::All);
        }
        tokio::spawn(async move {
            loop {
                let change = feed.next().await;
                // The second feed got this change at the same instant: draining it
                // applies this change (and any after it) unless a read already did.
                drain_published(&mut self.lock());
                self.relay.publish(TargetChange::clone(&change));
            }
        })
    }

    /// How many agents' states are cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no state is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock guards plain map operations that cannot panic half-way; a poisoned
        // lock still holds a consistent map.
        crate::sync::lock(&self.inner)
    }

    fn apply(&self, change: &TargetChange) {
        apply_to(&mut self.lock(), change);
    }

    fn begin_fetch(&self, agent: AgentId) -> Fetch<'_> {
        let mut inner = self.lock();
        inner.fetches.entry(agent).or_default().count += 1;
        Fetch {
            cache: self,
            agent,
            started_at: inner.clock,
            done: false,
        }
    }
}

/// Drops the entries `change` names and stamps in-flight fetches.
fn apply_to(inner: &mut Inner, change: &TargetChange) {
    inner.clock += 1;
    let tick = inner.clock;
    match change {
        TargetChange::Agents(agents) => {
            for agent in agents {
                inner.entries.remove(agent);
                if let Some(fetch) = inner.fetches.get_mut(agent) {
                    fetch.invalidated_at = tick;
                }
            }
        }
        TargetChange::All => {
            inner.entries.clear();
            inner.all_invalidated_at = tick;
        }
    }
}

/// Applies every change published since the last drain.
fn drain_published(inner: &mut Inner) {
    while let Some(change) = inner.published.as_mut().and_then(ChangeFeed::try_next) {
        apply_to(inner, &change);
    }
}

/// A read from the store in progress. Dropping it (an error, or the request went
/// away) forgets it; [`Fetch::finish`] inserts its result if nothing invalidated it.
struct Fetch<'a> {
    cache: &'a TargetStateCache,
    agent: AgentId,
    started_at: u64,
    done: bool,
}

impl Fetch<'_> {
    fn finish(mut self, entry: Arc<CachedTargetState>) {
        self.done = true;
        let cache = self.cache;
        let mut inner = cache.lock();
        let invalidated_at = end_fetch(&mut inner, self.agent);
        if invalidated_at.max(inner.all_invalidated_at) > self.started_at {
            return;
        }
        if inner.entries.len() >= cache.capacity && !inner.entries.contains_key(&self.agent) {
            // Evict an arbitrary entry rather than grow; it costs its agent one query.
            if let Some(victim) = inner.entries.keys().next().copied() {
                inner.entries.remove(&victim);
            }
        }
        inner.entries.insert(self.agent, entry);
    }
}

impl Drop for Fetch<'_> {
    fn drop(&mut self) {
        if !self.done {
            end_fetch(&mut self.cache.lock(), self.agent);
        }
    }
}

/// Forgets one fetch of `agent`; returns the agent's latest invalidation tick.
fn end_fetch(inner: &mut Inner, agent: AgentId) -> u64 {
    let Some(fetch) = inner.fetches.get_mut(&agent) else {
        return 0;
    };
    let invalidated_at = fetch.invalidated_at;
    fetch.count -= 1;
    if fetch.count == 0 {
        inner.fetches.remove(&agent);
    }
    invalidated_at
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use crate::testing::MemoryStore;
    use crate::testing::conformance::{config_map_yaml, new_agent};
    use crate::{Actor, Agent, NewDeploymentObject, NewStack, Pak, Stack};

    use super::*;

    async fn mk_agent(store: &MemoryStore, name: &str) -> Agent {
        store
            .create_agent(&Actor::Admin, new_agent(name, "c", &Pak::generate()))
            .await
            .unwrap()
    }

    async fn mk_targeted_stack(store: &MemoryStore, agent: AgentId, name: &str) -> Stack {
        let stack = store
            .create_stack(
                &Actor::Admin,
                NewStack {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        deploy(store, &stack, "1").await;
        store
            .assign_stack(&Actor::Admin, agent, stack.id)
            .await
            .unwrap();
        stack
    }

    async fn deploy(store: &MemoryStore, stack: &Stack, version: &str) {
        let object =
            NewDeploymentObject::from_yaml(stack.id, config_map_yaml(&stack.name, version))
                .unwrap();
        store
            .append_deployment_object(&Actor::Admin, object)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_hit_does_not_query_the_store() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let agent = mk_agent(&store, "a").await;
        // No invalidator runs, so a store change stays invisible to the cache: the
        // second read can only come from the cache.
        let cache = TargetStateCache::new(10);
        let first = cache.get(&shared, agent.id).await.unwrap();
        mk_targeted_stack(&store, agent.id, "s").await;
        let second = cache.get(&shared, agent.id).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert!(second.state.entries.is_empty());
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn a_change_invalidates_and_wakes_watches_after_invalidating() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let agent = mk_agent(&store, "a").await;
        let other = mk_agent(&store, "b").await;
        let cache = Arc::new(TargetStateCache::new(10));
        let task = Arc::clone(&cache).spawn_invalidator(store.change_feed());

        let mut watch = cache.watch(agent.id);
        let before = cache.get(&shared, agent.id).await.unwrap();
        let other_before = cache.get(&shared, other.id).await.unwrap();
        let stack = mk_targeted_stack(&store, agent.id, "s").await;
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("the change wakes the watch");
        // Woken after the entry was dropped: the re-read sees the change.
        let after = cache.get(&shared, agent.id).await.unwrap();
        assert_ne!(before.etag, after.etag);
        assert_eq!(after.state.entries.len(), 1);
        // Another agent's entry stays.
        let other_after = cache.get(&shared, other.id).await.unwrap();
        assert!(Arc::ptr_eq(&other_before, &other_after));

        deploy(&store, &stack, "2").await;
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("a new deployment object wakes the watch");
        let newer = cache.get(&shared, agent.id).await.unwrap();
        assert_ne!(after.etag, newer.etag);
        task.abort();
    }

    #[tokio::test]
    async fn a_state_cached_before_the_invalidator_started_is_not_served_after() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let agent = mk_agent(&store, "a").await;
        let cache = Arc::new(TargetStateCache::new(10));
        // Read (and cached) while nothing invalidates: a control plane used before
        // `start`, or a write between the feed's subscription and the task's start.
        let before = cache.get(&shared, agent.id).await.unwrap();
        mk_targeted_stack(&store, agent.id, "s").await;
        let task = Arc::clone(&cache).spawn_invalidator(store.change_feed());
        let after = cache.get(&shared, agent.id).await.unwrap();
        assert_ne!(before.etag, after.etag);
        assert_eq!(after.state.entries.len(), 1);
        task.abort();
    }

    #[tokio::test]
    async fn misses_arriving_together_each_get_their_own_state() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let cache = TargetStateCache::new(1_000);
        let mut agents = Vec::new();
        for i in 0..50 {
            let agent = mk_agent(&store, &format!("a{i}")).await;
            if i % 2 == 0 {
                mk_targeted_stack(&store, agent.id, &format!("s{i}")).await;
            }
            agents.push(agent.id);
        }
        let missing = AgentId::new();
        let reads = agents
            .iter()
            .chain([&missing])
            .map(|agent| cache.get(&shared, *agent));
        let results = futures::future::join_all(reads).await;
        for (i, agent) in agents.iter().enumerate() {
            let entry = results[i].as_ref().expect("found");
            assert_eq!(entry.state.agent_id, *agent);
            assert_eq!(entry.state, store.target_state(*agent).await.unwrap());
            assert_eq!(entry.state.entries.len(), usize::from(i % 2 == 0));
        }
        assert!(matches!(results[50], Err(Error::NotFound { .. })));
        assert_eq!(cache.len(), 50);
    }

    #[tokio::test]
    async fn all_drops_everything() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let cache = TargetStateCache::new(10);
        for name in ["a", "b", "c"] {
            let agent = mk_agent(&store, name).await;
            cache.get(&shared, agent.id).await.unwrap();
        }
        assert_eq!(cache.len(), 3);
        cache.apply(&TargetChange::All);
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn a_fetch_overtaken_by_an_invalidation_is_not_cached() {
        let store = MemoryStore::new();
        let agent = mk_agent(&store, "a").await;
        let cache = TargetStateCache::new(10);
        let read = || async {
            let state = store.target_state(agent.id).await.unwrap();
            Arc::new(CachedTargetState::new(state, AgentStatus::Active))
        };

        // Invalidated for this agent while the fetch ran.
        let fetch = cache.begin_fetch(agent.id);
        let old = read().await;
        cache.invalidate(agent.id);
        fetch.finish(old);
        assert!(cache.is_empty());

        // Invalidated for everybody while the fetch ran.
        let fetch = cache.begin_fetch(agent.id);
        let old = read().await;
        cache.apply(&TargetChange::All);
        fetch.finish(old);
        assert!(cache.is_empty());

        // Two overlapping fetches: only the one that started after the invalidation
        // may insert.
        let early = cache.begin_fetch(agent.id);
        cache.invalidate(agent.id);
        let late = cache.begin_fetch(agent.id);
        early.finish(read().await);
        assert!(cache.is_empty());
        late.finish(read().await);
        assert_eq!(cache.len(), 1);

        // An invalidation of another agent does not matter, and the in-flight
        // bookkeeping is gone once no fetch runs, also for abandoned fetches.
        cache.invalidate(agent.id);
        let fetch = cache.begin_fetch(agent.id);
        drop(cache.begin_fetch(agent.id));
        cache.invalidate(AgentId::new());
        fetch.finish(read().await);
        assert_eq!(cache.len(), 1);
        assert!(cache.lock().fetches.is_empty());
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let cache = TargetStateCache::new(2);
        for name in ["a", "b", "c", "d"] {
            let agent = mk_agent(&store, name).await;
            cache.get(&shared, agent.id).await.unwrap();
            assert!(cache.len() <= 2);
        }
        // Re-reading a cached agent does not evict.
        let cached = *cache.lock().entries.keys().next().unwrap();
        cache.get(&shared, cached).await.unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn an_unknown_agent_is_not_found_and_not_cached() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn Store> = store.clone();
        let cache = TargetStateCache::new(2);
        let err = cache.get(&shared, AgentId::new()).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
        assert!(cache.is_empty());
        assert!(cache.lock().fetches.is_empty());
    }
}
