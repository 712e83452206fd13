//! The state helpers every area uses: the clock, liveness checks, the audit trail,
//! appending deployment objects, and keyset pagination.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};

use super::{State, TemplateRow};
use crate::id::{AgentId, DeploymentObjectId, GeneratorId, StackId, TemplateId};
use crate::model::{
    Actor, Agent, AuditAction, AuditRecord, DeploymentObject, Generator, NewDeploymentObject,
    ResourceKind, Stack, WebhookEvent,
};
use crate::page::{Order, Page, PageRequest};
use crate::store::{Error, Result};

/// The current time at the precision PostgreSQL stores.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl State {
    pub(super) fn audit(
        &mut self,
        actor: &Actor,
        action: AuditAction,
        resource_kind: ResourceKind,
        resource_id: impl Into<uuid::Uuid>,
        summary: String,
        at: DateTime<Utc>,
    ) {
        let record = AuditRecord::new(
            *actor,
            action,
            resource_kind,
            resource_id.into(),
            summary,
            at,
        );
        self.unsealed.insert(record.id);
        self.audit.insert(record.id, record);
    }

    pub(super) fn live_stack(&self, id: StackId) -> Result<&Stack> {
        self.stacks
            .get(&id)
            .filter(|s| s.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("stack", id))
    }

    pub(super) fn live_agent(&self, id: AgentId) -> Result<&Agent> {
        self.agents
            .get(&id)
            .filter(|a| a.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("agent", id))
    }

    pub(super) fn live_generator(&self, id: GeneratorId) -> Result<&Generator> {
        self.generators
            .get(&id)
            .filter(|g| g.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("generator", id))
    }

    pub(super) fn live_template(&self, id: TemplateId) -> Result<&TemplateRow> {
        self.templates
            .get(&id)
            .filter(|t| t.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("template", id))
    }

    /// Every agent with a target (active or awaiting removal) on `stack`.
    pub(super) fn agents_targeting(&self, stack: StackId) -> Vec<AgentId> {
        self.targets
            .values()
            .filter(|t| t.stack_id == stack)
            .map(|t| t.agent_id)
            .collect()
    }

    /// Marks a live target removed, as `unassign_stack` does: never sent anything of
    /// the stack (no release, no pin), the agent has nothing to remove and the target
    /// goes at once.
    pub(super) fn remove_target(
        &mut self,
        agent_id: AgentId,
        stack_id: StackId,
        at: DateTime<Utc>,
    ) {
        if !self.rollouts.ever_sent(agent_id, stack_id) {
            self.targets.remove(&(agent_id, stack_id));
        } else if let Some(target) = self.targets.get_mut(&(agent_id, stack_id)) {
            target.removed_at = Some(at);
        }
    }

    pub(super) fn append(
        &mut self,
        new: NewDeploymentObject,
        at: DateTime<Utc>,
    ) -> DeploymentObject {
        self.last_sequence += 1;
        let items = new.items().to_vec();
        let object = DeploymentObject {
            id: DeploymentObjectId::new(),
            stack_id: new.stack_id(),
            sequence: self.last_sequence,
            yaml_content: new.yaml_content().to_owned(),
            yaml_checksum: new.yaml_checksum().to_owned(),
            is_deletion_marker: new.is_deletion_marker(),
            provenance: new.provenance().cloned(),
            created_at: at,
        };
        self.objects.insert(object.sequence, object.clone());
        self.object_sequences.insert(object.id, object.sequence);
        self.items.insert(object.id, items);
        self.latest_sequence
            .insert(object.stack_id, object.sequence);
        self.emit(WebhookEvent::deployment_object_created(
            (&object).into(),
            at,
        ));
        object
    }

    pub(super) fn object(&self, id: DeploymentObjectId) -> Result<&DeploymentObject> {
        self.object_sequences
            .get(&id)
            .and_then(|seq| self.objects.get(seq))
            .ok_or_else(|| Error::not_found("deployment object", id))
    }
}

/// Keyset pagination over `rows` sorted ascending by `key`: honours the cursor and the
/// order, and overfetches one row to know whether a next page exists.
pub(super) fn paginate<T, K: Ord>(
    rows: Vec<T>,
    page: &PageRequest,
    key: impl Fn(&T) -> K,
    parse: impl Fn(&str) -> Option<K>,
    format: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let rows = overfetch(rows, page, key, parse)?;
    Ok(Page::from_overfetch(rows, page.effective_limit(), format))
}

/// The rows of a page and one more, if there is one: sorted by `key` in the page's
/// order, after its cursor.
pub(super) fn overfetch<T, K: Ord>(
    mut rows: Vec<T>,
    page: &PageRequest,
    key: impl Fn(&T) -> K,
    parse: impl Fn(&str) -> Option<K>,
) -> Result<Vec<T>> {
    let limit = page.effective_limit();
    let after = match &page.cursor {
        Some(cursor) => {
            Some(parse(&cursor.0).ok_or_else(|| Error::InvalidCursor(cursor.0.clone()))?)
        }
        None => None,
    };
    rows.sort_by_key(|row| key(row));
    if page.order == Order::Descending {
        rows.reverse();
    }
    Ok(rows
        .into_iter()
        .filter(|row| match (&after, page.order) {
            (None, _) => true,
            (Some(after), Order::Ascending) => key(row) > *after,
            (Some(after), Order::Descending) => key(row) < *after,
        })
        .take(limit as usize + 1)
        .collect())
}

pub(super) fn parse_uuid<I: From<uuid::Uuid>>(text: &str) -> Option<I> {
    uuid::Uuid::from_str(text).ok().map(I::from)
}
