//! The audit chain's check (`/admin/audit-logs/verify`): admin's proof that no sealed
//! audit record was changed or removed in the database.

use brokkr_core::runtime::AuditChainReport;
use brokkr_core::{AuditHash, ChainFault, ChainHead, ChainMismatch};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Where the checked chain ends.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "AuditChainHead")]
pub struct ChainHeadDto {
    /// The last matching link's position, from 1.
    pub position: u64,
    /// Its chain hash (64 hex digits). Kept elsewhere, it proves later that nothing
    /// sealed up to here was dropped or rewritten.
    pub hash: String,
}

impl From<ChainHead> for ChainHeadDto {
    fn from(head: ChainHead) -> Self {
        Self {
            position: head.position,
            hash: head.hash.to_hex(),
        }
    }
}

/// Why a link of the chain does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "AuditChainFault", rename_all = "snake_case")]
pub enum ChainFaultDto {
    /// The record's fields no longer hash to the content hash written with it.
    ContentChanged,
    /// The record's content or the link's chain hash is not what was sealed (e.g. a
    /// field changed and its content hash recomputed to match).
    ChainHashChanged,
    /// The record the link seals no longer exists.
    RecordMissing,
    /// Links before this one are missing.
    LinkMissing,
}

impl From<ChainFault> for ChainFaultDto {
    fn from(fault: ChainFault) -> Self {
        match fault {
            ChainFault::ContentChanged => Self::ContentChanged,
            ChainFault::ChainHashChanged => Self::ChainHashChanged,
            ChainFault::RecordMissing => Self::RecordMissing,
            ChainFault::LinkMissing => Self::LinkMissing,
        }
    }
}

/// The first link that does not match.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "AuditChainMismatch")]
pub struct ChainMismatchDto {
    /// The link's position.
    pub position: u64,
    /// The audit record it seals (the `id` of `GET /admin/audit-logs`).
    pub record_id: Uuid,
    /// Why it does not match.
    pub reason: ChainFaultDto,
}

impl From<ChainMismatch> for ChainMismatchDto {
    fn from(mismatch: ChainMismatch) -> Self {
        Self {
            position: mismatch.position,
            record_id: mismatch.record_id.into(),
            reason: mismatch.fault.into(),
        }
    }
}

/// The result of checking the whole audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "AuditChainCheck")]
pub struct AuditChainCheckDto {
    /// Whether every link matches.
    pub ok: bool,
    /// Links (records) found to match, from the first.
    pub records_checked: u64,
    /// The last matching link; absent when none does (an empty chain, or a mismatch
    /// at position 1).
    #[oai(skip_serializing_if_is_none)]
    pub head: Option<ChainHeadDto>,
    /// Records written but not yet sealed when the check ended; the sealer links them
    /// within `audit.seal_millis`.
    pub unsealed: u64,
    /// The first link that does not match; the check stops there.
    #[oai(skip_serializing_if_is_none)]
    pub mismatch: Option<ChainMismatchDto>,
    /// With `anchor_position` and `anchor_hash`: whether the chain still has that link.
    /// `false` (and `ok: false`) means it was cut short or rewritten from some record
    /// on, which the links alone cannot show.
    #[oai(skip_serializing_if_is_none)]
    pub anchor_matches: Option<bool>,
}

impl From<AuditChainReport> for AuditChainCheckDto {
    fn from(report: AuditChainReport) -> Self {
        Self {
            ok: report.ok(),
            records_checked: report.checked,
            head: report.head.map(Into::into),
            unsealed: report.unsealed,
            mismatch: report.mismatch.map(Into::into),
            anchor_matches: report.anchor_matches,
        }
    }
}

/// Answer of `GET /admin/audit-logs/verify`.
#[derive(Debug, ApiResponse)]
pub enum AuditChainCheckResponse {
    /// The check ran; `ok` says whether the chain matches.
    #[oai(status = 200)]
    Ok(Json<AuditChainCheckDto>),
}

/// The audit chain.
pub struct AuditChainApi;

#[OpenApi]
impl AuditChainApi {
    /// Check the audit chain (admin).
    ///
    /// Seals the records written so far, then walks the whole chain in pages,
    /// recomputing each record's content hash from its stored fields and each chain
    /// hash from the previous one, and reports the first record that does not match.
    /// A finding is not an error: the answer is 200 with `ok: false` and `mismatch`.
    /// A head kept from an earlier check (`anchor_position` with `anchor_hash`) is
    /// compared too: the chain must still hold that link.
    #[oai(
        path = "/admin/audit-logs/verify",
        method = "get",
        operation_id = "verifyAuditLogs",
        tag = "Tag::Admin"
    )]
    async fn verify_audit_logs(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// The position of a head kept from an earlier check (with `anchor_hash`).
        #[oai(validator(minimum(value = "1")))]
        anchor_position: Query<Option<u64>>,
        /// Its hash, 64 hex digits (with `anchor_position`).
        #[oai(validator(pattern = "^[0-9a-fA-F]{64}$"))]
        anchor_hash: Query<Option<String>>,
    ) -> ApiResult<AuditChainCheckResponse> {
        let anchor = match (anchor_position.0, anchor_hash.0.as_deref()) {
            (None, None) => None,
            (Some(position), Some(hash)) => Some(ChainHead {
                position,
                hash: AuditHash::from_hex(hash)
                    .ok_or_else(|| invalid_anchor("anchor_hash is not 64 hex digits"))?,
            }),
            _ => {
                return Err(invalid_anchor(
                    "anchor_position and anchor_hash go together",
                ));
            }
        };
        let report = state
            .control_plane
            .verify_audit_chain(&auth.0, anchor)
            .await?;
        Ok(AuditChainCheckResponse::Ok(Json(report.into())))
    }
}

fn invalid_anchor(message: &str) -> ApiError {
    ApiError::unprocessable("invalid_anchor", message, None)
}
