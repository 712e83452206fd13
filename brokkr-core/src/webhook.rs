//! Outbound webhooks, the pure parts: what a delivery looks like on the wire and the
//! rules around it, with no I/O.
//!
//! - [`signature`]: `X-Brokkr-Signature: sha256=HMAC-SHA256(secret, "{timestamp}.{body}")`,
//!   signed here and verified in constant time (what a receiver does, in Rust);
//! - [`secret`]: subscription secrets, generated to be shown once and sealed at rest
//!   with XChaCha20-Poly1305 under a [`Keyring`] whose keys rotate;
//! - [`retry`]: when a failed attempt is tried again (exponential, full jitter);
//! - [`destination`]: which URLs a subscription may name, and the [`HostAllowlist`]
//!   checked when a subscription is written and again before every send;
//! - [`envelope()`]: the JSON body every delivery of an event carries.
//!
//! The dispatcher that claims, signs and sends deliveries is in the runtime
//! (`runtime::webhooks`); the HTTP client that sends them is an edge
//! (`brokkr-server`'s `ReqwestSender`).
//!
//! ```
//! use brokkr_core::webhook::{signature, Keyring, generate_secret};
//!
//! let keyring = Keyring::parse(["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]).unwrap();
//! let secret = generate_secret();
//! let sealed = keyring.seal(secret.as_bytes());
//! let opened = keyring.open(&sealed).unwrap();
//!
//! let body = br#"{"id":"...","type":"webhook.test"}"#;
//! let header = signature::sign(&opened, 1_700_000_000, body);
//! signature::verify(secret.as_bytes(), 1_700_000_000, body, &header, 1_700_000_010, signature::DEFAULT_TOLERANCE)
//!     .unwrap();
//! ```

pub mod destination;
mod envelope;
pub mod retry;
pub mod secret;
pub mod signature;

pub use destination::{HostAllowlist, HostPattern, UrlError, validate_url};
pub use envelope::envelope;
pub use retry::retry_delay;
pub use secret::{Keyring, KeyringError, SecretError, generate_secret};
pub use signature::SignatureError;

/// `text` cut to at most `max` bytes, at a character boundary: what a receiver
/// answered, kept in a bounded error or reason.
pub(crate) fn truncate_at_char(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The header carrying `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Brokkr-Signature";
/// The header carrying the signing time, in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "X-Brokkr-Timestamp";
/// The header carrying the delivery id: the same on every retry and redelivery, so a
/// receiver uses it to drop repeats.
pub const DELIVERY_HEADER: &str = "X-Brokkr-Delivery";
/// The header carrying the event type (`deployment_object.created`, ...).
pub const EVENT_HEADER: &str = "X-Brokkr-Event";
