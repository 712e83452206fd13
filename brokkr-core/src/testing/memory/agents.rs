//! Agents and their heartbeats.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::state::{now, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::AgentId;
use crate::model::{
    Actor, Agent, AgentStatus, AgentUpdate, AuditAction, Capabilities, Heartbeat, KeyOwner,
    NewAgent, ResourceKind, WebhookEvent,
};
use crate::page::{Page, PageRequest};
use crate::store::{AgentFilter, Error, Result};

pub(super) fn create_agent(store: &MemoryStore, actor: &Actor, new: NewAgent) -> Result<Agent> {
    new.validate()?;
    let mut state = store.state();
    state.check_agent_name_free(&new.name, &new.cluster_name, None)?;
    state.check_short_id_free(&new.key)?;
    let at = now();
    let agent = Agent {
        id: AgentId::new(),
        name: new.name,
        cluster_name: new.cluster_name,
        labels: new.labels,
        annotations: new.annotations,
        status: AgentStatus::Active,
        last_heartbeat: None,
        capabilities: Capabilities::default(),
        created_at: at,
        updated_at: at,
        deleted_at: None,
    };
    state.agents.insert(agent.id, agent.clone());
    state.insert_key(KeyOwner::Agent(agent.id), new.key, at);
    let summary = format!(
        "registered agent {:?} in cluster {:?}",
        agent.name, agent.cluster_name
    );
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Agent,
        agent.id,
        summary,
        at,
    );
    Ok(agent)
}

pub(super) fn get_agent(store: &MemoryStore, id: AgentId) -> Result<Agent> {
    store.state().live_agent(id).cloned()
}

pub(super) fn list_agents(
    store: &MemoryStore,
    filter: &AgentFilter,
    page: &PageRequest,
) -> Result<Page<Agent>> {
    let state = store.state();
    let rows = state
        .agents
        .values()
        .filter(|a| filter.include_deleted || a.deleted_at.is_none())
        .filter(|a| {
            filter
                .cluster_name
                .as_ref()
                .is_none_or(|c| &a.cluster_name == c)
        })
        .filter(|a| filter.status.is_none_or(|s| a.status == s))
        .cloned()
        .collect();
    paginate(rows, page, |a| a.id, parse_uuid, |a| a.id.to_string())
}

pub(super) fn update_agent(
    store: &MemoryStore,
    actor: &Actor,
    id: AgentId,
    update: AgentUpdate,
) -> Result<Agent> {
    update.validate()?;
    let agent = {
        let mut state = store.state();
        let current = state.live_agent(id)?;
        let name = update.name.clone().unwrap_or_else(|| current.name.clone());
        let cluster = update
            .cluster_name
            .clone()
            .unwrap_or_else(|| current.cluster_name.clone());
        state.check_agent_name_free(&name, &cluster, Some(id))?;
        let at = now();
        let agent = state
            .agents
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        agent.name = name;
        agent.cluster_name = cluster;
        if let Some(status) = update.status {
            agent.status = status;
        }
        agent.updated_at = at;
        let agent = agent.clone();
        let summary = format!(
            "updated agent {:?} in cluster {:?} (status {})",
            agent.name,
            agent.cluster_name,
            agent.status.as_str()
        );
        state.audit(
            actor,
            AuditAction::Update,
            ResourceKind::Agent,
            id,
            summary,
            at,
        );
        agent
    };
    store.publish(vec![id]);
    Ok(agent)
}

pub(super) fn delete_agent(store: &MemoryStore, actor: &Actor, id: AgentId) -> Result<()> {
    {
        let mut state = store.state();
        let name = state.live_agent(id)?.name.clone();
        let at = now();
        let agent = state
            .agents
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        agent.deleted_at = Some(at);
        agent.updated_at = at;
        state.revoke_keys(KeyOwner::Agent(id), at);
        // Its stacks are no longer placed on it: their rollouts see the change.
        let stacks: Vec<_> = state
            .targets
            .keys()
            .filter(|(agent, _)| *agent == id)
            .map(|(_, stack)| *stack)
            .collect();
        state.poke_rollouts(stacks, at);
        let summary = format!("deleted agent {name:?} and revoked its keys");
        state.audit(
            actor,
            AuditAction::Delete,
            ResourceKind::Agent,
            id,
            summary,
            at,
        );
    }
    store.publish(vec![id]);
    Ok(())
}

pub(super) fn record_heartbeats(store: &MemoryStore, beats: &[Heartbeat]) -> Result<()> {
    let mut state = store.state();
    // The latest beat of every live agent that beat, for the stale ones' recovery.
    let mut beaten: BTreeMap<AgentId, DateTime<Utc>> = BTreeMap::new();
    for beat in beats {
        let Some(agent) = state
            .agents
            .get_mut(&beat.agent_id)
            .filter(|a| a.deleted_at.is_none())
        else {
            continue;
        };
        let latest = beaten.entry(beat.agent_id).or_insert(beat.at);
        *latest = (*latest).max(beat.at);
        // A beat older than the stored one arrived late: it changes nothing, so
        // neither the time nor the capabilities move back.
        if agent.last_heartbeat.is_some_and(|last| beat.at < last) {
            continue;
        }
        agent.last_heartbeat = Some(beat.at);
        if let Some(capabilities) = &beat.capabilities {
            agent.capabilities = capabilities.clone();
        }
    }
    let at = now();
    for (agent, beat) in beaten {
        if let Some(stale_since) = state.stale_agents.remove(&agent) {
            state.emit(WebhookEvent::agent_recovered(agent, stale_since, beat, at));
        }
    }
    Ok(())
}

impl State {
    pub(super) fn check_agent_name_free(
        &self,
        name: &str,
        cluster: &str,
        except: Option<AgentId>,
    ) -> Result<()> {
        let taken = self.agents.values().any(|a| {
            a.deleted_at.is_none()
                && a.name == name
                && a.cluster_name == cluster
                && Some(a.id) != except
        });
        if taken {
            return Err(Error::Conflict(format!(
                "an agent named {name:?} exists in cluster {cluster:?}"
            )));
        }
        Ok(())
    }
}
