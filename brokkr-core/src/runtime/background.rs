//! The control plane's background tasks: heartbeat flusher, target-state cache
//! invalidator and placement controller.

use std::sync::Arc;

use super::ControlPlane;
use super::error::ErrorChain;
use super::placement::PlacementController;

/// The background tasks of a started [`ControlPlane`]; dropping it aborts them,
/// [`Background::shutdown`] also writes the heartbeats still pending.
#[derive(Debug)]
#[must_use = "dropping Background stops the heartbeat flusher, the cache invalidator and the placement controller"]
pub struct Background {
    control_plane: ControlPlane,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Starts the heartbeat flusher, the target-state cache invalidator and the
    /// placement controller (inside a Tokio runtime). They run until the returned
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
        tracing::debug!("control plane background tasks started");
        Background {
            control_plane: self.clone(),
            tasks: vec![flusher, invalidator, placement],
        }
    }

    /// The placement controller over this control plane (started by
    /// [`ControlPlane::start`]; tests and tools may run it by hand).
    pub fn placement_controller(&self) -> PlacementController {
        PlacementController::new(self.clone())
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
