//! What agents call: heartbeats, and their target state with its ETag and long poll.

use std::sync::Arc;

use chrono::Utc;
use futures::future::{Either, select};

use crate::AgentId;
use crate::model::{Actor, AgentStatus, Capabilities, Heartbeat};

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};
use super::target_cache::CachedTargetState;

/// Most feature names an agent may report.
pub const MAX_FEATURES: usize = 100;
/// Longest feature name or Kubernetes version, in characters.
pub const MAX_CAPABILITY_STRING: usize = 253;
/// Largest `extra` capabilities, serialized as compact JSON.
pub const MAX_EXTRA_BYTES: usize = 64 * 1024;

/// The outcome of [`ControlPlane::wait_for_change`].
#[derive(Debug, Clone)]
pub enum Poll {
    /// The target state differs from the one the caller has.
    Changed(Arc<CachedTargetState>),
    /// Nothing changed before the deadline (or the control plane began shutting down);
    /// the state the caller has is current.
    Unchanged(Arc<CachedTargetState>),
}

impl ControlPlane {
    /// Records a heartbeat of `agent`, only from the agent itself. The beat is held in
    /// memory and written in a batch within `heartbeat_flush_period`; the agent shows
    /// as active at once. Capabilities, when given, replace the stored ones: at most
    /// [`MAX_FEATURES`](super::MAX_FEATURES) feature names of 1–[`MAX_CAPABILITY_STRING`](super::MAX_CAPABILITY_STRING) characters, `extra`
    /// at most [`MAX_EXTRA_BYTES`](super::MAX_EXTRA_BYTES) serialized (`Invalid` otherwise).
    pub fn record_heartbeat(
        &self,
        caller: &Actor,
        agent: AgentId,
        capabilities: Option<Capabilities>,
    ) -> Result<()> {
        access::require_agent(caller, agent)?;
        if let Some(capabilities) = &capabilities {
            check_capabilities(capabilities)?;
        }
        let at = Utc::now();
        self.heartbeats().record(Heartbeat {
            agent_id: agent,
            at,
            capabilities,
        });
        // Liveness reaches the placement index at once: an agent beating after being
        // stale or never seen is placed now, not at the next reload.
        self.note_heartbeat(agent, at);
        Ok(())
    }

    /// The agent's target state and its ETag (the agent itself, or admin), from the
    /// cache when it holds it: a cached answer costs no query. A disabled agent asking
    /// for its own state is `Forbidden` (`agent_inactive`).
    pub async fn target_state(
        &self,
        caller: &Actor,
        agent: AgentId,
    ) -> Result<Arc<CachedTargetState>> {
        access::require_agent_or_admin(caller, agent)?;
        let entry = self.read_target_state(agent).await?;
        require_enabled(caller, &entry)?;
        Ok(entry)
    }

    /// Waits until the agent's target state has an ETag other than `known_etag`, or
    /// `deadline` passes (at most [`Settings::long_poll_max`](super::Settings) from
    /// now, whatever the caller asks), or shutdown begins. A change that lands after this call began
    /// is never missed: the watch is taken before the state is read, and spurious
    /// wake-ups re-read and keep waiting. Across replicas the wake-up comes through the
    /// store's change feed.
    pub async fn wait_for_change(
        &self,
        caller: &Actor,
        agent: AgentId,
        known_etag: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Poll> {
        access::require_agent_or_admin(caller, agent)?;
        // A wait holds a watch and a task: the settings bound it, not each transport.
        let deadline = deadline.min(tokio::time::Instant::now() + self.settings().long_poll_max);
        // The watch comes first, so every change after the read below wakes it.
        let mut watch = self.target_states().watch(agent);
        let held = self.read_target_state(agent).await?;
        require_enabled(caller, &held)?;
        if held.etag != known_etag {
            return Ok(Poll::Changed(held));
        }
        loop {
            let changed = std::pin::pin!(watch.changed());
            let draining = std::pin::pin!(self.draining());
            match tokio::time::timeout_at(deadline, select(changed, draining)).await {
                Ok(Either::Left(((), _))) => {}
                // Time is up, or shutting down: answer now, the agent polls again
                // (elsewhere).
                Err(_) | Ok(Either::Right(_)) => break,
            }
            let current = self.read_target_state(agent).await?;
            require_enabled(caller, &current)?;
            if current.etag != held.etag {
                return Ok(Poll::Changed(current));
            }
        }
        Ok(Poll::Unchanged(held))
    }

    pub(crate) async fn read_target_state(&self, agent: AgentId) -> Result<Arc<CachedTargetState>> {
        Ok(self.target_states().get(self.store(), agent).await?)
    }
}

/// `Forbidden` for a disabled agent fetching its own state; admin may read it.
fn require_enabled(caller: &Actor, entry: &CachedTargetState) -> Result<()> {
    if matches!(caller, Actor::Agent(_)) && entry.agent_status == AgentStatus::Inactive {
        return Err(Error::AgentInactive);
    }
    Ok(())
}

/// Checks the sizes of reported capabilities.
pub fn check_capabilities(capabilities: &Capabilities) -> Result<()> {
    let invalid = |message: String| Error::invalid("validation_failed", message);
    let too_long = |s: &str| s.is_empty() || s.chars().count() > MAX_CAPABILITY_STRING;
    if capabilities
        .kubernetes_version
        .as_deref()
        .is_some_and(too_long)
    {
        return Err(invalid(format!(
            "kubernetes_version must be 1-{MAX_CAPABILITY_STRING} characters"
        )));
    }
    if capabilities.features.len() > MAX_FEATURES {
        return Err(invalid(format!(
            "at most {MAX_FEATURES} features may be reported"
        )));
    }
    if let Some(bad) = capabilities.features.iter().find(|f| too_long(f)) {
        return Err(invalid(format!(
            "feature {bad:?} must be 1-{MAX_CAPABILITY_STRING} characters"
        )));
    }
    if serialized_len(&capabilities.extra) > MAX_EXTRA_BYTES {
        return Err(invalid(format!(
            "extra must be at most {MAX_EXTRA_BYTES} bytes serialized"
        )));
    }
    Ok(())
}

/// The length of `value` as compact JSON, counted without building the string.
fn serialized_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing JSON values into a writer that never fails cannot fail; should it,
    // count it as too large.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(edit: impl FnOnce(&mut Capabilities)) -> Capabilities {
        let mut capabilities = Capabilities {
            kubernetes_version: Some("v1.33.2".into()),
            features: ["gpu".to_owned()].into(),
            ..Default::default()
        };
        edit(&mut capabilities);
        capabilities
    }

    #[test]
    fn capability_sizes_are_bounded() {
        assert!(check_capabilities(&caps(|_| {})).is_ok());
        let refused = [
            caps(|c| c.features = (0..=MAX_FEATURES).map(|i| format!("f{i}")).collect()),
            caps(|c| {
                c.extra.insert(
                    "blob".into(),
                    serde_json::json!("x".repeat(MAX_EXTRA_BYTES)),
                );
            }),
            caps(|c| c.features = [String::new()].into()),
            caps(|c| c.kubernetes_version = Some("v".repeat(MAX_CAPABILITY_STRING + 1))),
        ];
        for capabilities in refused {
            assert!(matches!(
                check_capabilities(&capabilities),
                Err(Error::Invalid {
                    code: "validation_failed",
                    ..
                })
            ));
        }
    }

    #[test]
    fn serialized_len_counts_compact_json() {
        let value = serde_json::json!({"a": [1, 2]});
        assert_eq!(
            serialized_len(&value),
            serde_json::to_vec(&value).unwrap().len()
        );
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_wait_lasts_at_most_long_poll_max() {
        use std::time::Duration;

        let settings = super::super::Settings {
            long_poll_max: Duration::from_millis(100),
            ..Default::default()
        };
        let store = Arc::new(crate::testing::MemoryStore::new());
        let cp = ControlPlane::builder(store).settings(settings).build();
        let registration = super::super::AgentRegistration {
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
        let me = Actor::Agent(id);
        let held = cp.target_state(&me, id).await.unwrap();
        let in_an_hour = tokio::time::Instant::now() + Duration::from_secs(3600);
        let poll = tokio::time::timeout(
            Duration::from_secs(5),
            cp.wait_for_change(&me, id, &held.etag, in_an_hour),
        )
        .await
        .expect("the wait ends at long_poll_max")
        .unwrap();
        assert!(matches!(poll, Poll::Unchanged(_)));
    }

    #[test]
    fn only_the_agent_itself_beats() {
        let (me, other) = (AgentId::new(), AgentId::new());
        assert!(access::require_agent(&Actor::Agent(me), me).is_ok());
        for who in [
            Actor::Admin,
            Actor::System,
            Actor::Agent(other),
            Actor::Generator(crate::GeneratorId::new()),
        ] {
            assert!(matches!(
                access::require_agent(&who, me),
                Err(Error::Forbidden(_))
            ));
        }
    }
}
