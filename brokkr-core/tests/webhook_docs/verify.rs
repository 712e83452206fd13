use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// True when `signature` (X-Brokkr-Signature) signs `body` (as received) at
/// `timestamp` (X-Brokkr-Timestamp) with `secret` (whsec_...), and `timestamp` is
/// within five minutes of `now` (seconds since the Unix epoch).
pub fn verify_brokkr_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
) -> bool {
    let Ok(sent_at) = timestamp.parse::<i64>() else {
        return false;
    };
    if now.abs_diff(sent_at) > 300 {
        return false;
    }
    let Some(expected) = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex)
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}
