//! Outbound HTTP to URLs operators allow: [`ReqwestSender`], the reference server's
//! [`WebhookSender`](brokkr_core::runtime::WebhookSender), and [`WebhookGate`], the
//! `webhook` gate of rollout policies. Both send through one client (`client.rs`): no
//! redirect, no proxy, the allowlist checked before sending and on resolved addresses
//! (`resolver.rs`), a timeout, answers read up to a bound.

mod client;
mod gate;
mod resolver;
mod sender;

pub use gate::{GateSecrets, MIN_GATE_SECRET_BYTES, WebhookGate};
pub use sender::ReqwestSender;
