//! The audit chain: every record sealed exactly once into one chain, which verifies.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fixtures::{ADMIN, config_map_yaml, mk_agent, mk_generator, mk_object, mk_stack};
use super::support::all_audit;
use crate::audit_chain::{self, AuditHash, ChainCheck, ChainHead, ChainLink, GENESIS};
use crate::id::AuditRecordId;
use crate::model::{AuditRecord, NewDeploymentObject, NewStack};
use crate::store::Store;

/// Seals everything pending, calling again until nothing is left.
async fn seal_all(store: &dyn Store) -> usize {
    let mut sealed = 0;
    loop {
        match store.seal_audit_chain(1_000).await.expect("seal") {
            0 => return sealed,
            n => sealed += n,
        }
    }
}

/// Every link, in position order, read in pages of 3.
async fn all_links(store: &dyn Store) -> Vec<ChainLink> {
    let mut links: Vec<ChainLink> = Vec::new();
    loop {
        let after = links.last().map_or(0, |link| link.position);
        let page = store.list_audit_chain(after, 3).await.expect("list links");
        assert!(page.len() <= 3, "a page longer than its limit");
        let done = page.len() < 3;
        links.extend(page);
        if done {
            return links;
        }
    }
}

/// Verifies the whole chain in pages of `limit`, asserting that it matches; returns
/// the links checked and the head.
async fn verify_all(store: &dyn Store, limit: usize) -> (u64, Option<ChainHead>) {
    let mut after = None;
    let mut checked = 0;
    for _ in 0..10_000 {
        let check: ChainCheck = store
            .verify_audit_chain(after, limit)
            .await
            .expect("verify");
        assert_eq!(check.mismatch, None, "an untouched chain matches");
        assert!(check.checked <= limit as u64);
        checked += check.checked;
        after = check.last.or(after);
        if !check.more {
            return (checked, after);
        }
    }
    panic!("verification does not terminate")
}

/// Asserts that the links are positions 1..=n without gaps and seal `records`, each
/// exactly once.
fn assert_one_chain(links: &[ChainLink], records: &[AuditRecord]) {
    let positions: Vec<u64> = links.iter().map(|link| link.position).collect();
    let expected: Vec<u64> = (1..=links.len() as u64).collect();
    assert_eq!(positions, expected, "positions start at 1 and have no gaps");
    let linked: Vec<AuditRecordId> = links.iter().map(|link| link.record_id).collect();
    let unique: BTreeSet<AuditRecordId> = linked.iter().copied().collect();
    assert_eq!(unique.len(), linked.len(), "a record is linked twice");
    let written: BTreeSet<AuditRecordId> = records.iter().map(|r| r.id).collect();
    assert_eq!(
        unique, written,
        "the chain seals exactly the records written"
    );
}

/// The chain hash after `records` in this order, computed here from their fields.
fn expected_head(records: &[&AuditRecord]) -> AuditHash {
    records.iter().fold(GENESIS, |previous, record| {
        audit_chain::chain_hash(&previous, &audit_chain::content_hash(record))
    })
}

cases!(
    /// Records carry the content hash of their fields as read back; sealing links them
    /// after the head in id order, in bounded calls, and the chain verifies whole and in
    /// pages.
    pub async fn audit_chain_seals_and_verifies(store: &dyn Store) {
        assert_eq!(store.unsealed_audit_records().await.expect("unsealed"), 0);
        assert_eq!(store.seal_audit_chain(100).await.expect("seal"), 0);
        let empty = store.verify_audit_chain(None, 100).await.expect("verify");
        assert_eq!(
            (empty.checked, empty.last, empty.mismatch, empty.more),
            (0, None, None, false)
        );

        mk_generator(store, "g").await;
        let stack = mk_stack(store, "s").await;
        for version in ["1", "2", "3"] {
            mk_object(store, stack.id, version).await;
        }
        mk_agent(store, "a").await;
        let records = all_audit(store).await;
        assert_eq!(records.len(), 6);
        for record in &records {
            assert_eq!(
                record.content_hash,
                Some(audit_chain::content_hash(record)),
                "the hash written with a record is the hash of the record read back: {record:?}"
            );
        }
        assert_eq!(store.unsealed_audit_records().await.expect("unsealed"), 6);

        assert_eq!(store.seal_audit_chain(2).await.expect("seal"), 2);
        assert_eq!(store.unsealed_audit_records().await.expect("unsealed"), 4);
        assert_eq!(seal_all(store).await, 4);
        assert_eq!(store.unsealed_audit_records().await.expect("unsealed"), 0);

        let links = all_links(store).await;
        assert_one_chain(&links, &records);
        // Everything was written before the first seal, so the chain is in id order.
        let by_id: Vec<&AuditRecord> = records.iter().collect();
        let linked: Vec<AuditRecordId> = links.iter().map(|l| l.record_id).collect();
        assert_eq!(linked, by_id.iter().map(|r| r.id).collect::<Vec<_>>());
        let head = ChainHead {
            position: 6,
            hash: expected_head(&by_id),
        };
        assert_eq!(links[5].chain_hash, head.hash);

        let whole = store.verify_audit_chain(None, 100).await.expect("verify");
        assert_eq!(
            (whole.checked, whole.last, whole.mismatch, whole.more),
            (6, Some(head), None, false)
        );
        for limit in [1, 4, 6] {
            assert_eq!(
                verify_all(store, limit).await,
                (6, Some(head)),
                "pages of {limit}"
            );
        }
        let past = store
            .verify_audit_chain(Some(head), 100)
            .await
            .expect("verify");
        assert_eq!((past.checked, past.mismatch, past.more), (0, None, false));
    }

    /// Sealing with nothing pending changes nothing; later records extend the same
    /// chain after its head.
    pub async fn audit_chain_sealing_again_changes_nothing(store: &dyn Store) {
        mk_stack(store, "s").await;
        mk_agent(store, "a").await;
        assert_eq!(seal_all(store).await, 2);
        let before = all_links(store).await;
        let (_, head) = verify_all(store, 100).await;
        for _ in 0..3 {
            assert_eq!(store.seal_audit_chain(100).await.expect("seal"), 0);
        }
        assert_eq!(all_links(store).await, before);
        assert_eq!(verify_all(store, 100).await, (2, head));

        mk_stack(store, "t").await;
        assert_eq!(seal_all(store).await, 1);
        let after = all_links(store).await;
        assert_eq!(after[..2], before[..], "sealing only appends");
        assert_eq!(after.len(), 3);
        let tail = store.verify_audit_chain(head, 100).await.expect("verify");
        assert_eq!((tail.checked, tail.mismatch), (1, None));
        assert_eq!(tail.last.map(|h| h.position), Some(3));
        assert_eq!(verify_all(store, 2).await, (3, tail.last));
    }

    /// Sixteen writers on different stacks, with sealers running among them, end in one
    /// chain holding every record exactly once.
    pub async fn audit_chain_concurrent_writers_keep_one_chain(store: &dyn Store) {
        const WRITERS: usize = 16;
        let writing = AtomicUsize::new(WRITERS);
        let writers = (0..WRITERS).map(|i| {
            let writing = &writing;
            async move {
                let stack = store
                    .create_stack(
                        &ADMIN,
                        NewStack {
                            name: format!("s{i}"),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("create stack");
                for version in ["1", "2"] {
                    let yaml = config_map_yaml("c", version);
                    let new = NewDeploymentObject::from_yaml(stack.id, yaml).expect("YAML");
                    store
                        .append_deployment_object(&ADMIN, new)
                        .await
                        .expect("append");
                }
                writing.fetch_sub(1, Ordering::SeqCst);
            }
        });
        let sealers = (0..2).map(|_| async {
            let mut sealed = 0;
            while writing.load(Ordering::SeqCst) > 0 {
                sealed += store.seal_audit_chain(5).await.expect("seal");
                tokio::task::yield_now().await;
            }
            sealed
        });
        let (_, sealed) = futures::join!(
            futures::future::join_all(writers),
            futures::future::join_all(sealers)
        );
        let sealed: usize = sealed.into_iter().sum::<usize>() + seal_all(store).await;
        assert_eq!(sealed, WRITERS * 3, "every record sealed once");
        assert_eq!(store.unsealed_audit_records().await.expect("unsealed"), 0);

        let records = all_audit(store).await;
        assert_eq!(records.len(), WRITERS * 3);
        let links = all_links(store).await;
        assert_one_chain(&links, &records);
        let (checked, head) = verify_all(store, 7).await;
        assert_eq!(checked, records.len() as u64);
        assert_eq!(head.map(|h| h.hash), links.last().map(|l| l.chain_hash));
    }
);
