//! Outbound webhooks over HTTP: [`ReqwestSender`], the reference server's
//! [`WebhookSender`](brokkr_core::runtime::WebhookSender).

mod resolver;
mod sender;

pub use sender::ReqwestSender;
