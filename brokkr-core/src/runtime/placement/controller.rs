//! The placement controller: keeps every stack's stored placement decision in step with
//! its policy and the agent inventory, through the control plane's in-memory placement
//! index ([`super::index`]).
//!
//! Placement itself is a pure function ([`crate::Placement`]); the controller feeds it
//! changes and records the decisions that differ from the stored ones. The store then
//! moves the placement targets and wakes the agents whose target state changed.
//!
//! Changes arrive as [`PlacementSignals`] (the control plane's own operations call
//! [`ControlPlane::agent_changed`] directly and wait for it):
//!
//! - an agent registered, changed, or its labels or annotations changed
//!   ([`PlacementSignals::agent_changed`]): the index is updated and only the stacks the
//!   change can affect are decided again;
//! - a heartbeat flush wrote capabilities that differ from the last ones this replica
//!   wrote for the agent (or the first ones it saw);
//! - a stack's policy was set or removed by another path
//!   ([`PlacementSignals::stack_changed`]);
//! - another replica changed an agent: the store's change feed announces it
//!   ([`crate::ChangeFeed::next_agent_change`]; PostgreSQL carries it between replicas);
//! - and periodically (`agents.placement_interval_millis`, by default a third of
//!   `agents.stale_after_secs`, at least one second): the agents are read again
//!   (heartbeats other replicas wrote included) and every stack is decided again from
//!   the policies in memory, which notices agents going stale or fresh and
//!   `evict_after_secs` running out; at start and every [`RELOAD_EVERY`] periods the
//!   policies are reloaded from the store too, the safety net for whatever an
//!   announcement missed.
//!   Policies set by other replicas are also caught before any decision is recorded
//!   (each is checked against the stored policy).
//!
//! Signals arriving during a run are coalesced into the next one, and memory is bounded:
//! past [`MAX_TRACKED_AGENTS`] changed agents a run simply recomputes everything.
//!
//! Several replicas may run the controller over one database. That is safe: a decision
//! is a deterministic function of the stored policy, the agents and the time, and
//! `record_placement` is one transaction, so replicas write the same decisions and a
//! decision that does not change writes nothing. Near a staleness boundary two replicas
//! may briefly disagree (one still holds an agent's unwritten heartbeat); the next run
//! after the heartbeat flush converges.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::page::MAX_LIMIT;
use crate::runtime::ControlPlane;
use crate::{Agent, AgentFilter, AgentId, PageRequest, StackId, StackPlacement, Store};
use tokio::sync::Notify;
use tracing::instrument::WithSubscriber;

use crate::runtime::heartbeat::HeartbeatBuffer;

/// Past this many distinct changed agents waiting for a run, the run recomputes every
/// decision instead of remembering them one by one.
pub const MAX_TRACKED_AGENTS: usize = 10_000;

/// Of the periodic runs, one in this many reloads agents and policies from the store
/// (the others recompute from memory).
const RELOAD_EVERY: u32 = 10;

/// How long a signalled run waits for more signals, so a burst (50 agents registered
/// in a row) costs one run.
const COALESCE: Duration = Duration::from_millis(20);

/// Why a controller run failed. Nothing is half-done: decisions already recorded stay,
/// the rest are recomputed by the next run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading agents or policies, or recording a decision, failed.
    #[error("placement store access failed")]
    Store(#[from] crate::store::Error),
    /// Computing the decisions panicked (a bug in the placement implementation).
    #[error("computing placement decisions failed")]
    Compute(#[source] tokio::task::JoinError),
}

/// `Result` of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for crate::runtime::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Store(err) => Self::Store(err),
            Error::Compute(err) => Self::Task(err),
        }
    }
}

/// What a run recomputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Every decision, after reloading agents and policies from the store.
    Everything,
    /// Every decision, from the agents and policies in memory (time passed: agents
    /// went stale, `evict_after_secs` ran out).
    Recompute,
    /// Decisions that these agents' changes may affect, and these stacks' decisions.
    Changed {
        /// Agents that changed.
        agents: BTreeSet<AgentId>,
        /// Stacks whose policy changed.
        stacks: BTreeSet<StackId>,
    },
}

#[derive(Debug, Default)]
struct Pending {
    agents: BTreeSet<AgentId>,
    stacks: BTreeSet<StackId>,
    everything: bool,
}

/// Changes waiting for the controller. Handlers signal; the controller takes them all
/// at the start of its next run. Cheap to call: one short lock, no I/O.
#[derive(Debug, Default)]
pub struct PlacementSignals {
    pending: Mutex<Pending>,
    notify: Notify,
}

impl PlacementSignals {
    /// An agent registered or changed (labels, annotations, status, capabilities).
    pub fn agent_changed(&self, agent: AgentId) {
        self.agents_changed([agent]);
    }

    /// Several agents changed.
    pub fn agents_changed(&self, agents: impl IntoIterator<Item = AgentId>) {
        let mut any = false;
        {
            let mut pending = self.lock();
            for agent in agents {
                any = true;
                if !pending.everything {
                    pending.agents.insert(agent);
                }
            }
            if pending.agents.len() > MAX_TRACKED_AGENTS {
                pending.everything = true;
                pending.agents.clear();
            }
        }
        if any {
            self.notify.notify_one();
        }
    }

    /// A stack's policy was set or removed.
    pub fn stack_changed(&self, stack: StackId) {
        {
            let mut pending = self.lock();
            if !pending.everything {
                pending.stacks.insert(stack);
            }
            if pending.stacks.len() > MAX_TRACKED_AGENTS {
                pending.everything = true;
                pending.stacks.clear();
            }
        }
        self.notify.notify_one();
    }

    /// Everything should be recomputed.
    pub fn everything(&self) {
        self.lock().everything = true;
        self.notify.notify_one();
    }

    /// Takes what is pending, if anything.
    pub fn take(&self) -> Option<Trigger> {
        let pending = std::mem::take(&mut *self.lock());
        if pending.everything {
            Some(Trigger::Everything)
        } else if pending.agents.is_empty() && pending.stacks.is_empty() {
            None
        } else {
            Some(Trigger::Changed {
                agents: pending.agents,
                stacks: pending.stacks,
            })
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave `Pending` inconsistent (every
        // update is a single insert or flag), so a poisoned lock is still usable.
        crate::sync::lock(&self.pending)
    }
}

/// Every live agent, all pages, with the heartbeats `heartbeats` holds but has not
/// written yet merged in (an agent is fresh the moment it beats, as the API shows it).
pub async fn live_agents(store: &dyn Store, heartbeats: &HeartbeatBuffer) -> Result<Vec<Agent>> {
    let filter = AgentFilter {
        cluster_name: None,
        status: None,
        include_deleted: false,
    };
    let filter = &filter;
    let mut agents =
        all_pages(|page| async move { store.list_agents(filter, &page).await }).await?;
    for agent in &mut agents {
        agent.last_heartbeat = agent.last_heartbeat.max(heartbeats.pending_at(agent.id));
    }
    Ok(agents)
}

/// Every live stack with a policy, all pages.
pub async fn all_placements(store: &dyn Store) -> Result<Vec<StackPlacement>> {
    all_pages(|page| async move { store.list_placements(&page).await }).await
}

/// Every row of a keyset-paged listing, in pages of the largest size.
pub(crate) async fn all_pages<T, F, Fut>(mut list: F) -> Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = crate::store::Result<crate::Page<T>>>,
{
    let mut rows = Vec::new();
    let mut page = PageRequest::first(MAX_LIMIT);
    loop {
        let got = list(page.clone()).await?;
        rows.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(rows),
        }
    }
}

/// `Duration` as chrono's, saturating.
pub fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// What the `ticks`-th periodic tick runs, taking what was signalled meanwhile.
///
/// The store is listed only every [`RELOAD_EVERY`] ticks (and at start): a reload
/// subsumes every signal, since it reads the agents and policies those signals name.
/// A recompute from memory does not: it decides with the agents the index holds, so an
/// agent change signalled meanwhile (another replica's relabel, an agent reviving) is
/// applied first. Dropping it would leave the index without the change until the next
/// reload, ten periods later, and a revived agent, whose later beats raise no signal,
/// unplaced for as long.
fn on_tick(signals: &PlacementSignals, ticks: u32) -> Vec<Trigger> {
    let pending = signals.take();
    if ticks % RELOAD_EVERY == 1 || pending == Some(Trigger::Everything) {
        return vec![Trigger::Everything];
    }
    pending.into_iter().chain([Trigger::Recompute]).collect()
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Decisions computed.
    pub computed: usize,
    /// Decisions that differed from the stored one and were recorded.
    pub recorded: usize,
    /// Of those, decisions that moved the stack (placement targets added or removed).
    pub moved: usize,
}

/// Keeps decisions current; see the [module documentation](self).
#[derive(Clone)]
pub struct PlacementController {
    control_plane: ControlPlane,
}

impl PlacementController {
    /// The controller of `control_plane`, woken by its signals.
    pub fn new(control_plane: ControlPlane) -> Self {
        Self { control_plane }
    }

    /// Runs until the returned task is aborted: at once (loading the index and
    /// catching up on changes made while no controller ran), then on every signal and
    /// every period. It logs through the tracing subscriber in effect where it is
    /// spawned, as an embedder's scoped one.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        // Subscribed before returning, so no agent change announced afterwards is missed.
        let mut feed = self.control_plane.store().change_feed();
        tokio::spawn(
            async move {
                let signals = Arc::clone(self.control_plane.placement_signals());
                let period = self.control_plane.settings().placement_period();
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut ticks: u32 = 0;
                loop {
                    let ticked = std::pin::pin!(tick.tick());
                    let signalled = std::pin::pin!(signals.notify.notified());
                    // Other replicas' agent changes, from the store's change feed: signals
                    // like this replica's own (cancel-safe: a dropped receive loses nothing).
                    let announced = std::pin::pin!(feed.next_agent_change());
                    let woken = futures::future::select(
                        futures::future::select(ticked, signalled),
                        announced,
                    )
                    .await;
                    let triggers = match woken {
                        futures::future::Either::Left((futures::future::Either::Left(_), _)) => {
                            ticks = ticks.wrapping_add(1);
                            on_tick(&signals, ticks)
                        }
                        futures::future::Either::Left((futures::future::Either::Right(_), _)) => {
                            tokio::time::sleep(COALESCE).await;
                            match signals.take() {
                                Some(trigger) => vec![trigger],
                                None => continue,
                            }
                        }
                        futures::future::Either::Right((change, _)) => {
                            match change.as_ref() {
                                Some(agents) => signals.agents_changed(agents.iter().copied()),
                                None => signals.everything(),
                            }
                            continue;
                        }
                    };
                    for trigger in &triggers {
                        if let Err(err) = self.run(trigger).await {
                            tracing::warn!(
                                error = %crate::runtime::error::ErrorChain(&err),
                                "placement run failed; the next run retries"
                            );
                        }
                    }
                }
            }
            .with_current_subscriber(),
        )
    }

    /// One run: `Everything` reloads the index from the store and decides every stack
    /// again; `Changed` applies each agent's change through the index (only the stacks
    /// it can affect) and decides each named stack again.
    pub async fn run(&self, trigger: &Trigger) -> crate::runtime::Result<RunReport> {
        let cp = &self.control_plane;
        match trigger {
            Trigger::Everything | Trigger::Recompute => {
                let reload = *trigger == Trigger::Everything;
                let (computed, done) = cp.resync_placements(reload).await?;
                Ok(RunReport {
                    computed,
                    recorded: done.recorded,
                    moved: done.moved,
                })
            }
            Trigger::Changed { agents, stacks } => {
                let agents: Vec<AgentId> = agents.iter().copied().collect();
                let mut report = RunReport::default();
                let done = cp.agents_changed(&agents).await?;
                report.recorded += done.recorded;
                report.moved += done.moved;
                for &stack in stacks {
                    let done = cp.stack_policy_changed(stack).await?;
                    report.computed += 1;
                    report.recorded += done.recorded;
                    report.moved += done.moved;
                }
                Ok(report)
            }
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    use crate::runtime::placement::RejectionPage;
    use crate::testing::MemoryStore;
    use crate::{Actor, MetadataField, MetadataTarget, NewAgent, NewStack, Pak, PlacementPolicy};
    use chrono::Utc;

    async fn agent(cp: &ControlPlane, name: &str, region: &str) -> AgentId {
        let agent = cp
            .store()
            .create_agent(
                &Actor::Admin,
                NewAgent {
                    name: name.into(),
                    cluster_name: name.into(),
                    labels: [("region".to_owned(), region.to_owned())].into(),
                    annotations: Default::default(),
                    key: Pak::generate().stored(),
                },
            )
            .await
            .unwrap();
        cp.heartbeats().record(crate::Heartbeat {
            agent_id: agent.id,
            at: Utc::now(),
            capabilities: None,
        });
        cp.agent_changed(agent.id).await.unwrap();
        agent.id
    }

    async fn label(cp: &ControlPlane, agent: AgentId, key: &str, value: &str) {
        let target = MetadataTarget::Agent(agent);
        cp.store()
            .put_metadata(&Actor::Admin, target, MetadataField::Labels, key, value)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn changes_record_only_changed_decisions_and_skip_unaffected_stacks() {
        let cp = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
        let (eu, us) = (agent(&cp, "eu", "eu").await, agent(&cp, "us", "us").await);
        let stack = cp
            .store()
            .create_stack(
                &Actor::Admin,
                NewStack {
                    name: "s".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let policy: PlacementPolicy = serde_json::from_value(
            serde_json::json!({"agent_selector": {"matchLabels": {"region": "eu"}}}),
        )
        .unwrap();
        let view = cp
            .set_placement_policy(&Actor::Admin, stack.id, policy, RejectionPage::default())
            .await
            .unwrap();
        assert_eq!(view.placement.decision.unwrap().chosen, vec![eu]);
        let rejected = view.rejected.unwrap();
        assert_eq!(rejected.by_reason.get("label_mismatch"), Some(&1));

        // The same inputs decide the same: nothing to write.
        let controller = PlacementController::new(cp.clone());
        let report = controller.run(&Trigger::Everything).await.unwrap();
        assert_eq!((report.computed, report.recorded), (1, 0));

        // A change that cannot matter records nothing; one that does moves the stack.
        label(&cp, us, "tier", "web").await;
        assert_eq!(cp.agent_changed(us).await.unwrap().recorded, 0);
        label(&cp, us, "region", "eu").await;
        let done = cp.agent_changed(us).await.unwrap();
        assert_eq!((done.recorded, done.moved), (1, 1));
        let stored = cp.store().get_placement(stack.id).await.unwrap().unwrap();
        let mut both = vec![eu, us];
        both.sort();
        assert_eq!(stored.decision.unwrap().chosen, both);
        // Signals go through the same index.
        label(&cp, eu, "region", "us").await;
        let changed = Trigger::Changed {
            agents: [eu].into_iter().collect(),
            stacks: BTreeSet::new(),
        };
        assert_eq!(controller.run(&changed).await.unwrap().moved, 1);
        let stored = cp.store().get_placement(stack.id).await.unwrap().unwrap();
        assert_eq!(stored.decision.unwrap().chosen, vec![us]);
    }

    /// Replicas share the store, not their memory: an agent beating to one replica
    /// is alive for the others after a periodic recompute, reload or not.
    #[tokio::test]
    async fn a_recompute_sees_heartbeats_written_by_another_replica() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let one = ControlPlane::builder(Arc::clone(&store)).build();
        let other = ControlPlane::builder(Arc::clone(&store)).build();
        let agent = store
            .create_agent(
                &Actor::Admin,
                crate::testing::conformance::new_agent("a", "c", &Pak::generate()),
            )
            .await
            .unwrap();
        let stack = store
            .create_stack(
                &Actor::Admin,
                NewStack {
                    name: "s".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // The other replica loads its memory while the agent has never beaten.
        let controller = other.placement_controller();
        controller.run(&Trigger::Everything).await.unwrap();

        // The agent beats to the first replica, which writes the beat.
        one.record_heartbeat(&Actor::Agent(agent.id), agent.id, None)
            .unwrap();
        one.flush_heartbeats().await.unwrap();

        // A periodic recompute on the other replica, not a reload, sees it.
        controller.run(&Trigger::Recompute).await.unwrap();
        let view = other
            .set_placement_policy(
                &Actor::Admin,
                stack.id,
                PlacementPolicy::default(),
                RejectionPage::default(),
            )
            .await
            .unwrap();
        assert_eq!(view.placement.decision.unwrap().chosen, vec![agent.id]);
    }

    #[test]
    fn a_recompute_tick_keeps_what_was_signalled() {
        let signals = PlacementSignals::default();
        let agent = AgentId::new();
        // A reload tick subsumes signals.
        signals.agent_changed(agent);
        assert_eq!(on_tick(&signals, 1), vec![Trigger::Everything]);
        assert_eq!(signals.take(), None);
        // A recompute from memory applies them first.
        signals.agent_changed(agent);
        let changed = Trigger::Changed {
            agents: [agent].into_iter().collect(),
            stacks: BTreeSet::new(),
        };
        assert_eq!(on_tick(&signals, 2), vec![changed, Trigger::Recompute]);
        assert_eq!(on_tick(&signals, 3), vec![Trigger::Recompute]);
        // "Everything" signalled (announcements lost) is a reload, whatever the tick.
        signals.everything();
        assert_eq!(on_tick(&signals, 4), vec![Trigger::Everything]);
    }

    #[test]
    fn signals_coalesce_and_overflow_into_everything() {
        let signals = PlacementSignals::default();
        assert_eq!(signals.take(), None);
        let (a, b) = (AgentId::new(), AgentId::new());
        let stack = StackId::new();
        signals.agent_changed(a);
        signals.agents_changed([a, b]);
        signals.stack_changed(stack);
        assert_eq!(
            signals.take(),
            Some(Trigger::Changed {
                agents: [a, b].into_iter().collect(),
                stacks: [stack].into_iter().collect(),
            })
        );
        assert_eq!(signals.take(), None);

        signals.agents_changed((0..=MAX_TRACKED_AGENTS).map(|_| AgentId::new()));
        assert_eq!(signals.take(), Some(Trigger::Everything));
        signals.everything();
        signals.agent_changed(a);
        assert_eq!(signals.take(), Some(Trigger::Everything));
    }
}
