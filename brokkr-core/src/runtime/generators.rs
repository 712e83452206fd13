//! Generators (external systems with their own keys): create, list, read, change,
//! delete, rotate their keys.
//!
//! Admin and system manage generators; a generator may read itself and rotate its own
//! key (another generator is `NotFound` to it); agents are `Forbidden`. A new key is
//! handed out once, in the answer that issues it; only its hash is stored. Issuing,
//! rotating and revoking keys invalidate this control plane's key cache at once
//! (another replica notices within the cache TTL).

use crate::id::GeneratorId;
use crate::model::{
    Actor, Generator, GeneratorUpdate, KeyOwner, NewGenerator, description_or_none,
};
use crate::page::{Page, PageRequest};
use crate::pak::Pak;
use crate::store::GeneratorFilter;

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};

/// What [`ControlPlane::create_generator`] needs; its key is made by the control
/// plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratorSpec {
    /// Unique among live generators.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
}

/// A new generator and its first key, in clear text only here.
#[derive(Debug, Clone)]
pub struct GeneratorWithKey {
    /// The generator.
    pub generator: Generator,
    /// Its key: hand it to the generator now, it cannot be read back.
    pub key: Pak,
}

impl ControlPlane {
    /// Creates a generator and its first key (admin or system).
    pub async fn create_generator(
        &self,
        caller: &Actor,
        spec: GeneratorSpec,
    ) -> Result<GeneratorWithKey> {
        access::require_admin(caller)?;
        let key = Pak::generate();
        let new = NewGenerator {
            name: spec.name,
            description: description_or_none(spec.description),
            key: key.stored(),
        };
        let generator = self.store().create_generator(caller, new).await?;
        // Forget a cached "unknown key" answer for the new short id.
        self.forget_keys(KeyOwner::Generator(generator.id), Some(key.short_id()));
        Ok(GeneratorWithKey { generator, key })
    }

    /// Lists generators, ordered by id (admin or system).
    pub async fn list_generators(
        &self,
        caller: &Actor,
        filter: GeneratorFilter,
        page: &PageRequest,
    ) -> Result<Page<Generator>> {
        access::require_admin(caller)?;
        Ok(self.store().list_generators(&filter, page).await?)
    }

    /// A generator: admin and system any, a generator only itself.
    pub async fn get_generator(&self, caller: &Actor, id: GeneratorId) -> Result<Generator> {
        require_self_or_admin(caller, id)?;
        Ok(self.store().get_generator(id).await?)
    }

    /// Renames or re-describes a generator (admin or system); an empty description
    /// clears it ([`description_or_none`]).
    pub async fn update_generator(
        &self,
        caller: &Actor,
        id: GeneratorId,
        mut update: GeneratorUpdate,
    ) -> Result<Generator> {
        access::require_admin(caller)?;
        update.description = update.description.map(description_or_none);
        Ok(self.store().update_generator(caller, id, update).await?)
    }

    /// Soft-deletes a generator and revokes its keys (admin or system). Its stacks and
    /// templates stay.
    pub async fn delete_generator(&self, caller: &Actor, id: GeneratorId) -> Result<()> {
        access::require_admin(caller)?;
        self.store().delete_generator(caller, id).await?;
        self.forget_keys(KeyOwner::Generator(id), None);
        Ok(())
    }

    /// Issues a new key for a generator and revokes its previous keys: admin and system
    /// for any generator, a generator for itself (its current key stops working at
    /// once on this control plane).
    pub async fn rotate_generator_key(&self, caller: &Actor, id: GeneratorId) -> Result<Pak> {
        require_self_or_admin(caller, id)?;
        self.issue_key(caller, KeyOwner::Generator(id)).await
    }
}

/// Admin and system pass; a generator only for itself (another generator is
/// `NotFound`, so it does not learn it exists); agents are `Forbidden`.
fn require_self_or_admin(caller: &Actor, id: GeneratorId) -> Result<()> {
    access::require_admin_or_generator(caller)?;
    match caller {
        Actor::Generator(me) if *me != id => Err(Error::not_found("generator", id)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_reaches_only_itself() {
        let (me, other) = (GeneratorId::new(), GeneratorId::new());
        assert!(require_self_or_admin(&Actor::Generator(me), me).is_ok());
        assert!(require_self_or_admin(&Actor::Admin, other).is_ok());
        assert!(require_self_or_admin(&Actor::System, other).is_ok());
        let err = require_self_or_admin(&Actor::Generator(me), other).unwrap_err();
        assert!(matches!(
            err,
            Error::Store(crate::store::Error::NotFound { .. })
        ));
        let agent = Actor::Agent(crate::AgentId::new());
        let err = require_self_or_admin(&agent, me).unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)));
    }
}
