//! Stacks and their deployment objects.

use super::state::{now, overfetch, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::{AgentId, DeploymentObjectId, StackId};
use crate::model::{
    Actor, AuditAction, DeploymentObject, ListedDeploymentObject, NewDeploymentObject, NewStack,
    ResourceKind, Stack, StackUpdate, WebhookEvent,
};
use crate::page::{ContentListing, Page, PageRequest};
use crate::store::{Error, Result, StackFilter};

pub(super) fn create_stack(store: &MemoryStore, actor: &Actor, new: NewStack) -> Result<Stack> {
    new.validate()?;
    let mut state = store.state();
    if let Some(generator) = new.generator_id {
        state.live_generator(generator)?;
    }
    state.check_stack_name_free(&new.name, None)?;
    let at = now();
    let stack = Stack {
        id: StackId::new(),
        name: new.name,
        description: new.description,
        generator_id: new.generator_id,
        labels: new.labels,
        annotations: new.annotations,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    };
    state.stacks.insert(stack.id, stack.clone());
    let summary = format!("created stack {:?}", stack.name);
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Stack,
        stack.id,
        summary,
        at,
    );
    Ok(stack)
}

pub(super) fn get_stack(store: &MemoryStore, id: StackId) -> Result<Stack> {
    store.state().live_stack(id).cloned()
}

pub(super) fn list_stacks(
    store: &MemoryStore,
    filter: &StackFilter,
    page: &PageRequest,
) -> Result<Page<Stack>> {
    let state = store.state();
    let rows = state
        .stacks
        .values()
        .filter(|s| filter.include_deleted || s.deleted_at.is_none())
        .filter(|s| {
            filter
                .generator_id
                .is_none_or(|g| s.generator_id == Some(g))
        })
        .filter(|s| filter.name.as_ref().is_none_or(|n| &s.name == n))
        .filter(|s| filter.id.is_none_or(|id| s.id == id))
        .cloned()
        .collect();
    paginate(rows, page, |s| s.id, parse_uuid, |s| s.id.to_string())
}

pub(super) fn update_stack(
    store: &MemoryStore,
    actor: &Actor,
    id: StackId,
    update: StackUpdate,
) -> Result<Stack> {
    update.validate()?;
    let mut state = store.state();
    state.live_stack(id)?;
    if let Some(name) = &update.name {
        state.check_stack_name_free(name, Some(id))?;
    }
    let at = now();
    let stack = state
        .stacks
        .get_mut(&id)
        .expect("checked to be live above, under the same lock");
    if let Some(name) = update.name {
        stack.name = name;
    }
    if let Some(description) = update.description {
        stack.description = description;
    }
    stack.updated_at = at;
    let stack = stack.clone();
    let summary = format!("updated stack {:?}", stack.name);
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Stack,
        id,
        summary,
        at,
    );
    Ok(stack)
}

pub(super) fn delete_stack(
    store: &MemoryStore,
    actor: &Actor,
    id: StackId,
) -> Result<DeploymentObject> {
    let (marker, agents) = store.state().delete_stack(actor, id)?;
    store.publish(agents);
    Ok(marker)
}

pub(super) fn append_deployment_object(
    store: &MemoryStore,
    actor: &Actor,
    new: NewDeploymentObject,
) -> Result<DeploymentObject> {
    let (object, agents) = store.state().append_audited(actor, new)?;
    store.publish(agents);
    Ok(object)
}

pub(super) fn get_deployment_object(
    store: &MemoryStore,
    id: DeploymentObjectId,
) -> Result<DeploymentObject> {
    store.state().object(id).cloned()
}

pub(super) fn list_deployment_objects(
    store: &MemoryStore,
    stack_id: StackId,
    yaml: ContentListing,
    page: &PageRequest,
) -> Result<Page<ListedDeploymentObject>> {
    let state = store.state();
    if !state.stacks.contains_key(&stack_id) {
        return Err(Error::not_found("stack", stack_id));
    }
    let objects: Vec<&DeploymentObject> = state
        .objects
        .values()
        .filter(|o| o.stack_id == stack_id)
        .collect();
    let rows = overfetch(objects, page, |o| o.sequence, |c| c.parse().ok())?;
    let rows = rows
        .into_iter()
        .cloned()
        .map(ListedDeploymentObject::from)
        .map(|o| match yaml {
            ContentListing::Omit => o.without_yaml(),
            ContentListing::Include { .. } => o,
        })
        .collect();
    Ok(yaml.page(rows, page, |o| o.yaml_bytes, |o| o.sequence.to_string()))
}

impl State {
    pub(super) fn check_stack_name_free(&self, name: &str, except: Option<StackId>) -> Result<()> {
        let taken = self
            .stacks
            .values()
            .any(|s| s.deleted_at.is_none() && s.name == name && Some(s.id) != except);
        if taken {
            return Err(Error::Conflict(format!("a stack named {name:?} exists")));
        }
        Ok(())
    }
}

impl State {
    /// Deletes a live stack: marks it, appends its deletion marker, audits. Answers the
    /// marker and the agents to wake.
    pub(super) fn delete_stack(
        &mut self,
        actor: &Actor,
        id: StackId,
    ) -> Result<(DeploymentObject, Vec<AgentId>)> {
        let name = self.live_stack(id)?.name.clone();
        let at = now();
        let stack = self
            .stacks
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        stack.deleted_at = Some(at);
        stack.updated_at = at;
        let new = NewDeploymentObject::deletion_marker(id);
        let effect = self.append_effect(&new)?;
        let marker = self.append(new, at);
        self.emit(WebhookEvent::stack_deleted(&name, (&marker).into(), at));
        let summary = format!(
            "deleted stack {name:?} (deletion marker {})",
            marker.sequence
        );
        self.audit(
            actor,
            AuditAction::Delete,
            ResourceKind::Stack,
            id,
            summary,
            at,
        );
        let woken = self.apply_append_effect(actor, effect, &marker, at);
        Ok((marker, woken))
    }

    /// Appends to a live stack, audits, and does to the stack's rollouts what the
    /// append does (refused, writing nothing, when its policy rejects it). Answers the
    /// object and the agents whose target state changed.
    pub(super) fn append_audited(
        &mut self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<(DeploymentObject, Vec<AgentId>)> {
        let stack_id = new.stack_id();
        let name = self.live_stack(stack_id)?.name.clone();
        let effect = self.append_effect(&new)?;
        let at = now();
        let object = self.append(new, at);
        let what = if object.is_deletion_marker {
            "deletion marker"
        } else {
            "deployment object"
        };
        let summary = format!("appended {what} {} to stack {name:?}", object.sequence);
        self.audit(
            actor,
            AuditAction::Create,
            ResourceKind::DeploymentObject,
            object.id,
            summary,
            at,
        );
        let woken = self.apply_append_effect(actor, effect, &object, at);
        Ok((object, woken))
    }
}
