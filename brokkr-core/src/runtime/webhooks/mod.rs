//! Outbound webhooks in the control plane: the [`WebhookSender`] the dispatcher sends
//! through (the reference server's is on reqwest) and the [`WebhookSettings`] it runs
//! with. Signatures, secrets, retry delays and URL rules are pure and live in
//! [`crate::webhook`].

mod sender;
mod settings;

pub use sender::{MAX_ERROR_BYTES, SendOutcome, WebhookRequest, WebhookSender};
pub use settings::WebhookSettings;
