//! Agents, their heartbeats and the stacks they are responsible for.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{StoredKey, validate_name};
use crate::id::{AgentId, StackId};
use crate::metadata::{Annotations, Labels};

// ---------------------------------------------------------------------------------------
// Agents

/// One agent process in one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Unique together with `cluster_name` among agents that are not deleted.
    pub name: String,
    /// The cluster (environment) it runs in.
    pub cluster_name: String,
    /// Labels, for placement.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// Whether an admin allows it to work.
    pub status: AgentStatus,
    /// The time of its latest heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// What it reported in its latest heartbeat that carried capabilities.
    pub capabilities: Capabilities,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When its registration last changed (heartbeats do not count).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Agent {
    /// Whether the agent has sent a heartbeat within `stale_after` of `now`.
    pub fn liveness(&self, now: DateTime<Utc>, stale_after: Duration) -> Liveness {
        match self.last_heartbeat {
            None => Liveness::NeverSeen,
            Some(at) if now - at <= stale_after => Liveness::Active,
            Some(_) => Liveness::Stale,
        }
    }
}

/// An admin's switch on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// The agent may fetch its target state and report.
    Active,
    /// Paused by an admin.
    Inactive,
}

stable_names!(AgentStatus { Active => "active", Inactive => "inactive" });

/// Derived from heartbeat age; never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heartbeat within the staleness bound.
    Active,
    /// Heartbeat older than the bound.
    Stale,
    /// No heartbeat yet.
    NeverSeen,
}

/// What an agent reports about its cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The API server's `gitVersion`, e.g. `v1.33.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<u32>,
    /// Allocatable CPU summed over nodes, in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable_cpu_millis: Option<u64>,
    /// Allocatable memory summed over nodes, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable_memory_bytes: Option<u64>,
    /// Named capabilities, e.g. `gpu`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub features: BTreeSet<String>,
    /// Anything else the agent reports (region, zone, provider, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What [`Store::create_agent`](crate::Store::create_agent) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    /// Unique together with `cluster_name`.
    pub name: String,
    /// The cluster it runs in.
    pub cluster_name: String,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
    /// Its first key, stored in the same transaction.
    pub key: StoredKey,
}

/// A change to an agent's registration; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentUpdate {
    /// New name.
    pub name: Option<String>,
    /// New cluster name.
    pub cluster_name: Option<String>,
    /// New admin status.
    pub status: Option<AgentStatus>,
}

/// One heartbeat; the server may coalesce many and write them in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Who beat.
    pub agent_id: AgentId,
    /// When.
    pub at: DateTime<Utc>,
    /// Reported capabilities; `None` keeps what was stored.
    pub capabilities: Option<Capabilities>,
}

// ---------------------------------------------------------------------------------------
// Agent targets

/// "Agent A is responsible for stack S".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTarget {
    /// The agent.
    pub agent_id: AgentId,
    /// The stack.
    pub stack_id: StackId,
    /// Why the agent has it.
    pub source: TargetSource,
    /// When it was assigned.
    pub created_at: DateTime<Utc>,
    /// When it was unassigned; the agent still gets a removal for it until it reports
    /// that the stack's objects are gone.
    pub removed_at: Option<DateTime<Utc>>,
}

/// How an agent came to be responsible for a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    /// An admin or generator assigned it.
    Direct,
    /// A placement decision chose it.
    Placement,
}

stable_names!(TargetSource { Direct => "direct", Placement => "placement" });

impl NewAgent {
    /// Checks names, labels and annotations.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_name("cluster_name", &self.cluster_name)?;
        crate::metadata::validate_labels(&self.labels)?;
        crate::metadata::validate_annotations(&self.annotations)?;
        Ok(())
    }
}

impl AgentUpdate {
    /// Checks the fields that are set.
    pub fn validate(&self) -> crate::store::Result<()> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        if let Some(cluster_name) = &self.cluster_name {
            validate_name("cluster_name", cluster_name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_heartbeat_age() {
        let now = Utc::now();
        let mut agent = Agent {
            id: AgentId::new(),
            name: "a".into(),
            cluster_name: "c".into(),
            labels: Labels::new(),
            annotations: Annotations::new(),
            status: AgentStatus::Active,
            last_heartbeat: None,
            capabilities: Capabilities::default(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let bound = Duration::seconds(60);
        assert_eq!(agent.liveness(now, bound), Liveness::NeverSeen);
        agent.last_heartbeat = Some(now - Duration::seconds(10));
        assert_eq!(agent.liveness(now, bound), Liveness::Active);
        agent.last_heartbeat = Some(now - Duration::seconds(61));
        assert_eq!(agent.liveness(now, bound), Liveness::Stale);
    }

    #[test]
    fn stable_names_round_trip() {
        for source in [TargetSource::Direct, TargetSource::Placement] {
            assert_eq!(TargetSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(AgentStatus::parse("inactive"), Some(AgentStatus::Inactive));
        assert_eq!(AgentStatus::parse("nope"), None);
    }
}
