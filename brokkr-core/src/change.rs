//! Change notification for long polls.
//!
//! A store publishes a [`TargetChange`] after every commit that may change some agents'
//! target state; a long poll holds a [`TargetStateWatch`] and wakes when a change names
//! its agent. The [`ChangeHub`] is the in-process fan-out that both stores use: SQLite
//! publishes into it after commit, PostgreSQL from a `LISTEN` connection, so a write on
//! one replica wakes long polls on every replica.
//!
//! The hub also carries *agent changes* announced by other replicas (an agent
//! registered, changed, deleted, or its labels or annotations changed), so the
//! placement index of every replica follows agents without reloading them
//! ([`ChangeFeed::next_agent_change`]).
//!
//! Wake-ups may be spurious (a watch may wake when nothing changed for its agent, e.g.
//! after the hub dropped messages for a slow subscriber), never missed: a caller that
//! subscribes *before* reading the target state sees every later change.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::id::AgentId;

/// Messages a slow subscriber may fall behind by before it is woken unconditionally.
const HUB_CAPACITY: usize = 1024;

/// Which agents' target state may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChange {
    /// These agents'.
    Agents(Vec<AgentId>),
    /// Possibly every agent's (e.g. after notifications may have been lost).
    All,
}

impl TargetChange {
    /// Whether the change may concern `agent`.
    pub fn affects(&self, agent: AgentId) -> bool {
        match self {
            Self::Agents(agents) => agents.contains(&agent),
            Self::All => true,
        }
    }
}

/// Agents whose record changed (registration, status, labels, annotations, deletion).
/// `None`: possibly any agent (announcements may have been lost).
pub type AgentChanges = Option<Vec<AgentId>>;

/// In-process fan-out of [`TargetChange`]s to watches, and of agent changes to placement
/// indexes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeHub {
    sender: broadcast::Sender<Arc<TargetChange>>,
    agents: broadcast::Sender<Arc<AgentChanges>>,
}

impl Default for ChangeHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(HUB_CAPACITY).0,
            agents: broadcast::channel(HUB_CAPACITY).0,
        }
    }
}

impl ChangeHub {
    /// Tells every watch of the named agents to wake. Publishing with no watch is a no-op.
    pub fn publish(&self, change: TargetChange) {
        if matches!(&change, TargetChange::Agents(agents) if agents.is_empty()) {
            return;
        }
        // An error only means nobody is watching right now.
        let _ = self.sender.send(Arc::new(change));
    }

    /// A watch on one agent's target state.
    pub fn watch(&self, agent: AgentId) -> TargetStateWatch {
        TargetStateWatch {
            agent,
            receiver: self.sender.subscribe(),
        }
    }

    /// Every change, for caches that hold many agents' target states.
    pub fn feed(&self) -> ChangeFeed {
        ChangeFeed {
            receiver: self.sender.subscribe(),
            agents: self.agents.subscribe(),
        }
    }

    /// Announces that these agents' records changed (a store publishes what other
    /// replicas wrote; `None` for "any agent"). Publishing with no feed is a no-op.
    pub fn publish_agent_changes(&self, agents: AgentChanges) {
        if agents.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        // An error only means nobody is listening right now.
        let _ = self.agents.send(Arc::new(agents));
    }

    /// How many watches are open (for metrics).
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}

/// Wakes when one agent's target state may have changed. Create it before reading the
/// target state, then await [`TargetStateWatch::changed`].
#[derive(Debug)]
pub struct TargetStateWatch {
    agent: AgentId,
    receiver: broadcast::Receiver<Arc<TargetChange>>,
}

impl TargetStateWatch {
    /// The agent watched.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// Resolves at the first change that may concern the agent since the watch was made
    /// or since the previous call returned. Never resolves if the hub is gone; callers
    /// bound the wait with their own timeout.
    pub async fn changed(&mut self) {
        loop {
            match self.receiver.recv().await {
                Ok(change) if change.affects(self.agent) => return,
                Ok(_) => continue,
                // We missed messages: one of them may have been ours.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

/// Every [`TargetChange`] published after the feed was made, for caches.
#[derive(Debug)]
pub struct ChangeFeed {
    receiver: broadcast::Receiver<Arc<TargetChange>>,
    agents: broadcast::Receiver<Arc<AgentChanges>>,
}

impl ChangeFeed {
    /// The next change. A feed that fell behind gets [`TargetChange::All`] for what it
    /// missed. Never resolves once the hub is gone.
    pub async fn next(&mut self) -> Arc<TargetChange> {
        match self.receiver.recv().await {
            Ok(change) => change,
            Err(broadcast::error::RecvError::Lagged(_)) => Arc::new(TargetChange::All),
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }

    /// The next change already published, without waiting: `None` when there is none
    /// (or the hub is gone). A feed that fell behind gets [`TargetChange::All`].
    pub fn try_next(&mut self) -> Option<Arc<TargetChange>> {
        match self.receiver.try_recv() {
            Ok(change) => Some(change),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Arc::new(TargetChange::All)),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                None
            }
        }
    }

    /// A second feed of the same hub, seeing every change published from now on.
    pub fn resubscribe(&self) -> ChangeFeed {
        ChangeFeed {
            receiver: self.receiver.resubscribe(),
            agents: self.agents.resubscribe(),
        }
    }

    /// The next agent change announced ([`ChangeHub::publish_agent_changes`]). A feed
    /// that fell behind gets `None` ("any agent") for what it missed. Never resolves
    /// once the hub is gone.
    pub async fn next_agent_change(&mut self) -> Arc<AgentChanges> {
        match self.agents.recv().await {
            Ok(change) => change,
            Err(broadcast::error::RecvError::Lagged(_)) => Arc::new(None),
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn woke(watch: &mut TargetStateWatch) -> bool {
        tokio::time::timeout(Duration::from_millis(50), watch.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn wakes_only_for_its_agent() {
        let hub = ChangeHub::default();
        let (me, other) = (AgentId::new(), AgentId::new());
        let mut watch = hub.watch(me);

        hub.publish(TargetChange::Agents(vec![other]));
        assert!(!woke(&mut watch).await);

        hub.publish(TargetChange::Agents(vec![other, me]));
        assert!(woke(&mut watch).await);

        hub.publish(TargetChange::All);
        assert!(woke(&mut watch).await);
    }

    #[tokio::test]
    async fn a_change_published_before_waiting_is_not_missed() {
        let hub = ChangeHub::default();
        let me = AgentId::new();
        let mut watch = hub.watch(me);
        hub.publish(TargetChange::Agents(vec![me]));
        assert!(woke(&mut watch).await);
    }

    #[tokio::test]
    async fn a_feed_sees_every_change_and_all_after_lagging() {
        let hub = ChangeHub::default();
        let mut feed = hub.feed();
        let agent = AgentId::new();
        hub.publish(TargetChange::Agents(vec![agent]));
        assert_eq!(*feed.next().await, TargetChange::Agents(vec![agent]));
        for _ in 0..HUB_CAPACITY + 1 {
            hub.publish(TargetChange::Agents(vec![agent]));
        }
        assert_eq!(*feed.next().await, TargetChange::All);
    }

    #[tokio::test]
    async fn a_lagging_watch_wakes() {
        let hub = ChangeHub::default();
        let mut watch = hub.watch(AgentId::new());
        for _ in 0..HUB_CAPACITY + 10 {
            hub.publish(TargetChange::Agents(vec![AgentId::new()]));
        }
        assert!(woke(&mut watch).await);
    }

    #[tokio::test]
    async fn a_feed_sees_agent_changes_and_any_agent_after_lagging() {
        let hub = ChangeHub::default();
        let mut feed = hub.feed();
        let agent = AgentId::new();
        hub.publish_agent_changes(Some(vec![]));
        hub.publish_agent_changes(Some(vec![agent]));
        assert_eq!(*feed.next_agent_change().await, Some(vec![agent]));
        for _ in 0..HUB_CAPACITY + 1 {
            hub.publish_agent_changes(Some(vec![agent]));
        }
        assert_eq!(*feed.next_agent_change().await, None);
    }
}
