//! The runtime behaviour suite: what a [`ControlPlane`] does, on any [`Store`].
//!
//! The same cases run on the in-memory store (brokkr-core's tests), SQLite and
//! PostgreSQL (brokkr-store's tests), so access rules, long polls, heartbeats,
//! placement and render-then-append are proven without HTTP, on every backend.
//!
//! Each area is a module whose cases are written once, inside [`runtime_cases!`]:
//! the macro defines the `async fn`s and the area's [`CASES`](target_state::CASES)
//! table from the same text, so a case cannot be written and then forgotten.
//! [`runtime_conformance_tests!`](crate::runtime_conformance_tests) expands into one
//! `#[tokio::test]` per area for a fixture maker; a failing run names every case that
//! failed, each on a fresh store and a freshly started control plane.
//!
//! To add an area: a module here with one `runtime_cases! { ... }` block, and one
//! line in `__brokkr_runtime_areas!`.

pub mod agents;
pub mod callers;
pub mod events;
pub mod eviction;
pub mod generators;
pub mod guard;
pub mod health;
pub mod metadata;
pub mod placement;
pub mod stacks;
pub mod target_state;
pub mod targets;
pub mod templates;
pub mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::{ControlPlane, Settings};
use crate::store::Store;

/// One behaviour case: a name and a function of a started control plane.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's function name.
    pub name: &'static str,
    /// Runs it; panics on failure.
    pub run: fn(ControlPlane) -> Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// A store prepared for one case, torn down afterwards.
pub trait RuntimeFixture: Send + 'static {
    /// The store under test, shared with the control plane.
    fn store(&self) -> Arc<dyn Store>;

    /// Releases what the fixture created (a temporary database, a file).
    fn teardown(self) -> impl Future<Output = ()> + Send;
}

/// Settings that keep cases fast: heartbeats flushed and placement recomputed within
/// tens of milliseconds.
pub fn fast_settings() -> Settings {
    Settings {
        heartbeat_flush_period: Duration::from_millis(20),
        placement_period: Some(Duration::from_millis(200)),
        key_cache_ttl: Duration::from_secs(1),
        ..Settings::default()
    }
}

/// Defines an area's cases and its `CASES` table from one block of `async fn`s, each
/// taking the started `ControlPlane`.
#[macro_export]
macro_rules! runtime_cases {
    ($( $(#[$meta:meta])* async fn $name:ident($cp:ident: $control_plane:ty) $body:block )*) => {
        $(
            $(#[$meta])*
            #[allow(missing_docs)]
            pub async fn $name($cp: $control_plane) $body
        )*

        /// Every case of this area, in the order written.
        pub const CASES: &[$crate::testing::runtime::Case] = &[
            $(
                $crate::testing::runtime::Case {
                    name: ::core::stringify!($name),
                    run: |cp| ::std::boxed::Box::pin($name(cp)),
                },
            )*
        ];
    };
}

/// Runs every case of an area, each on a fresh fixture and a freshly built and
/// started control plane, and panics naming every case that failed. `None` from the
/// maker skips the area (the maker prints why).
pub async fn run_area<F, Fut>(area: &str, cases: &[Case], make: impl Fn() -> Fut)
where
    F: RuntimeFixture,
    Fut: Future<Output = Option<F>>,
{
    let mut failed = Vec::new();
    for case in cases {
        let Some(fixture) = make().await else {
            return;
        };
        let control_plane = ControlPlane::builder(fixture.store())
            .settings(fast_settings())
            .build();
        let background = control_plane.start();
        // A case runs as its own task so a panic is caught and named, and bounded in
        // time so a missed wake-up fails instead of hanging.
        let run = tokio::spawn((case.run)(control_plane));
        let outcome = tokio::time::timeout(Duration::from_secs(60), run).await;
        background.shutdown().await;
        fixture.teardown().await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_panicked)) => failed.push(case.name.to_owned()),
            Err(_) => failed.push(format!("{} (timed out after 60 s)", case.name)),
        }
    }
    assert!(
        failed.is_empty(),
        "{area}: {} of {} runtime cases failed: {}",
        failed.len(),
        cases.len(),
        failed.join(", ")
    );
}

/// Expands the areas for one fixture maker. Not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __brokkr_runtime_areas {
    ($make:path; $($area:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $area() {
                $crate::testing::runtime::run_area(
                    ::core::stringify!($area),
                    $crate::testing::runtime::$area::CASES,
                    || $make(),
                )
                .await;
            }
        )*
    };
}

/// Expands into one `#[tokio::test]` per area of the runtime behaviour suite for a
/// fixture maker: an `async fn() -> Option<impl RuntimeFixture>` giving a fresh, empty
/// store (`None` skips, after the maker printed why). The expanding crate needs
/// `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! runtime_conformance_tests {
    ($make:path) => {
        $crate::__brokkr_runtime_areas!($make; target_state agents targets events health stacks templates generators metadata placement eviction guard webhooks);
    };
}
