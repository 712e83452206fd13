//! Secrets' `stringData`: the server converts it to `data` on every write.

use serde_json::{Value, json};

use super::super::catalog::ResourceType;
use super::super::fields;
use super::super::ssa;

pub fn is_secret(served: &ResourceType) -> bool {
    served.group.is_empty() && served.kind == "Secret"
}

/// Moves a Secret's `stringData` into `data` (base64), as upstream's conversion does.
/// Returns whether there was any.
pub fn string_data_to_data(secret: &mut Value) -> bool {
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return false;
    };
    for (key, value) in &strings {
        let text = value.as_str().unwrap_or_default();
        fields::set(
            secret,
            &["data".to_owned(), key.clone()],
            json!(base64(text.as_bytes())),
        );
    }
    !strings.is_empty()
}

/// Marks `manager`'s Apply entry as written now.
pub fn touch_entry(object: &mut Value, manager: &str, now: &str) {
    let entries = object["metadata"]["managedFields"].as_array_mut();
    for entry in entries.into_iter().flatten() {
        if entry["manager"] == manager && entry["operation"] == ssa::APPLY {
            entry["time"] = json!(now);
        }
    }
}

/// Standard base64 with padding (no dependency for a dozen lines).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
