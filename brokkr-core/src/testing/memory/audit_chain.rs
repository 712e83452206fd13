//! The audit chain: records queue as they are written, a seal links them, a check
//! reads a page of links.

use super::MemoryStore;
use crate::audit_chain::{self, ChainCheck, ChainHead, ChainLink, LinkedRecord};
use crate::store::Result;

pub(super) fn seal_audit_chain(store: &MemoryStore, limit: usize) -> Result<usize> {
    let mut state = store.state();
    let pending: Vec<_> = state.unsealed.iter().take(limit).copied().collect();
    let head = state.chain.last().map(|link| ChainHead {
        position: link.position,
        hash: link.chain_hash,
    });
    let links = audit_chain::link(
        head,
        pending.iter().map(|id| {
            let record = state
                .audit
                .get(id)
                .map_or(LinkedRecord::Missing, |r| LinkedRecord::Found(r.clone()));
            (*id, record.sealed_hash())
        }),
    );
    for id in &pending {
        state.unsealed.remove(id);
    }
    state.chain.extend(links);
    Ok(pending.len())
}

pub(super) fn verify_audit_chain(
    store: &MemoryStore,
    after: Option<ChainHead>,
    limit: usize,
) -> Result<ChainCheck> {
    let state = store.state();
    let start = after.map_or(0, |head| head.position);
    let page = links_after(&state.chain, start)
        .iter()
        .take(limit)
        .map(|link| {
            let record = state
                .audit
                .get(&link.record_id)
                .map_or(LinkedRecord::Missing, |r| LinkedRecord::Found(r.clone()));
            (*link, record)
        });
    Ok(audit_chain::check_page(after, page, limit))
}

pub(super) fn unsealed_audit_records(store: &MemoryStore) -> Result<u64> {
    Ok(store.state().unsealed.len() as u64)
}

pub(super) fn list_audit_chain(
    store: &MemoryStore,
    after: u64,
    limit: usize,
) -> Result<Vec<ChainLink>> {
    let state = store.state();
    Ok(links_after(&state.chain, after)
        .iter()
        .take(limit)
        .copied()
        .collect())
}

/// The links after position `after`: positions start at 1 and have no gaps, so link
/// `p` is at index `p - 1`.
fn links_after(chain: &[ChainLink], after: u64) -> &[ChainLink] {
    let start = usize::try_from(after).map_or(chain.len(), |after| after.min(chain.len()));
    &chain[start..]
}
