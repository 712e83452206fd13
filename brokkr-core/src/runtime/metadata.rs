//! Labels and annotations of stacks, agents and templates: one set of operations over
//! a [`MetadataTarget`] and a [`MetadataField`], each answering the whole map after
//! the change.
//!
//! Access: stacks and templates follow their own rules (admin and system, or the
//! owning generator; a global template is changed by admin only); agents: admin and
//! system change them, and an agent may read its own. Keys and values are validated
//! by the store (`Invalid`). An agent's labels and annotations (taints included) steer
//! placement, so changing them tells the placement controller.

use std::collections::BTreeMap;

use crate::model::{Actor, MetadataField, MetadataTarget};

use super::ControlPlane;
use super::access;
use super::error::Result;

impl ControlPlane {
    /// `field`'s map of `target`, for a caller who may read it.
    pub async fn metadata(
        &self,
        caller: &Actor,
        target: MetadataTarget,
        field: MetadataField,
    ) -> Result<BTreeMap<String, String>> {
        let (labels, annotations) = match target {
            MetadataTarget::Stack(id) => {
                let stack = self.visible_stack(caller, id).await?;
                (stack.labels, stack.annotations)
            }
            MetadataTarget::Agent(id) => {
                access::require_agent_or_admin(caller, id)?;
                let agent = self.store().get_agent(id).await?;
                (agent.labels, agent.annotations)
            }
            MetadataTarget::Template(id) => {
                let template = self.visible_template(caller, id).await?;
                (template.labels, template.annotations)
            }
        };
        Ok(match field {
            MetadataField::Labels => labels,
            MetadataField::Annotations => annotations,
        })
    }

    /// Sets `key` to `value` in `field`'s map of `target`; answers the whole map.
    pub async fn put_metadata(
        &self,
        caller: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
        value: &str,
    ) -> Result<BTreeMap<String, String>> {
        self.check_metadata_write(caller, target).await?;
        let map = self
            .store()
            .put_metadata(caller, target, field, key, value)
            .await?;
        self.metadata_changed(target).await;
        Ok(map)
    }

    /// Removes `key` from `field`'s map of `target` (`NotFound` when it is not set);
    /// answers the remaining map.
    pub async fn remove_metadata(
        &self,
        caller: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
    ) -> Result<BTreeMap<String, String>> {
        self.check_metadata_write(caller, target).await?;
        let map = self
            .store()
            .remove_metadata(caller, target, field, key)
            .await?;
        self.metadata_changed(target).await;
        Ok(map)
    }

    async fn check_metadata_write(&self, caller: &Actor, target: MetadataTarget) -> Result<()> {
        match target {
            MetadataTarget::Stack(id) => self.visible_stack(caller, id).await.map(drop),
            MetadataTarget::Agent(_) => access::require_admin(caller),
            MetadataTarget::Template(id) => self.changeable_template(caller, id).await.map(drop),
        }
    }

    /// An agent's labels and annotations steer placement: the placement index and the
    /// decisions they affect are updated before the change call returns, so a read of
    /// a placement right after it shows the change.
    async fn metadata_changed(&self, target: MetadataTarget) {
        if let MetadataTarget::Agent(agent) = target {
            self.follow_agent_change(agent).await;
        }
    }
}
