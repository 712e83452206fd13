//! The fleet overview's counts.

use chrono::{TimeDelta, Utc};

use super::fixtures::{ADMIN, mk_agent, mk_health, mk_object, mk_stack, workload};
use crate::health::HealthStatus;
use crate::model::{AgentStatus, AgentUpdate, FleetCounts, Heartbeat};
use crate::store::Store;

cases!(
    /// Live agents count by status (disabled first, then heartbeat age against the
    /// bound given), live stacks by their worst reported status; deleted rows count
    /// nowhere.
    pub async fn fleet_counts_agents_by_status_and_stacks_by_worst_health(store: &dyn Store) {
        use HealthStatus::{Failed, Healthy, Progressing};
        let now = Utc::now();
        assert_eq!(
            store.fleet_counts(now).await.expect("counts"),
            FleetCounts::default()
        );

        let recent = mk_agent(store, "recent").await;
        let old = mk_agent(store, "old").await;
        let _never = mk_agent(store, "never").await;
        let disabled = mk_agent(store, "disabled").await;
        let gone = mk_agent(store, "gone").await;
        store
            .record_heartbeats(&[
                Heartbeat {
                    agent_id: recent.id,
                    at: now,
                    capabilities: None,
                },
                Heartbeat {
                    agent_id: old.id,
                    at: now - TimeDelta::minutes(10),
                    capabilities: None,
                },
                Heartbeat {
                    agent_id: disabled.id,
                    at: now,
                    capabilities: None,
                },
                Heartbeat {
                    agent_id: gone.id,
                    at: now,
                    capabilities: None,
                },
            ])
            .await
            .expect("heartbeats");
        let disable = AgentUpdate {
            status: Some(AgentStatus::Inactive),
            ..Default::default()
        };
        store
            .update_agent(&ADMIN, disabled.id, disable)
            .await
            .expect("disable");
        store
            .delete_agent(&ADMIN, gone.id)
            .await
            .expect("delete agent");

        let failing = mk_stack(store, "failing").await;
        let rolling = mk_stack(store, "rolling").await;
        let _quiet = mk_stack(store, "quiet").await;
        let deleted = mk_stack(store, "deleted").await;
        let f = mk_object(store, failing.id, "1").await;
        let r = mk_object(store, rolling.id, "1").await;
        let d = mk_object(store, deleted.id, "1").await;
        mk_health(store, recent.id, f.id, vec![workload("web", Healthy)]).await;
        mk_health(store, old.id, f.id, vec![workload("web", Failed)]).await;
        mk_health(store, recent.id, r.id, vec![workload("web", Progressing)]).await;
        mk_health(store, recent.id, d.id, vec![workload("web", Failed)]).await;
        store
            .delete_stack(&ADMIN, deleted.id)
            .await
            .expect("delete stack");

        let counts = store
            .fleet_counts(now - TimeDelta::minutes(1))
            .await
            .expect("counts");
        assert_eq!(
            (
                counts.agents_active,
                counts.agents_stale,
                counts.agents_inactive
            ),
            (1, 2, 1),
            "{counts:?}"
        );
        assert_eq!(counts.stacks, 3, "{counts:?}");
        assert_eq!(counts.stacks_with(Failed), 1, "{counts:?}");
        assert_eq!(counts.stacks_with(Progressing), 1, "{counts:?}");
        assert_eq!(counts.stacks_with(Healthy), 0, "{counts:?}");
        assert_eq!(counts.stacks_unreported(), 1, "{counts:?}");

        // The bound decides who is active.
        let counts = store
            .fleet_counts(now - TimeDelta::minutes(20))
            .await
            .expect("counts");
        assert_eq!(
            (counts.agents_active, counts.agents_stale),
            (2, 1),
            "{counts:?}"
        );
    }
);
