//! The store conformance suite: every [`Store`](crate::Store) implementation must pass it.
//!
//! Each case is an `async fn(&dyn Store)` that panics on failure and expects a fresh,
//! empty store. [`store_conformance_tests!`](crate::store_conformance_tests) expands
//! into one `#[tokio::test]` per case for a fixture maker, so a backend runs the whole
//! suite with one line; [`CASE_NAMES`] lists the cases.
//!
//! Cases stay fast (well under a second on SQLite) and bound every wait on a watch
//! with a timeout. They never assert the absence of a wake-up: wake-ups may be
//! spurious.
//!
//! # Audit records every implementation writes
//!
//! One record per successful call of a mutating method, none for a failed call, a
//! repeated agent event, heartbeats or health reports. `resource_kind` and `resource_id` are:
//!
//! | method | action | resource_kind | resource_id |
//! |---|---|---|---|
//! | `create_stack` / `update_stack` | `Create` / `Update` | `Stack` | the stack |
//! | `delete_stack` (marker included) | `Delete` | `Stack` | the stack |
//! | `append_deployment_object` | `Create` | `DeploymentObject` | the new object |
//! | `create_agent` (key included) / `update_agent` / `delete_agent` | `Create` / `Update` / `Delete` | `Agent` | the agent |
//! | `assign_stack` / `unassign_stack` | `Assign` / `Unassign` | `AgentTarget` | the stack |
//! | `record_agent_event` (first report only) | `Create` | `AgentEvent` | the event |
//! | `create_generator` (key included) / `update_generator` / `delete_generator` | `Create` / `Update` / `Delete` | `Generator` | the generator |
//! | `create_template` / `add_template_version` / `delete_template` | `Create` / `Update` / `Delete` | `Template` | the template |
//! | `put_metadata` / `remove_metadata` | `SetMetadata` / `RemoveMetadata` | the target's kind (`Stack`, `Agent`, `Template`) | the target |
//! | `rotate_api_key` | `RotateKey` | `ApiKey` | the new key record |
//! | `set_placement_policy` (set / remove) | `Update` / `Delete` | `Placement` | the stack |
//! | `record_placement` (only when the chosen set or the targets change) | `Place` | `Placement` | the stack |
//! | `set_guard_overrides` | `Update` | `Stack` | the stack |
//! | `create_plan` / `write_confirmed` | `Create` / `Confirm` | `Plan` | the plan |
//! | `create_subscription` / `update_subscription` / `delete_subscription` | `Create` / `Update` / `Delete` | `Subscription` | the subscription |
//! | `queue_test_delivery` / `redeliver` (of a delivery not pending) | `Create` / `Update` | `Delivery` | the delivery |
//! | `set_rollout_policy` (set or remove) | `Update` | `Stack` | the stack |
//! | an append that queues a rollout (besides the append's own record) | `Create` | `Rollout` | the rollout |
//! | an append, deletion or change that moves a rollout or a wave (one per transition) | `Update` | `Rollout` | the rollout |
//! | a pin / an unpin (one per agent; changes, and appends that end a rollout) | `Assign` / `Unassign` | `Rollout` | the rollout |
//! | `give_rollout_command` / `record_gate_outcome` with `decided_by` | `Update` | `Rollout` | the rollout |
//!
//! `actor` is the [`Actor`](crate::Actor) passed in (the append's for the rollouts
//! an append queues or ends, [`Actor::System`](crate::Actor::System) for
//! `apply_rollout_change`, the approver for a gate outcome). `summary` is one line of human
//! text that never contains key material (the stores only ever see hashes, but not
//! even those).
//!
//! # Other choices every implementation follows
//!
//! - `NotFound.kind` is `"stack"`, `"agent"`, `"generator"`, `"template"`,
//!   `"template version"`, `"deployment object"`, `"agent event"`, `"agent target"`,
//!   `"label"`, `"annotation"`, `"plan"`, `"subscription"`, `"delivery"`,
//!   `"rollout"`, `"gate evaluation"` or `"placement"` (`record_placement` on a live
//!   stack without a policy).
//! - Appending to a deleted stack is `NotFound` (the method's contract), not `Conflict`.
//! - `unassign_stack` needs a live agent and a target that is not already awaiting
//!   removal; `record_agent_event` needs a live agent.
//! - A successful `Delete` event retires a target only when the target awaits removal
//!   or its stack is deleted; for an active target of a live stack it changes nothing.
//! - Key short ids are unique across every key record, revoked ones included.
//! - Removing a placement policy that is not set returns `None` and writes nothing.
//! - `record_placement` gives targets only to live agents among the chosen; a target
//!   it revives (one awaiting removal) becomes a placement target.
//! - Webhook events are written by the change's own transaction, as
//!   [`WebhookEvent`](crate::WebhookEvent)'s constructors document each; fan-out,
//!   claims, finishes, pruning and stale marks are not audited. A disabled subscription gets no new deliveries and none of its queued
//!   ones is claimed.
//! - The target state of an inactive agent is served like any other (the server decides
//!   what an inactive agent may do); only a missing or deleted agent is `NotFound`.
//! - Rollouts: a policy's `reject` refuses an append while a rollout of the stack is
//!   queued or active; an append to a stack without a policy supersedes whatever
//!   rollouts a removed policy left open; a final state removes the rollout's remaining
//!   pins. A snapshot's events are each agent's latest non-`delete` event about the
//!   candidate and the baseline, by when the store first recorded it. A rollout's
//!   `version` starts at 1 and moves by one per change; a change from an older version
//!   is `Conflict("rollout_version: ...")`. Claims lease rollouts whose lease is free,
//!   expired, or the claimant's own.
//!
//! # Adding a case
//!
//! Write it, with its doc comment, inside the `cases!( ... )` of its area's file
//! (`stacks.rs`, `placement.rs`, ...) as `pub async fn name(store: &dyn Store)`. That is
//! the only edit: the macro defines the function and hands its name on to
//! [`store_conformance_tests!`](crate::store_conformance_tests) and [`CASE_NAMES`].
//! Helpers stay outside the `cases!( ... )`.

use std::time::Duration;

/// How long a case waits for a watch that must wake.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// How the case names get from the area files to the test macro
//
// `store_conformance_tests!` expands in the crate under test, so the names of all cases
// must be written out in a `#[macro_export]` macro. Rather than keep them there by
// hand, each area file wraps its cases in `cases!`, which also defines a local
// `area!` macro that appends the area's case names to a list and passes it to the next
// area's `area!`; the last hands the whole list to `suite!`, which defines the exported
// macro and `CASE_NAMES`. The chain is started once, below the `mod` declarations.

/// Defines an area's cases as written, and its `area!` link of the chain. A generated
/// macro cannot contain a literal `$`, so the first rule passes one in as `$d`.
macro_rules! cases {
    (@dollar ($d:tt)
        $( $(#[$attr:meta])* pub async fn $case:ident($store:ident: &dyn Store $(,)?) $body:block )*
    ) => {
        $( $(#[$attr])* pub async fn $case($store: &dyn Store) $body )*

        /// Appends this area's case names to the list and calls the next area's `area!`
        /// (or `suite!` at the end of the chain).
        macro_rules! area {
            ([$d next:ident $d($d rest:ident)*] $d($d listed:ident)*) => {
                $d next::area! { [$d($d rest)*] $d($d listed)* $($case)* }
            };
            ([] $d($d listed:ident)*) => {
                suite! { $d($d listed)* $($case)* }
            };
        }
        pub(super) use area;
    };
    (@dollar $($other:tt)*) => {
        ::core::compile_error!(
            "cases!( ... ) holds only `pub async fn name(store: &dyn Store) { ... }` items"
        );
    };
    ($($cases:tt)*) => {
        cases! { @dollar ($) $($cases)* }
    };
}

/// Defines, from the names of every case, the exported macro that expands them into
/// tests and [`CASE_NAMES`].
macro_rules! suite {
    ($($case:ident)*) => {
        /// The name of every conformance case, in the order the macro expands them.
        pub const CASE_NAMES: &[&str] = &[$(::core::stringify!($case)),*];

        /// Expands every case into a test for the fixture maker `$make`. Not part of the
        /// public API: use [`store_conformance_tests!`](crate::store_conformance_tests).
        #[doc(hidden)]
        #[macro_export]
        macro_rules! __brokkr_store_conformance_cases {
            ($make:path) => {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some(fixture) = $make().await else {
                            return;
                        };
                        $crate::testing::conformance::$case(
                            $crate::testing::StoreFixture::store(&fixture),
                        )
                        .await;
                        $crate::testing::StoreFixture::teardown(fixture).await;
                    }
                )*
            };
        }
    };
}

mod fixtures;
mod support;

mod agents;
mod audit;
mod audit_chain;
mod confirm;
mod events;
mod eviction;
mod fleet;
mod generators;
mod harmless;
mod health;
mod keys;
mod listing;
mod metadata;
mod objects;
mod pagination;
mod placement;
mod placing;
mod plans;
mod rollout_changes;
mod rollout_support;
mod rollouts;
mod stacks;
mod target_state;
mod targets;
mod template_listing;
mod watches;
mod webhook_claims;
mod webhook_events;
mod webhooks;

pub use agents::*;
pub use audit::*;
pub use audit_chain::*;
pub use confirm::*;
pub use events::*;
pub use eviction::*;
pub use fixtures::{
    ADMIN, config_map_yaml, labels, mk_agent, mk_agent_in, mk_event, mk_generator, mk_health,
    mk_object, mk_stack, mk_target, mk_template, new_agent, new_event, new_generator, new_health,
    new_template, workload,
};
pub use fleet::*;
pub use generators::*;
pub use harmless::*;
pub use health::*;
pub use keys::*;
pub use listing::*;
pub use metadata::*;
pub use objects::*;
pub use pagination::*;
pub use placement::*;
pub use placing::*;
pub use plans::*;
pub use rollout_changes::*;
pub use rollouts::*;
pub use stacks::*;
pub use target_state::*;
pub use targets::*;
pub use template_listing::*;
pub use watches::*;
pub use webhook_claims::*;
pub use webhook_events::*;
pub use webhooks::*;

// The areas in the order their cases run.
stacks::area! {
    [objects listing template_listing agents metadata targets target_state watches events health placement eviction placing plans confirm harmless generators keys audit audit_chain pagination fleet webhooks webhook_claims webhook_events rollouts rollout_changes]
}

/// Expands into one `#[tokio::test]` per conformance case for a store fixture.
///
/// `$make` is an `async fn() -> Option<impl StoreFixture>` that prepares a fresh, empty
/// store for one case; `None` skips the case (the maker prints why, e.g. "no database
/// URL configured"). The expanding crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
///
/// ```no_run
/// use brokkr_core::Store;
/// use brokkr_core::testing::{MemoryStore, StoreFixture};
///
/// struct Memory(MemoryStore);
///
/// impl StoreFixture for Memory {
///     fn store(&self) -> &dyn Store {
///         &self.0
///     }
///
///     async fn teardown(self) {}
/// }
///
/// async fn memory() -> Option<Memory> {
///     Some(Memory(MemoryStore::new()))
/// }
///
/// brokkr_core::store_conformance_tests!(memory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::__brokkr_store_conformance_cases!($make);
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::CASE_NAMES;

    /// Two areas defining a case of the same name would make the expanded tests clash.
    #[test]
    fn case_names_are_unique() {
        let unique: BTreeSet<&str> = CASE_NAMES.iter().copied().collect();
        assert_eq!(unique.len(), CASE_NAMES.len(), "a case name is used twice");
    }
}
