//! A starter tenant control plane: a Rust [`Generator`](brokkr_core::Generator) that
//! turns a tenant spec into Kubernetes manifests, and a [`ControlPlane`] that onboards
//! tenants and assigns them to agents through Brokkr's runtime,
//! [`brokkr_core::runtime::ControlPlane`] — the object the reference REST server maps
//! to HTTP, here driven with no transport at all.
//!
//! - [`TenantGenerator`] (registered as `tenant`): `{name, plan, replicas, image}` in;
//!   a Namespace `tenant-<name>`, a ResourceQuota sized by plan and a Deployment out.
//! - [`ControlPlane`]: a thin layer over the runtime, built with [`generators`] and
//!   started by [`ControlPlane::open`] (its background tasks run until
//!   [`ControlPlane::shutdown`]). [`ControlPlane::onboard`] checks the spec and the
//!   agents, creates or reuses the stack `tenant-<name>`, renders and appends the
//!   tenant's deployment object through the runtime's render-then-append (provenance
//!   included) and assigns agents; [`ControlPlane::offboard`] deletes the stack.
//!   [`ControlPlane::runtime`] gives the rest: registering agents, an agent's target
//!   state and its long poll (`target_state`, `wait_for_change`), audit records.
//! - [`generators`]: the registry the runtime renders with, also handed to
//!   `brokkr-server`, so the same generator answers
//!   `POST /api/v1/stacks/{id}/deployment-objects/from-template`.
//!
//! Run it with `cargo run -p brokkr-example-tenant-generator -- --help`; the README
//! shows a whole session.
//!
//! ```no_run
//! use brokkr_example_tenant_generator::{Agents, ControlPlane, Plan, TenantSpec};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let control_plane = ControlPlane::open("sqlite://tenants.db?mode=rwc").await?;
//! let spec = TenantSpec {
//!     plan: Some(Plan::Pro),
//!     ..TenantSpec::new("acme")
//! };
//! let onboarded = control_plane
//!     .onboard(&spec, &Agents::Named(vec!["edge-1".into()]))
//!     .await?;
//! println!("{} at sequence {}", onboarded.stack.name, onboarded.deployment_object.sequence);
//! control_plane.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod cli;
mod control_plane;
mod tenant;

pub use control_plane::{Agents, ControlPlane, Error, Onboarded, Result};
pub use tenant::{
    DEFAULT_IMAGE, Plan, Quota, TENANT_LABEL, Tenant, TenantGenerator, TenantSpec, namespace_of,
};

/// The generators this control plane serves: just `tenant`.
pub fn generators() -> brokkr_core::GeneratorRegistry {
    let mut registry = brokkr_core::GeneratorRegistry::new();
    registry.register(TenantGenerator::new());
    registry
}
