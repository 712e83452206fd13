//! Making the cluster match the target state, one stack at a time.
//!
//! Each stack is reconciled on its own (several at once, up to a bound): one stack's
//! failure never blocks another. For each entry:
//! - `remove` (a deletion marker or an unassignment): remove everything in the stack's
//!   inventory, then the inventory. This is the only path that deletes.
//! - `apply`: parse, dry-run, apply (with pruning), unless this deployment object is
//!   already applied. A resync applies it again and reports the drift it corrected.
//!
//! Every outcome becomes at most one [`EventReport`]. Its id is derived from (agent,
//! deployment object, type, status), so reporting the same outcome again after a retry
//! or a restart is recognised by the broker and never duplicated. Drift reports are
//! the exception: each correction is a new event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::applier::{self, Applier, ApplyReport, StackRef};
use brokkr_core::manifest::{self, ObjectKey};
use brokkr_core::{AgentId, DeploymentObjectId, EventStatus, EventType, StackId};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::broker::{Action, EventReport, TargetEntry};
use crate::metrics::Metrics;

/// What the agent knows about one stack between reconciles.
#[derive(Debug, Clone, Default)]
struct StackProgress {
    /// The deployment object last applied completely.
    applied: Option<DeploymentObjectId>,
    /// The deployment object that last failed, and when it may be tried again
    /// (`None`: not before the next resync, because retrying cannot help).
    failed: Option<Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    deployment_object: DeploymentObjectId,
    attempts: u32,
    retry_at: Option<Instant>,
}

/// What one entry's reconcile did.
#[derive(Debug)]
enum Result {
    Applied {
        object: DeploymentObjectId,
        report: ApplyReport,
        resync: bool,
    },
    AlreadyApplied {
        object: DeploymentObjectId,
    },
    Removed {
        object: DeploymentObjectId,
        removed: Vec<ObjectKey>,
    },
    Failed {
        object: DeploymentObjectId,
        event_type: EventType,
        message: String,
        transient: bool,
    },
}

/// Reconciles target-state entries through an [`Applier`] and remembers, per stack,
/// what is applied and what failed.
pub struct Reconciler {
    applier: Arc<dyn Applier>,
    agent: AgentId,
    stacks: HashMap<StackId, StackProgress>,
    concurrency: usize,
    max_backoff: Duration,
    metrics: Arc<Metrics>,
}

impl Reconciler {
    /// A reconciler for `agent`'s cluster behind `applier`.
    pub fn new(
        applier: Arc<dyn Applier>,
        agent: AgentId,
        concurrency: usize,
        max_backoff: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            applier,
            agent,
            stacks: HashMap::new(),
            concurrency: concurrency.max(1),
            max_backoff,
            metrics,
        }
    }

    /// The stacks with an applied deployment object, for health reports.
    pub fn applied(&self) -> Vec<(StackId, DeploymentObjectId)> {
        self.stacks
            .iter()
            .filter_map(|(stack, p)| p.applied.map(|object| (*stack, object)))
            .collect()
    }

    /// The earliest moment a failed stack may be retried, if any is waiting.
    pub fn next_retry(&self) -> Option<Instant> {
        self.stacks
            .values()
            .filter_map(|p| p.failed.as_ref()?.retry_at)
            .min()
    }

    /// Reconciles the entries that need it: a new deployment object, a failure whose
    /// retry is due, or every entry on `resync`. Returns the events to report.
    pub async fn reconcile(&mut self, entries: &[TargetEntry], resync: bool) -> Vec<EventReport> {
        let now = Instant::now();
        let work: Vec<(TargetEntry, bool)> = entries
            .iter()
            .filter_map(|entry| {
                let needs = self.needs_work(entry, now, resync)?;
                Some((entry.clone(), needs))
            })
            .collect();
        // Progress of stacks no longer in the state is dropped: they are left alone
        // in the cluster (only a `remove` entry deletes), and a later return starts
        // from their inventory.
        self.stacks
            .retain(|stack, _| entries.iter().any(|e| e.stack_id == *stack));

        let applier = &self.applier;
        let results: Vec<(StackId, Result)> = futures::stream::iter(work)
            .map(|(entry, is_resync)| async move {
                let result = reconcile_entry(applier.as_ref(), &entry, is_resync).await;
                (entry.stack_id, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut events = Vec::new();
        for (stack, result) in results {
            if let Some(event) = self.record(stack, result) {
                events.push(event);
            }
        }
        events
    }

    /// `Some(is_resync)` when the entry needs work now.
    fn needs_work(&self, entry: &TargetEntry, now: Instant, resync: bool) -> Option<bool> {
        let object = entry.deployment_object.id;
        let progress = self.stacks.get(&entry.stack_id);
        if let Some(failure) = progress.and_then(|p| p.failed.as_ref())
            && failure.deployment_object == object
        {
            // The same object failed before: wait for its retry or for a resync.
            let due = failure.retry_at.is_some_and(|at| at <= now);
            return (due || resync).then_some(false);
        }
        match entry.action {
            // Removal is repeated until the broker retires the entry.
            Action::Remove => Some(false),
            Action::Apply => {
                // After another object failed to apply, the cluster may hold part of
                // it: going back to the applied object (a rollout's revert) applies it
                // again rather than trusting it is still in place.
                let applied =
                    progress.is_some_and(|p| p.applied == Some(object) && p.failed.is_none());
                if !applied {
                    Some(false)
                } else {
                    resync.then_some(true)
                }
            }
        }
    }

    fn record(&mut self, stack: StackId, result: Result) -> Option<EventReport> {
        let agent = self.agent;
        if let Result::Removed { object, removed } = result {
            self.stacks.remove(&stack);
            self.metrics.removed(removed.len());
            let message = format!("removed {} object(s)", removed.len());
            tracing::info!(%stack, deployment_object = %object, %message, "removed");
            return Some(event(
                agent,
                object,
                EventType::Delete,
                EventStatus::Success,
                message,
            ));
        }
        let progress = self.stacks.entry(stack).or_default();
        match result {
            Result::Removed { .. } => None,
            Result::AlreadyApplied { object } => {
                progress.applied = Some(object);
                progress.failed = None;
                // Possibly reported before a restart; the derived id makes a repeat
                // harmless and covers a crash between applying and reporting.
                let message = "applied (found in the cluster's inventory at start)".to_owned();
                Some(event(
                    agent,
                    object,
                    EventType::Apply,
                    EventStatus::Success,
                    message,
                ))
            }
            Result::Applied {
                object,
                report,
                resync,
            } => {
                // Back on it after another object failed: reported again, so the
                // broker hears the agent is on it (the derived id makes a repeat of an
                // earlier report harmless).
                let first = progress.applied != Some(object) || progress.failed.is_some();
                progress.applied = Some(object);
                progress.failed = None;
                self.metrics
                    .applied(report.applied.len(), report.pruned.len());
                if first {
                    let message = applied_message(&report);
                    tracing::info!(%stack, deployment_object = %object, %message, "applied");
                    Some(event(
                        agent,
                        object,
                        EventType::Apply,
                        EventStatus::Success,
                        message,
                    ))
                } else if resync && !report.changed.is_empty() {
                    self.metrics.drift(report.changed.len());
                    let mut message = format!(
                        "corrected drift in {} object(s): {}",
                        report.changed.len(),
                        list(&report.changed)
                    );
                    if !report.recreated.is_empty() {
                        message.push_str(&format!("; recreated {}", list(&report.recreated)));
                    }
                    tracing::warn!(%stack, deployment_object = %object, %message, "drift corrected");
                    Some(EventReport {
                        id: Uuid::now_v7(),
                        deployment_object_id: object,
                        event_type: EventType::Drift,
                        status: EventStatus::Success,
                        message: Some(message),
                    })
                } else {
                    None
                }
            }
            Result::Failed {
                object,
                event_type,
                message,
                transient,
            } => {
                self.metrics.failed();
                let attempts = match &progress.failed {
                    Some(f) if f.deployment_object == object => f.attempts + 1,
                    _ => 1,
                };
                let retry_at =
                    transient.then(|| Instant::now() + backoff(attempts, self.max_backoff));
                progress.failed = Some(Failure {
                    deployment_object: object,
                    attempts,
                    retry_at,
                });
                tracing::warn!(%stack, deployment_object = %object, attempts, transient, %message, "reconcile failed");
                Some(event(
                    agent,
                    object,
                    event_type,
                    EventStatus::Failure,
                    message,
                ))
            }
        }
    }
}

fn event(
    agent: AgentId,
    object: DeploymentObjectId,
    event_type: EventType,
    status: EventStatus,
    message: String,
) -> EventReport {
    EventReport {
        id: event_id(agent, object, event_type, status),
        deployment_object_id: object,
        event_type,
        status,
        message: Some(message),
    }
}

async fn reconcile_entry(applier: &dyn Applier, entry: &TargetEntry, resync: bool) -> Result {
    let object = entry.deployment_object.id;
    match entry.action {
        Action::Remove => match applier.remove(entry.stack_id).await {
            Ok(removed) => Result::Removed { object, removed },
            Err(err) => failed(object, EventType::Delete, &err),
        },
        Action::Apply => apply_entry(applier, entry, resync).await,
    }
}

async fn apply_entry(applier: &dyn Applier, entry: &TargetEntry, resync: bool) -> Result {
    let object = entry.deployment_object.id;
    if !resync {
        // After a restart, an object the inventory says is applied needs no work
        // until the next resync.
        if let Ok(Some(inventory)) = applier.inventory(entry.stack_id).await
            && inventory.deployment_object_id == Some(object)
        {
            return Result::AlreadyApplied { object };
        }
    }
    // The stack's ApplyPolicy document (adoption, recreation) is the agent's to read,
    // never the cluster's to receive.
    let parsed = manifest::parse(&entry.deployment_object.yaml_content)
        .map_err(|err| err.to_string())
        .and_then(applier::split_policy);
    let (policy, manifests) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            return Result::Failed {
                object,
                event_type: EventType::Apply,
                message: format!("invalid deployment object: {err}"),
                transient: false,
            };
        }
    };
    let stack = StackRef {
        stack_id: entry.stack_id,
        deployment_object_id: object,
        checksum: entry.deployment_object.yaml_checksum.clone(),
        policy,
    };
    if let Err(err) = applier.dry_run(&stack, &manifests).await {
        return failed(object, EventType::Apply, &err);
    }
    match applier.apply(&stack, &manifests).await {
        Ok(report) => Result::Applied {
            object,
            report,
            resync,
        },
        Err(err) => failed(object, EventType::Apply, &err),
    }
}

fn failed(object: DeploymentObjectId, event_type: EventType, err: &applier::Error) -> Result {
    Result::Failed {
        object,
        event_type,
        message: err.to_string(),
        transient: err.is_transient(),
    }
}

/// An event id derived from what it reports, so the same outcome always has the same
/// id (UUID version 8 from SHA-256).
pub fn event_id(
    agent: AgentId,
    object: DeploymentObjectId,
    event_type: EventType,
    status: EventStatus,
) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(agent.0.as_bytes());
    hasher.update(object.0.as_bytes());
    hasher.update(event_type.as_str().as_bytes());
    hasher.update(status.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Exponential backoff from one second up to `max`, with up to 25% jitter so a fleet
/// does not retry in step.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(max);
    let jitter = base.mul_f64(rand::random_range(0.0..0.25));
    (base + jitter).min(max)
}

/// "applied 3 object(s), 1 changed, pruned 1", naming what was adopted or recreated
/// (each is worth knowing from the event alone).
fn applied_message(report: &ApplyReport) -> String {
    let mut message = format!(
        "applied {} object(s), {} changed, pruned {}",
        report.applied.len(),
        report.changed.len(),
        report.pruned.len()
    );
    if !report.adopted.is_empty() {
        message.push_str(&format!("; adopted {}", list(&report.adopted)));
    }
    if !report.recreated.is_empty() {
        message.push_str(&format!(
            "; recreated (immutable field changed) {}",
            list(&report.recreated)
        ));
    }
    message
}

fn list(objects: &[ObjectKey]) -> String {
    let shown: Vec<String> = objects.iter().take(10).map(ToString::to_string).collect();
    let more = objects.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests;
