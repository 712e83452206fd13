//! The audit chain, pure: what is hashed, how records are linked, how a page of the
//! chain is checked.
//!
//! Every audit record carries the SHA-256 of its own fields ([`content_hash`]), computed
//! when it is written. Writers never link records to each other: that would make every
//! write wait for the previous one. A sealer links the records written since it last ran,
//! in one transaction, one sealer at a time: link `n` holds
//! `chain_hash(n) = SHA-256(chain_hash(n - 1) || content_hash)`, link 1 starting from
//! [`GENESIS`]. Changing a sealed record's fields, its content hash or a link, or
//! deleting a record or a link, breaks the chain at that record, and
//! [`check_page`] names it.
//!
//! The chain cannot tell a truncated tail from a shorter history, nor a chain rewritten
//! from some point on by someone who can write every table: compare the head hash
//! with a copy kept elsewhere for that.
//!
//! The content encoding, version 1 (integers big-endian, strings UTF-8 prefixed with
//! their length in bytes as a `u64`):
//!
//! ```text
//! "brokkr.audit.v1"  id (16 bytes)
//! actor kind (string)  0x00 | 0x01 actor id (16 bytes)
//! action (string)  resource kind (string)  resource id (16 bytes)
//! summary (string)  created_at (i64, microseconds since the Unix epoch, UTC)
//! ```
//!
//! Kinds and actions are their stable names (`admin`, `create`, `stack`, ...).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::AuditRecordId;
use crate::model::{AuditRecord, hex};

/// The tag that starts the content encoding: a new encoding gets a new tag, so hashes
/// of two encodings never collide.
const CONTENT_TAG: &[u8] = b"brokkr.audit.v1";

/// The chain hash before the first link.
pub const GENESIS: AuditHash = AuditHash([0; 32]);

/// A SHA-256 value of the audit chain: a record's content hash or a link's chain hash.
/// Shown and stored as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditHash(pub [u8; 32]);

impl AuditHash {
    /// Lower-case hex, for storage and display.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditHash({})", self.to_hex())
    }
}

impl Serialize for AuditHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for AuditHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// The content hash of a record's fields (the encoding is in the module documentation).
/// The record's stored `content_hash` is not part of it.
pub fn content_hash(record: &AuditRecord) -> AuditHash {
    let mut hasher = Sha256::new();
    hasher.update(CONTENT_TAG);
    hasher.update(record.id.0.as_bytes());
    string(&mut hasher, record.actor.kind().as_str());
    match record.actor.id() {
        Some(id) => {
            hasher.update([1]);
            hasher.update(id.as_bytes());
        }
        None => hasher.update([0]),
    }
    string(&mut hasher, record.action.as_str());
    string(&mut hasher, record.resource_kind.as_str());
    hasher.update(record.resource_id.as_bytes());
    string(&mut hasher, &record.summary);
    hasher.update(micros(record.created_at).to_be_bytes());
    AuditHash(hasher.finalize().into())
}

fn string(hasher: &mut Sha256, text: &str) {
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
}

/// Microseconds since the epoch: the precision both databases keep, so the value
/// hashed when a record is written is the value read back.
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The chain hash of a link: `SHA-256(previous || content)`.
pub fn chain_hash(previous: &AuditHash, content: &AuditHash) -> AuditHash {
    let mut hasher = Sha256::new();
    hasher.update(previous.0);
    hasher.update(content.0);
    AuditHash(hasher.finalize().into())
}

/// Where the chain (or a checked page of it) ends: the last link's position and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The link's position, from 1.
    pub position: u64,
    /// Its chain hash.
    pub hash: AuditHash,
}

/// One link of the chain: the record at a position and the chain hash up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// Its position, from 1, without gaps.
    pub position: u64,
    /// The record it seals.
    pub record_id: AuditRecordId,
    /// `SHA-256(previous chain hash || the record's content hash)`.
    pub chain_hash: AuditHash,
}

/// What the store found for a link's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkedRecord {
    /// The record, as stored.
    Found(AuditRecord),
    /// A row whose fields are not valid values (an unknown kind, a malformed hash).
    Unreadable,
    /// No record has the link's id.
    Missing,
}

impl LinkedRecord {
    /// The content hash a sealer links: the one written with the record, or, for a
    /// record written before records carried one, the hash of its fields. A record that
    /// is unreadable or gone when it is sealed is linked with [`GENESIS`] in its place,
    /// so the check reports it rather than the chain skipping it.
    pub fn sealed_hash(&self) -> AuditHash {
        match self {
            Self::Found(record) => record.content_hash.unwrap_or_else(|| content_hash(record)),
            Self::Unreadable | Self::Missing => GENESIS,
        }
    }
}

/// Links records after `head` (the chain's current head, `None` for an empty chain),
/// in the order given, each with its sealed content hash.
pub fn link(
    head: Option<ChainHead>,
    records: impl IntoIterator<Item = (AuditRecordId, AuditHash)>,
) -> Vec<ChainLink> {
    let (mut position, mut previous) = head.map_or((0, GENESIS), |h| (h.position, h.hash));
    records
        .into_iter()
        .map(|(record_id, content)| {
            position += 1;
            previous = chain_hash(&previous, &content);
            ChainLink {
                position,
                record_id,
                chain_hash: previous,
            }
        })
        .collect()
}

/// Why a link does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainFault {
    /// The record's fields no longer hash to the content hash written with it (or are
    /// not valid values at all).
    ContentChanged,
    /// The record's content, or the link's chain hash, is not what was sealed: the
    /// chain hash recomputed from the previous link and the record's fields differs
    /// from the one stored.
    ChainHashChanged,
    /// The link names a record that no longer exists.
    RecordMissing,
    /// Links before this one are missing (its position is not the next one).
    LinkMissing,
}

/// The first link that does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainMismatch {
    /// The link's position.
    pub position: u64,
    /// The record it names.
    pub record_id: AuditRecordId,
    /// Why it does not match.
    pub fault: ChainFault,
}

/// The result of checking one page of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCheck {
    /// Links found to match in this page.
    pub checked: u64,
    /// The last matching link: where the next page starts, and the chain's head once
    /// no page follows. `None` when no link of this page matched (the check's `after`
    /// still stands).
    pub last: Option<ChainHead>,
    /// The first link that does not match; the check stops there.
    pub mismatch: Option<ChainMismatch>,
    /// Whether links may follow this page: it was full and matched.
    pub more: bool,
}

/// Checks links in position order after `after` (`None`: from the start), each with
/// what the store found for its record; `limit` is how many links the page asked for.
pub fn check_page(
    after: Option<ChainHead>,
    links: impl IntoIterator<Item = (ChainLink, LinkedRecord)>,
    limit: usize,
) -> ChainCheck {
    let (mut position, mut previous) = after.map_or((0, GENESIS), |h| (h.position, h.hash));
    let mut check = ChainCheck {
        checked: 0,
        last: None,
        mismatch: None,
        more: false,
    };
    let mut read = 0;
    for (link, record) in links {
        read += 1;
        let fault = check_link(position + 1, &previous, &link, &record);
        if let Some(fault) = fault {
            check.mismatch = Some(ChainMismatch {
                position: link.position,
                record_id: link.record_id,
                fault,
            });
            return check;
        }
        position = link.position;
        previous = link.chain_hash;
        check.checked += 1;
        check.last = Some(ChainHead {
            position,
            hash: previous,
        });
    }
    check.more = read >= limit && limit > 0;
    check
}

fn check_link(
    expected: u64,
    previous: &AuditHash,
    link: &ChainLink,
    record: &LinkedRecord,
) -> Option<ChainFault> {
    if link.position != expected {
        return Some(ChainFault::LinkMissing);
    }
    let record = match record {
        LinkedRecord::Found(record) => record,
        LinkedRecord::Unreadable => return Some(ChainFault::ContentChanged),
        LinkedRecord::Missing => return Some(ChainFault::RecordMissing),
    };
    let content = content_hash(record);
    if record
        .content_hash
        .is_some_and(|written| written != content)
    {
        return Some(ChainFault::ContentChanged);
    }
    (chain_hash(previous, &content) != link.chain_hash).then_some(ChainFault::ChainHashChanged)
}

#[cfg(test)]
mod tests;
