//! API keys and the audit trail.

use chrono::{DateTime, Utc};

use super::state::{now, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::ApiKeyId;
use crate::model::{Actor, ApiKey, AuditAction, AuditRecord, KeyOwner, ResourceKind, StoredKey};
use crate::page::{Page, PageRequest};
use crate::store::{AuditFilter, Error, Result};

pub(super) fn find_api_key(store: &MemoryStore, short_id: &str) -> Result<Option<ApiKey>> {
    let state = store.state();
    Ok(state
        .keys
        .values()
        .find(|k| k.short_id == short_id && k.revoked_at.is_none())
        .cloned())
}

pub(super) fn active_api_keys(store: &MemoryStore, owner: KeyOwner) -> Result<Vec<ApiKey>> {
    let state = store.state();
    Ok(state
        .keys
        .values()
        .filter(|k| k.owner == owner && k.revoked_at.is_none())
        .cloned()
        .collect())
}

pub(super) fn key_revocations(store: &MemoryStore) -> Result<u64> {
    Ok(store.state().key_revocations)
}

pub(super) fn rotate_api_key(
    store: &MemoryStore,
    actor: &Actor,
    owner: KeyOwner,
    key: StoredKey,
) -> Result<ApiKey> {
    let mut state = store.state();
    let whose = match owner {
        KeyOwner::Admin => "the admin".to_owned(),
        KeyOwner::Agent(id) => format!("agent {:?}", state.live_agent(id)?.name),
        KeyOwner::Generator(id) => format!("generator {:?}", state.live_generator(id)?.name),
    };
    state.check_short_id_free(&key)?;
    let at = now();
    state.revoke_keys(owner, at);
    let record = state.insert_key(owner, key, at);
    let summary = format!("issued a new key to {whose} and revoked its previous keys");
    state.audit(
        actor,
        AuditAction::RotateKey,
        ResourceKind::ApiKey,
        record.id,
        summary,
        at,
    );
    Ok(record)
}

pub(super) fn list_audit_records(
    store: &MemoryStore,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditRecord>> {
    let state = store.state();
    let rows = state
        .audit
        .values()
        .filter(|r| filter.actor_kind.is_none_or(|k| r.actor.kind() == k))
        .filter(|r| filter.actor_id.is_none_or(|id| r.actor.id() == Some(id)))
        .filter(|r| filter.action.is_none_or(|a| r.action == a))
        .filter(|r| filter.resource_kind.is_none_or(|k| r.resource_kind == k))
        .filter(|r| filter.resource_id.is_none_or(|id| r.resource_id == id))
        .filter(|r| filter.since.is_none_or(|since| r.created_at >= since))
        .filter(|r| filter.until.is_none_or(|until| r.created_at < until))
        .cloned()
        .collect();
    paginate(rows, page, |r| r.id, parse_uuid, |r| r.id.to_string())
}

impl State {
    /// Short ids are unique across every key record ever issued, revoked or not.
    pub(super) fn check_short_id_free(&self, key: &StoredKey) -> Result<()> {
        if self.keys.values().any(|k| k.short_id == key.short_id) {
            return Err(Error::Conflict(format!(
                "key short id {:?} is taken",
                key.short_id
            )));
        }
        Ok(())
    }

    pub(super) fn insert_key(
        &mut self,
        owner: KeyOwner,
        key: StoredKey,
        at: DateTime<Utc>,
    ) -> ApiKey {
        let record = ApiKey {
            id: ApiKeyId::new(),
            short_id: key.short_id,
            hash: key.hash,
            owner,
            created_at: at,
            revoked_at: None,
        };
        self.keys.insert(record.id, record.clone());
        record
    }

    pub(super) fn revoke_keys(&mut self, owner: KeyOwner, at: DateTime<Utc>) {
        self.key_revocations += 1;
        for key in self.keys.values_mut() {
            if key.owner == owner && key.revoked_at.is_none() {
                key.revoked_at = Some(at);
            }
        }
    }
}
