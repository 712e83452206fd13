//! Assertions and listing helpers the cases share.

use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::WAKE_TIMEOUT;
use crate::change::TargetStateWatch;
use crate::id::{AgentEventId, AgentId, StackId};
use crate::model::{Agent, AuditRecord, DeploymentObject, HealthReport, Stack, Template};
use crate::page::{ContentListing, MAX_LIMIT, Order, Page, PageRequest};
use crate::store::{
    AgentEventFilter, AgentFilter, AuditFilter, Error, Result, StackFilter, Store, TemplateFilter,
};
use crate::target_state::TargetState;

#[track_caller]
pub(super) fn expect_not_found<T: Debug>(result: Result<T>, kind: &str) {
    match result {
        Err(Error::NotFound { kind: got, .. }) => {
            assert_eq!(got, kind, "NotFound names the wrong kind of resource");
        }
        other => panic!("expected NotFound({kind}), got {other:?}"),
    }
}

#[track_caller]
pub(super) fn expect_conflict<T: Debug>(result: Result<T>) {
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected Conflict, got {result:?}"
    );
}

#[track_caller]
pub(super) fn expect_invalid<T: Debug>(result: Result<T>) {
    assert!(
        matches!(result, Err(Error::Invalid(_))),
        "expected Invalid, got {result:?}"
    );
}

/// Every page of a listing, walking pages of `limit` rows in `order`; each page within
/// its limit.
pub(super) async fn pages<T>(
    limit: u32,
    order: Order,
    fetch: impl AsyncFn(PageRequest) -> Result<Page<T>>,
) -> Vec<Page<T>> {
    let mut request = PageRequest {
        limit,
        cursor: None,
        order,
    };
    let mut pages = Vec::new();
    for _ in 0..10_000 {
        let page = fetch(request.clone()).await.expect("listing succeeds");
        assert!(
            page.items.len() <= limit as usize,
            "page longer than its limit"
        );
        let next = page.next_cursor.clone();
        pages.push(page);
        match next {
            Some(cursor) => request = request.after(cursor),
            None => return pages,
        }
    }
    panic!("pagination does not terminate")
}

/// Every row of a listing, walking pages of `limit` rows in `order`.
pub(super) async fn walk<T>(
    limit: u32,
    order: Order,
    fetch: impl AsyncFn(PageRequest) -> Result<Page<T>>,
) -> Vec<T> {
    pages(limit, order, fetch)
        .await
        .into_iter()
        .flat_map(|page| page.items)
        .collect()
}

/// Every row of a listing, ascending.
pub(super) async fn all<T>(fetch: impl AsyncFn(PageRequest) -> Result<Page<T>>) -> Vec<T> {
    walk(MAX_LIMIT, Order::Ascending, fetch).await
}

/// A listing with every row's content and no byte budget to end a page early.
pub(super) const ALL_CONTENT: ContentListing = ContentListing::Include {
    page_bytes: u64::MAX,
};

/// A stack's deployment objects walked in pages of `limit` in `order`, with their YAML.
pub(super) async fn walk_objects(
    store: &dyn Store,
    stack: StackId,
    limit: u32,
    order: Order,
) -> Vec<DeploymentObject> {
    walk(limit, order, async |p| {
        store.list_deployment_objects(stack, ALL_CONTENT, &p).await
    })
    .await
    .into_iter()
    .map(|listed| listed.into_object().expect("the listing includes the YAML"))
    .collect()
}

/// Every template the filter selects, ascending, with its latest version's content.
pub(super) async fn all_templates(store: &dyn Store, filter: &TemplateFilter) -> Vec<Template> {
    all(async |p| store.list_templates(filter, ALL_CONTENT, &p).await)
        .await
        .into_iter()
        .map(|listed| {
            listed
                .into_template()
                .expect("the listing includes the content")
        })
        .collect()
}

/// Every deployment object of a stack, ascending, with its YAML.
pub(super) async fn all_objects(store: &dyn Store, stack: StackId) -> Vec<DeploymentObject> {
    walk_objects(store, stack, MAX_LIMIT, Order::Ascending).await
}

pub(super) async fn all_audit(store: &dyn Store) -> Vec<AuditRecord> {
    all(async |p| store.list_audit_records(&AuditFilter::default(), &p).await).await
}

pub(super) async fn all_stacks(store: &dyn Store, filter: StackFilter) -> Vec<Stack> {
    all(async |p| store.list_stacks(&filter, &p).await).await
}

pub(super) async fn all_agents(store: &dyn Store, filter: AgentFilter) -> Vec<Agent> {
    all(async |p| store.list_agents(&filter, &p).await).await
}

pub(super) async fn all_events(store: &dyn Store, filter: AgentEventFilter) -> Vec<AgentEventId> {
    all(async |p| store.list_agent_events(&filter, &p).await)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

pub(super) async fn stack_health(store: &dyn Store, stack: StackId) -> Vec<HealthReport> {
    store.stack_health(stack).await.expect("stack health")
}

pub(super) async fn target_state(store: &dyn Store, agent: AgentId) -> TargetState {
    store.target_state(agent).await.expect("target state")
}

pub(super) async fn expect_wake(watch: &mut TargetStateWatch, what: &str) {
    assert!(
        tokio::time::timeout(WAKE_TIMEOUT, watch.changed())
            .await
            .is_ok(),
        "the watch did not wake after {what}"
    );
}

pub(super) fn include_deleted_stacks() -> StackFilter {
    StackFilter {
        include_deleted: true,
        ..Default::default()
    }
}

/// A time between two writes, clear of clock granularity on either side.
pub(super) async fn instant_between_writes() -> DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    at
}

/// Walks a listing with limits 1, 2 and a large one, both ways, and checks that every
/// row comes exactly once, in key order.
pub(super) async fn check_walks<T, K: Ord + Clone + Debug>(
    what: &str,
    mut expected: Vec<K>,
    key: impl Fn(&T) -> K,
    fetch: impl AsyncFn(PageRequest) -> Result<Page<T>>,
) {
    expected.sort();
    for limit in [1, 2, MAX_LIMIT] {
        for order in [Order::Ascending, Order::Descending] {
            let walked: Vec<K> = walk(limit, order, &fetch).await.iter().map(&key).collect();
            let mut want = expected.clone();
            if order == Order::Descending {
                want.reverse();
            }
            assert_eq!(walked, want, "{what}, limit {limit}, {order:?}");
        }
    }
}
