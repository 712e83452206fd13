//! The audit chain in SQL: the sealer links queued records after the head by the
//! content hashes their queue rows carry, one sealer at a time across replicas; the
//! check reads a page of links with their records. The hashing and the check itself
//! are `brokkr_core::audit_chain`'s, shared with every store.

use std::collections::HashMap;

use brokkr_core::audit_chain::{
    self, AuditHash, ChainCheck, ChainHead, ChainLink, GENESIS, LinkedRecord,
};
use brokkr_core::store::Result;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use crate::entity::{audit_chain as links, audit_chain_queue as queue, audit_records};
use crate::errors::db;
use crate::{Backend, SqlStore, convert, sql};

/// The PostgreSQL advisory lock that lets one sealer at a time extend the chain
/// ("brkchain" in ASCII). Held to the end of the sealing transaction.
const SEAL_LOCK: i64 = 0x6272_6b63_6861_696e;

/// Most ids in one `IN (...)` list or rows in one insert, well under both databases'
/// limits on bind parameters.
const CHUNK: usize = 500;

impl SqlStore {
    pub(crate) async fn seal_audit_chain_impl(&self, limit: usize) -> Result<usize> {
        // The sealer runs every period on every replica: with nothing queued it must
        // not take SQLite's write lock or PostgreSQL's advisory lock at all.
        let queued = queue::Entity::find().one(&self.reader).await.map_err(db)?;
        if limit == 0 || queued.is_none() {
            return Ok(0);
        }
        let write = self.begin().await?;
        let tx = write.tx();
        // SQLite has one writer already (the transaction began IMMEDIATE).
        if write.backend() == Backend::Postgres {
            tx.execute_raw(sql::stmt(
                Backend::Postgres,
                "SELECT pg_advisory_xact_lock(?)",
                [SEAL_LOCK.into()],
            ))
            .await
            .map_err(db)?;
        }
        let queued = queue::Entity::find()
            .order_by_asc(queue::Column::AuditRecordId)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .all(tx)
            .await
            .map_err(db)?;
        if queued.is_empty() {
            // Another sealer linked them meanwhile.
            self.commit(write).await?;
            return Ok(0);
        }
        let head = links::Entity::find()
            .order_by_desc(links::Column::Position)
            .one(tx)
            .await
            .map_err(db)?
            .map(link)
            .map(|link| ChainHead {
                position: link.position,
                hash: link.chain_hash,
            });
        let hashes = sealed_hashes(tx, &queued).await?;
        let pending: Vec<Uuid> = queued.iter().map(|row| row.audit_record_id).collect();
        let new_links = audit_chain::link(
            head,
            pending
                .iter()
                .zip(hashes)
                .map(|(id, hash)| ((*id).into(), hash)),
        );
        for chunk in new_links.chunks(CHUNK) {
            links::Entity::insert_many(chunk.iter().map(|link| {
                links::ActiveModel::from(links::Model {
                    position: position(link.position),
                    audit_record_id: link.record_id.0,
                    chain_hash: link.chain_hash.to_hex(),
                })
            }))
            .exec_without_returning(tx)
            .await
            .map_err(db)?;
        }
        for chunk in pending.chunks(CHUNK) {
            queue::Entity::delete_many()
                .filter(queue::Column::AuditRecordId.is_in(chunk.iter().copied()))
                .exec(tx)
                .await
                .map_err(db)?;
        }
        self.commit(write).await?;
        Ok(pending.len())
    }

    pub(crate) async fn verify_audit_chain_impl(
        &self,
        after: Option<ChainHead>,
        limit: usize,
    ) -> Result<ChainCheck> {
        let page = self
            .chain_links(after.map_or(0, |head| head.position), limit)
            .await?;
        let ids: Vec<Uuid> = page.iter().map(|link| link.record_id.0).collect();
        let mut records = linked_records(&self.reader, &ids).await?;
        let page = page.into_iter().map(|link| {
            let record = records
                .remove(&link.record_id.0)
                .unwrap_or(LinkedRecord::Missing);
            (link, record)
        });
        Ok(audit_chain::check_page(after, page, limit))
    }

    pub(crate) async fn unsealed_audit_records_impl(&self) -> Result<u64> {
        queue::Entity::find().count(&self.reader).await.map_err(db)
    }

    pub(crate) async fn list_audit_chain_impl(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChainLink>> {
        self.chain_links(after, limit).await
    }

    /// Up to `limit` links after position `after`, in position order.
    async fn chain_links(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>> {
        let rows = links::Entity::find()
            .filter(links::Column::Position.gt(position(after)))
            .order_by_asc(links::Column::Position)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .all(&self.reader)
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(link).collect())
    }
}

/// A stored link. A chain hash that is not 64 hex digits was changed by hand: it
/// stands as [`GENESIS`], which no SHA-256 output equals, so the check reports the
/// link as changed.
fn link(row: links::Model) -> ChainLink {
    ChainLink {
        position: u64::try_from(row.position).unwrap_or(0),
        record_id: row.audit_record_id.into(),
        chain_hash: AuditHash::from_hex(&row.chain_hash).unwrap_or(GENESIS),
    }
}

fn position(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// The hash to link for each queued record, in queue order: the content hash its
/// queue row was written with, so sealing reads no records. Rows queued before m0010
/// (or whose hash does not parse) fall back to the record, as [`LinkedRecord`] says.
async fn sealed_hashes(
    conn: &impl ConnectionTrait,
    queued: &[queue::Model],
) -> Result<Vec<AuditHash>> {
    let carried = |row: &queue::Model| row.content_hash.as_deref().and_then(AuditHash::from_hex);
    let unhashed: Vec<Uuid> = queued
        .iter()
        .filter(|row| carried(row).is_none())
        .map(|row| row.audit_record_id)
        .collect();
    let mut records = linked_records(conn, &unhashed).await?;
    Ok(queued
        .iter()
        .map(|row| {
            carried(row).unwrap_or_else(|| {
                records
                    .remove(&row.audit_record_id)
                    .unwrap_or(LinkedRecord::Missing)
                    .sealed_hash()
            })
        })
        .collect())
}

/// The records with these ids, each as found: a row that does not convert (a field
/// edited into an invalid value) is `Unreadable` rather than failing the whole read,
/// so the check can name it. Ids without a row are absent from the map.
async fn linked_records(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, LinkedRecord>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let statement = audit_records::Entity::find()
            .filter(audit_records::Column::Id.is_in(chunk.iter().copied()))
            .build(conn.get_database_backend());
        for row in conn.query_all_raw(statement).await.map_err(db)? {
            let Ok(id) = row.try_get::<Uuid>("", "id") else {
                continue;
            };
            let record = audit_records::Model::from_query_result(&row, "")
                .ok()
                .and_then(|model| convert::audit_record(model).ok())
                .map_or(LinkedRecord::Unreadable, LinkedRecord::Found);
            found.insert(id, record);
        }
    }
    Ok(found)
}
