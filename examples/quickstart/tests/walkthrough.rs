//! The walkthrough runs the same on the in-memory store and on SQLite, through the
//! control plane, long poll included.

use std::sync::Arc;

use brokkr_core::testing::MemoryStore;
use brokkr_example_quickstart::walkthrough;
use brokkr_store::SqlStore;

fn check(result: brokkr_example_quickstart::Walkthrough) {
    assert_eq!(result.steps.len(), 9, "{:#?}", result.steps);
    assert!(
        result.steps[6].starts_with("the guard stopped the deletion: 1 agent(s)"),
        "{}",
        result.steps[6]
    );
    assert!(
        result.steps[3].ends_with("woke: true"),
        "{}",
        result.steps[3]
    );
    assert!(result.steps.last().unwrap().ends_with(": 0"));
    // stack, agent, assign, 2 appends, 2 events, the plan, its confirmation, delete.
    assert_eq!(result.audit_records, 10);
}

#[tokio::test]
async fn on_the_memory_store() {
    check(walkthrough(Arc::new(MemoryStore::new())).await.unwrap());
}

#[tokio::test]
async fn on_sqlite() {
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    check(walkthrough(Arc::new(store)).await.unwrap());
}
