//! Prefixed API keys (PAKs): `brokkr_<short id>_<secret>`.
//!
//! The short id is public and indexes the key record, so a lookup costs one indexed
//! query; only the SHA-256 of the whole key is stored. A fast hash is enough because the
//! secret is 240 bits from a CSPRNG: there is nothing to brute-force that a slow hash
//! would protect. Comparison is constant time, and the key text never appears in `Debug`.

use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{StoredKey, hex};

/// Every key starts with this.
pub const PREFIX: &str = "brokkr";
/// Length of the short id, lowercase alphanumerics.
pub const SHORT_ID_LEN: usize = 12;
/// Length of the secret, alphanumerics (62^40 ≈ 2^238).
pub const SECRET_LEN: usize = 40;

/// Why a presented key was rejected before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not `brokkr_<12 lowercase alphanumerics>_<40 alphanumerics>`.
    #[error("malformed key: expected brokkr_<short id>_<secret>")]
    Malformed,
}

/// An API key in clear text: generated to be shown once, or parsed from a request.
#[derive(Clone)]
pub struct Pak {
    text: String,
}

impl Pak {
    /// A fresh key from the thread's CSPRNG.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let short: String = (0..SHORT_ID_LEN)
            .map(|_| {
                const SHORT: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                SHORT[rng.random_range(0..SHORT.len())] as char
            })
            .collect();
        let secret: String = (0..SECRET_LEN)
            .map(|_| {
                const SECRET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                SECRET[rng.random_range(0..SECRET.len())] as char
            })
            .collect();
        Self {
            text: format!("{PREFIX}_{short}_{secret}"),
        }
    }

    /// Parses a presented key, checking only its shape.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let rest = text
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('_'))
            .ok_or(Error::Malformed)?;
        let (short, secret) = rest.split_once('_').ok_or(Error::Malformed)?;
        let short_ok = short.len() == SHORT_ID_LEN
            && short
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let secret_ok =
            secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        if short_ok && secret_ok {
            Ok(Self {
                text: text.to_owned(),
            })
        } else {
            Err(Error::Malformed)
        }
    }

    /// The public short id, which names the key record.
    pub fn short_id(&self) -> &str {
        &self.text[PREFIX.len() + 1..PREFIX.len() + 1 + SHORT_ID_LEN]
    }

    /// The whole key text. Show it once to its owner; never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the whole key.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.text.as_bytes()).into())
    }

    /// What the store keeps of this key.
    pub fn stored(&self) -> StoredKey {
        StoredKey {
            short_id: self.short_id().to_owned(),
            hash: self.hash(),
        }
    }
}

impl fmt::Debug for Pak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pak({PREFIX}_{}_<redacted>)", self.short_id())
    }
}

/// SHA-256 of a whole key, as stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// A hash that no key has a known preimage for, to compare against when a lookup
    /// misses, so that a wrong key costs as much time as a right one.
    pub const DUMMY: KeyHash = KeyHash([0x5a; 32]);

    /// Whether `presented` is the key this hash was made from, in constant time.
    pub fn verify(&self, presented: &Pak) -> bool {
        bool::from(self.0.ct_eq(&presented.hash().0))
    }

    /// Lower-case hex, for storage.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses lower- or upper-case hex of 32 bytes.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}..)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let pak = Pak::generate();
        let parsed = Pak::parse(pak.expose()).expect("a generated key parses");
        assert_eq!(parsed.short_id(), pak.short_id());
        assert!(pak.hash().verify(&parsed));
        assert!(!Pak::generate().hash().verify(&parsed));
        assert!(!KeyHash::DUMMY.verify(&parsed));
    }

    #[test]
    fn generated_keys_differ() {
        let a = Pak::generate();
        let b = Pak::generate();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.short_id(), b.short_id());
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = Pak::generate();
        let text = good.expose();
        let cases = [
            String::new(),
            "brokkr_".into(),
            text.replacen("brokkr", "brokr", 1),
            format!("{text}x"),
            text[..text.len() - 1].to_owned(),
            text.replacen('_', "-", 1),
            format!("{}_{}", &text[..19], "!".repeat(SECRET_LEN)),
            text.to_uppercase(),
        ];
        for case in cases {
            assert_eq!(
                Pak::parse(&case).map(|_| ()),
                Err(Error::Malformed),
                "{case}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let pak = Pak::generate();
        let secret = &pak.expose()[PREFIX.len() + SHORT_ID_LEN + 2..];
        let shown = format!("{pak:?} {:?}", pak.stored());
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains(pak.short_id()));
    }

    #[test]
    fn hash_hex_round_trips() {
        let hash = Pak::generate().hash();
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
    }
}
