//! Stacks: create, list, read, change and delete, with the row rule every operation on
//! a stack shares.
//!
//! Admin and system reach every stack; a generator only the stacks it created (another
//! generator's stack, or an admin's, is `NotFound`, so it never learns the stack
//! exists); agents are `Forbidden`. [`ControlPlane::visible_stack`] applies that rule
//! to a live stack, [`ControlPlane::check_stack_history`] to the history of a stack
//! that may have been deleted: deployment objects stay readable by their owner and
//! admin.

use crate::model::{Actor, DeploymentObject, NewStack, Stack, StackUpdate, description_or_none};
use crate::page::{Page, PageRequest};
use crate::store::StackFilter;
use crate::{GeneratorId, StackId};

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};

impl ControlPlane {
    /// Creates a stack. Admin and system may give it to any generator (or none); a
    /// generator's stacks are always its own, and naming another generator is
    /// `Forbidden`; agents are `Forbidden`. An empty description is none.
    pub async fn create_stack(&self, caller: &Actor, mut new: NewStack) -> Result<Stack> {
        new.generator_id = access::owner_scope(caller, new.generator_id)?;
        new.description = description_or_none(new.description);
        let stack = self.store().create_stack(caller, new).await?;
        // What the stack's first append and placement will check.
        self.inner
            .stack_owners
            .remember(stack.id, stack.generator_id);
        Ok(stack)
    }

    /// Lists stacks, ordered by id. Admin and system see every stack (or one
    /// generator's, with `filter.generator_id`); a generator sees only its own whatever
    /// the filter says, except that naming another generator is `Forbidden`.
    pub async fn list_stacks(
        &self,
        caller: &Actor,
        mut filter: StackFilter,
        page: &PageRequest,
    ) -> Result<Page<Stack>> {
        filter.generator_id = access::owner_scope(caller, filter.generator_id)?;
        Ok(self.store().list_stacks(&filter, page).await?)
    }

    /// A live stack the caller may see.
    pub async fn get_stack(&self, caller: &Actor, id: StackId) -> Result<Stack> {
        self.visible_stack(caller, id).await
    }

    /// Renames or re-describes a stack the caller may see; an empty description
    /// clears it ([`description_or_none`]).
    pub async fn update_stack(
        &self,
        caller: &Actor,
        id: StackId,
        mut update: StackUpdate,
    ) -> Result<Stack> {
        let stack = self.visible_stack(caller, id).await?;
        update.description = update.description.map(description_or_none);
        Ok(self.store().update_stack(caller, stack.id, update).await?)
    }

    /// Soft-deletes a stack the caller may see and appends its deletion marker, so
    /// every agent responsible for it removes its objects; answers the marker. The
    /// history stays readable ([`ControlPlane::list_deployment_objects`]).
    pub async fn delete_stack(&self, caller: &Actor, id: StackId) -> Result<DeploymentObject> {
        self.guarded(super::plan::GuardOptions::default())
            .delete_stack(caller, id)
            .await?
            .done()
    }

    /// Loads a live stack the caller may see (see the [module documentation](self)).
    /// Every operation on a stack, in every runtime module, goes through this, except
    /// appends and new placement policies, which take the shortcut of
    /// [`ControlPlane::check_stack_owner`].
    pub(crate) async fn visible_stack(&self, caller: &Actor, id: StackId) -> Result<Stack> {
        access::require_admin_or_generator(caller)?;
        let stack = self.store().get_stack(id).await?;
        if access::sees_owned_by(caller, stack.generator_id) {
            Ok(stack)
        } else {
            Err(Error::not_found("stack", id))
        }
    }

    /// Checks that the caller may change the stack `id` (append, place), without
    /// reading it when its owner is remembered (owners never change). Whether the
    /// stack is still live is left to the store's write, which refuses a deleted or
    /// missing stack with the same `NotFound`.
    pub(crate) async fn check_stack_owner(&self, caller: &Actor, id: StackId) -> Result<()> {
        access::require_admin_or_generator(caller)?;
        if !matches!(caller, Actor::Generator(_)) {
            return Ok(());
        }
        let owner = match self.inner.stack_owners.get(id) {
            Some(owner) => owner,
            None => {
                let stack = self.store().get_stack(id).await?;
                self.inner.stack_owners.remember(id, stack.generator_id);
                stack.generator_id
            }
        };
        if access::sees_owned_by(caller, owner) {
            Ok(())
        } else {
            Err(Error::not_found("stack", id))
        }
    }

    /// Checks that the caller may read the history (deployment objects, health) of a
    /// stack that is live or soft-deleted: the rule of [`ControlPlane::visible_stack`],
    /// except that a deleted stack's history stays readable by its owner and admin.
    /// A stack that never existed is `NotFound` for a generator here; for admin the
    /// store answers `NotFound` (or an empty history) itself.
    pub(crate) async fn check_stack_history(&self, caller: &Actor, id: StackId) -> Result<()> {
        access::require_admin_or_generator(caller)?;
        let Actor::Generator(me) = *caller else {
            return Ok(());
        };
        if self.owns_stack(me, id).await? {
            Ok(())
        } else {
            Err(Error::not_found("stack", id))
        }
    }

    /// Whether `generator` created the stack `id`, live or soft-deleted: one indexed
    /// lookup.
    async fn owns_stack(&self, generator: GeneratorId, id: StackId) -> Result<bool> {
        let filter = StackFilter {
            id: Some(id),
            generator_id: Some(generator),
            name: None,
            include_deleted: true,
        };
        let found = self
            .store()
            .list_stacks(&filter, &PageRequest::first(1))
            .await?;
        Ok(!found.items.is_empty())
    }
}
