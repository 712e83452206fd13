//! The placement controller: keeps every stack's stored placement decision in step with
//! its policy and the agent inventory.
//!
//! Placement itself is a pure function in `brokkr-core` ([`Placement`]); this module is
//! the task that feeds it and writes its results. A run loads every live agent (with
//! the heartbeats still waiting in the [`HeartbeatBuffer`], so liveness matches what the
//! API shows) and every stack with a policy, computes each decision off the async
//! workers, and calls [`Store::record_placement`] only for decisions that differ from
//! the stored one. The store then moves the placement targets and wakes the agents whose
//! target state changed.
//!
//! Runs are started by [`PlacementSignals`]:
//!
//! - an agent registered, changed (enabled, disabled, deleted), or its labels or
//!   annotations changed: the API handlers call [`PlacementSignals::agent_changed`];
//! - a heartbeat flush wrote capabilities that differ from the last ones this replica
//!   wrote for the agent (or the first ones it saw);
//! - a stack's policy was set or removed through the API
//!   ([`PlacementSignals::stack_changed`]), so a run that read the old policy cannot
//!   have the last word;
//! - and periodically (`agents.placement_interval_millis`, by default a third of
//!   `agents.stale_after_secs`, at least one second), which notices agents going stale
//!   or fresh and `evict_after_secs` running out, and retries after a failure.
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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::page::MAX_LIMIT;
use crate::{
    Actor, Agent, AgentFilter, AgentId, DefaultPlacement, PageRequest, Placement,
    PlacementDecision, PlacementInput, PlacementPolicy, StackId, StackPlacement, Store,
};
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::runtime::heartbeat::HeartbeatBuffer;

/// Past this many distinct changed agents waiting for a run, the run recomputes every
/// decision instead of remembering them one by one.
pub const MAX_TRACKED_AGENTS: usize = 10_000;

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

/// What a run recomputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Every decision.
    Everything,
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
async fn all_pages<T, F, Fut>(mut list: F) -> Result<Vec<T>>
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

/// The agents a stored decision chose (empty without one): what stability keeps.
pub fn current_choice(placement: Option<&StackPlacement>) -> &[AgentId] {
    placement
        .and_then(|p| p.decision.as_ref())
        .map_or(&[], |d| d.chosen.as_slice())
}

/// Decides with the built-in placement. The one place the server places a stack, so
/// the API's answers and the controller's decisions cannot differ.
pub fn decide(
    policy: &PlacementPolicy,
    agents: &[Agent],
    current: &[AgentId],
    now: DateTime<Utc>,
    stale_after: chrono::Duration,
) -> PlacementDecision {
    DefaultPlacement.place(&PlacementInput {
        policy,
        agents,
        current,
        now,
        stale_after,
    })
}

/// What is stored of a decision: the chosen agents only. Storing every rejected
/// agent's reason would cost O(agents) per placed stack (10,000 × 10,000 would be 10⁸
/// rows of reasons, most of them stale as agents change); reasons are computed again,
/// in a few milliseconds, when someone reads the placement.
pub fn stored_form(decision: PlacementDecision) -> PlacementDecision {
    PlacementDecision {
        chosen: decision.chosen,
        rejected: Vec::new(),
    }
}

/// `Duration` as chrono's, saturating.
pub fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
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

/// Recomputes decisions; see the [module documentation](self).
#[derive(Clone)]
pub struct PlacementController {
    store: Arc<dyn Store>,
    heartbeats: Arc<HeartbeatBuffer>,
    signals: Arc<PlacementSignals>,
    stale_after: Duration,
    period: Duration,
    /// The agents as the previous run saw them: the "before" of a signalled change,
    /// so a run recomputes only the stacks the change can affect. `None` before the
    /// first run and after a failed one (the next signalled run recomputes everything).
    snapshot: Arc<Mutex<Option<HashMap<AgentId, Agent>>>>,
}

impl PlacementController {
    /// A controller over `store`, woken by `signals`, judging heartbeats (stored, or
    /// still in `heartbeats`) against `stale_after`, recomputing everything every
    /// `period`.
    pub fn new(
        store: Arc<dyn Store>,
        heartbeats: Arc<HeartbeatBuffer>,
        signals: Arc<PlacementSignals>,
        stale_after: Duration,
        period: Duration,
    ) -> Self {
        Self {
            store,
            heartbeats,
            signals,
            stale_after,
            period,
            snapshot: Arc::default(),
        }
    }

    /// Runs until the returned task is aborted: at once (catching up on changes made
    /// while no controller ran), then on every signal and every `period`.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let ticked = std::pin::pin!(tick.tick());
                let signalled = std::pin::pin!(self.signals.notify.notified());
                let trigger = match futures::future::select(ticked, signalled).await {
                    futures::future::Either::Left(_) => {
                        // Everything subsumes whatever was signalled meanwhile.
                        let _ = self.signals.take();
                        Trigger::Everything
                    }
                    futures::future::Either::Right(_) => {
                        tokio::time::sleep(COALESCE).await;
                        match self.signals.take() {
                            Some(trigger) => trigger,
                            None => continue,
                        }
                    }
                };
                if let Err(err) = self.run(&trigger).await {
                    tracing::warn!(
                        error = %crate::runtime::error::ErrorChain(&err),
                        "placement run failed; the next run retries"
                    );
                }
            }
        })
    }

    /// One run: recomputes what `trigger` names and records the decisions that changed.
    pub async fn run(&self, trigger: &Trigger) -> Result<RunReport> {
        let agents = live_agents(self.store.as_ref(), &self.heartbeats).await?;
        let placements = all_placements(self.store.as_ref()).await?;
        let now = Utc::now();
        let stale_after = chrono_duration(self.stale_after);
        let trigger = trigger.clone();
        let before = self.lock_snapshot().take();
        // Placement is CPU work proportional to agents × stacks: keep it off the async
        // workers that answer requests.
        let (computed, changed, agents) = tokio::task::spawn_blocking(move || {
            let scope = Scope::new(&trigger, before, &agents, now);
            let by_id: HashMap<AgentId, &Agent> = agents.iter().map(|a| (a.id, a)).collect();
            let mut computed = 0;
            let mut changed = Vec::new();
            for placement in placements {
                if !scope.needs_run(&placement, now, stale_after, &by_id) {
                    continue;
                }
                computed += 1;
                let decision = decide(
                    &placement.policy,
                    &agents,
                    current_choice(Some(&placement)),
                    now,
                    stale_after,
                );
                // Only the chosen set is stored (see `stored_form`).
                let stored = placement.decision.as_ref().map(|d| &d.chosen);
                if stored != Some(&decision.chosen) {
                    changed.push((placement, stored_form(decision)));
                }
            }
            (computed, changed, agents)
        })
        .await
        .map_err(Error::Compute)?;
        *self.lock_snapshot() = Some(agents.into_iter().map(|a| (a.id, a)).collect());

        let mut report = RunReport {
            computed,
            ..RunReport::default()
        };
        for (placement, decision) in changed {
            let stack = placement.stack_id;
            // A policy set since the listing makes this decision obsolete: the API
            // signalled a run that will decide with the new policy.
            match self.store.get_placement(stack).await {
                Ok(Some(now_stored)) if now_stored.policy == placement.policy => {}
                Ok(_) | Err(crate::store::Error::NotFound { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
            let chosen = decision.chosen.len();
            match self
                .store
                .record_placement(&Actor::System, stack, decision)
                .await
            {
                Ok(change) => {
                    report.recorded += 1;
                    if !change.added.is_empty() || !change.removed.is_empty() {
                        report.moved += 1;
                        tracing::info!(
                            %stack,
                            chosen,
                            added = %AgentList(&change.added),
                            removed = %AgentList(&change.removed),
                            "placement decision changed"
                        );
                    }
                }
                // Deleted, or its policy removed, since the listing.
                Err(crate::store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(report)
    }

    fn lock_snapshot(&self) -> std::sync::MutexGuard<'_, Option<HashMap<AgentId, Agent>>> {
        // Replaced whole or taken: a panic cannot leave it half-updated.
        crate::sync::lock(&self.snapshot)
    }
}

/// Agent ids for a log line: `[id, id]`.
struct AgentList<'a>(&'a [AgentId]);

impl std::fmt::Display for AgentList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, agent) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{agent}")?;
        }
        f.write_str("]")
    }
}

/// Which stacks one run recomputes.
enum Scope<'a> {
    /// Every stack.
    Everything,
    /// Stacks whose policy changed, and stacks one of the changed agents may affect.
    Changed {
        stacks: BTreeSet<StackId>,
        /// Each changed agent before (as the previous run saw it) and now (deleted
        /// agents, missing from the listing, are their old selves marked deleted).
        agents: Vec<(Option<Agent>, std::borrow::Cow<'a, Agent>)>,
    },
}

impl<'a> Scope<'a> {
    fn new(
        trigger: &Trigger,
        before: Option<HashMap<AgentId, Agent>>,
        agents: &'a [Agent],
        now: DateTime<Utc>,
    ) -> Self {
        let (
            Trigger::Changed {
                agents: ids,
                stacks,
            },
            Some(mut before),
        ) = (trigger, before)
        else {
            return Self::Everything;
        };
        let now_by_id: HashMap<AgentId, &Agent> = agents.iter().map(|a| (a.id, a)).collect();
        let changed = ids
            .iter()
            .filter_map(|id| {
                let old = before.remove(id);
                match (old, now_by_id.get(id)) {
                    (old, Some(agent)) => Some((old, std::borrow::Cow::Borrowed(*agent))),
                    (Some(old), None) => {
                        let mut gone = old.clone();
                        gone.deleted_at = Some(now);
                        Some((Some(old), std::borrow::Cow::Owned(gone)))
                    }
                    (None, None) => None,
                }
            })
            .collect();
        Self::Changed {
            stacks: stacks.clone(),
            agents: changed,
        }
    }

    fn needs_run(
        &self,
        placement: &StackPlacement,
        now: DateTime<Utc>,
        stale_after: chrono::Duration,
        inventory: &HashMap<AgentId, &Agent>,
    ) -> bool {
        match self {
            Self::Everything => true,
            Self::Changed { stacks, agents } => {
                if stacks.contains(&placement.stack_id) {
                    return true;
                }
                let Some(decision) = &placement.decision else {
                    return true;
                };
                agents.iter().any(|(before, after)| {
                    DefaultPlacement.affects(
                        &placement.policy,
                        decision,
                        before.as_ref(),
                        after,
                        now,
                        stale_after,
                        |id| inventory.get(id).copied(),
                    )
                })
            }
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    use crate::testing::MemoryStore;
    use crate::{MetadataField, MetadataTarget, NewAgent, NewStack, Pak};

    async fn agent(store: &MemoryStore, name: &str, region: &str) -> AgentId {
        let agent = store
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
        agent.id
    }

    #[tokio::test]
    async fn runs_record_only_changed_decisions_and_skip_unaffected_stacks() {
        let store = Arc::new(MemoryStore::new());
        let heartbeats = Arc::new(HeartbeatBuffer::default());
        let (eu, us) = (
            agent(&store, "eu", "eu").await,
            agent(&store, "us", "us").await,
        );
        for id in [eu, us] {
            heartbeats.record(crate::Heartbeat {
                agent_id: id,
                at: Utc::now(),
                capabilities: None,
            });
        }
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
        let policy: PlacementPolicy = serde_json::from_value(
            serde_json::json!({"agent_selector": {"matchLabels": {"region": "eu"}}}),
        )
        .unwrap();
        store
            .set_placement_policy(&Actor::Admin, stack.id, Some(policy))
            .await
            .unwrap();
        let controller = PlacementController::new(
            store.clone(),
            heartbeats,
            Arc::default(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );

        let report = controller.run(&Trigger::Everything).await.unwrap();
        assert_eq!((report.computed, report.recorded, report.moved), (1, 1, 1));
        let stored = store.get_placement(stack.id).await.unwrap().unwrap();
        assert_eq!(stored.decision.unwrap().chosen, vec![eu]);
        // The same inputs decide the same: nothing to write.
        let report = controller.run(&Trigger::Everything).await.unwrap();
        assert_eq!((report.computed, report.recorded), (1, 0));

        // A change that cannot matter is not even computed...
        store
            .put_metadata(
                &Actor::Admin,
                MetadataTarget::Agent(us),
                MetadataField::Labels,
                "tier",
                "web",
            )
            .await
            .unwrap();
        let changed = |agent| Trigger::Changed {
            agents: [agent].into_iter().collect(),
            stacks: BTreeSet::new(),
        };
        let report = controller.run(&changed(us)).await.unwrap();
        assert_eq!(report.computed, 0);
        // ...one that does moves the stack.
        store
            .put_metadata(
                &Actor::Admin,
                MetadataTarget::Agent(us),
                MetadataField::Labels,
                "region",
                "eu",
            )
            .await
            .unwrap();
        let report = controller.run(&changed(us)).await.unwrap();
        assert_eq!((report.computed, report.moved), (1, 1));
        let stored = store.get_placement(stack.id).await.unwrap().unwrap();
        let mut both = vec![eu, us];
        both.sort();
        assert_eq!(stored.decision.unwrap().chosen, both);
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
