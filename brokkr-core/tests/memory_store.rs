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

/// The runtime behaviour suite on [`MemoryStore`].
mod runtime {
    use std::sync::Arc;

    use brokkr_core::Store;
    use brokkr_core::testing::MemoryStore;
    use brokkr_core::testing::runtime::RuntimeFixture;

    struct Memory(Arc<MemoryStore>);

    impl RuntimeFixture for Memory {
        fn store(&self) -> Arc<dyn Store> {
            Arc::clone(&self.0) as Arc<dyn Store>
        }

        async fn teardown(self) {}
    }

    async fn memory() -> Option<Memory> {
        Some(Memory(Arc::new(MemoryStore::new())))
    }

    brokkr_core::runtime_conformance_tests!(memory);
}
