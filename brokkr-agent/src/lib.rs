//! Brokkr's cluster agent.
//!
//! One agent runs in one cluster. It pulls its target state from the broker over HTTP
//! (long poll with an ETag), makes the cluster match it through an
//! [`Applier`](brokkr_core::Applier), and reports what happened: one agent event per
//! deployment object, heartbeats with the cluster's capabilities, and the health of
//! what it applied. It depends on `brokkr-core` only; the broker is reached over HTTP.
//!
//! - [`KubeApplier`](kube_applier::KubeApplier): the real applier (kube-rs, server-side
//!   apply, inventory-based pruning).
//! - `MemoryApplier`, a simulated cluster for tests, examples and fleet simulations,
//!   lives in `brokkr_core::testing` (feature `testing` of `brokkr-core`), next to the
//!   applier conformance suite both appliers pass.
//! - [`Agent`](agent::Agent): the loop that ties the broker and an applier together.
//! - [`start::run`]: `brokkr-agent start` as a function, from a configuration to a
//!   running agent (probes, the cluster reached with retries, the broker over TLS).
//! - [`simulate`]: many agents in one process, each with its own key and
//!   `MemoryApplier`, against a real broker (`brokkr-agent simulate`).
//!
//! Safety rule, kept everywhere: only an explicit deletion marker (a `remove` entry of
//! the target state) removes a stack. A stack absent from an answer, an error, a
//! timeout or an empty answer never deletes anything. And what Brokkr did not create
//! (an object it adopted, the cluster's own namespaces) is only ever released, never
//! deleted (see [`brokkr_core::applier`]).

pub mod agent;
pub mod broker;
pub mod capabilities;
pub mod config;
pub mod health_server;
pub mod kube_applier;
pub mod metrics;
pub mod reconcile;
pub mod simulate;
pub mod start;
