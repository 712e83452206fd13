//! Rollouts on the SQL stores beyond the conformance suite: migration m0009 on a store
//! with history, a pin that wakes another replica's watch through `NOTIFY`, and one
//! change pinning, auditing and unpinning more agents than one statement's
//! bind parameters can carry.

mod common;

use std::time::Duration;

use brokkr_core::rollout::{OnNewVersion, RolloutChange, RolloutPolicy, Transition};
use brokkr_core::store::{AuditFilter, RolloutFilter};
use brokkr_core::testing::conformance::{
    ADMIN, decision, mk_agent, mk_object, mk_stack, mk_target, new_agent, policy,
};
use brokkr_core::{
    AgentId, AuditAction, AuditRecord, DeploymentObjectId, Pak, ResourceKind, Rollout,
    RolloutState, RolloutStore, StackId, Store, TargetState,
};
use brokkr_store::{Migrator, MigratorTrait, SqlStore, StoreConfig};
use chrono::{SubsecRound, Utc};
use sea_orm::Database;

/// One wave over every agent.
fn rollout_policy() -> RolloutPolicy {
    let policy: RolloutPolicy = serde_json::from_value(serde_json::json!({
        "waves": [{"name": "all", "select": {"remaining": true}}]
    }))
    .expect("the policy parses");
    RolloutPolicy {
        on_new_version: OnNewVersion::Queue,
        ..policy
    }
}

/// A change of `rollout` that moves nothing but what the caller sets.
fn change(rollout: &Rollout) -> RolloutChange {
    RolloutChange {
        rollout_id: rollout.id,
        expected_version: rollout.version,
        at: Utc::now().trunc_subsecs(6),
        state: rollout.state,
        state_reason: None,
        started_at: rollout.started_at,
        deadline_at: None,
        next_eval_at: None,
        finished_at: None,
        waves: Vec::new(),
        agents: Vec::new(),
        pin: Vec::new(),
        unpin: Vec::new(),
        unpin_all: false,
        release: false,
        start_gates: Vec::new(),
        consumed_commands: Vec::new(),
        transitions: Vec::new(),
    }
}

/// Sets the policy on `stack`, appends `v2` and answers its queued rollout.
async fn queue(store: &dyn Store, stack: StackId) -> Rollout {
    store
        .set_rollout_policy(&ADMIN, stack, Some(rollout_policy()))
        .await
        .expect("set the policy");
    mk_object(store, stack, "2").await;
    let filter = RolloutFilter {
        stack_id: Some(stack),
        state: Some(RolloutState::Queued),
    };
    let page = store
        .list_rollouts(&filter, &brokkr_core::PageRequest::default())
        .await
        .expect("list");
    page.items.into_iter().next().expect("a queued rollout")
}

/// Starts `rollout`, pinning `pin`.
fn start(rollout: &Rollout, pin: Vec<AgentId>) -> RolloutChange {
    RolloutChange {
        state: RolloutState::Running,
        started_at: Some(Utc::now().trunc_subsecs(6)),
        pin,
        transitions: vec![Transition::Rollout {
            from: RolloutState::Queued,
            to: RolloutState::Running,
            reason: None,
        }],
        ..change(rollout)
    }
}

fn object_in(state: &TargetState, stack: StackId) -> Option<DeploymentObjectId> {
    state
        .entries
        .iter()
        .find(|e| e.stack_id == stack)
        .map(|e| e.deployment_object.id)
}

async fn audit_of(store: &dyn Store, rollout: &Rollout, action: AuditAction) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        resource_kind: Some(ResourceKind::Rollout),
        resource_id: Some(rollout.id.0),
        action: Some(action),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut page = brokkr_core::PageRequest::first(1000);
    loop {
        let got = store
            .list_audit_records(&filter, &page)
            .await
            .expect("audit");
        out.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page = page.after(cursor),
            None => return out,
        }
    }
}

// ---------------------------------------------------------------------------------
// m0009 on a store with history

/// Undoes and redoes m0009 under a store with a live stack and a deleted one: each
/// release head is its latest object (the deletion marker for the deleted one), and
/// agents are served exactly what they were.
async fn check_release_backfill(config: StoreConfig) {
    let store = SqlStore::connect_with(config.clone()).await.expect("open");
    let agent = mk_agent(&store, "a").await.id;
    let live = mk_stack(&store, "live").await.id;
    let gone = mk_stack(&store, "gone").await.id;
    mk_object(&store, live, "1").await;
    let v2 = mk_object(&store, live, "2").await.id;
    mk_object(&store, gone, "1").await;
    mk_target(&store, agent, live).await;
    mk_target(&store, agent, gone).await;
    let marker = store.delete_stack(&ADMIN, gone).await.expect("delete").id;
    let before = store.target_state(agent).await.expect("target state");
    drop(store);

    let db = Database::connect(config.url.as_str())
        .await
        .expect("connect");
    Migrator::down(&db, Some(common::migrations_from("m0009_rollouts")))
        .await
        .expect("down m0009");
    Migrator::up(&db, None).await.expect("up m0009");
    db.close().await.expect("close");

    let store = SqlStore::connect_with(config).await.expect("reopen");
    assert_eq!(store.release_head(live).await.unwrap(), Some(v2));
    assert_eq!(store.release_head(gone).await.unwrap(), Some(marker));
    let after = store.target_state(agent).await.expect("target state");
    assert_eq!(after.entries, before.entries, "served exactly as before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_release_heads_are_filled_from_the_latest_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_release_backfill(StoreConfig {
        url: common::sqlite_url(&dir),
        ..StoreConfig::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_release_heads_are_filled_from_the_latest_objects() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    check_release_backfill(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}

// ---------------------------------------------------------------------------------
// Two replicas

/// A pin written through one replica wakes the agent's long poll on another, and the
/// other serves the candidate (PostgreSQL `NOTIFY`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_pin_wakes_the_agent_on_another_replica() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    let one = SqlStore::connect_with(common::pg_config(&pg.url))
        .await
        .unwrap();
    let two = SqlStore::connect_with(common::pg_config(&pg.url))
        .await
        .unwrap();
    let agent = mk_agent(&one, "a").await.id;
    let stack = mk_stack(&one, "s").await.id;
    let v1 = mk_object(&one, stack, "1").await.id;
    mk_target(&one, agent, stack).await;
    let rollout = queue(&one, stack).await;
    assert_eq!(
        object_in(&two.target_state(agent).await.unwrap(), stack),
        Some(v1)
    );

    let mut watch = two.watch_target_state(agent);
    one.apply_rollout_change("driver", start(&rollout, vec![agent]))
        .await
        .expect("pin");
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("the other replica's watch woke");
    let served = two.target_state(agent).await.unwrap();
    assert_eq!(object_in(&served, stack), Some(rollout.candidate));
    drop((one, two));
    pg.drop_database().await;
}

// ---------------------------------------------------------------------------------
// Many agents in one change

/// More agents than SQLite binds in one statement.
const MANY: usize = 1_100;

/// One change pins every agent of a large stack (each pin audited), every agent's
/// target state names the candidate, and one change unpins them all again.
async fn check_many_agents(store: &dyn Store) {
    let stack = mk_stack(store, "wide").await.id;
    let v1 = mk_object(store, stack, "1").await.id;
    let mut agents = Vec::with_capacity(MANY);
    for n in 0..MANY {
        let new = new_agent(&format!("a{n}"), "c", &Pak::generate());
        agents.push(store.create_agent(&ADMIN, new).await.expect("agent").id);
    }
    store
        .set_placement_policy(&ADMIN, stack, Some(policy(MANY as u32)))
        .await
        .expect("placement policy");
    store
        .record_placement(&ADMIN, stack, decision(&agents, &[]))
        .await
        .expect("placed on every agent");
    let rollout = queue(store, stack).await;

    let running = store
        .apply_rollout_change("driver", start(&rollout, agents.clone()))
        .await
        .expect("pin every agent");
    assert_eq!(
        audit_of(store, &rollout, AuditAction::Assign).await.len(),
        MANY
    );
    let states = store.target_states(&agents).await.expect("target states");
    assert_eq!(states.len(), MANY);
    assert!(
        states
            .iter()
            .all(|s| object_in(&s.state, stack) == Some(rollout.candidate)),
        "every agent gets the candidate"
    );

    let revert = RolloutChange {
        state: RolloutState::Reverting,
        unpin_all: true,
        ..change(&running)
    };
    store
        .apply_rollout_change("driver", revert)
        .await
        .expect("unpin every agent");
    assert_eq!(
        audit_of(store, &rollout, AuditAction::Unassign).await.len(),
        MANY
    );
    let states = store.target_states(&agents).await.expect("target states");
    assert!(
        states
            .iter()
            .all(|s| object_in(&s.state, stack) == Some(v1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_change_pins_and_unpins_a_thousand_agents() {
    let fixture = common::sqlite().await.expect("sqlite");
    check_many_agents(&fixture.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_change_pins_and_unpins_a_thousand_agents() {
    let Some(fixture) = common::postgres().await else {
        return;
    };
    check_many_agents(&fixture.store).await;
    drop(fixture.store);
    fixture.db.drop_database().await;
}
