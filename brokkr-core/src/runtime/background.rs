//! The control plane's background tasks: heartbeat flusher, target-state cache
//! invalidator, placement controller, key revocation watcher, audit sealer, webhook
//! dispatcher and rollout driver.

use std::sync::Arc;

use tracing::instrument::WithSubscriber;

use super::ControlPlane;
use super::error::ErrorChain;
use super::placement::PlacementController;

/// The background tasks of a started [`ControlPlane`]; dropping it aborts them,
/// [`Background::shutdown`] also writes the heartbeats still pending.
#[derive(Debug)]
#[must_use = "dropping Background stops the heartbeat flusher, the cache invalidator, the placement controller, the revocation watcher, the audit sealer, the webhook dispatcher and the rollout driver"]
pub struct Background {
    control_plane: ControlPlane,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Starts the heartbeat flusher, the target-state cache invalidator, the
    /// placement controller, the key revocation watcher, the audit chain's sealer, the
    /// webhook dispatcher and the rollout driver
    /// (inside a Tokio runtime). They run until the returned
    /// [`Background`] is shut down or dropped. Without them heartbeats are never
    /// written and cached target states never invalidated.
    pub fn start(&self) -> Background {
        let inner = &self.inner;
        // A control plane started again after a shutdown serves waits again: left
        // draining, every long poll would answer at once and agents would poll in a
        // tight loop.
        inner.draining.send_replace(false);
        let flusher = Arc::clone(&inner.heartbeats).spawn_flusher(
            Arc::clone(&inner.store),
            inner.settings.heartbeat_flush_period,
            Arc::clone(&inner.placement_signals),
        );
        // Subscribe before returning, so no change made after this call is missed.
        let invalidator =
            Arc::clone(&inner.target_states).spawn_invalidator(inner.store.change_feed());
        let placement = self.placement_controller().spawn();
        let revocations = self.spawn_revocation_watcher();
        let sealer = self.spawn_audit_sealer();
        let webhooks = self.spawn_webhook_dispatcher();
        let rollouts = self.spawn_rollout_driver();
        tracing::debug!("control plane background tasks started");
        Background {
            control_plane: self.clone(),
            tasks: vec![
                flusher,
                invalidator,
                placement,
                revocations,
                sealer,
                webhooks,
                rollouts,
            ],
        }
    }

    /// The placement controller over this control plane (started by
    /// [`ControlPlane::start`]; tests and tools may run it by hand).
    pub fn placement_controller(&self) -> PlacementController {
        PlacementController::new(self.clone())
    }

    /// Polls the store's key revocation counter and forgets every cached key when it
    /// moves. A failed read changes nothing: during an outage nothing can be revoked,
    /// and cached keys keep authenticating.
    fn spawn_revocation_watcher(&self) -> tokio::task::JoinHandle<()> {
        let control_plane = self.clone();
        let period = self.inner.settings.key_revocation_poll;
        tokio::spawn(
            async move {
                let store = control_plane.store();
                let mut seen = None;
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Ok(current) = store.key_revocations().await else {
                        continue;
                    };
                    if seen.is_some_and(|seen| seen != current) {
                        tracing::debug!("keys were revoked elsewhere; forgetting cached keys");
                        control_plane.inner.keys.forget_all();
                    }
                    seen = Some(current);
                }
            }
            .with_current_subscriber(),
        )
    }

    /// Writes the heartbeats waiting in memory now (the flusher does it every period).
    pub async fn flush_heartbeats(&self) -> super::Result<usize> {
        Ok(self
            .inner
            .heartbeats
            .flush(self.inner.store.as_ref())
            .await?)
    }
}

impl Background {
    /// Answers every wait at once, stops the tasks and writes the heartbeats still
    /// pending.
    pub async fn shutdown(mut self) {
        self.control_plane.begin_draining();
        let tasks: Vec<_> = self.tasks.drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        // Wait until they are gone: a flush aborted mid-write puts its beats back as
        // it is dropped, which must happen before the final flush below.
        for task in tasks {
            let _ = task.await;
        }
        match self.control_plane.flush_heartbeats().await {
            Ok(0) => {}
            Ok(written) => tracing::info!(written, "wrote pending heartbeats"),
            Err(err) => tracing::warn!(
                error = %ErrorChain(&err),
                "writing pending heartbeats at shutdown failed; they are lost"
            ),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use crate::model::Actor;
    use crate::runtime::{AgentRegistration, Poll};
    use crate::testing::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn a_control_plane_started_again_after_shutdown_waits_again() {
        let cp = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
        let registration = AgentRegistration {
            name: "a".into(),
            cluster_name: "c".into(),
            ..Default::default()
        };
        let id = cp
            .create_agent(&Actor::Admin, registration)
            .await
            .unwrap()
            .agent
            .agent
            .id;
        cp.start().shutdown().await;

        let background = cp.start();
        let me = Actor::Agent(id);
        let held = cp.target_state(&me, id).await.unwrap();
        let wait = Duration::from_millis(300);
        let started = tokio::time::Instant::now();
        let poll = cp
            .wait_for_change(&me, id, &held.etag, started + wait)
            .await
            .unwrap();
        assert!(matches!(poll, Poll::Unchanged(_)));
        assert!(
            started.elapsed() >= wait,
            "the wait answered after {:?}, as if still shutting down",
            started.elapsed()
        );
        background.shutdown().await;
    }
}
