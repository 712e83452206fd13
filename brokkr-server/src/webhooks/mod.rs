//! Outbound HTTP to URLs operators allow: [`ReqwestSender`], the reference server's
//! [`WebhookSender`](brokkr_core::runtime::WebhookSender), over one client
//! (`client.rs`): no redirect, no proxy, the allowlist checked before sending and on
//! resolved addresses (`resolver.rs`), a timeout, answers read up to a bound.

mod client;
mod resolver;
mod sender;

pub use sender::ReqwestSender;
