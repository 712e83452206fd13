//! The applier conformance suite on [`MemoryApplier`], the simulated cluster.

use async_trait::async_trait;
use brokkr_core::Applier;
use brokkr_core::manifest::{Manifest, ObjectKey};
use brokkr_core::testing::{ApplierFixture, MemoryApplier, merge_patch};
use serde_json::Value;

/// A fresh simulated cluster per case.
struct Memory(MemoryApplier);

#[async_trait]
impl ApplierFixture for Memory {
    fn applier(&self) -> &dyn Applier {
        &self.0
    }

    async fn create_foreign(&self, object: &Manifest) {
        self.0.create_unmanaged(object);
    }

    async fn get(&self, key: &ObjectKey) -> Option<Value> {
        self.0.get(key)
    }

    async fn edit_by_hand(&self, key: &ObjectKey, patch: &Value) {
        self.0.edit(key, |live| merge_patch(live, patch));
    }

    async fn delete_by_hand(&self, key: &ObjectKey) {
        self.0.delete_by_hand(key);
    }
}

async fn memory() -> Option<Memory> {
    let cluster = MemoryApplier::new();
    // As a real API server does (and the suite's immutable-field case relies on).
    cluster.make_immutable("Job", "spec.template");
    Some(Memory(cluster))
}

brokkr_core::applier_conformance_tests!(memory);
