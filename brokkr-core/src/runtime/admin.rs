//! Keys and the audit log: the admin key's rotation, key issuance shared by every key
//! owner, and the audit log's listing.

use crate::model::{Actor, AuditRecord, KeyOwner};
use crate::page::{Page, PageRequest};
use crate::pak::Pak;
use crate::store::AuditFilter;

use super::ControlPlane;
use super::access;
use super::error::Result;

impl ControlPlane {
    /// Lists audit records, oldest first unless `page` says otherwise (admin or
    /// system). Every change made through the control plane leaves exactly one
    /// record, written in the same transaction as the change.
    pub async fn list_audit_records(
        &self,
        caller: &Actor,
        filter: AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        access::require_admin(caller)?;
        Ok(self.store().list_audit_records(&filter, page).await?)
    }

    /// Issues a new admin key and revokes the previous ones (admin or system): the old
    /// key stops working at once on this control plane, and within the key cache TTL
    /// on other replicas. The key is in this answer only.
    pub async fn rotate_admin_key(&self, caller: &Actor) -> Result<Pak> {
        access::require_admin(caller)?;
        self.issue_key(caller, KeyOwner::Admin).await
    }

    /// Stores a fresh key for `owner` in place of its previous keys and forgets the
    /// cached records of both, so the old key is refused and the new one accepted at
    /// once on this control plane. The caller's right to do this is checked by the
    /// operation that calls it.
    pub(crate) async fn issue_key(&self, caller: &Actor, owner: KeyOwner) -> Result<Pak> {
        let key = Pak::generate();
        self.store()
            .rotate_api_key(caller, owner, key.stored())
            .await?;
        self.forget_keys(owner, Some(key.short_id()));
        Ok(key)
    }
}
