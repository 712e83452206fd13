//! Agents: registration, changes, deletion, key rotation, and the status each shows.
//!
//! Admin (or the system) manages agents; an agent may read itself and rotate its own
//! key; another agent and generators are `Forbidden`. The status an agent shows
//! ([`DisplayedStatus`]) is decided here once: the admin's switch first, then the age of
//! its latest heartbeat, counting a beat still waiting in the
//! [`HeartbeatBuffer`](super::heartbeat::HeartbeatBuffer) (so an agent shows as active
//! the moment it beats, before the beat is written).
//!
//! Every change to an agent drops its cached target state (its status decides whether
//! it may fetch) and tells placement (a disabled or deleted agent loses its places, a
//! new one may win some); key changes drop the cached keys of the agent at once, so a
//! rotated or revoked key stops working on this replica immediately.

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::{Actor, Agent, AgentStatus, AgentUpdate, KeyOwner, Liveness, NewAgent};
use crate::store::AgentFilter;
use crate::{AgentId, Annotations, Labels, Page, PageRequest, Pak};

use super::ControlPlane;
use super::access;
use super::error::{ErrorChain, Result};

/// What an agent shows as its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisplayedStatus {
    /// Enabled, with a heartbeat within [`Settings::stale_after`](super::Settings).
    Active,
    /// Enabled, but its latest heartbeat is older than the bound, or it never beat.
    Stale,
    /// Disabled by an admin: it may not fetch its target state.
    Inactive,
}

impl DisplayedStatus {
    /// The status of `agent` at `now`: the admin's switch first, then heartbeat age.
    /// `agent.last_heartbeat` must already include a beat not yet written.
    pub fn of(agent: &Agent, now: DateTime<Utc>, stale_after: TimeDelta) -> Self {
        if agent.status == AgentStatus::Inactive {
            return Self::Inactive;
        }
        match agent.liveness(now, stale_after) {
            Liveness::Active => Self::Active,
            Liveness::Stale | Liveness::NeverSeen => Self::Stale,
        }
    }

    /// The admin status an agent showing this status has.
    pub fn admin_status(self) -> AgentStatus {
        match self {
            Self::Inactive => AgentStatus::Inactive,
            Self::Active | Self::Stale => AgentStatus::Active,
        }
    }
}

/// An agent as callers see it: its registration, with `last_heartbeat` including a beat
/// still held in memory, and the status derived from both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// The agent; `last_heartbeat` is the newest beat, written or not.
    pub agent: Agent,
    /// The status it shows.
    pub status: DisplayedStatus,
}

/// What registering an agent needs; its first key is issued by the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentRegistration {
    /// Unique together with `cluster_name` among live agents.
    pub name: String,
    /// The cluster it runs in.
    pub cluster_name: String,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
}

/// A registered agent and its first key. Only a hash of the key is stored: this is the
/// one time it can be shown.
#[derive(Debug)]
pub struct RegisteredAgent {
    /// The new agent.
    pub agent: AgentView,
    /// Its key, `brokkr_<short id>_<secret>`.
    pub key: Pak,
}

/// Which agents [`ControlPlane::list_agents`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentQuery {
    /// Only agents in this cluster.
    pub cluster_name: Option<String>,
    /// Only agents showing this status. `Inactive` is selected by the store; `Active`
    /// and `Stale` are judged after paging, so such a page may hold fewer rows than its
    /// limit (even none) and still have a next cursor.
    pub status: Option<DisplayedStatus>,
}

impl ControlPlane {
    /// Registers an agent and issues its first key (admin or system). Tells placement,
    /// which may give the new agent stacks.
    pub async fn create_agent(
        &self,
        caller: &Actor,
        registration: AgentRegistration,
    ) -> Result<RegisteredAgent> {
        access::require_admin(caller)?;
        let key = Pak::generate();
        let agent = self
            .store()
            .create_agent(
                caller,
                NewAgent {
                    name: registration.name,
                    cluster_name: registration.cluster_name,
                    labels: registration.labels,
                    annotations: registration.annotations,
                    key: key.stored(),
                },
            )
            .await?;
        // A lookup of the new short id made before it existed may be cached as unknown.
        self.forget_keys(KeyOwner::Agent(agent.id), Some(key.short_id()));
        self.after_agent_change(agent.id).await;
        Ok(RegisteredAgent {
            agent: self.agent_view(agent, Utc::now()),
            key,
        })
    }

    /// One agent (admin, system, or the agent itself).
    pub async fn get_agent(&self, caller: &Actor, id: AgentId) -> Result<AgentView> {
        access::require_agent_or_admin(caller, id)?;
        let agent = self.store().get_agent(id).await?;
        Ok(self.agent_view(agent, Utc::now()))
    }

    /// A page of live agents ordered by id (admin or system); see [`AgentQuery`] for
    /// how a status filter pages.
    pub async fn list_agents(
        &self,
        caller: &Actor,
        query: &AgentQuery,
        page: &PageRequest,
    ) -> Result<Page<AgentView>> {
        access::require_admin(caller)?;
        let filter = AgentFilter {
            cluster_name: query.cluster_name.clone(),
            status: query.status.map(DisplayedStatus::admin_status),
            include_deleted: false,
        };
        let agents = self.store().list_agents(&filter, page).await?;
        let now = Utc::now();
        let mut page = agents.map(|agent| self.agent_view(agent, now));
        if let Some(wanted) = query.status {
            page.items.retain(|view| view.status == wanted);
        }
        Ok(page)
    }

    /// Renames, moves, enables or disables an agent (admin or system). A disabled agent
    /// may no longer fetch its target state, from this call on.
    pub async fn update_agent(
        &self,
        caller: &Actor,
        id: AgentId,
        update: AgentUpdate,
    ) -> Result<AgentView> {
        access::require_admin(caller)?;
        let agent = self.store().update_agent(caller, id, update).await?;
        self.after_agent_change(id).await;
        Ok(self.agent_view(agent, Utc::now()))
    }

    /// Soft-deletes an agent and revokes its keys (admin or system). Its targets stay,
    /// so re-registering does not silently drop workloads; placement gives its places
    /// to other agents. The revocation takes effect at once on this replica, and
    /// within the key cache TTL on others.
    pub async fn delete_agent(&self, caller: &Actor, id: AgentId) -> Result<()> {
        access::require_admin(caller)?;
        self.store().delete_agent(caller, id).await?;
        self.forget_keys(KeyOwner::Agent(id), None);
        self.after_agent_change(id).await;
        Ok(())
    }

    /// Issues a new key for an agent and revokes its previous ones (admin, system, or
    /// the agent itself, whose current key stops working at once on this replica).
    /// The returned key is the only time it can be shown.
    pub async fn rotate_agent_key(&self, caller: &Actor, id: AgentId) -> Result<Pak> {
        access::require_agent_or_admin(caller, id)?;
        self.issue_key(caller, KeyOwner::Agent(id)).await
    }

    /// `Forbidden` unless the caller is admin, system or the agent itself; for admin
    /// and system, `NotFound` for an unknown agent (an agent's valid key already proves
    /// that it exists, so for it this costs no query). For listings under an agent, so
    /// an unknown agent is not an empty list.
    pub(crate) async fn require_known_agent(&self, caller: &Actor, agent: AgentId) -> Result<()> {
        access::require_agent_or_admin(caller, agent)?;
        if !matches!(caller, Actor::Agent(_)) {
            self.store().get_agent(agent).await?;
        }
        Ok(())
    }

    /// The agent as shown at `now`, with a beat still in memory counted.
    fn agent_view(&self, mut agent: Agent, now: DateTime<Utc>) -> AgentView {
        let pending = self.heartbeats().pending_at(agent.id);
        agent.last_heartbeat = agent.last_heartbeat.max(pending);
        let stale_after =
            TimeDelta::from_std(self.settings().stale_after).unwrap_or(TimeDelta::MAX);
        AgentView {
            status: DisplayedStatus::of(&agent, now, stale_after),
            agent,
        }
    }

    /// After a change to the agent's row is stored: its cached target state carries its
    /// status, so it goes now (the change notification would drop it a moment later),
    /// and placement takes the change in before the call returns.
    async fn after_agent_change(&self, id: AgentId) {
        self.target_states().invalidate(id);
        self.follow_agent_change(id).await;
    }

    /// Placement takes a stored change of the agent (row, labels, annotations) in before
    /// the call returns. The change is committed whatever placement says: failing the
    /// call would hide a stored change (and, for a registration, the only copy of the
    /// key), so a placement failure is logged and left to the controller, which
    /// recomputes the agent's stacks.
    pub(super) async fn follow_agent_change(&self, id: AgentId) {
        if let Err(err) = self.agent_changed(id).await {
            tracing::warn!(
                agent = %id,
                error = %ErrorChain(&err),
                "placing after an agent change failed; the placement controller retries"
            );
            self.placement_signals().agent_changed(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Capabilities;

    fn agent(status: AgentStatus, beat_secs_ago: Option<i64>, now: DateTime<Utc>) -> Agent {
        Agent {
            id: AgentId::new(),
            name: "a".into(),
            cluster_name: "c".into(),
            labels: Labels::new(),
            annotations: Annotations::new(),
            status,
            last_heartbeat: beat_secs_ago.map(|secs| now - TimeDelta::seconds(secs)),
            capabilities: Capabilities::default(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn check(status: AgentStatus, beat_secs_ago: Option<i64>, expected: DisplayedStatus) {
        let now = Utc::now();
        let shown = DisplayedStatus::of(
            &agent(status, beat_secs_ago, now),
            now,
            TimeDelta::seconds(60),
        );
        assert_eq!(shown, expected, "{status:?}, beat {beat_secs_ago:?}s ago");
    }

    #[test]
    fn the_admin_switch_comes_before_heartbeat_age() {
        use AgentStatus::{Active, Inactive};
        check(Active, Some(10), DisplayedStatus::Active);
        check(Active, Some(61), DisplayedStatus::Stale);
        check(Active, None, DisplayedStatus::Stale);
        check(Inactive, Some(1), DisplayedStatus::Inactive);
        check(Inactive, None, DisplayedStatus::Inactive);
    }

    #[test]
    fn a_status_filter_selects_by_admin_status_first() {
        assert_eq!(
            DisplayedStatus::Inactive.admin_status(),
            AgentStatus::Inactive
        );
        for shown in [DisplayedStatus::Active, DisplayedStatus::Stale] {
            assert_eq!(shown.admin_status(), AgentStatus::Active);
        }
    }
}
