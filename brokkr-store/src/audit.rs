//! Audit records: written inside the transaction of the change they record, and listed.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{AuditFilter, Result};
use brokkr_core::{Actor, AuditAction, AuditRecord, ResourceKind};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait};
use uuid::Uuid;

use crate::entity::audit_chain_queue;
use crate::entity::audit_records::{self, Column};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::write::Write;
use crate::{Backend, SqlStore, convert};

/// Audit records per insert statement: nine columns each stays far below SQLite's
/// bind-parameter limit (32,766).
const AUDIT_CHUNK: usize = 1_000;

/// What a mutation did, for its audit record.
pub(crate) struct Audit {
    pub(crate) action: AuditAction,
    pub(crate) kind: ResourceKind,
    pub(crate) id: Uuid,
    pub(crate) summary: String,
}

impl Audit {
    pub(crate) fn new(
        action: AuditAction,
        kind: ResourceKind,
        id: impl Into<Uuid>,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            action,
            kind,
            id: id.into(),
            summary: summary.into(),
        }
    }
}

impl Write {
    /// Writes the audit record of this transaction's change.
    pub(crate) async fn audit(&self, actor: &Actor, audit: Audit) -> Result<()> {
        self.audit_many([(actor, audit)]).await
    }

    /// Writes the audit records of this transaction's changes, each with its content
    /// hash, and queues them with that hash for the audit chain's sealer: per
    /// [`AUDIT_CHUNK`] records (a rollout's pins can be thousands) one statement on
    /// PostgreSQL, which queues what it inserts, two on SQLite. Every write path audits, so a round trip saved
    /// here is saved on every write. Nothing here reads or waits for other writers'
    /// records.
    pub(crate) async fn audit_many<'a>(
        &self,
        audits: impl IntoIterator<Item = (&'a Actor, Audit)>,
    ) -> Result<()> {
        let rows: Vec<audit_records::Model> = audits
            .into_iter()
            .map(|(actor, audit)| self.audit_row(actor, audit))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        for chunk in rows.chunks(AUDIT_CHUNK) {
            let records = chunk.iter().cloned().map(audit_records::ActiveModel::from);
            let insert = audit_records::Entity::insert_many(records);
            if self.backend() == Backend::Postgres {
                let mut both = insert.build(DbBackend::Postgres);
                both.sql = format!(
                    "WITH inserted AS ({} RETURNING id, content_hash) \
                     INSERT INTO audit_chain_queue (audit_record_id, content_hash) \
                     SELECT id, content_hash FROM inserted",
                    both.sql
                );
                self.tx().execute_raw(both).await.map_err(db)?;
                continue;
            }
            insert.exec_without_returning(self.tx()).await.map_err(db)?;
            let queued = chunk.iter().map(|row| {
                audit_chain_queue::ActiveModel::from(audit_chain_queue::Model {
                    audit_record_id: row.id,
                    content_hash: row.content_hash.clone(),
                })
            });
            audit_chain_queue::Entity::insert_many(queued)
                .exec_without_returning(self.tx())
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    fn audit_row(&self, actor: &Actor, audit: Audit) -> audit_records::Model {
        let record = AuditRecord::new(
            *actor,
            audit.action,
            audit.kind,
            audit.id,
            audit.summary,
            self.now,
        );
        audit_records::Model {
            id: record.id.0,
            actor_kind: actor.kind().as_str().to_owned(),
            actor_id: actor.id(),
            action: record.action.as_str().to_owned(),
            resource_kind: record.resource_kind.as_str().to_owned(),
            resource_id: record.resource_id,
            content_hash: record.content_hash.map(|hash| hash.to_hex()),
            summary: record.summary,
            created_at: record.created_at,
        }
    }
}

impl SqlStore {
    pub(crate) async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        let mut query = audit_records::Entity::find();
        if let Some(kind) = filter.actor_kind {
            query = query.filter(Column::ActorKind.eq(kind.as_str()));
        }
        if let Some(id) = filter.actor_id {
            query = query.filter(Column::ActorId.eq(id));
        }
        if let Some(action) = filter.action {
            query = query.filter(Column::Action.eq(action.as_str()));
        }
        if let Some(kind) = filter.resource_kind {
            query = query.filter(Column::ResourceKind.eq(kind.as_str()));
        }
        if let Some(id) = filter.resource_id {
            query = query.filter(Column::ResourceId.eq(id));
        }
        if let Some(since) = filter.since {
            query = query.filter(Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(Column::CreatedAt.lt(until));
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(rows, page, convert::audit_record, |r| r.id.to_string())
    }
}
