//! Delivery signatures: `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//!
//! The key is the subscription's secret exactly as it was shown (`whsec_...`, its
//! UTF-8 bytes). The timestamp is signed with the body so that a captured delivery
//! cannot be replayed later than the receiver's tolerance allows.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::model::hex;

type HmacSha256 = Hmac<Sha256>;

/// What a signature header starts with.
pub const SCHEME: &str = "sha256=";

/// How far a timestamp may be from the receiver's clock, either way, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `sha256=` followed by 64 hexadecimal digits.
    #[error("malformed signature header: expected sha256=<64 hex digits>")]
    Malformed,
    /// The timestamp is further from now than the tolerance allows.
    #[error(
        "timestamp {timestamp} is {skew_secs} s from now, more than the {tolerance_secs} s allowed"
    )]
    OutsideTolerance {
        /// The timestamp received.
        timestamp: i64,
        /// How far it is from now, in seconds.
        skew_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The signature does not match the body, timestamp and secret.
    #[error("signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Brokkr-Signature` value for `body` sent at `timestamp` (seconds since the
/// Unix epoch).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let code = mac(secret, timestamp, body).finalize().into_bytes();
    format!("{SCHEME}{}", hex(&code))
}

/// Checks `header` against `body` and `timestamp` (as received), and `timestamp`
/// against `now` (both in seconds since the Unix epoch) within `tolerance`. The
/// comparison takes the same time wherever the signatures differ.
pub fn verify(
    secret: &[u8],
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let expected = parse(header).ok_or(SignatureError::Malformed)?;
    let skew_secs = now.abs_diff(timestamp);
    if skew_secs > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            skew_secs,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    mac(secret, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The 32 bytes of a well-formed header.
fn parse(header: &str) -> Option<[u8; 32]> {
    let digits = header.trim().strip_prefix(SCHEME)?.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests;
