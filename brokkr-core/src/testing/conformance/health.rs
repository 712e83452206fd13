//! Health reports.

use super::fixtures::{
    ADMIN, mk_agent, mk_health, mk_object, mk_stack, mk_target, new_health, workload,
};
use super::support::{all_audit, expect_invalid, expect_not_found, stack_health};
use crate::health::{HealthStatus, ObjectHealth};
use crate::id::{AgentId, DeploymentObjectId, StackId};
use crate::model::{Actor, MAX_DESCRIPTION_LEN, NewHealthReport};
use crate::store::Store;

cases!(
    /// A report replaces the agent's previous report for the stack, whole: one row per
    /// agent and stack, also when the agent reports an older object of the stack.
    pub async fn health_replaces_the_agents_previous_report(store: &dyn Store) {
        use HealthStatus::{Healthy, Progressing};
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        let v1 = mk_object(store, stack.id, "1").await;
        let v2 = mk_object(store, stack.id, "2").await;
        let mut new = new_health(agent.id, v1.id, vec![workload("web", Progressing)]);
        new.summary = Some("1 of 1 workloads progressing".into());
        let first = store
            .record_health(&Actor::Agent(agent.id), new.clone())
            .await
            .expect("first report");
        assert_eq!(first.agent_id, agent.id);
        assert_eq!(first.stack_id, stack.id);
        assert_eq!(first.deployment_object_id, v1.id);
        assert_eq!(first.status, Progressing);
        assert_eq!(first.summary, new.summary);
        assert_eq!(first.resources, new.resources);
        assert_eq!(stack_health(store, stack.id).await, vec![first.clone()]);

        let second = mk_health(store, agent.id, v2.id, vec![workload("web", Healthy)]).await;
        assert_eq!(second.deployment_object_id, v2.id);
        assert_eq!(second.status, Healthy);
        assert_eq!(second.summary, None, "a report replaces the whole row");
        assert!(second.reported_at >= first.reported_at);
        assert_eq!(stack_health(store, stack.id).await, vec![second]);

        // An agent that has not applied the newest object yet reports the one it runs.
        let lagging = mk_health(store, agent.id, v1.id, Vec::new()).await;
        assert_eq!(lagging.deployment_object_id, v1.id);
        assert_eq!(lagging.status, Healthy, "nothing to watch is healthy");
        assert_eq!(stack_health(store, stack.id).await, vec![lagging]);
    }

    /// A stack's health lists the latest report of every agent, ordered by agent id, and
    /// nothing of other stacks.
    pub async fn health_lists_every_agent_ordered_by_agent_id(store: &dyn Store) {
        use HealthStatus::{Failed, Healthy};
        let a = mk_agent(store, "a").await.id;
        let b = mk_agent(store, "b").await.id;
        let s1 = mk_stack(store, "s1").await.id;
        let s2 = mk_stack(store, "s2").await.id;
        let o1 = mk_object(store, s1, "1").await.id;
        let o2 = mk_object(store, s2, "1").await.id;
        assert!(stack_health(store, s1).await.is_empty());

        // Reported in the reverse of the listing order, whichever agent id is smaller.
        let (first, second) = if a < b { (b, a) } else { (a, b) };
        let r1 = mk_health(store, first, o1, vec![workload("web", Failed)]).await;
        let r2 = mk_health(store, second, o1, vec![workload("web", Healthy)]).await;
        let other = mk_health(store, a, o2, Vec::new()).await;
        assert_eq!(stack_health(store, s1).await, vec![r2, r1]);
        assert_eq!(stack_health(store, s2).await, vec![other]);
    }

    /// A report's status is the worst status of its resources, healthy when it has none.
    pub async fn health_status_is_the_worst_resource_status(store: &dyn Store) {
        use HealthStatus::{Degraded, Failed, Healthy, Progressing};
        let agent = mk_agent(store, "a").await.id;
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        let cases: [(&[HealthStatus], HealthStatus); 5] = [
            (&[], Healthy),
            (&[Healthy, Healthy], Healthy),
            (&[Healthy, Progressing], Progressing),
            (&[Progressing, Degraded, Healthy], Degraded),
            (&[Healthy, Failed, Degraded], Failed),
        ];
        for (statuses, worst) in cases {
            let resources = statuses
                .iter()
                .enumerate()
                .map(|(i, status)| workload(&format!("w{i}"), *status))
                .collect();
            let report = mk_health(store, agent, object, resources).await;
            assert_eq!(report.status, worst, "{statuses:?}");
            assert_eq!(stack_health(store, stack).await[0].status, worst);
        }
    }

    /// A report needs a live agent and an existing deployment object; health of an
    /// unknown stack is `NotFound`. A refused report writes nothing.
    pub async fn health_needs_a_live_agent_a_known_object_and_stack(store: &dyn Store) {
        let agent = mk_agent(store, "a").await.id;
        let gone = mk_agent(store, "gone").await.id;
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        let unknown = AgentId::new();
        expect_not_found(
            store
                .record_health(
                    &Actor::Agent(unknown),
                    new_health(unknown, object, Vec::new()),
                )
                .await,
            "agent",
        );
        store
            .delete_agent(&ADMIN, gone)
            .await
            .expect("delete agent");
        expect_not_found(
            store
                .record_health(&Actor::Agent(gone), new_health(gone, object, Vec::new()))
                .await,
            "agent",
        );
        let missing = DeploymentObjectId::new();
        expect_not_found(
            store
                .record_health(&Actor::Agent(agent), new_health(agent, missing, Vec::new()))
                .await,
            "deployment object",
        );
        expect_not_found(store.stack_health(StackId::new()).await, "stack");
        assert!(stack_health(store, stack).await.is_empty());
    }

    /// Health is observed state, not a change: reports write no audit record.
    pub async fn health_writes_no_audit_record(store: &dyn Store) {
        let agent = mk_agent(store, "a").await.id;
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        let before = all_audit(store).await;
        mk_health(
            store,
            agent,
            object,
            vec![workload("web", HealthStatus::Degraded)],
        )
        .await;
        mk_health(store, agent, object, Vec::new()).await;
        assert_eq!(all_audit(store).await, before);
    }

    /// A deleted stack's health still answers, and its agent may still report on it (it
    /// reports while it removes the stack's objects).
    pub async fn health_of_a_deleted_stack_still_answers(store: &dyn Store) {
        let agent = mk_agent(store, "a").await.id;
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        mk_target(store, agent, stack).await;
        let report = mk_health(
            store,
            agent,
            object,
            vec![workload("web", HealthStatus::Healthy)],
        )
        .await;
        let marker = store.delete_stack(&ADMIN, stack).await.expect("delete");
        assert_eq!(stack_health(store, stack).await, vec![report]);
        let after = mk_health(store, agent, marker.id, Vec::new()).await;
        assert_eq!(after.stack_id, stack);
        assert_eq!(stack_health(store, stack).await, vec![after]);
    }

    /// Too many resources, or an overlong summary, reason or message, is `Invalid` and
    /// writes nothing; a report of exactly the most resources is stored whole.
    pub async fn health_invalid_report_writes_nothing(store: &dyn Store) {
        let agent = mk_agent(store, "a").await.id;
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        let actor = Actor::Agent(agent);
        let healthy = workload("web", HealthStatus::Healthy);
        let too_long = "x".repeat(MAX_DESCRIPTION_LEN + 1);

        let too_many = vec![healthy.clone(); NewHealthReport::MAX_RESOURCES + 1];
        expect_invalid(
            store
                .record_health(&actor, new_health(agent, object, too_many))
                .await,
        );
        let mut long_summary = new_health(agent, object, Vec::new());
        long_summary.summary = Some(too_long.clone());
        expect_invalid(store.record_health(&actor, long_summary).await);
        let long_message = ObjectHealth {
            message: Some(too_long),
            ..healthy.clone()
        };
        expect_invalid(
            store
                .record_health(&actor, new_health(agent, object, vec![long_message]))
                .await,
        );
        assert!(stack_health(store, stack).await.is_empty());

        let most = vec![healthy; NewHealthReport::MAX_RESOURCES];
        mk_health(store, agent, object, most).await;
        assert_eq!(
            stack_health(store, stack).await[0].resources.len(),
            NewHealthReport::MAX_RESOURCES
        );
    }

    /// Many agents reporting health at once: each report gets its own answer, a report
    /// on a missing object or from a deleted agent fails alone, and an agent reporting
    /// twice at once keeps one row, holding one of its two reports.
    pub async fn concurrent_health_reports_are_answered_one_by_one(store: &dyn Store) {
        use HealthStatus::{Healthy, Progressing};
        let stack = mk_stack(store, "s").await;
        let object = mk_object(store, stack.id, "1").await;
        let mut agents = Vec::new();
        for i in 0..8 {
            agents.push(mk_agent(store, &format!("a{i}")).await.id);
        }
        let gone = mk_agent(store, "gone").await.id;
        store
            .delete_agent(&ADMIN, gone)
            .await
            .expect("delete agent");

        let mut reports = vec![new_health(
            agents[0],
            object.id,
            vec![workload("web", Progressing)],
        )];
        for &agent in &agents {
            reports.push(new_health(agent, object.id, vec![workload("web", Healthy)]));
            let missing = DeploymentObjectId::new();
            reports.push(new_health(agent, missing, vec![workload("web", Healthy)]));
        }
        reports.push(new_health(gone, object.id, vec![workload("web", Healthy)]));
        let answers = futures::future::join_all(reports.iter().map(|new| async move {
            let answer = store
                .record_health(&Actor::Agent(new.agent_id), new.clone())
                .await;
            (new, answer)
        }))
        .await;

        for (new, answer) in answers {
            if new.agent_id == gone {
                expect_not_found(answer, "agent");
            } else if new.deployment_object_id != object.id {
                expect_not_found(answer, "deployment object");
            } else {
                let report = answer.expect("a good report is stored");
                assert_eq!((report.agent_id, report.stack_id), (new.agent_id, stack.id));
                assert_eq!(report.resources, new.resources);
            }
        }
        let rows = stack_health(store, stack.id).await;
        let mut reporters: Vec<AgentId> = rows.iter().map(|r| r.agent_id).collect();
        reporters.sort_unstable();
        let mut expected = agents.clone();
        expected.sort_unstable();
        assert_eq!(reporters, expected, "one row per agent");
        let first = rows.iter().find(|r| r.agent_id == agents[0]).expect("row");
        assert!(
            [Progressing, Healthy].contains(&first.status),
            "the row holds one of the agent's reports"
        );
    }
);
