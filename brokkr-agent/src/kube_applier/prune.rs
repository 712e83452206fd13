//! Letting go of objects: what a stack no longer has (prune) or everything it had
//! (remove), only ever from the inventory and only objects that still carry the
//! stack's label.
//!
//! What becomes of each object is [`disposal`]'s decision: deleted when Brokkr created
//! it, released (its Brokkr label and annotations removed with a JSON merge patch,
//! everything else left alone) when it was adopted or is one of the cluster's own
//! namespaces. Deletion goes tier by tier ([`removal_tiers`]: custom resources, the
//! rest, CRDs, Namespaces), and each tier is waited for until its objects are gone, so
//! an operator is still there to clear its custom resources' finalizers and a
//! Namespace goes only once its contents have. What outlives
//! [`deletion_timeout`](super::KubeApplierOptions::deletion_timeout) fails the
//! operation with `StillTerminating`, naming it.

use std::collections::HashSet;
use std::time::Duration;

use brokkr_core::applier::{
    CHECKSUM_ANNOTATION, DEPLOYMENT_OBJECT_ANNOTATION, Disposal, Error, FIELD_MANAGER, Result,
    STACK_LABEL, disposal, removal_tiers,
};
use brokkr_core::{ObjectKey, StackId};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::time::Instant;

use super::KubeApplier;
use super::discovery::{Found, Lookup};
use super::errors::{is_conflict, is_not_found, is_unserved, object_error};
use super::plan::not_served;

/// First and longest pause between two checks that deleted objects are gone.
const FIRST_POLL: Duration = Duration::from_millis(50);
const LONGEST_POLL: Duration = Duration::from_secs(1);

/// An object whose deletion was asked for, to wait for.
pub(super) struct Deleting {
    api: Api<DynamicObject>,
    key: ObjectKey,
    /// The uid deleted: an object created under the same name since is not it.
    uid: Option<String>,
}

impl Deleting {
    pub(super) fn new(api: Api<DynamicObject>, key: ObjectKey, uid: Option<String>) -> Self {
        Self { api, key, uid }
    }

    fn boxed(api: Api<DynamicObject>, key: ObjectKey, uid: Option<String>) -> Box<Self> {
        Box::new(Self::new(api, key, uid))
    }
}

/// What [`KubeApplier::dispose`] did with one object.
enum Outcome {
    Deleted(Box<Deleting>),
    Released,
    /// Gone already, or no longer the stack's.
    Untouched,
}

impl KubeApplier {
    /// [`Applier::remove`](brokkr_core::Applier::remove).
    pub(super) async fn remove_all(&self, stack_id: StackId) -> Result<Vec<ObjectKey>> {
        let Some(inventory) = self.inventories.read(stack_id).await? else {
            tracing::debug!(%stack_id, "remove: no inventory, nothing to remove");
            return Ok(Vec::new());
        };
        let mut lookup = Lookup::new(&self.discovery);
        let removed = self
            .prune(
                stack_id,
                &inventory.objects,
                &inventory.adopted,
                &mut lookup,
            )
            .await?;
        // Last, so that a failure above leaves the inventory to retry from.
        self.inventories.delete(stack_id).await?;
        tracing::info!(%stack_id, removed = removed.len(), "stack removed");
        Ok(removed)
    }

    /// Lets go of `objects` tier by tier, waiting for each tier's deletions; returns
    /// the objects deleted or released. `adopted` lists the ones Brokkr did not create.
    pub(super) async fn prune(
        &self,
        stack_id: StackId,
        objects: &[ObjectKey],
        adopted: &[ObjectKey],
        lookup: &mut Lookup<'_>,
    ) -> Result<Vec<ObjectKey>> {
        let adopted: HashSet<&ObjectKey> = adopted.iter().collect();
        let mut done = Vec::new();
        for tier in removal_tiers(objects) {
            let mut deleting = Vec::new();
            for key in tier {
                match self
                    .dispose(stack_id, key, adopted.contains(key), lookup)
                    .await?
                {
                    Outcome::Deleted(target) => {
                        tracing::info!(%stack_id, object = %key, "deleted");
                        deleting.push(*target);
                        done.push(key.clone());
                    }
                    Outcome::Released => {
                        tracing::info!(%stack_id, object = %key, "released: Brokkr's label and annotations removed, the object kept");
                        done.push(key.clone());
                    }
                    Outcome::Untouched => {}
                }
            }
            self.wait_gone(deleting).await?;
        }
        Ok(done)
    }

    /// Deletes or releases the object at `key` if it exists and is labelled with
    /// `stack_id`.
    async fn dispose(
        &self,
        stack_id: StackId,
        key: &ObjectKey,
        adopted: bool,
        lookup: &mut Lookup<'_>,
    ) -> Result<Outcome> {
        let mut refreshed = false;
        let (api, live) = loop {
            let kind = match lookup.find_object(key).await? {
                Found::Served(kind) => kind,
                Found::Unknown => {
                    tracing::info!(%stack_id, object = %key, "not deleting: its kind is no longer served, so it is gone");
                    return Ok(Outcome::Untouched);
                }
                found => return Err(not_served(key.clone(), found)),
            };
            let api = self.api(&kind, key.namespace.as_deref());
            match api.get(&key.name).await {
                Ok(live) => break (api, live),
                // The version the cache had is no longer served (a CRD version set to
                // `served: false`), though the object may well exist at another: a
                // 404 for the URL is not "gone".
                Err(e) if is_unserved(&e) && !refreshed => {
                    tracing::info!(%stack_id, object = %key, "the server no longer serves the version the discovery cache had; refreshing");
                    lookup.refresh().await?;
                    refreshed = true;
                }
                Err(e) if is_not_found(&e) && !is_unserved(&e) => {
                    tracing::debug!(%stack_id, object = %key, "already gone");
                    return Ok(Outcome::Untouched);
                }
                Err(e) => return Err(object_error(key, e)),
            }
        };
        let stack = stack_id.to_string();
        if live.labels().get(STACK_LABEL) != Some(&stack) {
            tracing::info!(%stack_id, object = %key, "not touching: it no longer carries the stack's label");
            return Ok(Outcome::Untouched);
        }
        if disposal(key, adopted) == Disposal::Release {
            release(&api, key).await?;
            return Ok(Outcome::Released);
        }
        if live.metadata.deletion_timestamp.is_some() {
            // Deleted before (an earlier attempt); only its finalizers are left to wait for.
            return Ok(Outcome::Deleted(Deleting::boxed(
                api,
                key.clone(),
                live.uid(),
            )));
        }
        match delete_exactly(&api, key, live.uid()).await? {
            true => Ok(Outcome::Deleted(Deleting::boxed(
                api,
                key.clone(),
                live.uid(),
            ))),
            false => {
                tracing::info!(%stack_id, object = %key, "not deleting: it was replaced or deleted while being checked");
                Ok(Outcome::Untouched)
            }
        }
    }

    /// Waits until every object of `deleting` is gone, within the deletion timeout;
    /// fails naming those still there.
    pub(super) async fn wait_gone(&self, mut deleting: Vec<Deleting>) -> Result<()> {
        let timeout = self.options.deletion_timeout;
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_POLL;
        loop {
            let mut remaining = Vec::with_capacity(deleting.len());
            for target in deleting {
                let live = target
                    .api
                    .get_opt(&target.key.name)
                    .await
                    .map_err(|e| object_error(&target.key, e))?;
                if live.is_some_and(|live| live.uid() == target.uid) {
                    remaining.push(target);
                }
            }
            if remaining.is_empty() {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err(Error::StillTerminating {
                    objects: remaining.into_iter().map(|t| t.key).collect(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_POLL);
            deleting = remaining;
        }
    }
}

/// Deletes the object at `key` if its uid is still `uid` (the precondition makes sure
/// the object deleted is the one just checked, not one created under the same name
/// since). Tells whether a deletion was asked for.
pub(super) async fn delete_exactly(
    api: &Api<DynamicObject>,
    key: &ObjectKey,
    uid: Option<String>,
) -> Result<bool> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&key.name, &params).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(false),
        Err(e) => Err(object_error(key, e)),
    }
}

/// Removes Brokkr's label and annotations from the object at `key`, leaving the rest.
async fn release(api: &Api<DynamicObject>, key: &ObjectKey) -> Result<()> {
    // JSON merge patch: a null deletes the key (RFC 7386).
    let patch = json!({"metadata": {
        "labels": {STACK_LABEL: null},
        "annotations": {DEPLOYMENT_OBJECT_ANNOTATION: null, CHECKSUM_ANNOTATION: null},
    }});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match api.patch(&key.name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(object_error(key, e)),
    }
}
