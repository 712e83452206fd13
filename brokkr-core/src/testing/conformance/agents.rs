//! Agents: registration, names, deletion, heartbeats.

use chrono::{SubsecRound, Utc};
use serde_json::json;

use super::fixtures::{ADMIN, labels, mk_agent, mk_agent_in, mk_stack, mk_target, new_agent};
use super::support::{
    all, all_agents, all_audit, expect_conflict, expect_invalid, expect_not_found,
};
use crate::id::{AgentId, StackId};
use crate::model::{AgentStatus, AgentUpdate, Capabilities, Heartbeat, KeyOwner, NewAgent};
use crate::pak::Pak;
use crate::store::{AgentFilter, Store, TargetFilter};

cases!(
    /// Agents are registered, read, listed, filtered and updated.
    pub async fn agent_crud(store: &dyn Store) {
        let key = Pak::generate();
        let created = store
            .create_agent(
                &ADMIN,
                NewAgent {
                    name: "agent-1".into(),
                    cluster_name: "cluster-1".into(),
                    labels: labels(&[("region", "eu-west-1")]),
                    annotations: labels(&[("owner", "team a")]),
                    key: key.stored(),
                },
            )
            .await
            .expect("create agent");
        assert_eq!(created.name, "agent-1");
        assert_eq!(created.cluster_name, "cluster-1");
        assert_eq!(created.labels, labels(&[("region", "eu-west-1")]));
        assert_eq!(created.annotations, labels(&[("owner", "team a")]));
        assert_eq!(created.status, AgentStatus::Active);
        assert_eq!(created.last_heartbeat, None);
        assert_eq!(created.capabilities, Capabilities::default());
        assert_eq!(created.deleted_at, None);
        assert_eq!(store.get_agent(created.id).await.expect("get"), created);
        assert_eq!(
            all_agents(store, AgentFilter::default()).await,
            vec![created.clone()]
        );

        let updated = store
            .update_agent(
                &ADMIN,
                created.id,
                AgentUpdate {
                    name: Some("agent-1b".into()),
                    cluster_name: Some("cluster-2".into()),
                    status: Some(AgentStatus::Inactive),
                },
            )
            .await
            .expect("update");
        assert_eq!(updated.name, "agent-1b");
        assert_eq!(updated.cluster_name, "cluster-2");
        assert_eq!(updated.status, AgentStatus::Inactive);
        assert_eq!(updated.labels, created.labels);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(store.get_agent(created.id).await.expect("get"), updated);

        let other = mk_agent(store, "agent-2").await;
        let by_cluster = |cluster: &str| AgentFilter {
            cluster_name: Some(cluster.into()),
            ..Default::default()
        };
        let by_status = |status| AgentFilter {
            status: Some(status),
            ..Default::default()
        };
        assert_eq!(
            all_agents(store, by_cluster("cluster-2")).await,
            vec![updated.clone()]
        );
        assert_eq!(
            all_agents(store, by_cluster("cluster-1")).await,
            vec![other.clone()]
        );
        assert_eq!(
            all_agents(store, by_status(AgentStatus::Inactive)).await,
            vec![updated]
        );
        assert_eq!(
            all_agents(store, by_status(AgentStatus::Active)).await,
            vec![other]
        );
    }

    /// (name, cluster_name) is unique among live agents; a deleted agent frees it.
    pub async fn agent_names_are_unique_per_cluster(store: &dyn Store) {
        let first = mk_agent_in(store, "dup", "c1").await;
        let elsewhere = mk_agent_in(store, "dup", "c2").await;
        expect_conflict(
            store
                .create_agent(&ADMIN, new_agent("dup", "c1", &Pak::generate()))
                .await,
        );
        let move_to_c1 = AgentUpdate {
            cluster_name: Some("c1".into()),
            ..Default::default()
        };
        expect_conflict(store.update_agent(&ADMIN, elsewhere.id, move_to_c1).await);
        assert_eq!(store.get_agent(elsewhere.id).await.expect("get"), elsewhere);

        store.delete_agent(&ADMIN, first.id).await.expect("delete");
        let again = mk_agent_in(store, "dup", "c1").await;
        assert_ne!(again.id, first.id);
    }

    /// Bad names, cluster names and labels are `Invalid` and write nothing.
    pub async fn agent_invalid_input_writes_nothing(store: &dyn Store) {
        for (name, cluster) in [("", "c"), (" a", "c"), ("a", ""), ("a", "c\t")] {
            expect_invalid(
                store
                    .create_agent(&ADMIN, new_agent(name, cluster, &Pak::generate()))
                    .await,
            );
        }
        let mut bad_label = new_agent("a", "c", &Pak::generate());
        bad_label.labels = labels(&[("region", "eu west")]);
        expect_invalid(store.create_agent(&ADMIN, bad_label).await);
        let mut bad_annotation = new_agent("a", "c", &Pak::generate());
        bad_annotation.annotations = labels(&[("-note", "x")]);
        expect_invalid(store.create_agent(&ADMIN, bad_annotation).await);
        let filter = AgentFilter {
            include_deleted: true,
            ..Default::default()
        };
        assert!(all_agents(store, filter).await.is_empty());
        assert!(all_audit(store).await.is_empty());

        let agent = mk_agent(store, "valid").await;
        let bad = AgentUpdate {
            name: Some(String::new()),
            ..Default::default()
        };
        expect_invalid(store.update_agent(&ADMIN, agent.id, bad).await);
        assert_eq!(store.get_agent(agent.id).await.expect("get"), agent);
        assert_eq!(all_audit(store).await.len(), 1);
    }

    /// Deleting an agent is soft, revokes its keys and keeps its targets.
    pub async fn agent_delete_is_soft_revokes_keys_and_keeps_targets(store: &dyn Store) {
        let key = Pak::generate();
        let agent = store
            .create_agent(&ADMIN, new_agent("doomed", "c", &key))
            .await
            .expect("create agent");
        let stack = mk_stack(store, "workload").await;
        mk_target(store, agent.id, stack.id).await;
        store.delete_agent(&ADMIN, agent.id).await.expect("delete");

        expect_not_found(store.get_agent(agent.id).await, "agent");
        expect_not_found(store.delete_agent(&ADMIN, agent.id).await, "agent");
        expect_not_found(
            store
                .update_agent(&ADMIN, agent.id, AgentUpdate::default())
                .await,
            "agent",
        );
        expect_not_found(
            store.assign_stack(&ADMIN, agent.id, StackId::new()).await,
            "agent",
        );
        assert!(all_agents(store, AgentFilter::default()).await.is_empty());
        let with_deleted = all_agents(
            store,
            AgentFilter {
                include_deleted: true,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(with_deleted.len(), 1);
        assert!(with_deleted[0].deleted_at.is_some());

        assert_eq!(
            store.find_api_key(key.short_id()).await.expect("find"),
            None
        );
        let keys = store.active_api_keys(KeyOwner::Agent(agent.id)).await;
        assert!(keys.expect("active keys").is_empty());
        let filter = TargetFilter {
            agent_id: Some(agent.id),
            ..Default::default()
        };
        let targets = all(async |p| store.list_agent_targets(&filter, &p).await).await;
        assert_eq!(targets.len(), 1, "targets outlive their agent");
    }

    /// Heartbeats: the latest `at` wins, capabilities replace, unknown and deleted agents
    /// are skipped, and nothing is audited or counted as a registration change.
    pub async fn heartbeats_latest_wins_and_capabilities_replace(store: &dyn Store) {
        let agent = mk_agent(store, "beating").await;
        let quiet = mk_agent(store, "quiet").await;
        let gone = mk_agent(store, "gone").await;
        store.delete_agent(&ADMIN, gone.id).await.expect("delete");
        let audit = all_audit(store).await.len();

        let t0 = Utc::now().trunc_subsecs(3) - chrono::Duration::seconds(60);
        let secs = chrono::Duration::seconds;
        let gpu = Capabilities {
            kubernetes_version: Some("v1.33.2".into()),
            node_count: Some(3),
            allocatable_cpu_millis: Some(12_000),
            allocatable_memory_bytes: Some(48 << 30),
            features: ["gpu".to_owned()].into(),
            extra: [("region".to_owned(), json!("eu-west-1"))].into(),
        };
        let plain = Capabilities {
            node_count: Some(5),
            ..Default::default()
        };
        let beat = |agent_id, at, capabilities| Heartbeat {
            agent_id,
            at,
            capabilities,
        };
        store
            .record_heartbeats(&[
                beat(agent.id, t0, Some(gpu.clone())),
                beat(agent.id, t0 + secs(10), None),
                beat(AgentId::new(), t0, None),
                beat(gone.id, t0, Some(gpu.clone())),
            ])
            .await
            .expect("heartbeats");
        let got = store.get_agent(agent.id).await.expect("get");
        assert_eq!(got.last_heartbeat, Some(t0 + secs(10)));
        assert_eq!(got.capabilities, gpu);
        assert_eq!(
            got.updated_at, agent.updated_at,
            "heartbeats are not registration changes"
        );

        store
            .record_heartbeats(&[beat(agent.id, t0 + secs(5), None)])
            .await
            .expect("late heartbeat");
        let got = store.get_agent(agent.id).await.expect("get");
        assert_eq!(
            got.last_heartbeat,
            Some(t0 + secs(10)),
            "an older beat moved time back"
        );
        store
            .record_heartbeats(&[beat(agent.id, t0 + secs(5), Some(plain.clone()))])
            .await
            .expect("late heartbeat with capabilities");
        let got = store.get_agent(agent.id).await.expect("get");
        assert_eq!(got.last_heartbeat, Some(t0 + secs(10)));
        assert_eq!(
            got.capabilities, gpu,
            "a late beat's capabilities replaced newer ones"
        );

        store
            .record_heartbeats(&[beat(agent.id, t0 + secs(20), Some(plain.clone()))])
            .await
            .expect("heartbeat");
        let got = store.get_agent(agent.id).await.expect("get");
        assert_eq!(got.last_heartbeat, Some(t0 + secs(20)));
        assert_eq!(
            got.capabilities, plain,
            "capabilities replace, they do not merge"
        );

        let quiet = store.get_agent(quiet.id).await.expect("get");
        assert_eq!(quiet.last_heartbeat, None);
        assert_eq!(
            all_audit(store).await.len(),
            audit,
            "heartbeats are not audited"
        );
    }
);
