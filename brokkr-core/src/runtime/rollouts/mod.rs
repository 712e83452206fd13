//! Progressive rollouts in the control plane: the operations (policy, listing,
//! commands, approvals) with their access rules ([`ops`](self)), the driver that
//! evaluates due rollouts under a lease and applies what [`step`](crate::rollout::step)
//! decides, and the gates it runs between evaluations.
//!
//! A replica claims due rollouts (`next_eval_at <= now`, the lease free), runs the
//! gate evaluations an earlier step started and that have no outcome yet, loads a
//! snapshot, steps it and applies the change in one transaction guarded by the
//! rollout's version. Gates run under the rollout's lease, so two replicas never ask
//! the same gate at once; an evaluation a crash interrupted runs again with its id.

mod driver;
mod gates;
mod ops;
mod settings;

pub(crate) use driver::RolloutCounters;
pub use driver::RolloutCounts;
pub use settings::RolloutSettings;
