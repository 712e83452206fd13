//! Deleting what a stack no longer has (prune) or everything it had (remove), only
//! ever from the inventory and only objects that still carry the stack's label.

use brokkr_core::applier::{Result, STACK_LABEL, removal_order};
use brokkr_core::{ObjectKey, StackId};
use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions};

use super::KubeApplier;
use super::discovery::{Found, Lookup};
use super::errors::{is_conflict, is_not_found, object_error};
use super::plan::not_served;

impl KubeApplier {
    /// [`Applier::remove`](brokkr_core::Applier::remove).
    pub(super) async fn remove_all(&self, stack_id: StackId) -> Result<Vec<ObjectKey>> {
        let Some(inventory) = self.inventories.read(stack_id).await? else {
            tracing::debug!(%stack_id, "remove: no inventory, nothing to remove");
            return Ok(Vec::new());
        };
        let mut lookup = Lookup::new(&self.discovery);
        let removed = self
            .prune(stack_id, &inventory.objects, &mut lookup)
            .await?;
        // Last, so that a failure above leaves the inventory to retry from.
        self.inventories.delete(stack_id).await?;
        tracing::info!(%stack_id, removed = removed.len(), "stack removed");
        Ok(removed)
    }

    /// Deletes `objects` in removal order, those of them that still exist and carry
    /// the stack's label; returns the ones deleted.
    pub(super) async fn prune(
        &self,
        stack_id: StackId,
        objects: &[ObjectKey],
        lookup: &mut Lookup<'_>,
    ) -> Result<Vec<ObjectKey>> {
        let mut deleted = Vec::new();
        for key in removal_order(objects) {
            if self.delete_if_ours(stack_id, key, lookup).await? {
                tracing::info!(%stack_id, object = %key, "deleted");
                deleted.push(key.clone());
            }
        }
        Ok(deleted)
    }

    /// Deletes the object at `key` if it exists and is labelled with `stack_id`.
    async fn delete_if_ours(
        &self,
        stack_id: StackId,
        key: &ObjectKey,
        lookup: &mut Lookup<'_>,
    ) -> Result<bool> {
        let kind = match lookup.find(&key.api_version, &key.kind).await? {
            Found::Served(kind) => kind,
            Found::Unknown => {
                tracing::info!(%stack_id, object = %key, "not deleting: its kind is no longer served, so it is gone");
                return Ok(false);
            }
            found => return Err(not_served(key.clone(), found)),
        };
        let api = self.api(&kind, key.namespace.as_deref());
        let Some(live) = api
            .get_opt(&key.name)
            .await
            .map_err(|e| object_error(key, e))?
        else {
            tracing::debug!(%stack_id, object = %key, "already gone");
            return Ok(false);
        };
        let stack = stack_id.to_string();
        if live.labels().get(STACK_LABEL) != Some(&stack) {
            tracing::info!(%stack_id, object = %key, "not deleting: it no longer carries the stack's label");
            return Ok(false);
        }
        // The uid precondition makes sure the object deleted is the one whose label
        // was just checked, not one created under the same name since.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) if is_conflict(&e) => {
                tracing::info!(%stack_id, object = %key, "not deleting: it was replaced while being checked");
                Ok(false)
            }
            Err(e) => Err(object_error(key, e)),
        }
    }
}
