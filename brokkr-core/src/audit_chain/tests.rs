use chrono::TimeZone;
use uuid::Uuid;

use super::*;
use crate::id::{AgentId, AuditRecordId};
use crate::model::{Actor, AuditAction, ResourceKind};

fn mk_record(summary: &str) -> AuditRecord {
    AuditRecord::new(
        Actor::Admin,
        AuditAction::Create,
        ResourceKind::Stack,
        Uuid::now_v7(),
        summary.into(),
        Utc.timestamp_micros(1_800_000_000_123_456).unwrap(),
    )
}

/// A chain of `n` records, sealed, with each link's record as found.
fn mk_chain(n: usize) -> Vec<(ChainLink, LinkedRecord)> {
    let records: Vec<AuditRecord> = (0..n).map(|i| mk_record(&format!("r{i}"))).collect();
    let links = link(
        None,
        records
            .iter()
            .map(|r| (r.id, LinkedRecord::Found(r.clone()).sealed_hash())),
    );
    links
        .into_iter()
        .zip(records)
        .map(|(l, r)| (l, LinkedRecord::Found(r)))
        .collect()
}

fn check(chain: &[(ChainLink, LinkedRecord)]) -> ChainCheck {
    check_page(None, chain.to_vec(), chain.len() + 1)
}

fn expect_fault(chain: &[(ChainLink, LinkedRecord)], index: usize, fault: ChainFault) {
    let result = check(chain);
    assert_eq!(
        result.mismatch,
        Some(ChainMismatch {
            position: chain[index].0.position,
            record_id: chain[index].0.record_id,
            fault,
        })
    );
    assert_eq!(result.checked, index as u64, "links before it match");
}

/// The encoding is pinned: this value was also computed by an independent Python
/// implementation of the documented encoding (docs/concepts.md).
#[test]
fn the_content_encoding_is_stable() {
    let record = AuditRecord {
        id: AuditRecordId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001)),
        actor: Actor::Agent(AgentId(Uuid::from_u128(2))),
        action: AuditAction::SetMetadata,
        resource_kind: ResourceKind::AgentTarget,
        resource_id: Uuid::from_u128(3),
        summary: "set label team=blue on stack 3".into(),
        created_at: Utc.timestamp_micros(1_800_000_000_123_456).unwrap(),
        content_hash: None,
    };
    assert_eq!(
        content_hash(&record).to_hex(),
        "0328cc32253e172ec2d87b569617d2e2a56369be9c7137638474cd2473755012"
    );
    assert_eq!(
        chain_hash(&GENESIS, &content_hash(&record)).to_hex(),
        "8f6553269ce821a9a750a906be5edfaab7295add3fdb497deae235cc79f7f8bb"
    );
}

#[test]
fn every_field_is_hashed() {
    let base = mk_record("s");
    let hash = content_hash(&base);
    let changes: [fn(&mut AuditRecord); 8] = [
        |r| r.id = AuditRecordId::new(),
        |r| r.actor = Actor::System,
        |r| r.actor = Actor::Agent(AgentId::new()),
        |r| r.action = AuditAction::Update,
        |r| r.resource_kind = ResourceKind::Agent,
        |r| r.resource_id = Uuid::now_v7(),
        |r| r.summary.push(' '),
        |r| r.created_at += chrono::Duration::microseconds(1),
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(content_hash(&changed), hash, "change {i} is not hashed");
    }
    // The stored hash is not part of the content.
    let mut stored = base.clone();
    stored.content_hash = None;
    assert_eq!(content_hash(&stored), hash);
    assert_eq!(
        base.content_hash,
        Some(hash),
        "new records carry their hash"
    );
}

#[test]
fn length_prefixes_keep_fields_apart() {
    let mut a = mk_record("ab");
    a.actor = Actor::Admin;
    let mut b = a.clone();
    b.summary = "a".into();
    assert_ne!(content_hash(&a), content_hash(&b));
}

#[test]
fn hashes_round_trip_through_hex() {
    let hash = content_hash(&mk_record("s"));
    assert_eq!(AuditHash::from_hex(&hash.to_hex()), Some(hash));
    assert_eq!(
        AuditHash::from_hex(&hash.to_hex().to_uppercase()),
        Some(hash)
    );
    assert_eq!(AuditHash::from_hex("00"), None);
    assert_eq!(AuditHash::from_hex(&"g".repeat(64)), None);
    assert_eq!(AuditHash::from_hex(&"é".repeat(32)), None);
    let json = serde_json::to_string(&hash).unwrap();
    assert_eq!(json, format!("\"{hash}\""));
    assert_eq!(serde_json::from_str::<AuditHash>(&json).unwrap(), hash);
}

#[test]
fn a_sealed_chain_checks_whole_and_in_pages() {
    let chain = mk_chain(7);
    let whole = check(&chain);
    assert_eq!(whole.mismatch, None);
    assert_eq!(whole.checked, 7);
    assert!(!whole.more);
    let head = whole.last.unwrap();
    assert_eq!(head.position, 7);
    assert_eq!(head.hash, chain[6].0.chain_hash);

    let mut after = None;
    let mut checked = 0;
    for page in chain.chunks(3) {
        let result = check_page(after, page.to_vec(), 3);
        assert_eq!(result.mismatch, None);
        assert_eq!(result.more, page.len() == 3);
        checked += result.checked;
        after = result.last;
    }
    assert_eq!((checked, after), (7, Some(head)));

    let empty = check_page(Some(head), Vec::new(), 3);
    assert_eq!((empty.checked, empty.last, empty.more), (0, None, false));
}

#[test]
fn links_continue_from_the_head() {
    let chain = mk_chain(2);
    let head = check(&chain).last;
    let next = mk_record("next");
    let more = link(head, [(next.id, next.content_hash.unwrap())]);
    assert_eq!(more[0].position, 3);
    let result = check_page(head, [(more[0], LinkedRecord::Found(next))], 10);
    assert_eq!((result.checked, result.mismatch), (1, None));
    // Checked from a wrong starting hash, the same link does not match.
    let wrong = Some(ChainHead {
        position: 2,
        hash: GENESIS,
    });
    let again = check_page(wrong, [(more[0], LinkedRecord::Missing)], 10);
    assert_eq!(again.mismatch.unwrap().fault, ChainFault::RecordMissing);
}

#[test]
fn an_edited_field_is_a_changed_content() {
    let mut chain = mk_chain(5);
    let LinkedRecord::Found(record) = &mut chain[2].1 else {
        unreachable!()
    };
    record.summary = "nothing happened".into();
    expect_fault(&chain, 2, ChainFault::ContentChanged);
}

#[test]
fn an_edit_with_a_recomputed_content_hash_breaks_the_chain() {
    let mut chain = mk_chain(5);
    let LinkedRecord::Found(record) = &mut chain[3].1 else {
        unreachable!()
    };
    record.summary = "nothing happened".into();
    record.content_hash = Some(content_hash(record));
    expect_fault(&chain, 3, ChainFault::ChainHashChanged);
}

#[test]
fn an_edited_link_breaks_the_chain() {
    let mut chain = mk_chain(4);
    chain[1].0.chain_hash = GENESIS;
    expect_fault(&chain, 1, ChainFault::ChainHashChanged);
}

#[test]
fn a_legacy_record_is_checked_by_its_fields() {
    let mut chain = mk_chain(3);
    let LinkedRecord::Found(record) = &mut chain[1].1 else {
        unreachable!()
    };
    record.content_hash = None;
    assert_eq!(check(&chain).mismatch, None);
    let LinkedRecord::Found(record) = &mut chain[1].1 else {
        unreachable!()
    };
    record.summary.push('!');
    expect_fault(&chain, 1, ChainFault::ChainHashChanged);
}

#[test]
fn missing_and_unreadable_records_and_missing_links_are_named() {
    let mut chain = mk_chain(4);
    chain[2].1 = LinkedRecord::Missing;
    expect_fault(&chain, 2, ChainFault::RecordMissing);

    let mut chain = mk_chain(4);
    chain[0].1 = LinkedRecord::Unreadable;
    expect_fault(&chain, 0, ChainFault::ContentChanged);

    let mut chain = mk_chain(4);
    chain.remove(1);
    expect_fault(&chain, 1, ChainFault::LinkMissing);
}

#[test]
fn a_record_gone_before_sealing_is_linked_and_reported() {
    let kept = mk_record("kept");
    let gone = AuditRecordId::new();
    let links = link(
        None,
        [
            (kept.id, LinkedRecord::Found(kept.clone()).sealed_hash()),
            (gone, LinkedRecord::Missing.sealed_hash()),
        ],
    );
    let chain = vec![
        (links[0], LinkedRecord::Found(kept)),
        (links[1], LinkedRecord::Missing),
    ];
    expect_fault(&chain, 1, ChainFault::RecordMissing);
}
