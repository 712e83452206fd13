//! The store conformance suite on [`MemoryStore`].

use brokkr_core::Store;
use brokkr_core::testing::{MemoryStore, StoreFixture};

/// A fresh in-memory store per case.
struct Memory(MemoryStore);

impl StoreFixture for Memory {
    fn store(&self) -> &dyn Store {
        &self.0
    }

    async fn teardown(self) {}
}

async fn memory() -> Option<Memory> {
    Some(Memory(MemoryStore::new()))
}

brokkr_core::store_conformance_tests!(memory);
