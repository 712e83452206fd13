//! Subscription secrets: generated to be shown once, stored sealed.
//!
//! A secret is `whsec_` and 32 random bytes in unpadded base64url. The store keeps it
//! sealed with XChaCha20-Poly1305 under a key from the configuration, never in clear:
//! a copy of the database alone signs nothing. A [`Keyring`] holds several keys, each
//! with an id written into what it seals; the first seals, any opens, so an operator
//! rotates by putting a new key first and keeping the old one until every secret was
//! rotated (or re-sealed) under the new one.
//!
//! Sealed form: `1` (format version), the key id's length (one byte), the key id,
//! a 24-byte random nonce, then the ciphertext with its 16-byte tag. The version and
//! key id are authenticated as associated data, so a sealed secret cannot be moved
//! under another key's id.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngExt;
use subtle::ConstantTimeEq;

/// What every generated secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// The first byte of every sealed secret.
const FORMAT_VERSION: u8 = 1;
/// The longest key id.
pub const MAX_KEY_ID_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A fresh secret from the thread's CSPRNG: `whsec_` and 32 random bytes in unpadded
/// base64url (256 bits).
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Why a keyring could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No key at all: nothing could be sealed.
    #[error("a keyring needs at least one key")]
    Empty,
    /// An entry is not `<id>:<base64 of 32 bytes>`.
    #[error("key {position} is not <id>:<base64 of 32 bytes>")]
    Malformed {
        /// Its position in the list, from 1.
        position: usize,
    },
    /// A key id is empty, too long or has characters other than `A-Z a-z 0-9 _ - .`.
    #[error("key {position}: id {id:?} must be 1-{MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 _ - .")]
    BadId {
        /// Its position in the list, from 1.
        position: usize,
        /// The id given.
        id: String,
    },
    /// The key is not base64 of exactly 32 bytes.
    #[error("key {id:?} must be the base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)")]
    BadKey {
        /// The key's id.
        id: String,
    },
    /// Two keys share an id, so opening could not tell them apart.
    #[error("key id {id:?} appears twice")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
}

/// Why a sealed secret could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The bytes are not a sealed secret of a known format.
    #[error("sealed secret is malformed")]
    Malformed,
    /// It was sealed under a key id the keyring does not hold.
    #[error("sealed under key {id:?}, which the keyring does not hold")]
    UnknownKey {
        /// The key id written in the sealed secret.
        id: String,
    },
    /// The key with its id does not open it: a different key under the same id, or
    /// the bytes were altered.
    #[error("sealed secret does not open under key {id:?} (wrong key or altered)")]
    Unopenable {
        /// The key id written in the sealed secret.
        id: String,
    },
}

/// Keys that seal and open subscription secrets; see the [module documentation](self).
/// Cheap to clone. `Debug` shows the key ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<[(String, Key)]>,
}

impl Keyring {
    /// A keyring of `(id, key)` pairs; the first seals.
    pub fn new(keys: impl IntoIterator<Item = (String, [u8; 32])>) -> Result<Self, KeyringError> {
        let mut held: Vec<(String, Key)> = Vec::new();
        for (index, (id, key)) in keys.into_iter().enumerate() {
            check_id(index + 1, &id)?;
            if held.iter().any(|(other, _)| *other == id) {
                return Err(KeyringError::DuplicateId { id });
            }
            held.push((id, Key::from(key)));
        }
        if held.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys: held.into() })
    }

    /// A keyring from configuration entries `<id>:<base64 of 32 bytes>` (standard
    /// alphabet, padding optional); the first seals.
    pub fn parse<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<Self, KeyringError> {
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let mut keys = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let position = index + 1;
            let (id, encoded) = entry
                .as_ref()
                .trim()
                .split_once(':')
                .ok_or(KeyringError::Malformed { position })?;
            check_id(position, id)?;
            let key = engine
                .decode(encoded)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| KeyringError::BadKey { id: id.to_owned() })?;
            keys.push((id.to_owned(), key));
        }
        Self::new(keys)
    }

    /// The id of the key that seals.
    pub fn sealing_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The ids of every key, the sealing one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// `plain` sealed under the first key with a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let (id, key) = &self.keys[0];
        let header = header(id);
        let nonce_bytes: [u8; NONCE_LEN] = rand::rng().random();
        let nonce = XNonce::from(nonce_bytes);
        let ciphertext = XChaCha20Poly1305::new(key)
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &header,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut sealed = header;
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// What `sealed` holds, opened with the key whose id it names.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let [version, id_len, rest @ ..] = sealed else {
            return Err(SecretError::Malformed);
        };
        let id_len = usize::from(*id_len);
        if *version != FORMAT_VERSION || rest.len() < id_len + NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len);
        let id = std::str::from_utf8(id).map_err(|_| SecretError::Malformed)?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self
            .keys
            .iter()
            .find(|(held, _)| held == id)
            .map(|(_, key)| key)
            .ok_or_else(|| SecretError::UnknownKey { id: id.to_owned() })?;
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Malformed)?;
        XChaCha20Poly1305::new(key)
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &sealed[..2 + id_len],
                },
            )
            .map_err(|_| SecretError::Unopenable { id: id.to_owned() })
    }
}

/// The authenticated prefix of a sealed secret: version, id length, id.
fn header(id: &str) -> Vec<u8> {
    let mut header = Vec::with_capacity(2 + id.len() + NONCE_LEN);
    header.push(FORMAT_VERSION);
    header.push(u8::try_from(id.len()).expect("key ids are at most 32 bytes"));
    header.extend_from_slice(id.as_bytes());
    header
}

fn check_id(position: usize, id: &str) -> Result<(), KeyringError> {
    let ok = (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(KeyringError::BadId {
            position,
            id: id.to_owned(),
        })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Keyring {
    /// The same ids with the same keys, in the same order (keys compared in constant
    /// time).
    fn eq(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(other.keys.iter())
                .all(|((a_id, a), (b_id, b))| {
                    a_id == b_id && bool::from(a.as_slice().ct_eq(b.as_slice()))
                })
    }
}

#[cfg(test)]
mod tests;
