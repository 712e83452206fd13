//! Test support for `Store` and `Applier` implementations (feature `testing`).
//!
//! - [`MemoryStore`]: an in-memory `Store` for tests, examples and simulations.
//! - [`MemoryApplier`]: a simulated cluster behind the `Applier` trait, for tests,
//!   examples and fleet simulations without a Kubernetes API.
//! - [`conformance`]: the suite every `Store` must pass, one `async fn(&dyn Store)`
//!   per case, expanded into one `#[tokio::test]` per case by
//!   [`store_conformance_tests!`](crate::store_conformance_tests).
//! - [`applier_conformance`]: the suite every `Applier` must pass, one
//!   `async fn(&dyn ApplierFixture)` per case, expanded by
//!   [`applier_conformance_tests!`](crate::applier_conformance_tests).
//!
//! A third-party store proves itself with the same tests ours pass, in a test file:
//!
//! ```no_run
//! use brokkr_core::Store;
//! use brokkr_core::testing::{MemoryStore, StoreFixture};
//!
//! // Wrap your store; `teardown` drops whatever the fixture created.
//! struct Fixture(MemoryStore);
//!
//! impl StoreFixture for Fixture {
//!     fn store(&self) -> &dyn Store {
//!         &self.0
//!     }
//!     async fn teardown(self) {}
//! }
//!
//! // `None` skips the case (after printing why), e.g. when a database is unreachable.
//! async fn make_fixture() -> Option<Fixture> {
//!     Some(Fixture(MemoryStore::new()))
//! }
//!
//! brokkr_core::store_conformance_tests!(make_fixture);
//! # fn main() {}
//! ```

pub mod applier_conformance;
pub mod conformance;
mod memory;
mod memory_applier;
#[cfg(feature = "runtime")]
pub mod runtime;

pub use applier_conformance::{ApplierFixture, merge_patch};
pub use memory::MemoryStore;
pub use memory_applier::MemoryApplier;

use crate::store::Store;

/// A store prepared for one test case, torn down afterwards. Each case gets a fresh,
/// empty store so cases can run in parallel.
#[allow(async_fn_in_trait)] // used generically by the test macro, never as `dyn`
pub trait StoreFixture {
    /// The store under test.
    fn store(&self) -> &dyn Store;

    /// Releases what the fixture created (a temporary database, a file).
    async fn teardown(self);
}
