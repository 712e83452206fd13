//! The driver: the background task that moves rollouts along.
//!
//! Every poll it claims the rollouts that are due (their `next_eval_at` passed: a
//! timer ran out, or an agent event, a health report, a placement change, a command or
//! a gate outcome made them due), and for each: runs the gate evaluations an earlier
//! step started, loads a snapshot, runs [`step`] and applies the change in one
//! transaction guarded by the rollout's version. A version that moved meanwhile (a
//! command, another replica after a lease ran out) is read again and stepped once
//! more. Timers are absolute times in the store, so a restarted or another replica
//! resumes where this one stopped.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeDelta, Utc};

use crate::id::RolloutId;
use crate::model::Rollout;
use crate::rollout::{RolloutChange, Transition, step};
use crate::store;

use super::super::ControlPlane;
use super::super::error::{Error, ErrorChain, Result};

/// Full batches claimed in one poll at most: a rollout that is due again at once (its
/// gates started) is picked up by the next poll rather than keeping this one busy.
const MAX_BATCHES_PER_POLL: usize = 8;

/// Evaluations and transitions since this control plane started (this replica's).
#[derive(Debug, Default)]
pub(crate) struct RolloutCounters {
    evaluations: AtomicU64,
    transitions: AtomicU64,
    conflicts: AtomicU64,
}

/// A reading of this replica's rollout counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutCounts {
    /// Rollout evaluations applied.
    pub evaluations: u64,
    /// Rollout and wave state changes applied.
    pub transitions: u64,
    /// Evaluations computed from a version that had moved, and so computed again.
    pub conflicts: u64,
}

impl RolloutCounters {
    pub(crate) fn read(&self) -> RolloutCounts {
        RolloutCounts {
            evaluations: self.evaluations.load(Ordering::Relaxed),
            transitions: self.transitions.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
        }
    }
}

impl ControlPlane {
    /// This replica's rollout counters, for metrics.
    pub fn rollout_counts(&self) -> RolloutCounts {
        self.inner.rollout_counters.read()
    }

    /// Starts the driver (by [`ControlPlane::start`]): due rollouts are claimed at
    /// once, then every `rollouts.poll`.
    pub(crate) fn spawn_rollout_driver(&self) -> tokio::task::JoinHandle<()> {
        let control_plane = self.clone();
        let period = self.settings().rollouts.poll;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = control_plane.evaluate_due_rollouts().await {
                    tracing::warn!(error = %ErrorChain(&err), "rollout evaluation failed; retrying next poll");
                }
            }
        })
    }

    /// Claims every rollout due now and evaluates each once: what the driver does each
    /// poll, for tests and tools that drive rollouts by hand. Answers how many it
    /// evaluated. A rollout whose evaluation fails keeps its due time and is tried
    /// again by the next call (its lease freed). At most [`MAX_BATCHES_PER_POLL`]
    /// batches: what is still due waits for the next call.
    pub async fn evaluate_due_rollouts(&self) -> Result<usize> {
        let settings = &self.settings().rollouts;
        let lease = TimeDelta::from_std(settings.lease).unwrap_or(TimeDelta::MAX);
        let mut evaluated = 0;
        for _ in 0..MAX_BATCHES_PER_POLL {
            let now = Utc::now();
            let claimed = self
                .store()
                .claim_due_rollouts(&self.inner.claimant, now, now + lease, settings.batch)
                .await?;
            let full = claimed.len() == settings.batch;
            let runs = claimed.iter().map(|&id| self.evaluate_claimed(id));
            for (id, outcome) in claimed.iter().zip(futures::future::join_all(runs).await) {
                match outcome {
                    Ok(_) => evaluated += 1,
                    Err(err) => {
                        tracing::warn!(rollout = %id, error = %ErrorChain(&err), "rollout evaluation failed");
                        if let Err(err) = self
                            .store()
                            .release_rollout_lease(&self.inner.claimant, *id)
                            .await
                        {
                            tracing::warn!(rollout = %id, error = %ErrorChain(&err), "could not free a rollout's lease; it expires by itself");
                        }
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(evaluated)
    }

    /// One evaluation of a rollout this replica holds the lease of.
    async fn evaluate_claimed(&self, id: RolloutId) -> Result<Rollout> {
        let mut snapshot = self.store().rollout_snapshot(id).await?;
        // Gates a previous step started run first, under this lease; the step then
        // sees their outcomes.
        if self.run_pending_gates(&snapshot).await? > 0 {
            snapshot = self.store().rollout_snapshot(id).await?;
        }
        let stale_after =
            TimeDelta::from_std(self.settings().stale_after).unwrap_or(TimeDelta::MAX);
        let mut retried = false;
        loop {
            let stepped = std::time::Instant::now();
            let mut change = step(&snapshot, Utc::now(), stale_after);
            if starts_gates_to_run(&change, &snapshot) {
                // The gates it started run at the next evaluation: make that now.
                change.next_eval_at = Some(change.at);
            }
            let transitions = change.transitions.clone();
            let (pins, agents) = (change.pin.len(), change.agents.len());
            let step_time = stepped.elapsed();
            match self
                .store()
                .apply_rollout_change(&self.inner.claimant, change)
                .await
            {
                Ok(rollout) => {
                    let write_time = stepped.elapsed() - step_time;
                    tracing::debug!(
                        rollout = %id,
                        pins,
                        agents,
                        step_ms = step_time.as_millis() as u64,
                        write_ms = write_time.as_millis() as u64,
                        "rollout change applied"
                    );
                    self.note_applied(&rollout, &transitions);
                    return Ok(rollout);
                }
                Err(store::Error::Conflict(message))
                    if !retried && message.starts_with("rollout_version") =>
                {
                    retried = true;
                    self.inner
                        .rollout_counters
                        .conflicts
                        .fetch_add(1, Ordering::Relaxed);
                    snapshot = self.store().rollout_snapshot(id).await?;
                }
                Err(err) => return Err(Error::Store(err)),
            }
        }
    }

    fn note_applied(&self, rollout: &Rollout, transitions: &[Transition]) {
        let counters = &self.inner.rollout_counters;
        counters.evaluations.fetch_add(1, Ordering::Relaxed);
        counters
            .transitions
            .fetch_add(transitions.len() as u64, Ordering::Relaxed);
        for transition in transitions {
            match transition {
                Transition::Rollout { from, to, reason } => tracing::info!(
                    rollout = %rollout.id, stack = %rollout.stack_id,
                    from = from.as_str(), to = to.as_str(), reason = reason.as_deref().unwrap_or(""),
                    "rollout state changed"
                ),
                Transition::Wave {
                    index,
                    from,
                    to,
                    reason,
                } => tracing::info!(
                    rollout = %rollout.id, stack = %rollout.stack_id, wave = index,
                    from = from.as_str(), to = to.as_str(), reason = reason.as_deref().unwrap_or(""),
                    "rollout wave state changed"
                ),
            }
        }
    }
}

/// Whether the change starts an evaluation the driver runs (webhook or custom; an
/// approval waits for an operator).
fn starts_gates_to_run(change: &RolloutChange, snapshot: &crate::rollout::RolloutSnapshot) -> bool {
    change.start_gates.iter().any(|started| {
        snapshot.rollout.policy.gates.iter().any(|gate| {
            gate.name == started.gate && gate.kind != crate::rollout::GateKind::Approval
        })
    })
}
