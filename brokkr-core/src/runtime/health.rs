//! Workload health: agents report it, admin and the stack's owner read it.
//!
//! A report replaces the agent's previous one for the stack, so the store holds one row
//! per agent and stack and reading a stack's health costs one query whatever its
//! history. Only the agent itself reports, and only about a deployment object of a
//! stack in its target state (to apply or to remove), checked against the cached target
//! state: the usual report, naming the object that state holds, costs no query. Another
//! stack's object is `NotFound`, so the agent does not learn it exists. Like heartbeats,
//! reports are observed state and write no audit record.

use crate::health::{HealthStatus, ObjectHealth};
use crate::model::{Actor, HealthReport, MAX_NAME_LEN, NewHealthReport};
use crate::{AgentId, DeploymentObjectId, StackId};

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};

/// A stack's health: the latest report of every agent that reported on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackHealth {
    /// The stack.
    pub stack_id: StackId,
    /// The worst status over the agents' reports; `None` when no agent reported.
    pub status: Option<HealthStatus>,
    /// One report per agent, ordered by agent id.
    pub reports: Vec<HealthReport>,
}

impl StackHealth {
    /// The health of `stack_id` from its agents' reports.
    pub fn new(stack_id: StackId, reports: Vec<HealthReport>) -> Self {
        Self {
            stack_id,
            status: reports.iter().map(|r| r.status).max(),
            reports,
        }
    }
}

impl ControlPlane {
    /// Records a health report, only from the agent `report.agent_id` itself; it
    /// replaces the agent's previous report for the stack.
    ///
    /// Each resource's `api_version`, `kind`, `namespace` (when set) and `name` must be
    /// 1–[`MAX_NAME_LEN`] characters, and the sizes of
    /// [`NewHealthReport::validate`] hold (`Invalid` otherwise, whatever the report
    /// names). `deployment_object_id` must be an object of a stack in the agent's
    /// target state (`NotFound` otherwise); an older object of such a stack is accepted
    /// at the cost of one lookup.
    pub async fn record_health(
        &self,
        caller: &Actor,
        report: NewHealthReport,
    ) -> Result<HealthReport> {
        access::require_agent(caller, report.agent_id)?;
        check_coordinates(&report.resources)?;
        // Sizes before ownership, so an oversized report is refused as such.
        report.validate()?;
        self.require_own_object(report.agent_id, report.deployment_object_id)
            .await?;
        let stored = self.store().record_health(caller, report).await?;
        // A replacement reporting healthy may release an agent leaving the stack.
        self.note_health(&stored);
        Ok(stored)
    }

    /// The latest report of every agent on a stack, live or deleted (admin, system, or
    /// the generator owning the stack; another generator's stack is `NotFound`).
    pub async fn stack_health(&self, caller: &Actor, stack: StackId) -> Result<StackHealth> {
        self.check_stack_history(caller, stack).await?;
        let reports = self.store().stack_health(stack).await?;
        Ok(StackHealth::new(stack, reports))
    }

    /// `NotFound` unless `object` belongs to a stack in the agent's target state (read
    /// from the cache: the usual report costs no query).
    pub(super) async fn require_own_object(
        &self,
        agent: AgentId,
        object: DeploymentObjectId,
    ) -> Result<()> {
        let targets = self.target_states().get(self.store(), agent).await?;
        let entries = &targets.state.entries;
        if entries.iter().any(|e| e.deployment_object.id == object) {
            return Ok(());
        }
        let stack_id = self.store().get_deployment_object(object).await?.stack_id;
        if entries.iter().any(|e| e.stack_id == stack_id) {
            Ok(())
        } else {
            Err(Error::not_found("deployment object", object))
        }
    }
}

/// `Invalid` unless every resource names its object with sane coordinates.
fn check_coordinates(resources: &[ObjectHealth]) -> Result<()> {
    for resource in resources {
        let key = &resource.object;
        let fields = [
            ("api_version", Some(&key.api_version)),
            ("kind", Some(&key.kind)),
            ("namespace", key.namespace.as_ref()),
            ("name", Some(&key.name)),
        ];
        for (field, value) in fields {
            if value.is_some_and(|v| v.is_empty() || v.chars().count() > MAX_NAME_LEN) {
                return Err(Error::invalid(
                    "validation_failed",
                    format!("{field} of a resource must be 1-{MAX_NAME_LEN} characters"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::ObjectKey;

    fn resource(edit: impl FnOnce(&mut ObjectKey)) -> ObjectHealth {
        let mut object = ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: "web".into(),
        };
        edit(&mut object);
        ObjectHealth {
            object,
            status: HealthStatus::Degraded,
            reason: Some("UnavailableReplicas".into()),
            message: None,
        }
    }

    #[test]
    fn resources_need_sane_coordinates() {
        assert!(check_coordinates(&[resource(|_| {}), resource(|k| k.namespace = None)]).is_ok());
        for bad in [
            resource(|k| k.name = String::new()),
            resource(|k| k.name = "x".repeat(MAX_NAME_LEN + 1)),
            resource(|k| k.namespace = Some(String::new())),
            resource(|k| k.kind = String::new()),
        ] {
            assert!(matches!(
                check_coordinates(&[resource(|_| {}), bad]),
                Err(Error::Invalid {
                    code: "validation_failed",
                    ..
                })
            ));
        }
    }

    #[test]
    fn stack_status_is_the_worst_report_or_absent() {
        let stack = StackId::new();
        assert_eq!(StackHealth::new(stack, Vec::new()).status, None);
        let report = |status| HealthReport {
            agent_id: AgentId::new(),
            stack_id: stack,
            deployment_object_id: DeploymentObjectId::new(),
            status,
            summary: None,
            resources: Vec::new(),
            reported_at: Utc::now(),
        };
        let health = StackHealth::new(
            stack,
            vec![
                report(HealthStatus::Healthy),
                report(HealthStatus::Degraded),
            ],
        );
        assert_eq!(health.status, Some(HealthStatus::Degraded));
    }
}
