//! Labels and annotations of stacks, agents and templates.

use chrono::{DateTime, Utc};

use super::state::now;
use super::{MemoryStore, State};
use crate::metadata::{Labels, validate_key};
use crate::model::{Actor, AuditAction, MetadataField, MetadataTarget, ResourceKind};
use crate::store::{Error, Result};

pub(super) fn put_metadata(
    store: &MemoryStore,
    actor: &Actor,
    target: MetadataTarget,
    field: MetadataField,
    key: &str,
    value: &str,
) -> Result<Labels> {
    field.validate_entry(key, value)?;
    let mut state = store.state();
    let at = now();
    let slot = state.metadata_map(target, field)?;
    let mut map = slot.map.clone();
    map.insert(key.to_owned(), value.to_owned());
    field.validate_map(&map)?;
    *slot.map = map;
    *slot.updated_at = at;
    let map = slot.map.clone();
    let (kind, id, what) = metadata_resource(target);
    let summary = format!("set {} {key:?} on {what} {id}", field_name(field));
    state.audit(actor, AuditAction::SetMetadata, kind, id, summary, at);
    Ok(map)
}

pub(super) fn remove_metadata(
    store: &MemoryStore,
    actor: &Actor,
    target: MetadataTarget,
    field: MetadataField,
    key: &str,
) -> Result<Labels> {
    validate_key(key)?;
    let mut state = store.state();
    let at = now();
    let slot = state.metadata_map(target, field)?;
    if slot.map.remove(key).is_none() {
        return Err(Error::not_found(field_name(field), key));
    }
    *slot.updated_at = at;
    let map = slot.map.clone();
    let (kind, id, what) = metadata_resource(target);
    let summary = format!("removed {} {key:?} from {what} {id}", field_name(field));
    state.audit(actor, AuditAction::RemoveMetadata, kind, id, summary, at);
    Ok(map)
}

impl State {
    pub(super) fn metadata_map(
        &mut self,
        target: MetadataTarget,
        field: MetadataField,
    ) -> Result<MetadataSlot<'_>> {
        let (maps, updated_at) = match target {
            MetadataTarget::Stack(id) => {
                let s = self
                    .stacks
                    .get_mut(&id)
                    .filter(|s| s.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found("stack", id))?;
                ((&mut s.labels, &mut s.annotations), &mut s.updated_at)
            }
            MetadataTarget::Agent(id) => {
                let a = self
                    .agents
                    .get_mut(&id)
                    .filter(|a| a.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found("agent", id))?;
                ((&mut a.labels, &mut a.annotations), &mut a.updated_at)
            }
            MetadataTarget::Template(id) => {
                let t = self
                    .templates
                    .get_mut(&id)
                    .filter(|t| t.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found("template", id))?;
                ((&mut t.labels, &mut t.annotations), &mut t.updated_at)
            }
        };
        let map = match field {
            MetadataField::Labels => maps.0,
            MetadataField::Annotations => maps.1,
        };
        Ok(MetadataSlot { map, updated_at })
    }
}

/// One label or annotation map of a live resource, and the resource's `updated_at`.
pub(super) struct MetadataSlot<'a> {
    map: &'a mut Labels,
    updated_at: &'a mut DateTime<Utc>,
}

pub(super) fn metadata_resource(
    target: MetadataTarget,
) -> (ResourceKind, uuid::Uuid, &'static str) {
    match target {
        MetadataTarget::Stack(id) => (ResourceKind::Stack, id.0, "stack"),
        MetadataTarget::Agent(id) => (ResourceKind::Agent, id.0, "agent"),
        MetadataTarget::Template(id) => (ResourceKind::Template, id.0, "template"),
    }
}

pub(super) fn field_name(field: MetadataField) -> &'static str {
    match field {
        MetadataField::Labels => "label",
        MetadataField::Annotations => "annotation",
    }
}
