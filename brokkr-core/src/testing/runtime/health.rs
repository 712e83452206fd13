//! Workload health: only the agent reports, only for stacks in its target state; admin
//! and the stack's owner read it.

use super::callers::{Answer, World, assert_no_mismatches, matrix, mk_owned_stack};
use crate::health::{HealthStatus, ObjectHealth};
use crate::runtime::{ControlPlane, Error};
use crate::testing::conformance::mk_object;
use crate::{Actor, DeploymentObjectId, NewHealthReport, ObjectKey, store};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

fn resource(name: &str, status: HealthStatus) -> ObjectHealth {
    ObjectHealth {
        object: ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: name.into(),
        },
        status,
        reason: None,
        message: None,
    }
}

fn report(w: &World, object: DeploymentObjectId, status: HealthStatus) -> NewHealthReport {
    NewHealthReport {
        agent_id: w.agent,
        deployment_object_id: object,
        resources: vec![resource("web", status)],
        summary: None,
    }
}

fn is_not_found<T>(result: &crate::runtime::Result<T>) -> bool {
    matches!(result, Err(Error::Store(store::Error::NotFound { .. })))
}

crate::runtime_cases! {
    async fn health_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let mut bad = Vec::new();
        bad.extend(matrix("record_health", [NO, NO, OK, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move {
                cp.record_health(&w.actor(who, w.agent), report(&w, w.object, HealthStatus::Healthy))
                    .await
            }
        }).await);
        bad.extend(matrix("stack_health", [OK, OK, NO, NO, OK, NF], |who| {
            let cp = cp.clone();
            async move { cp.stack_health(&w.actor(who, w.agent), w.stack).await }
        }).await);
        assert_no_mismatches(bad);
    }

    async fn reports_are_refused_for_stacks_not_in_the_target_state(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Agent(w.agent);
        // A stack the agent is not responsible for: its object is as good as unknown.
        let foreign = mk_owned_stack(&cp, w.generator, "foreign").await;
        let foreign_object = mk_object(cp.store().as_ref(), foreign, "1").await.id;
        let refused = cp.record_health(&me, report(&w, foreign_object, HealthStatus::Failed)).await;
        assert!(is_not_found(&refused), "{refused:?}");
        let unknown = cp
            .record_health(&me, report(&w, DeploymentObjectId::new(), HealthStatus::Failed))
            .await;
        assert!(is_not_found(&unknown), "{unknown:?}");
        let read = cp.stack_health(&Actor::Admin, foreign).await.unwrap();
        assert!(read.reports.is_empty() && read.status.is_none(), "nothing stored: {read:?}");

        // Sizes and coordinates are checked first, whatever the report names.
        let mut oversized = report(&w, foreign_object, HealthStatus::Healthy);
        oversized.summary = Some("x".repeat(crate::MAX_DESCRIPTION_LEN + 1));
        let err = cp.record_health(&me, oversized).await.unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::Invalid(_))), "{err:?}");
        let mut nameless = report(&w, w.object, HealthStatus::Healthy);
        nameless.resources.push(resource("", HealthStatus::Healthy));
        let err = cp.record_health(&me, nameless).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { code: "validation_failed", .. }), "{err:?}");

        // The object in the target state, then an older object of the same stack while
        // the agent catches up: both accepted, the later replacing the earlier.
        cp.record_health(&me, report(&w, w.object, HealthStatus::Degraded)).await.unwrap();
        let newer = mk_object(cp.store().as_ref(), w.stack, "2").await.id;
        cp.target_state(&me, w.agent).await.unwrap();
        let stored = cp.record_health(&me, report(&w, w.object, HealthStatus::Healthy)).await.unwrap();
        assert_eq!(stored.deployment_object_id, w.object);
        cp.record_health(&me, report(&w, newer, HealthStatus::Degraded)).await.unwrap();

        let health = cp.stack_health(&Actor::Generator(w.generator), w.stack).await.unwrap();
        assert_eq!(health.reports.len(), 1, "one report per agent and stack");
        assert_eq!(health.status, Some(HealthStatus::Degraded));
        assert_eq!(health.reports[0].deployment_object_id, newer);

        // A stack being removed is still the agent's to report on; its history stays
        // readable by its owner after deletion.
        cp.unassign_target(&Actor::Admin, w.agent, w.stack).await.unwrap();
        cp.record_health(&me, report(&w, newer, HealthStatus::Progressing)).await.unwrap();
        cp.store().delete_stack(&Actor::Admin, w.stack).await.unwrap();
        let health = cp.stack_health(&Actor::Generator(w.generator), w.stack).await.unwrap();
        assert_eq!(health.status, Some(HealthStatus::Progressing));
        let hidden = cp.stack_health(&Actor::Generator(w.other_generator), w.stack).await;
        assert!(is_not_found(&hidden), "{hidden:?}");
    }
}
