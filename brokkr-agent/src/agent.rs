//! The agent's loop: wait for the broker, verify the key, then beat, long-poll the
//! target state, reconcile, and report events and health until shutdown.
//!
//! What keeps workloads safe: the loop only ever reconciles the last target state the
//! broker answered with 200. A failed, timed-out or refused poll changes nothing, and
//! a stack missing from an answer is left alone; only a `remove` entry deletes.
//! Shutdown lets the reconcile in progress finish, then sends pending events within
//! the grace period.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use brokkr_core::{AgentId, Applier, Capabilities, DeploymentObjectId, ObjectHealth, StackId};
use tokio::sync::watch;

use crate::broker::{BrokerClient, BrokerError, EventReport, HealthWire, Poll, TargetEntry};
use crate::config::AgentSection;
use crate::metrics::Metrics;
use crate::reconcile::{Reconciler, backoff};

/// Most events kept while the broker is unreachable; the oldest are dropped beyond it
/// (their outcomes are reported again, with the same ids, after a restart).
const MAX_PENDING_EVENTS: usize = 10_000;
/// A health report unchanged for this long is sent again anyway, as a sign of life.
const HEALTH_REFRESH: Duration = Duration::from_secs(600);

/// Where the agent's heartbeat capabilities come from.
#[async_trait]
pub trait CapabilitySource: Send + Sync {
    /// The cluster's capabilities now (Kubernetes version, nodes, capacity).
    async fn capabilities(&self) -> Capabilities;
}

/// Capabilities that never change, for simulated clusters.
#[derive(Debug, Clone, Default)]
pub struct StaticCapabilities(pub Capabilities);

#[async_trait]
impl CapabilitySource for StaticCapabilities {
    async fn capabilities(&self) -> Capabilities {
        self.0.clone()
    }
}

/// Told what the agent did with each deployment object: for fleet simulations, and for
/// embedders who want metrics or logs of their own.
pub trait Observer: Send + Sync {
    /// The outcome of one entry's reconcile: `entry` is the target-state entry acted
    /// on, `outcome` the event the agent is about to report. Called on the agent's
    /// task as soon as the reconcile of that target state is done, so it must return
    /// quickly.
    fn reconciled(&self, entry: &TargetEntry, outcome: &EventReport);
}

/// Why the agent stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The broker refused the key: retrying cannot help.
    #[error("the broker refused the agent's key: {0}")]
    KeyRefused(String),
}

/// Readiness as `/readyz` sees it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Whether the agent has verified its key and received a target state.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// One agent: a broker, a cluster behind an applier, and its settings.
pub struct Agent {
    config: AgentSection,
    broker: BrokerClient,
    applier: Arc<dyn Applier>,
    capabilities: Arc<dyn CapabilitySource>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    observer: Option<Arc<dyn Observer>>,
}

impl Agent {
    /// An agent that has not started yet.
    pub fn new(
        config: AgentSection,
        broker: BrokerClient,
        applier: Arc<dyn Applier>,
        capabilities: Arc<dyn CapabilitySource>,
    ) -> Self {
        Self {
            config,
            broker,
            applier,
            capabilities,
            metrics: Arc::new(Metrics::default()),
            readiness: Readiness::default(),
            observer: None,
        }
    }

    /// The same agent, telling `observer` the outcome of every reconcile.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same agent, counting into `metrics` and telling its readiness through
    /// `readiness`: for probes that serve before the agent exists (while its cluster
    /// is still unreachable, say).
    pub fn with_probes(mut self, metrics: Arc<Metrics>, readiness: Readiness) -> Self {
        self.metrics = metrics;
        self.readiness = readiness;
        self
    }

    /// Its counters, for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Its readiness, for `/readyz`.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Runs until `shutdown` completes (or the key is refused at start).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
        let (stop_tx, stop) = watch::channel(false);
        let this = Arc::new(self);
        let worker = {
            let this = Arc::clone(&this);
            async move { this.work(stop).await }
        };
        tokio::pin!(worker);
        tokio::select! {
            result = &mut worker => return result,
            () = shutdown => {}
        }
        tracing::info!("shutting down: finishing the current work");
        stop_tx.send_replace(true);
        // The worker notices the flag between steps; a reconcile in progress finishes.
        match tokio::time::timeout(this.config.shutdown_grace(), worker).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("shutdown grace period over; stopping now");
                Ok(())
            }
        }
    }

    async fn work(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<(), AgentError> {
        let Some(agent) = self.connect(&mut stop).await? else {
            return Ok(());
        };
        tracing::info!(%agent, broker = ?self.broker, "connected");
        let heartbeat = tokio::spawn(Arc::clone(&self).beat(agent, stop.clone()));
        let mut run = Run::new(&self, agent);
        run.lifecycle(&mut stop).await;
        run.flush_events().await;
        heartbeat.abort();
        Ok(())
    }

    /// Waits for `/readyz`, then asks whose key this is. `None` if stopped meanwhile.
    async fn connect(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<AgentId>, AgentError> {
        let mut attempts = 0;
        loop {
            let result = match self.broker.ready().await {
                Ok(()) => self.broker.whoami().await,
                Err(err) => Err(err),
            };
            match result {
                Ok(agent) => return Ok(Some(agent)),
                Err(BrokerError::Refused { message, .. }) => {
                    return Err(AgentError::KeyRefused(message));
                }
                Err(err) => {
                    attempts += 1;
                    let pause = backoff(attempts, self.config.max_backoff());
                    tracing::warn!(error = %err, retry_in = ?pause, "broker not ready");
                    if sleep_or_stop(pause, stop).await {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Beats every heartbeat interval with the cluster's capabilities and the
    /// configured labels and features.
    async fn beat(self: Arc<Self>, agent: AgentId, mut stop: watch::Receiver<bool>) {
        loop {
            let mut capabilities = self.capabilities.capabilities().await;
            capabilities
                .features
                .extend(self.config.features.iter().cloned());
            for (key, value) in &self.config.labels {
                capabilities
                    .extra
                    .insert(key.clone(), serde_json::Value::String(value.clone()));
            }
            match self.broker.heartbeat(agent, &capabilities).await {
                Ok(()) => self.metrics.beat(),
                Err(err) => {
                    self.metrics.broker_error();
                    tracing::warn!(error = %err, "heartbeat failed");
                }
            }
            if sleep_or_stop(self.config.heartbeat_interval(), &mut stop).await {
                return;
            }
        }
    }
}

/// The state of one connected run of the loop.
struct Run<'a> {
    agent_id: AgentId,
    agent: &'a Agent,
    reconciler: Reconciler,
    etag: Option<String>,
    entries: Vec<TargetEntry>,
    pending: VecDeque<EventReport>,
    reported_health: HashMap<StackId, (DeploymentObjectId, Vec<ObjectHealth>, Instant)>,
    next_resync: Instant,
    next_health: Instant,
    poll_failures: u32,
}

impl<'a> Run<'a> {
    fn new(agent: &'a Agent, agent_id: AgentId) -> Self {
        let now = Instant::now();
        Self {
            agent_id,
            agent,
            reconciler: Reconciler::new(
                Arc::clone(&agent.applier),
                agent_id,
                agent.config.concurrency,
                agent.config.max_backoff(),
                Arc::clone(&agent.metrics),
            ),
            etag: None,
            entries: Vec::new(),
            pending: VecDeque::new(),
            reported_health: HashMap::new(),
            next_resync: now + agent.config.resync_period(),
            next_health: now + agent.config.health_interval(),
            poll_failures: 0,
        }
    }

    async fn lifecycle(&mut self, stop: &mut watch::Receiver<bool>) {
        while !*stop.borrow() {
            let changed = tokio::select! {
                changed = self.poll() => changed,
                _ = stop.changed() => return,
            };
            let Some(changed) = changed else {
                // The poll failed: back off, keep everything as it is.
                let pause = backoff(self.poll_failures, self.agent.config.max_backoff());
                if sleep_or_stop(pause, stop).await {
                    return;
                }
                continue;
            };
            let now = Instant::now();
            let resync = now >= self.next_resync;
            if resync {
                self.next_resync = now + self.agent.config.resync_period();
            }
            let retry_due = self.reconciler.next_retry().is_some_and(|at| at <= now);
            if changed || resync || retry_due {
                let events = self.reconciler.reconcile(&self.entries, resync).await;
                self.observe(&events);
                self.queue(events);
            }
            self.flush_events().await;
            if changed || now >= self.next_health {
                self.next_health = now + self.agent.config.health_interval();
                self.report_health().await;
            }
        }
    }

    /// One long poll, no longer than the next timer. `Some(changed)` on an answer.
    async fn poll(&mut self) -> Option<bool> {
        let wait = self.poll_wait();
        let result = self
            .agent
            .broker
            .target_state(self.agent_id, self.etag.as_deref(), wait)
            .await;
        match result {
            Ok(Poll::Changed(state)) => {
                tracing::info!(stacks = state.entries.len(), etag = %state.etag, "new target state");
                self.etag = Some(state.etag);
                self.forget_health_of_moved(&state.entries);
                self.entries = state.entries;
                self.answered();
                Some(true)
            }
            Ok(Poll::Unchanged) => {
                self.answered();
                Some(false)
            }
            Err(err) => {
                self.poll_failures += 1;
                self.agent.metrics.broker_error();
                tracing::warn!(error = %err, failures = self.poll_failures, "target-state poll failed; keeping the cluster as it is");
                None
            }
        }
    }

    /// A stack whose target names another object gets a fresh health report even when
    /// nothing changed in the cluster: a rollout's revert waits for the agents to report
    /// the baseline, which an agent whose candidate never applied still runs.
    fn forget_health_of_moved(&mut self, entries: &[TargetEntry]) {
        for entry in entries {
            let before = self.entries.iter().find(|e| e.stack_id == entry.stack_id);
            if before.is_none_or(|e| e.deployment_object.id != entry.deployment_object.id) {
                self.reported_health.remove(&entry.stack_id);
            }
        }
    }

    fn answered(&mut self) {
        self.poll_failures = 0;
        self.agent.metrics.polled(self.entries.len());
        self.agent.readiness.set(true);
    }

    /// The poll may wait until the next resync, health report or retry is due.
    fn poll_wait(&self) -> Duration {
        let now = Instant::now();
        let next = [
            Some(self.next_resync),
            Some(self.next_health),
            self.reconciler.next_retry(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        next.saturating_duration_since(now)
            .clamp(Duration::from_secs(1), self.agent.config.poll_wait())
    }

    fn observe(&self, events: &[EventReport]) {
        let Some(observer) = &self.agent.observer else {
            return;
        };
        for event in events {
            let entry = self
                .entries
                .iter()
                .find(|e| e.deployment_object.id == event.deployment_object_id);
            if let Some(entry) = entry {
                observer.reconciled(entry, event);
            }
        }
    }

    fn queue(&mut self, events: Vec<EventReport>) {
        for event in events {
            if self.pending.len() == MAX_PENDING_EVENTS
                && let Some(dropped) = self.pending.pop_front()
            {
                tracing::warn!(event = %dropped.id, "event queue full; dropping the oldest");
            }
            self.pending.push_back(event);
        }
    }

    /// Sends queued events in order; stops at the first one the broker could not take
    /// for now, so nothing is lost and order is kept.
    async fn flush_events(&mut self) {
        while let Some(event) = self.pending.front() {
            match self.agent.broker.report_event(self.agent_id, event).await {
                Ok(()) => {
                    self.agent.metrics.event_sent();
                    self.pending.pop_front();
                }
                Err(err) if err.is_retryable() => {
                    self.agent.metrics.broker_error();
                    tracing::warn!(error = %err, pending = self.pending.len(), "events not sent yet; retrying later");
                    return;
                }
                Err(err) => {
                    // The broker will never take it (e.g. the deployment object is
                    // gone): keep the queue moving.
                    tracing::warn!(error = %err, event = %event.id, "event refused; dropping it");
                    self.pending.pop_front();
                }
            }
        }
    }

    /// Reports the health of every applied stack whose health changed (or has not
    /// been reported for a while).
    async fn report_health(&mut self) {
        let now = Instant::now();
        for (stack, object) in self.reconciler.applied() {
            let resources = match self.agent.applier.health(stack).await {
                Ok(resources) => resources,
                Err(err) => {
                    tracing::debug!(%stack, error = %err, "health not read");
                    continue;
                }
            };
            let unchanged = self.reported_health.get(&stack).is_some_and(|(o, r, at)| {
                *o == object && *r == resources && now.duration_since(*at) < HEALTH_REFRESH
            });
            if unchanged {
                continue;
            }
            let report = HealthWire {
                deployment_object_id: object,
                summary: Some(summary(&resources)),
                resources: resources.iter().map(Into::into).collect(),
            };
            match self
                .agent
                .broker
                .report_health(self.agent_id, &report)
                .await
            {
                Ok(()) => {
                    self.reported_health.insert(stack, (object, resources, now));
                }
                Err(err) => {
                    self.agent.metrics.broker_error();
                    tracing::warn!(%stack, error = %err, "health report failed");
                }
            }
        }
        let applied: Vec<StackId> = self
            .reconciler
            .applied()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        self.reported_health
            .retain(|stack, _| applied.contains(stack));
    }
}

/// "3 workloads: 2 healthy, 1 degraded".
fn summary(resources: &[ObjectHealth]) -> String {
    if resources.is_empty() {
        return "no workloads".into();
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for resource in resources {
        *counts.entry(resource.status.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!("{} workload(s): {}", resources.len(), parts.join(", "))
}

/// Sleeps for `pause` unless stopped first; `true` when stopped.
async fn sleep_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        _ = stop.changed() => true,
    }
}
