//! The store conformance suite: every [`Store`] implementation must pass it.
//!
//! Each case is an `async fn(&dyn Store)` that panics on failure and expects a fresh,
//! empty store. [`store_conformance_tests!`](crate::store_conformance_tests) expands
//! into one `#[tokio::test]` per case for a fixture maker, so a backend runs the whole
//! suite with one line; [`CASE_NAMES`] lists the cases.
//!
//! Cases stay fast (well under a second on SQLite) and bound every wait on a watch
//! with a timeout. They never assert the absence of a wake-up: wake-ups may be
//! spurious.
//!
//! # Audit records every implementation writes
//!
//! One record per successful call of a mutating method, none for a failed call, a
//! repeated agent event, heartbeats or health reports. `resource_kind` and `resource_id` are:
//!
//! | method | action | resource_kind | resource_id |
//! |---|---|---|---|
//! | `create_stack` / `update_stack` | `Create` / `Update` | `Stack` | the stack |
//! | `delete_stack` (marker included) | `Delete` | `Stack` | the stack |
//! | `append_deployment_object` | `Create` | `DeploymentObject` | the new object |
//! | `create_agent` (key included) / `update_agent` / `delete_agent` | `Create` / `Update` / `Delete` | `Agent` | the agent |
//! | `assign_stack` / `unassign_stack` | `Assign` / `Unassign` | `AgentTarget` | the stack |
//! | `record_agent_event` (first report only) | `Create` | `AgentEvent` | the event |
//! | `create_generator` (key included) / `update_generator` / `delete_generator` | `Create` / `Update` / `Delete` | `Generator` | the generator |
//! | `create_template` / `add_template_version` / `delete_template` | `Create` / `Update` / `Delete` | `Template` | the template |
//! | `put_metadata` / `remove_metadata` | `SetMetadata` / `RemoveMetadata` | the target's kind (`Stack`, `Agent`, `Template`) | the target |
//! | `rotate_api_key` | `RotateKey` | `ApiKey` | the new key record |
//! | `set_placement_policy` (set / remove) | `Update` / `Delete` | `Placement` | the stack |
//! | `record_placement` (only when the chosen set or the targets change) | `Place` | `Placement` | the stack |
//!
//! `actor` is the [`Actor`] passed in. `summary` is one line of human text that never
//! contains key material (the stores only ever see hashes, but not even those).
//!
//! # Other choices every implementation follows
//!
//! - `NotFound.kind` is `"stack"`, `"agent"`, `"generator"`, `"template"`,
//!   `"template version"`, `"deployment object"`, `"agent event"`, `"agent target"`,
//!   `"label"`, `"annotation"` or `"placement"` (`record_placement` on a live stack
//!   without a policy).
//! - Appending to a deleted stack is `NotFound` (the method's contract), not `Conflict`.
//! - `unassign_stack` needs a live agent and a target that is not already awaiting
//!   removal; `record_agent_event` needs a live agent.
//! - A successful `Delete` event retires a target only when the target awaits removal
//!   or its stack is deleted; for an active target of a live stack it changes nothing.
//! - Key short ids are unique across every key record, revoked ones included.
//! - Removing a placement policy that is not set returns `None` and writes nothing.
//! - `record_placement` gives targets only to live agents among the chosen; a target
//!   it revives (one awaiting removal) becomes a placement target.
//! - The target state of an inactive agent is served like any other (the server decides
//!   what an inactive agent may do); only a missing or deleted agent is `NotFound`.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;

use crate::change::TargetStateWatch;
use crate::health::{HealthStatus, ObjectHealth};
use crate::id::{AgentEventId, AgentId, DeploymentObjectId, GeneratorId, StackId, TemplateId};
use crate::manifest::ObjectKey;
use crate::metadata::Labels;
use crate::model::{
    Actor, ActorKind, Agent, AgentEvent, AgentStatus, AgentUpdate, AuditAction, AuditRecord,
    Capabilities, DeploymentObject, EventStatus, EventType, Generator, GeneratorUpdate,
    HealthReport, Heartbeat, KeyOwner, MAX_DESCRIPTION_LEN, MetadataField, MetadataTarget,
    NewAgent, NewAgentEvent, NewDeploymentObject, NewGenerator, NewHealthReport, NewStack,
    NewTemplate, NewTemplateVersion, PlacementChange, Provenance, ResourceKind, Stack,
    StackPlacement, StackUpdate, TargetSource, Template, checksum,
};
use crate::page::{MAX_LIMIT, Order, Page, PageRequest};
use crate::pak::Pak;
use crate::placement::{PlacementDecision, PlacementPolicy, Rejection, Spread};
use crate::store::{
    AgentEventFilter, AgentFilter, AuditFilter, Error, GeneratorFilter, Result, StackFilter, Store,
    TargetFilter, TemplateFilter,
};
use crate::target_state::{TargetAction, TargetState};

/// How long a case waits for a watch that must wake.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// The case list and the test macro

/// Keeps the list of cases in one place, for [`store_conformance_tests!`] and
/// [`CASE_NAMES`]. Not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __brokkr_store_conformance_cases {
    ($($mode:tt)*) => {
        $crate::__brokkr_store_conformance_expand! {
            [$($mode)*]
            ping_succeeds
            stack_crud
            stack_soft_delete_frees_the_name
            stack_duplicate_names_conflict
            stack_invalid_input_writes_nothing
            stack_generator_must_be_live
            missing_ids_are_not_found
            deployment_objects_append_get_list
            deployment_object_sequences_increase_under_concurrency
            append_needs_a_live_stack
            delete_stack_appends_a_marker_and_keeps_history
            agent_crud
            agent_names_are_unique_per_cluster
            agent_invalid_input_writes_nothing
            agent_delete_is_soft_revokes_keys_and_keeps_targets
            heartbeats_latest_wins_and_capabilities_replace
            metadata_put_and_remove
            metadata_invalid_or_missing
            targets_assign_unassign_revive
            targets_need_live_agent_and_stack
            targets_list_filters_and_order
            target_state_is_empty_without_objects
            target_state_applies_the_latest_object
            target_state_removes_a_deleted_stack_with_its_marker
            target_state_removes_an_unassigned_stack_with_its_latest_object
            target_state_unassigning_a_never_deployed_stack_retires_it_at_once
            target_state_successful_delete_event_retires_the_target
            target_state_failed_delete_event_keeps_the_target
            target_state_has_only_the_agents_own_stacks
            target_state_of_inactive_and_deleted_agents
            watch_wakes_on_append
            watch_wakes_on_assign_and_unassign
            watch_wakes_on_stack_delete
            watch_wakes_when_a_target_retires
            events_are_idempotent_by_id
            events_need_a_known_agent_and_object
            events_filters
            health_replaces_the_agents_previous_report
            health_lists_every_agent_ordered_by_agent_id
            health_status_is_the_worst_resource_status
            health_needs_a_live_agent_a_known_object_and_stack
            health_writes_no_audit_record
            health_of_a_deleted_stack_still_answers
            health_invalid_report_writes_nothing
            placement_policy_set_get_clear
            placement_invalid_policy_writes_nothing
            placement_record_adds_targets_and_repeats_are_no_ops
            placement_changed_decision_removes_and_adds
            placement_leaves_direct_targets_alone
            placement_assign_turns_a_placement_target_direct
            placement_revives_a_target_awaiting_removal
            placement_list_pages_by_stack_and_skips_deleted
            placement_needs_a_live_stack_with_a_policy
            placement_concurrent_records_serialize
            generator_crud
            generator_names_are_unique_and_reusable
            generator_delete_revokes_keys_and_keeps_stacks
            template_crud_and_versions
            template_names_owners_and_validation
            keys_find_by_short_id
            keys_rotation_revokes_previous_keys
            keys_short_ids_are_unique
            audit_one_record_per_mutation
            audit_filters
            pagination_walks_every_listing
            pagination_rejects_foreign_cursors
        }
    };
}

/// Expands the case list for one mode. Not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __brokkr_store_conformance_expand {
    ([tests $make:path] $($case:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $make().await else {
                    return;
                };
                $crate::testing::conformance::$case(
                    $crate::testing::StoreFixture::store(&fixture),
                )
                .await;
                $crate::testing::StoreFixture::teardown(fixture).await;
            }
        )*
    };
    ([names] $($case:ident)*) => {
        &[$(::core::stringify!($case)),*]
    };
}

/// Expands into one `#[tokio::test]` per conformance case for a store fixture.
///
/// `$make` is an `async fn() -> Option<impl StoreFixture>` that prepares a fresh, empty
/// store for one case; `None` skips the case (the maker prints why, e.g. "no database
/// URL configured"). The expanding crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
///
/// ```no_run
/// use brokkr_core::Store;
/// use brokkr_core::testing::{MemoryStore, StoreFixture};
///
/// struct Memory(MemoryStore);
///
/// impl StoreFixture for Memory {
///     fn store(&self) -> &dyn Store {
///         &self.0
///     }
///
///     async fn teardown(self) {}
/// }
///
/// async fn memory() -> Option<Memory> {
///     Some(Memory(MemoryStore::new()))
/// }
///
/// brokkr_core::store_conformance_tests!(memory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::__brokkr_store_conformance_cases!(tests $make);
    };
}

/// The name of every conformance case, in the order the macro expands them.
pub const CASE_NAMES: &[&str] = crate::__brokkr_store_conformance_cases!(names);

// ---------------------------------------------------------------------------------------
// Fixture builders

/// `Actor::Admin`, the actor of most fixtures.
pub const ADMIN: Actor = Actor::Admin;

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A one-object deployment: a ConfigMap named `name` whose `version` key is `version`.
pub fn config_map_yaml(name: &str, version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  version: \"{version}\"\n"
    )
}

/// A stack named `name` created by the admin, without metadata.
pub async fn mk_stack(store: &dyn Store, name: &str) -> Stack {
    store
        .create_stack(
            &ADMIN,
            NewStack {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .expect("create fixture stack")
}

/// An agent named `name` in cluster `cluster-1`, with a fresh key.
pub async fn mk_agent(store: &dyn Store, name: &str) -> Agent {
    mk_agent_in(store, name, "cluster-1").await
}

/// An agent named `name` in `cluster`, with a fresh key.
pub async fn mk_agent_in(store: &dyn Store, name: &str, cluster: &str) -> Agent {
    store
        .create_agent(&ADMIN, new_agent(name, cluster, &Pak::generate()))
        .await
        .expect("create fixture agent")
}

/// What `create_agent` needs for an agent with `key`.
pub fn new_agent(name: &str, cluster: &str, key: &Pak) -> NewAgent {
    NewAgent {
        name: name.into(),
        cluster_name: cluster.into(),
        labels: Labels::new(),
        annotations: Labels::new(),
        key: key.stored(),
    }
}

/// A generator named `name`, with a fresh key.
pub async fn mk_generator(store: &dyn Store, name: &str) -> Generator {
    store
        .create_generator(&ADMIN, new_generator(name, &Pak::generate()))
        .await
        .expect("create fixture generator")
}

/// What `create_generator` needs for a generator with `key`.
pub fn new_generator(name: &str, key: &Pak) -> NewGenerator {
    NewGenerator {
        name: name.into(),
        description: None,
        key: key.stored(),
    }
}

/// A global template named `name` at version 1.
pub async fn mk_template(store: &dyn Store, name: &str) -> Template {
    store
        .create_template(&ADMIN, new_template(name))
        .await
        .expect("create fixture template")
}

/// What `create_template` needs for a small global template.
pub fn new_template(name: &str) -> NewTemplate {
    NewTemplate {
        name: name.into(),
        content: config_map_yaml("{{ name }}", "{{ version }}"),
        parameters_schema: json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            "required": ["name"],
        }),
        ..Default::default()
    }
}

/// Appends a ConfigMap deployment object with `version` to a stack.
pub async fn mk_object(store: &dyn Store, stack: StackId, version: &str) -> DeploymentObject {
    let new = NewDeploymentObject::from_yaml(stack, config_map_yaml("app-config", version))
        .expect("fixture YAML is valid");
    store
        .append_deployment_object(&ADMIN, new)
        .await
        .expect("append fixture deployment object")
}

/// Assigns `stack` to `agent` as the admin.
pub async fn mk_target(store: &dyn Store, agent: AgentId, stack: StackId) {
    store
        .assign_stack(&ADMIN, agent, stack)
        .await
        .expect("assign fixture target");
}

/// Records an event of `agent` about `object`, reported by the agent itself.
pub async fn mk_event(
    store: &dyn Store,
    agent: AgentId,
    object: DeploymentObjectId,
    event_type: EventType,
    status: EventStatus,
) -> AgentEvent {
    store
        .record_agent_event(
            &Actor::Agent(agent),
            new_event(agent, object, event_type, status),
        )
        .await
        .expect("record fixture event")
}

/// A new event with a fresh id.
pub fn new_event(
    agent: AgentId,
    object: DeploymentObjectId,
    event_type: EventType,
    status: EventStatus,
) -> NewAgentEvent {
    NewAgentEvent {
        id: AgentEventId::new(),
        agent_id: agent,
        deployment_object_id: object,
        event_type,
        status,
        message: None,
    }
}

/// A Deployment `name` in `default` with `status`, as an agent would report it.
pub fn workload(name: &str, status: HealthStatus) -> ObjectHealth {
    ObjectHealth {
        object: ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: name.into(),
        },
        status,
        reason: (status != HealthStatus::Healthy).then(|| "UnavailableReplicas".to_owned()),
        message: None,
    }
}

/// A health report of `agent` about `object`, without a summary.
pub fn new_health(
    agent: AgentId,
    object: DeploymentObjectId,
    resources: Vec<ObjectHealth>,
) -> NewHealthReport {
    NewHealthReport {
        agent_id: agent,
        deployment_object_id: object,
        resources,
        summary: None,
    }
}

/// Records the health of `object` as `agent` reports it.
pub async fn mk_health(
    store: &dyn Store,
    agent: AgentId,
    object: DeploymentObjectId,
    resources: Vec<ObjectHealth>,
) -> HealthReport {
    store
        .record_health(&Actor::Agent(agent), new_health(agent, object, resources))
        .await
        .expect("record fixture health report")
}

// ---------------------------------------------------------------------------------------
// Assertion helpers

#[track_caller]
fn expect_not_found<T: Debug>(result: Result<T>, kind: &str) {
    match result {
        Err(Error::NotFound { kind: got, .. }) => {
            assert_eq!(got, kind, "NotFound names the wrong kind of resource");
        }
        other => panic!("expected NotFound({kind}), got {other:?}"),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(result: Result<T>) {
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected Conflict, got {result:?}"
    );
}

#[track_caller]
fn expect_invalid<T: Debug>(result: Result<T>) {
    assert!(
        matches!(result, Err(Error::Invalid(_))),
        "expected Invalid, got {result:?}"
    );
}

/// Every row of a listing, walking pages of `limit` rows in `order`.
async fn walk<T>(
    limit: u32,
    order: Order,
    fetch: impl AsyncFn(PageRequest) -> Result<Page<T>>,
) -> Vec<T> {
    let mut request = PageRequest {
        limit,
        cursor: None,
        order,
    };
    let mut rows = Vec::new();
    for _ in 0..10_000 {
        let page = fetch(request.clone()).await.expect("listing succeeds");
        assert!(
            page.items.len() <= limit as usize,
            "page longer than its limit"
        );
        rows.extend(page.items);
        match page.next_cursor {
            Some(cursor) => request = request.after(cursor),
            None => return rows,
        }
    }
    panic!("pagination does not terminate")
}

/// Every row of a listing, ascending.
async fn all<T>(fetch: impl AsyncFn(PageRequest) -> Result<Page<T>>) -> Vec<T> {
    walk(MAX_LIMIT, Order::Ascending, fetch).await
}

async fn all_audit(store: &dyn Store) -> Vec<AuditRecord> {
    all(async |p| store.list_audit_records(&AuditFilter::default(), &p).await).await
}

async fn all_stacks(store: &dyn Store, filter: StackFilter) -> Vec<Stack> {
    all(async |p| store.list_stacks(&filter, &p).await).await
}

async fn all_agents(store: &dyn Store, filter: AgentFilter) -> Vec<Agent> {
    all(async |p| store.list_agents(&filter, &p).await).await
}

async fn all_events(store: &dyn Store, filter: AgentEventFilter) -> Vec<AgentEventId> {
    all(async |p| store.list_agent_events(&filter, &p).await)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn stack_health(store: &dyn Store, stack: StackId) -> Vec<HealthReport> {
    store.stack_health(stack).await.expect("stack health")
}

async fn target_state(store: &dyn Store, agent: AgentId) -> TargetState {
    store.target_state(agent).await.expect("target state")
}

async fn expect_wake(watch: &mut TargetStateWatch, what: &str) {
    assert!(
        tokio::time::timeout(WAKE_TIMEOUT, watch.changed())
            .await
            .is_ok(),
        "the watch did not wake after {what}"
    );
}

fn include_deleted_stacks() -> StackFilter {
    StackFilter {
        include_deleted: true,
        ..Default::default()
    }
}

/// A time between two writes, clear of clock granularity on either side.
async fn instant_between_writes() -> DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    at
}

// ---------------------------------------------------------------------------------------
// Cases: stacks

/// `ping` succeeds on a working store.
pub async fn ping_succeeds(store: &dyn Store) {
    store.ping().await.expect("ping");
}

/// Stacks are created, read, listed and updated.
pub async fn stack_crud(store: &dyn Store) {
    let created = store
        .create_stack(
            &ADMIN,
            NewStack {
                name: "crud".into(),
                description: Some("first".into()),
                generator_id: None,
                labels: labels(&[("app", "web"), ("example.com/tier", "front-end")]),
                annotations: labels(&[("note", "free text: any/thing é")]),
            },
        )
        .await
        .expect("create stack");
    assert_eq!(created.name, "crud");
    assert_eq!(created.description.as_deref(), Some("first"));
    assert_eq!(created.generator_id, None);
    assert_eq!(
        created.labels,
        labels(&[("app", "web"), ("example.com/tier", "front-end")])
    );
    assert_eq!(
        created.annotations,
        labels(&[("note", "free text: any/thing é")])
    );
    assert_eq!(created.deleted_at, None);
    assert!(created.updated_at >= created.created_at);

    assert_eq!(store.get_stack(created.id).await.expect("get"), created);
    let listed = store
        .list_stacks(&StackFilter::default(), &PageRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.items, vec![created.clone()]);
    assert_eq!(listed.next_cursor, None);

    let renamed = store
        .update_stack(
            &ADMIN,
            created.id,
            StackUpdate {
                name: Some("crud-renamed".into()),
                description: Some(None),
            },
        )
        .await
        .expect("update");
    assert_eq!(renamed.name, "crud-renamed");
    assert_eq!(renamed.description, None);
    assert_eq!(renamed.labels, created.labels);
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at >= created.updated_at);
    assert_eq!(store.get_stack(created.id).await.expect("get"), renamed);

    let described = store
        .update_stack(
            &ADMIN,
            created.id,
            StackUpdate {
                name: None,
                description: Some(Some("second".into())),
            },
        )
        .await
        .expect("update description only");
    assert_eq!(described.name, "crud-renamed");
    assert_eq!(described.description.as_deref(), Some("second"));

    let by_name = |name: &str| StackFilter {
        name: Some(name.into()),
        ..Default::default()
    };
    assert_eq!(all_stacks(store, by_name("crud-renamed")).await.len(), 1);
    assert!(all_stacks(store, by_name("crud")).await.is_empty());
}

/// Deleting a stack is soft: it leaves `get` and default listings, stays listable with
/// `include_deleted`, refuses changes, and frees its name.
pub async fn stack_soft_delete_frees_the_name(store: &dyn Store) {
    let stack = mk_stack(store, "gone").await;
    store.delete_stack(&ADMIN, stack.id).await.expect("delete");

    expect_not_found(store.get_stack(stack.id).await, "stack");
    assert!(all_stacks(store, StackFilter::default()).await.is_empty());
    let with_deleted = all_stacks(store, include_deleted_stacks()).await;
    assert_eq!(with_deleted.len(), 1);
    assert_eq!(with_deleted[0].id, stack.id);
    assert!(with_deleted[0].deleted_at.is_some());

    expect_not_found(store.delete_stack(&ADMIN, stack.id).await, "stack");
    let rename = StackUpdate {
        name: Some("still-gone".into()),
        description: None,
    };
    expect_not_found(store.update_stack(&ADMIN, stack.id, rename).await, "stack");
    let target = MetadataTarget::Stack(stack.id);
    expect_not_found(
        store
            .put_metadata(&ADMIN, target, MetadataField::Labels, "app", "x")
            .await,
        "stack",
    );

    let again = mk_stack(store, "gone").await;
    assert_ne!(again.id, stack.id);
    let filter = StackFilter {
        name: Some("gone".into()),
        include_deleted: true,
        ..Default::default()
    };
    assert_eq!(all_stacks(store, filter).await.len(), 2);
    let live = all_stacks(store, StackFilter::default()).await;
    assert_eq!(live, vec![again]);

    // An id filter finds a deleted stack only when deleted rows are asked for.
    let by_id = |include_deleted| StackFilter {
        id: Some(stack.id),
        include_deleted,
        ..Default::default()
    };
    assert!(all_stacks(store, by_id(false)).await.is_empty());
    let found = all_stacks(store, by_id(true)).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, stack.id);
    assert!(found[0].deleted_at.is_some());
}

/// Two live stacks never share a name, by creation or by rename.
pub async fn stack_duplicate_names_conflict(store: &dyn Store) {
    let a = mk_stack(store, "a").await;
    let b = mk_stack(store, "b").await;
    expect_conflict(
        store
            .create_stack(
                &ADMIN,
                NewStack {
                    name: "a".into(),
                    ..Default::default()
                },
            )
            .await,
    );
    let to_a = StackUpdate {
        name: Some("a".into()),
        description: None,
    };
    expect_conflict(store.update_stack(&ADMIN, b.id, to_a.clone()).await);
    assert_eq!(store.get_stack(b.id).await.expect("get").name, "b");
    // Keeping one's own name is not a conflict.
    store
        .update_stack(&ADMIN, a.id, to_a)
        .await
        .expect("rename to itself");
    assert_eq!(all_stacks(store, include_deleted_stacks()).await.len(), 2);
}

/// Bad names, descriptions, label keys, label values and annotation keys are `Invalid`
/// and write nothing, not even an audit record.
pub async fn stack_invalid_input_writes_nothing(store: &dyn Store) {
    let long_name = "n".repeat(254);
    for name in ["", " padded", "padded ", "line\nbreak", long_name.as_str()] {
        let new = NewStack {
            name: name.into(),
            ..Default::default()
        };
        expect_invalid(store.create_stack(&ADMIN, new).await);
    }
    let new = NewStack {
        name: "ok".into(),
        description: Some("d".repeat(4097)),
        ..Default::default()
    };
    expect_invalid(store.create_stack(&ADMIN, new).await);
    let long_value = "v".repeat(64);
    let bad_labels = [
        ("-bad", "v"),
        ("Bad.Example/x", "v"),
        ("a/b/c", "v"),
        ("", "v"),
        ("ok", "has space"),
        ("ok", "-x"),
        ("ok", long_value.as_str()),
    ];
    for (key, value) in bad_labels {
        let new = NewStack {
            name: "ok".into(),
            labels: labels(&[(key, value)]),
            ..Default::default()
        };
        expect_invalid(store.create_stack(&ADMIN, new).await);
    }
    for key in ["-bad", "a/b/c", ""] {
        let new = NewStack {
            name: "ok".into(),
            annotations: labels(&[(key, "any text")]),
            ..Default::default()
        };
        expect_invalid(store.create_stack(&ADMIN, new).await);
    }
    assert!(all_stacks(store, include_deleted_stacks()).await.is_empty());
    assert!(all_audit(store).await.is_empty());

    let stack = mk_stack(store, "valid").await;
    let audit = all_audit(store).await.len();
    let bad = StackUpdate {
        name: Some(" padded".into()),
        description: None,
    };
    expect_invalid(store.update_stack(&ADMIN, stack.id, bad).await);
    let bad = StackUpdate {
        name: None,
        description: Some(Some("d".repeat(4097))),
    };
    expect_invalid(store.update_stack(&ADMIN, stack.id, bad).await);
    assert_eq!(store.get_stack(stack.id).await.expect("get"), stack);
    assert_eq!(all_audit(store).await.len(), audit);
}

/// A stack's generator must be live; stacks filter by generator and outlive it.
pub async fn stack_generator_must_be_live(store: &dyn Store) {
    let generator = mk_generator(store, "ci").await;
    let owned = store
        .create_stack(
            &Actor::Generator(generator.id),
            NewStack {
                name: "owned".into(),
                generator_id: Some(generator.id),
                ..Default::default()
            },
        )
        .await
        .expect("create owned stack");
    assert_eq!(owned.generator_id, Some(generator.id));
    let _admin_stack = mk_stack(store, "admin-owned").await;

    let filter = StackFilter {
        generator_id: Some(generator.id),
        ..Default::default()
    };
    assert_eq!(all_stacks(store, filter).await, vec![owned.clone()]);

    let missing = NewStack {
        name: "orphan".into(),
        generator_id: Some(GeneratorId::new()),
        ..Default::default()
    };
    expect_not_found(store.create_stack(&ADMIN, missing).await, "generator");

    store
        .delete_generator(&ADMIN, generator.id)
        .await
        .expect("delete generator");
    let deleted = NewStack {
        name: "orphan".into(),
        generator_id: Some(generator.id),
        ..Default::default()
    };
    expect_not_found(store.create_stack(&ADMIN, deleted).await, "generator");
    assert_eq!(store.get_stack(owned.id).await.expect("stack stays"), owned);
}

/// Every getter and mutator answers `NotFound` with the right kind for an id that
/// never existed.
pub async fn missing_ids_are_not_found(store: &dyn Store) {
    let (stack, agent) = (StackId::new(), AgentId::new());
    let (generator, template) = (GeneratorId::new(), TemplateId::new());
    expect_not_found(store.get_stack(stack).await, "stack");
    expect_not_found(store.get_agent(agent).await, "agent");
    expect_not_found(store.get_generator(generator).await, "generator");
    expect_not_found(store.get_template(template).await, "template");
    expect_not_found(store.get_template_version(template, 1).await, "template");
    expect_not_found(
        store.get_deployment_object(DeploymentObjectId::new()).await,
        "deployment object",
    );
    expect_not_found(
        store.get_agent_event(AgentEventId::new()).await,
        "agent event",
    );
    let page = PageRequest::default();
    expect_not_found(store.list_deployment_objects(stack, &page).await, "stack");
    expect_not_found(
        store.list_template_versions(template, &page).await,
        "template",
    );
    expect_not_found(store.target_state(agent).await, "agent");

    expect_not_found(
        store
            .update_stack(&ADMIN, stack, StackUpdate::default())
            .await,
        "stack",
    );
    expect_not_found(store.delete_stack(&ADMIN, stack).await, "stack");
    expect_not_found(
        store
            .update_agent(&ADMIN, agent, AgentUpdate::default())
            .await,
        "agent",
    );
    expect_not_found(store.delete_agent(&ADMIN, agent).await, "agent");
    expect_not_found(
        store
            .update_generator(&ADMIN, generator, GeneratorUpdate::default())
            .await,
        "generator",
    );
    expect_not_found(store.delete_generator(&ADMIN, generator).await, "generator");
    expect_not_found(
        store
            .add_template_version(&ADMIN, template, NewTemplateVersion::default())
            .await,
        "template",
    );
    expect_not_found(store.delete_template(&ADMIN, template).await, "template");
    for target in [
        MetadataTarget::Stack(stack),
        MetadataTarget::Agent(agent),
        MetadataTarget::Template(template),
    ] {
        let kind = match target {
            MetadataTarget::Stack(_) => "stack",
            MetadataTarget::Agent(_) => "agent",
            MetadataTarget::Template(_) => "template",
        };
        expect_not_found(
            store
                .put_metadata(&ADMIN, target, MetadataField::Labels, "app", "x")
                .await,
            kind,
        );
        expect_not_found(
            store
                .remove_metadata(&ADMIN, target, MetadataField::Annotations, "app")
                .await,
            kind,
        );
    }
    expect_not_found(
        store
            .rotate_api_key(&ADMIN, KeyOwner::Agent(agent), Pak::generate().stored())
            .await,
        "agent",
    );
    expect_not_found(
        store
            .rotate_api_key(
                &ADMIN,
                KeyOwner::Generator(generator),
                Pak::generate().stored(),
            )
            .await,
        "generator",
    );
    assert!(all_audit(store).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Cases: deployment objects

/// Appended objects keep their YAML, checksum and provenance, get increasing sequences
/// and list per stack in sequence order, both ways.
pub async fn deployment_objects_append_get_list(store: &dyn Store) {
    let stack = mk_stack(store, "objects").await;
    let other = mk_stack(store, "other").await;
    let first = mk_object(store, stack.id, "1").await;
    let yaml = config_map_yaml("app-config", "1");
    assert_eq!(first.stack_id, stack.id);
    assert_eq!(first.yaml_content, yaml);
    assert_eq!(first.yaml_checksum, checksum(&yaml));
    assert!(!first.is_deletion_marker);
    assert_eq!(first.provenance, None);

    let _elsewhere = mk_object(store, other.id, "x").await;
    let provenance = Provenance {
        template_id: Some(TemplateId::new()),
        template_version: Some(3),
        generator: Some("tenant".into()),
        parameters: json!({"name": "app-config", "replicas": 2, "nested": {"on": true}}),
    };
    let new = NewDeploymentObject::from_yaml(stack.id, config_map_yaml("app-config", "2"))
        .expect("valid YAML")
        .with_provenance(provenance.clone());
    let second = store
        .append_deployment_object(&ADMIN, new)
        .await
        .expect("append");
    assert!(second.sequence > first.sequence);
    assert_eq!(second.provenance, Some(provenance));

    assert_eq!(
        store.get_deployment_object(first.id).await.expect("get"),
        first
    );
    assert_eq!(
        store.get_deployment_object(second.id).await.expect("get"),
        second
    );
    let listed = all(async |p| store.list_deployment_objects(stack.id, &p).await).await;
    assert_eq!(listed, vec![first.clone(), second.clone()]);
    let newest_first = walk(10, Order::Descending, async |p| {
        store.list_deployment_objects(stack.id, &p).await
    })
    .await;
    assert_eq!(newest_first, vec![second, first]);
}

/// Concurrent appends across several stacks get distinct sequences, increasing within
/// each stack's listing, and a later append is greater than all of them.
pub async fn deployment_object_sequences_increase_under_concurrency(store: &dyn Store) {
    let mut stacks = Vec::new();
    for i in 0..4 {
        stacks.push(mk_stack(store, &format!("concurrent-{i}")).await.id);
    }
    let appends = (0..20).map(|i| {
        let stack = stacks[i % stacks.len()];
        async move { mk_object(store, stack, &i.to_string()).await }
    });
    let objects = futures::future::join_all(appends).await;
    let sequences: BTreeSet<i64> = objects.iter().map(|o| o.sequence).collect();
    assert_eq!(
        sequences.len(),
        20,
        "sequences are not unique: {sequences:?}"
    );
    for stack in &stacks {
        let listed = all(async |p| store.list_deployment_objects(*stack, &p).await).await;
        assert_eq!(listed.len(), 5);
        assert!(listed.windows(2).all(|w| w[0].sequence < w[1].sequence));
        assert!(listed.iter().all(|o| o.stack_id == *stack));
    }
    let later = mk_object(store, stacks[0], "later").await;
    assert!(later.sequence > *sequences.last().expect("20 sequences"));
}

/// Appending to a missing or deleted stack is `NotFound` and adds nothing.
pub async fn append_needs_a_live_stack(store: &dyn Store) {
    let missing = NewDeploymentObject::from_yaml(StackId::new(), config_map_yaml("c", "1"))
        .expect("valid YAML");
    expect_not_found(
        store.append_deployment_object(&ADMIN, missing).await,
        "stack",
    );

    let stack = mk_stack(store, "deleted").await;
    mk_object(store, stack.id, "1").await;
    store.delete_stack(&ADMIN, stack.id).await.expect("delete");
    let late =
        NewDeploymentObject::from_yaml(stack.id, config_map_yaml("c", "2")).expect("valid YAML");
    expect_not_found(store.append_deployment_object(&ADMIN, late).await, "stack");
    let listed = all(async |p| store.list_deployment_objects(stack.id, &p).await).await;
    assert_eq!(
        listed.len(),
        2,
        "the object and the deletion marker, nothing more"
    );
}

/// Deleting a stack appends its deletion marker; its history stays readable.
pub async fn delete_stack_appends_a_marker_and_keeps_history(store: &dyn Store) {
    let stack = mk_stack(store, "history").await;
    let first = mk_object(store, stack.id, "1").await;
    let second = mk_object(store, stack.id, "2").await;
    let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
    assert!(marker.is_deletion_marker);
    assert_eq!(marker.stack_id, stack.id);
    assert_eq!(marker.yaml_content, "");
    assert_eq!(marker.yaml_checksum, checksum(""));
    assert!(marker.sequence > second.sequence);

    assert_eq!(
        store.get_deployment_object(first.id).await.expect("get"),
        first
    );
    assert_eq!(
        store.get_deployment_object(marker.id).await.expect("get"),
        marker
    );
    let listed = all(async |p| store.list_deployment_objects(stack.id, &p).await).await;
    assert_eq!(listed, vec![first, second, marker]);
}

// ---------------------------------------------------------------------------------------
// Cases: agents

/// Agents are registered, read, listed, filtered and updated.
pub async fn agent_crud(store: &dyn Store) {
    let key = Pak::generate();
    let created = store
        .create_agent(
            &ADMIN,
            NewAgent {
                name: "agent-1".into(),
                cluster_name: "cluster-1".into(),
                labels: labels(&[("region", "eu-west-1")]),
                annotations: labels(&[("owner", "team a")]),
                key: key.stored(),
            },
        )
        .await
        .expect("create agent");
    assert_eq!(created.name, "agent-1");
    assert_eq!(created.cluster_name, "cluster-1");
    assert_eq!(created.labels, labels(&[("region", "eu-west-1")]));
    assert_eq!(created.annotations, labels(&[("owner", "team a")]));
    assert_eq!(created.status, AgentStatus::Active);
    assert_eq!(created.last_heartbeat, None);
    assert_eq!(created.capabilities, Capabilities::default());
    assert_eq!(created.deleted_at, None);
    assert_eq!(store.get_agent(created.id).await.expect("get"), created);
    assert_eq!(
        all_agents(store, AgentFilter::default()).await,
        vec![created.clone()]
    );

    let updated = store
        .update_agent(
            &ADMIN,
            created.id,
            AgentUpdate {
                name: Some("agent-1b".into()),
                cluster_name: Some("cluster-2".into()),
                status: Some(AgentStatus::Inactive),
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.name, "agent-1b");
    assert_eq!(updated.cluster_name, "cluster-2");
    assert_eq!(updated.status, AgentStatus::Inactive);
    assert_eq!(updated.labels, created.labels);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_agent(created.id).await.expect("get"), updated);

    let other = mk_agent(store, "agent-2").await;
    let by_cluster = |cluster: &str| AgentFilter {
        cluster_name: Some(cluster.into()),
        ..Default::default()
    };
    let by_status = |status| AgentFilter {
        status: Some(status),
        ..Default::default()
    };
    assert_eq!(
        all_agents(store, by_cluster("cluster-2")).await,
        vec![updated.clone()]
    );
    assert_eq!(
        all_agents(store, by_cluster("cluster-1")).await,
        vec![other.clone()]
    );
    assert_eq!(
        all_agents(store, by_status(AgentStatus::Inactive)).await,
        vec![updated]
    );
    assert_eq!(
        all_agents(store, by_status(AgentStatus::Active)).await,
        vec![other]
    );
}

/// (name, cluster_name) is unique among live agents; a deleted agent frees it.
pub async fn agent_names_are_unique_per_cluster(store: &dyn Store) {
    let first = mk_agent_in(store, "dup", "c1").await;
    let elsewhere = mk_agent_in(store, "dup", "c2").await;
    expect_conflict(
        store
            .create_agent(&ADMIN, new_agent("dup", "c1", &Pak::generate()))
            .await,
    );
    let move_to_c1 = AgentUpdate {
        cluster_name: Some("c1".into()),
        ..Default::default()
    };
    expect_conflict(store.update_agent(&ADMIN, elsewhere.id, move_to_c1).await);
    assert_eq!(store.get_agent(elsewhere.id).await.expect("get"), elsewhere);

    store.delete_agent(&ADMIN, first.id).await.expect("delete");
    let again = mk_agent_in(store, "dup", "c1").await;
    assert_ne!(again.id, first.id);
}

/// Bad names, cluster names and labels are `Invalid` and write nothing.
pub async fn agent_invalid_input_writes_nothing(store: &dyn Store) {
    for (name, cluster) in [("", "c"), (" a", "c"), ("a", ""), ("a", "c\t")] {
        expect_invalid(
            store
                .create_agent(&ADMIN, new_agent(name, cluster, &Pak::generate()))
                .await,
        );
    }
    let mut bad_label = new_agent("a", "c", &Pak::generate());
    bad_label.labels = labels(&[("region", "eu west")]);
    expect_invalid(store.create_agent(&ADMIN, bad_label).await);
    let mut bad_annotation = new_agent("a", "c", &Pak::generate());
    bad_annotation.annotations = labels(&[("-note", "x")]);
    expect_invalid(store.create_agent(&ADMIN, bad_annotation).await);
    let filter = AgentFilter {
        include_deleted: true,
        ..Default::default()
    };
    assert!(all_agents(store, filter).await.is_empty());
    assert!(all_audit(store).await.is_empty());

    let agent = mk_agent(store, "valid").await;
    let bad = AgentUpdate {
        name: Some(String::new()),
        ..Default::default()
    };
    expect_invalid(store.update_agent(&ADMIN, agent.id, bad).await);
    assert_eq!(store.get_agent(agent.id).await.expect("get"), agent);
    assert_eq!(all_audit(store).await.len(), 1);
}

/// Deleting an agent is soft, revokes its keys and keeps its targets.
pub async fn agent_delete_is_soft_revokes_keys_and_keeps_targets(store: &dyn Store) {
    let key = Pak::generate();
    let agent = store
        .create_agent(&ADMIN, new_agent("doomed", "c", &key))
        .await
        .expect("create agent");
    let stack = mk_stack(store, "workload").await;
    mk_target(store, agent.id, stack.id).await;
    store.delete_agent(&ADMIN, agent.id).await.expect("delete");

    expect_not_found(store.get_agent(agent.id).await, "agent");
    expect_not_found(store.delete_agent(&ADMIN, agent.id).await, "agent");
    expect_not_found(
        store
            .update_agent(&ADMIN, agent.id, AgentUpdate::default())
            .await,
        "agent",
    );
    expect_not_found(
        store.assign_stack(&ADMIN, agent.id, StackId::new()).await,
        "agent",
    );
    assert!(all_agents(store, AgentFilter::default()).await.is_empty());
    let with_deleted = all_agents(
        store,
        AgentFilter {
            include_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(with_deleted.len(), 1);
    assert!(with_deleted[0].deleted_at.is_some());

    assert_eq!(
        store.find_api_key(key.short_id()).await.expect("find"),
        None
    );
    let keys = store.active_api_keys(KeyOwner::Agent(agent.id)).await;
    assert!(keys.expect("active keys").is_empty());
    let filter = TargetFilter {
        agent_id: Some(agent.id),
        ..Default::default()
    };
    let targets = all(async |p| store.list_agent_targets(&filter, &p).await).await;
    assert_eq!(targets.len(), 1, "targets outlive their agent");
}

/// Heartbeats: the latest `at` wins, capabilities replace, unknown and deleted agents
/// are skipped, and nothing is audited or counted as a registration change.
pub async fn heartbeats_latest_wins_and_capabilities_replace(store: &dyn Store) {
    let agent = mk_agent(store, "beating").await;
    let quiet = mk_agent(store, "quiet").await;
    let gone = mk_agent(store, "gone").await;
    store.delete_agent(&ADMIN, gone.id).await.expect("delete");
    let audit = all_audit(store).await.len();

    let t0 = Utc::now().trunc_subsecs(3) - chrono::Duration::seconds(60);
    let secs = chrono::Duration::seconds;
    let gpu = Capabilities {
        kubernetes_version: Some("v1.33.2".into()),
        node_count: Some(3),
        allocatable_cpu_millis: Some(12_000),
        allocatable_memory_bytes: Some(48 << 30),
        features: ["gpu".to_owned()].into(),
        extra: [("region".to_owned(), json!("eu-west-1"))].into(),
    };
    let plain = Capabilities {
        node_count: Some(5),
        ..Default::default()
    };
    let beat = |agent_id, at, capabilities| Heartbeat {
        agent_id,
        at,
        capabilities,
    };
    store
        .record_heartbeats(&[
            beat(agent.id, t0, Some(gpu.clone())),
            beat(agent.id, t0 + secs(10), None),
            beat(AgentId::new(), t0, None),
            beat(gone.id, t0, Some(gpu.clone())),
        ])
        .await
        .expect("heartbeats");
    let got = store.get_agent(agent.id).await.expect("get");
    assert_eq!(got.last_heartbeat, Some(t0 + secs(10)));
    assert_eq!(got.capabilities, gpu);
    assert_eq!(
        got.updated_at, agent.updated_at,
        "heartbeats are not registration changes"
    );

    store
        .record_heartbeats(&[beat(agent.id, t0 + secs(5), None)])
        .await
        .expect("late heartbeat");
    let got = store.get_agent(agent.id).await.expect("get");
    assert_eq!(
        got.last_heartbeat,
        Some(t0 + secs(10)),
        "an older beat moved time back"
    );
    store
        .record_heartbeats(&[beat(agent.id, t0 + secs(5), Some(plain.clone()))])
        .await
        .expect("late heartbeat with capabilities");
    let got = store.get_agent(agent.id).await.expect("get");
    assert_eq!(got.last_heartbeat, Some(t0 + secs(10)));
    assert_eq!(
        got.capabilities, gpu,
        "a late beat's capabilities replaced newer ones"
    );

    store
        .record_heartbeats(&[beat(agent.id, t0 + secs(20), Some(plain.clone()))])
        .await
        .expect("heartbeat");
    let got = store.get_agent(agent.id).await.expect("get");
    assert_eq!(got.last_heartbeat, Some(t0 + secs(20)));
    assert_eq!(
        got.capabilities, plain,
        "capabilities replace, they do not merge"
    );

    let quiet = store.get_agent(quiet.id).await.expect("get");
    assert_eq!(quiet.last_heartbeat, None);
    assert_eq!(
        all_audit(store).await.len(),
        audit,
        "heartbeats are not audited"
    );
}

// ---------------------------------------------------------------------------------------
// Cases: labels and annotations

/// Labels and annotations of stacks, agents and templates are set, overwritten and
/// removed one at a time; each call returns the whole map.
pub async fn metadata_put_and_remove(store: &dyn Store) {
    let stack = mk_stack(store, "meta").await;
    let agent = mk_agent(store, "meta").await;
    let template = mk_template(store, "meta").await;
    for target in [
        MetadataTarget::Stack(stack.id),
        MetadataTarget::Agent(agent.id),
        MetadataTarget::Template(template.id),
    ] {
        let put = async |field, key: &str, value: &str| {
            store
                .put_metadata(&ADMIN, target, field, key, value)
                .await
                .expect("put metadata")
        };
        let l = MetadataField::Labels;
        let a = MetadataField::Annotations;
        assert_eq!(put(l, "app", "web").await, labels(&[("app", "web")]));
        assert_eq!(
            put(l, "example.com/tier", "db").await,
            labels(&[("app", "web"), ("example.com/tier", "db")])
        );
        assert_eq!(
            put(l, "app", "api").await,
            labels(&[("app", "api"), ("example.com/tier", "db")])
        );
        assert_eq!(
            put(a, "note", "free text, with spaces: é").await,
            labels(&[("note", "free text, with spaces: é")])
        );
        let removed = store
            .remove_metadata(&ADMIN, target, l, "app")
            .await
            .expect("remove");
        assert_eq!(removed, labels(&[("example.com/tier", "db")]));

        let (got_labels, got_annotations) = match target {
            MetadataTarget::Stack(id) => {
                let s = store.get_stack(id).await.expect("get");
                (s.labels, s.annotations)
            }
            MetadataTarget::Agent(id) => {
                let a = store.get_agent(id).await.expect("get");
                (a.labels, a.annotations)
            }
            MetadataTarget::Template(id) => {
                let t = store.get_template(id).await.expect("get");
                (t.labels, t.annotations)
            }
        };
        assert_eq!(got_labels, labels(&[("example.com/tier", "db")]));
        assert_eq!(
            got_annotations,
            labels(&[("note", "free text, with spaces: é")])
        );
    }
}

/// Invalid keys and values are `Invalid` and change nothing; removing an unset key is
/// `NotFound`.
pub async fn metadata_invalid_or_missing(store: &dyn Store) {
    let stack = mk_stack(store, "meta").await;
    let target = MetadataTarget::Stack(stack.id);
    let audit = all_audit(store).await.len();
    let (l, a) = (MetadataField::Labels, MetadataField::Annotations);
    for (field, key, value) in [
        (l, "-bad", "v"),
        (l, "UPPER.example.com/x", "v"),
        (l, "app", "has space"),
        (l, "app", "-v"),
        (a, "", "text"),
        (a, "a/b/c", "text"),
    ] {
        expect_invalid(store.put_metadata(&ADMIN, target, field, key, value).await);
    }
    let huge = "x".repeat(crate::metadata::MAX_ANNOTATION_VALUE_BYTES + 1);
    expect_invalid(store.put_metadata(&ADMIN, target, a, "big", &huge).await);
    assert_eq!(store.get_stack(stack.id).await.expect("get"), stack);
    assert_eq!(all_audit(store).await.len(), audit);

    expect_not_found(
        store.remove_metadata(&ADMIN, target, l, "app").await,
        "label",
    );
    expect_not_found(
        store.remove_metadata(&ADMIN, target, a, "note").await,
        "annotation",
    );
    // A label is not an annotation.
    store
        .put_metadata(&ADMIN, target, l, "app", "web")
        .await
        .expect("put");
    expect_not_found(
        store.remove_metadata(&ADMIN, target, a, "app").await,
        "annotation",
    );
}

// ---------------------------------------------------------------------------------------
// Cases: agent targets

/// Assigning twice conflicts; unassigning marks the target removed (it stays listed);
/// assigning again revives the same target.
pub async fn targets_assign_unassign_revive(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    // Deployed, so the agent may run something and an unassignment awaits its word.
    mk_object(store, stack.id, "1").await;
    let target = store
        .assign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("assign");
    assert_eq!(target.agent_id, agent.id);
    assert_eq!(target.stack_id, stack.id);
    assert_eq!(target.source, TargetSource::Direct);
    assert_eq!(target.removed_at, None);
    expect_conflict(store.assign_stack(&ADMIN, agent.id, stack.id).await);

    let filter = TargetFilter {
        agent_id: Some(agent.id),
        ..Default::default()
    };
    let listed = all(async |p| store.list_agent_targets(&filter, &p).await).await;
    assert_eq!(listed, vec![target.clone()]);

    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    let listed = all(async |p| store.list_agent_targets(&filter, &p).await).await;
    assert_eq!(
        listed.len(),
        1,
        "an unassigned target stays until confirmed"
    );
    assert!(listed[0].removed_at.is_some());
    expect_not_found(
        store.unassign_stack(&ADMIN, agent.id, stack.id).await,
        "agent target",
    );

    let revived = store
        .assign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("revive");
    assert_eq!(revived.removed_at, None);
    let listed = all(async |p| store.list_agent_targets(&filter, &p).await).await;
    assert_eq!(listed, vec![revived]);
}

/// Assigning needs a live agent and a live stack; unassigning needs an assignment.
pub async fn targets_need_live_agent_and_stack(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    expect_not_found(
        store.assign_stack(&ADMIN, AgentId::new(), stack.id).await,
        "agent",
    );
    expect_not_found(
        store.assign_stack(&ADMIN, agent.id, StackId::new()).await,
        "stack",
    );
    expect_not_found(
        store.unassign_stack(&ADMIN, agent.id, stack.id).await,
        "agent target",
    );

    let deleted_stack = mk_stack(store, "deleted").await;
    store
        .delete_stack(&ADMIN, deleted_stack.id)
        .await
        .expect("delete stack");
    expect_not_found(
        store.assign_stack(&ADMIN, agent.id, deleted_stack.id).await,
        "stack",
    );
    let deleted_agent = mk_agent(store, "deleted").await;
    store
        .delete_agent(&ADMIN, deleted_agent.id)
        .await
        .expect("delete agent");
    expect_not_found(
        store.assign_stack(&ADMIN, deleted_agent.id, stack.id).await,
        "agent",
    );
    let none = all(async |p| store.list_agent_targets(&TargetFilter::default(), &p).await).await;
    assert!(none.is_empty());
}

/// Targets filter by agent and by stack and order by (agent id, stack id).
pub async fn targets_list_filters_and_order(store: &dyn Store) {
    let a1 = mk_agent(store, "a1").await.id;
    let a2 = mk_agent(store, "a2").await.id;
    let s1 = mk_stack(store, "s1").await.id;
    let s2 = mk_stack(store, "s2").await.id;
    for (agent, stack) in [(a2, s1), (a1, s2), (a1, s1)] {
        mk_target(store, agent, stack).await;
    }
    let pairs = async |filter: TargetFilter| {
        all(async |p| store.list_agent_targets(&filter, &p).await)
            .await
            .into_iter()
            .map(|t| (t.agent_id, t.stack_id))
            .collect::<Vec<_>>()
    };
    let mut expected = vec![(a1, s1), (a1, s2), (a2, s1)];
    expected.sort();
    assert_eq!(pairs(TargetFilter::default()).await, expected);
    let of_a1 = TargetFilter {
        agent_id: Some(a1),
        stack_id: None,
    };
    let mut expected_a1 = vec![(a1, s1), (a1, s2)];
    expected_a1.sort();
    assert_eq!(pairs(of_a1).await, expected_a1);
    let of_s1 = TargetFilter {
        agent_id: None,
        stack_id: Some(s1),
    };
    let mut expected_s1 = vec![(a1, s1), (a2, s1)];
    expected_s1.sort();
    assert_eq!(pairs(of_s1).await, expected_s1);
    let both = TargetFilter {
        agent_id: Some(a2),
        stack_id: Some(s2),
    };
    assert!(pairs(both).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Cases: target state

/// An agent with no targets, or targets whose stacks have no object yet, has an empty
/// target state.
pub async fn target_state_is_empty_without_objects(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let state = target_state(store, agent.id).await;
    assert_eq!(state.agent_id, agent.id);
    assert!(state.entries.is_empty());
    let stack = mk_stack(store, "empty").await;
    mk_target(store, agent.id, stack.id).await;
    assert!(target_state(store, agent.id).await.entries.is_empty());
}

/// The latest object of each assigned stack is applied; older versions never appear.
pub async fn target_state_applies_the_latest_object(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    let other = mk_stack(store, "t").await;
    mk_target(store, agent.id, stack.id).await;
    mk_target(store, agent.id, other.id).await;
    let _old = mk_object(store, stack.id, "1").await;
    let v2 = mk_object(store, stack.id, "2").await;
    let t1 = mk_object(store, other.id, "1").await;

    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries.len(), 2);
    for entry in &state.entries {
        assert_eq!(entry.action, TargetAction::Apply);
        let (expected, name) = if entry.stack_id == stack.id {
            (&v2, "s")
        } else {
            (&t1, "t")
        };
        assert_eq!(&entry.deployment_object, expected);
        assert_eq!(entry.stack_name, name);
    }
    assert!(
        state
            .entries
            .windows(2)
            .all(|w| w[0].stack_id < w[1].stack_id)
    );
    assert_eq!(target_state(store, agent.id).await.etag(), state.etag());

    let v3 = mk_object(store, stack.id, "3").await;
    let newer = target_state(store, agent.id).await;
    let entry = newer
        .entries
        .iter()
        .find(|e| e.stack_id == stack.id)
        .expect("stack entry");
    assert_eq!(entry.deployment_object, v3);
    assert_ne!(newer.etag(), state.etag());
}

/// A deleted stack stays in the target state as a removal carrying its marker.
pub async fn target_state_removes_a_deleted_stack_with_its_marker(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    mk_object(store, stack.id, "1").await;
    let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries.len(), 1);
    assert_eq!(state.entries[0].action, TargetAction::Remove);
    assert_eq!(state.entries[0].deployment_object, marker);
    assert_eq!(state.entries[0].stack_name, "s");
}

/// An unassigned stack stays in the target state as a removal carrying the stack's
/// latest object; re-assigning it applies that object again.
pub async fn target_state_removes_an_unassigned_stack_with_its_latest_object(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    mk_object(store, stack.id, "1").await;
    let v2 = mk_object(store, stack.id, "2").await;
    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries.len(), 1);
    assert_eq!(state.entries[0].action, TargetAction::Remove);
    assert_eq!(state.entries[0].deployment_object, v2);

    let v3 = mk_object(store, stack.id, "3").await;
    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries[0].action, TargetAction::Remove);
    assert_eq!(state.entries[0].deployment_object, v3);

    mk_target(store, agent.id, stack.id).await;
    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries[0].action, TargetAction::Apply);
    assert_eq!(state.entries[0].deployment_object, v3);
}

/// Unassigning a stack that never had a deployment object retires the target at once:
/// the agent has nothing of it to remove, so no removal would ever be confirmed.
pub async fn target_state_unassigning_a_never_deployed_stack_retires_it_at_once(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    let targets = store
        .list_agent_targets(
            &TargetFilter {
                agent_id: Some(agent.id),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("list targets");
    assert!(targets.items.is_empty(), "{:?}", targets.items);

    // A later deployment object does not resurrect it, and it can be assigned again.
    mk_object(store, stack.id, "1").await;
    assert!(target_state(store, agent.id).await.entries.is_empty());
    mk_target(store, agent.id, stack.id).await;
    assert_eq!(
        target_state(store, agent.id).await.entries[0].action,
        TargetAction::Apply
    );
}

/// A successful `Delete` event retires an unassigned target or a deleted stack's
/// target; for an active target of a live stack it changes nothing.
pub async fn target_state_successful_delete_event_retires_the_target(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let unassigned = mk_stack(store, "unassigned").await;
    let deleted = mk_stack(store, "deleted").await;
    let active = mk_stack(store, "active").await;
    for stack in [&unassigned, &deleted, &active] {
        mk_target(store, agent.id, stack.id).await;
    }
    let u1 = mk_object(store, unassigned.id, "1").await;
    mk_object(store, deleted.id, "1").await;
    let a1 = mk_object(store, active.id, "1").await;
    store
        .unassign_stack(&ADMIN, agent.id, unassigned.id)
        .await
        .expect("unassign");
    let marker = store
        .delete_stack(&ADMIN, deleted.id)
        .await
        .expect("delete");
    assert_eq!(target_state(store, agent.id).await.entries.len(), 3);

    let (delete, success) = (EventType::Delete, EventStatus::Success);
    mk_event(store, agent.id, u1.id, delete, success).await;
    mk_event(store, agent.id, marker.id, delete, success).await;
    mk_event(store, agent.id, a1.id, delete, success).await;

    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries.len(), 1, "{state:?}");
    assert_eq!(state.entries[0].stack_id, active.id);
    assert_eq!(state.entries[0].action, TargetAction::Apply);
    let filter = TargetFilter {
        agent_id: Some(agent.id),
        ..Default::default()
    };
    let targets = all(async |p| store.list_agent_targets(&filter, &p).await).await;
    assert_eq!(targets.len(), 1, "retired targets leave the listing");
    assert_eq!(targets[0].stack_id, active.id);
}

/// A failed `Delete` event, or an `Apply` event, leaves a pending removal in place.
pub async fn target_state_failed_delete_event_keeps_the_target(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    let object = mk_object(store, stack.id, "1").await;
    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    mk_event(
        store,
        agent.id,
        object.id,
        EventType::Delete,
        EventStatus::Failure,
    )
    .await;
    mk_event(
        store,
        agent.id,
        object.id,
        EventType::Apply,
        EventStatus::Success,
    )
    .await;
    let state = target_state(store, agent.id).await;
    assert_eq!(state.entries.len(), 1);
    assert_eq!(state.entries[0].action, TargetAction::Remove);
}

/// An agent's target state holds its own stacks only.
pub async fn target_state_has_only_the_agents_own_stacks(store: &dyn Store) {
    let a1 = mk_agent(store, "a1").await;
    let a2 = mk_agent(store, "a2").await;
    let s1 = mk_stack(store, "s1").await;
    let s2 = mk_stack(store, "s2").await;
    let unassigned = mk_stack(store, "nobody's").await;
    mk_target(store, a1.id, s1.id).await;
    mk_target(store, a2.id, s2.id).await;
    for stack in [&s1, &s2, &unassigned] {
        mk_object(store, stack.id, "1").await;
    }
    let stacks = async |agent| {
        target_state(store, agent)
            .await
            .entries
            .into_iter()
            .map(|e| e.stack_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(stacks(a1.id).await, vec![s1.id]);
    assert_eq!(stacks(a2.id).await, vec![s2.id]);
}

/// An inactive agent still has its target state; a deleted agent's is `NotFound`.
pub async fn target_state_of_inactive_and_deleted_agents(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    mk_object(store, stack.id, "1").await;
    let pause = AgentUpdate {
        status: Some(AgentStatus::Inactive),
        ..Default::default()
    };
    store
        .update_agent(&ADMIN, agent.id, pause)
        .await
        .expect("pause");
    assert_eq!(target_state(store, agent.id).await.entries.len(), 1);
    store.delete_agent(&ADMIN, agent.id).await.expect("delete");
    expect_not_found(store.target_state(agent.id).await, "agent");
}

// ---------------------------------------------------------------------------------------
// Cases: watches

/// Appending to an assigned stack wakes the agent's watch.
pub async fn watch_wakes_on_append(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    let mut watch = store.watch_target_state(agent.id);
    assert_eq!(watch.agent(), agent.id);
    mk_object(store, stack.id, "1").await;
    expect_wake(&mut watch, "an append").await;
}

/// Assigning and unassigning wake the agent's watch.
pub async fn watch_wakes_on_assign_and_unassign(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let mut watch = store.watch_target_state(agent.id);
    mk_target(store, agent.id, stack.id).await;
    expect_wake(&mut watch, "an assignment").await;
    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    expect_wake(&mut watch, "an unassignment").await;
}

/// Deleting an assigned stack wakes the agent's watch.
pub async fn watch_wakes_on_stack_delete(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    mk_object(store, stack.id, "1").await;
    let mut watch = store.watch_target_state(agent.id);
    store.delete_stack(&ADMIN, stack.id).await.expect("delete");
    expect_wake(&mut watch, "a stack deletion").await;
}

/// A successful `Delete` event that retires a target wakes the agent's watch.
pub async fn watch_wakes_when_a_target_retires(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    mk_target(store, agent.id, stack.id).await;
    let object = mk_object(store, stack.id, "1").await;
    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    let mut watch = store.watch_target_state(agent.id);
    mk_event(
        store,
        agent.id,
        object.id,
        EventType::Delete,
        EventStatus::Success,
    )
    .await;
    expect_wake(&mut watch, "a retirement").await;
}

// ---------------------------------------------------------------------------------------
// Cases: agent events

/// An event is stored once: reporting its id again returns it unchanged and writes no
/// audit record; another agent reusing the id is a `Conflict`.
pub async fn events_are_idempotent_by_id(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let other = mk_agent(store, "b").await;
    let stack = mk_stack(store, "s").await;
    let object = mk_object(store, stack.id, "1").await;
    let mut new = new_event(agent.id, object.id, EventType::Apply, EventStatus::Failure);
    new.message = Some("admission webhook denied the request".into());
    let actor = Actor::Agent(agent.id);
    let event = store
        .record_agent_event(&actor, new.clone())
        .await
        .expect("record");
    assert_eq!(event.id, new.id);
    assert_eq!(event.agent_id, agent.id);
    assert_eq!(event.deployment_object_id, object.id);
    assert_eq!(event.stack_id, stack.id);
    assert_eq!(event.event_type, EventType::Apply);
    assert_eq!(event.status, EventStatus::Failure);
    assert_eq!(event.message, new.message);
    assert_eq!(store.get_agent_event(event.id).await.expect("get"), event);

    let audit = all_audit(store).await.len();
    let mut retry = new.clone();
    retry.status = EventStatus::Success;
    retry.message = None;
    let again = store
        .record_agent_event(&actor, retry)
        .await
        .expect("retry");
    assert_eq!(again, event, "a retried report returns the stored event");
    assert_eq!(
        all_audit(store).await.len(),
        audit,
        "a retry writes no audit record"
    );

    let mut stolen = new;
    stolen.agent_id = other.id;
    expect_conflict(
        store
            .record_agent_event(&Actor::Agent(other.id), stolen)
            .await,
    );
    assert_eq!(
        all_events(store, AgentEventFilter::default()).await,
        vec![event.id]
    );
}

/// Events need a live agent and an existing deployment object.
pub async fn events_need_a_known_agent_and_object(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    let object = mk_object(store, stack.id, "1").await;
    let (apply, ok) = (EventType::Apply, EventStatus::Success);
    let unknown_agent = new_event(AgentId::new(), object.id, apply, ok);
    expect_not_found(
        store.record_agent_event(&ADMIN, unknown_agent).await,
        "agent",
    );
    let unknown_object = new_event(agent.id, DeploymentObjectId::new(), apply, ok);
    expect_not_found(
        store.record_agent_event(&ADMIN, unknown_object).await,
        "deployment object",
    );
    // Events about a deleted stack's history are still accepted.
    let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
    mk_event(store, agent.id, marker.id, EventType::Delete, ok).await;
    mk_event(store, agent.id, object.id, apply, ok).await;
    assert_eq!(
        all_events(store, AgentEventFilter::default()).await.len(),
        2
    );
}

/// Events filter by agent, stack, object, type, status and time, combined.
pub async fn events_filters(store: &dyn Store) {
    let a = mk_agent(store, "a").await.id;
    let b = mk_agent(store, "b").await.id;
    let s1 = mk_stack(store, "s1").await.id;
    let s2 = mk_stack(store, "s2").await.id;
    let o1 = mk_object(store, s1, "1").await.id;
    let o2 = mk_object(store, s2, "1").await.id;
    use EventStatus::{Failure, Success};
    use EventType::{Apply, Delete};
    let e1 = mk_event(store, a, o1, Apply, Success).await.id;
    let e2 = mk_event(store, a, o2, Apply, Failure).await.id;
    let mid = instant_between_writes().await;
    let e3 = mk_event(store, b, o1, Delete, Success).await.id;
    let e4 = mk_event(store, a, o1, Delete, Failure).await.id;

    let check = async |filter: AgentEventFilter, expected: Vec<AgentEventId>| {
        assert_eq!(
            all_events(store, filter.clone()).await,
            expected,
            "{filter:?}"
        );
    };
    let f = AgentEventFilter::default;
    check(f(), vec![e1, e2, e3, e4]).await;
    check(
        AgentEventFilter {
            agent_id: Some(a),
            ..f()
        },
        vec![e1, e2, e4],
    )
    .await;
    check(
        AgentEventFilter {
            stack_id: Some(s1),
            ..f()
        },
        vec![e1, e3, e4],
    )
    .await;
    check(
        AgentEventFilter {
            deployment_object_id: Some(o2),
            ..f()
        },
        vec![e2],
    )
    .await;
    check(
        AgentEventFilter {
            event_type: Some(Delete),
            ..f()
        },
        vec![e3, e4],
    )
    .await;
    check(
        AgentEventFilter {
            status: Some(Failure),
            ..f()
        },
        vec![e2, e4],
    )
    .await;
    check(
        AgentEventFilter {
            since: Some(mid),
            ..f()
        },
        vec![e3, e4],
    )
    .await;
    check(
        AgentEventFilter {
            until: Some(mid),
            ..f()
        },
        vec![e1, e2],
    )
    .await;
    check(
        AgentEventFilter {
            agent_id: Some(a),
            status: Some(Failure),
            since: Some(mid),
            ..f()
        },
        vec![e4],
    )
    .await;
    check(
        AgentEventFilter {
            agent_id: Some(b),
            event_type: Some(Apply),
            ..f()
        },
        vec![],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Cases: health

/// A report replaces the agent's previous report for the stack, whole: one row per
/// agent and stack, also when the agent reports an older object of the stack.
pub async fn health_replaces_the_agents_previous_report(store: &dyn Store) {
    use HealthStatus::{Healthy, Progressing};
    let agent = mk_agent(store, "a").await;
    let stack = mk_stack(store, "s").await;
    let v1 = mk_object(store, stack.id, "1").await;
    let v2 = mk_object(store, stack.id, "2").await;
    let mut new = new_health(agent.id, v1.id, vec![workload("web", Progressing)]);
    new.summary = Some("1 of 1 workloads progressing".into());
    let first = store
        .record_health(&Actor::Agent(agent.id), new.clone())
        .await
        .expect("first report");
    assert_eq!(first.agent_id, agent.id);
    assert_eq!(first.stack_id, stack.id);
    assert_eq!(first.deployment_object_id, v1.id);
    assert_eq!(first.status, Progressing);
    assert_eq!(first.summary, new.summary);
    assert_eq!(first.resources, new.resources);
    assert_eq!(stack_health(store, stack.id).await, vec![first.clone()]);

    let second = mk_health(store, agent.id, v2.id, vec![workload("web", Healthy)]).await;
    assert_eq!(second.deployment_object_id, v2.id);
    assert_eq!(second.status, Healthy);
    assert_eq!(second.summary, None, "a report replaces the whole row");
    assert!(second.reported_at >= first.reported_at);
    assert_eq!(stack_health(store, stack.id).await, vec![second]);

    // An agent that has not applied the newest object yet reports the one it runs.
    let lagging = mk_health(store, agent.id, v1.id, Vec::new()).await;
    assert_eq!(lagging.deployment_object_id, v1.id);
    assert_eq!(lagging.status, Healthy, "nothing to watch is healthy");
    assert_eq!(stack_health(store, stack.id).await, vec![lagging]);
}

/// A stack's health lists the latest report of every agent, ordered by agent id, and
/// nothing of other stacks.
pub async fn health_lists_every_agent_ordered_by_agent_id(store: &dyn Store) {
    use HealthStatus::{Failed, Healthy};
    let a = mk_agent(store, "a").await.id;
    let b = mk_agent(store, "b").await.id;
    let s1 = mk_stack(store, "s1").await.id;
    let s2 = mk_stack(store, "s2").await.id;
    let o1 = mk_object(store, s1, "1").await.id;
    let o2 = mk_object(store, s2, "1").await.id;
    assert!(stack_health(store, s1).await.is_empty());

    // Reported in the reverse of the listing order, whichever agent id is smaller.
    let (first, second) = if a < b { (b, a) } else { (a, b) };
    let r1 = mk_health(store, first, o1, vec![workload("web", Failed)]).await;
    let r2 = mk_health(store, second, o1, vec![workload("web", Healthy)]).await;
    let other = mk_health(store, a, o2, Vec::new()).await;
    assert_eq!(stack_health(store, s1).await, vec![r2, r1]);
    assert_eq!(stack_health(store, s2).await, vec![other]);
}

/// A report's status is the worst status of its resources, healthy when it has none.
pub async fn health_status_is_the_worst_resource_status(store: &dyn Store) {
    use HealthStatus::{Degraded, Failed, Healthy, Progressing};
    let agent = mk_agent(store, "a").await.id;
    let stack = mk_stack(store, "s").await.id;
    let object = mk_object(store, stack, "1").await.id;
    let cases: [(&[HealthStatus], HealthStatus); 5] = [
        (&[], Healthy),
        (&[Healthy, Healthy], Healthy),
        (&[Healthy, Progressing], Progressing),
        (&[Progressing, Degraded, Healthy], Degraded),
        (&[Healthy, Failed, Degraded], Failed),
    ];
    for (statuses, worst) in cases {
        let resources = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| workload(&format!("w{i}"), *status))
            .collect();
        let report = mk_health(store, agent, object, resources).await;
        assert_eq!(report.status, worst, "{statuses:?}");
        assert_eq!(stack_health(store, stack).await[0].status, worst);
    }
}

/// A report needs a live agent and an existing deployment object; health of an
/// unknown stack is `NotFound`. A refused report writes nothing.
pub async fn health_needs_a_live_agent_a_known_object_and_stack(store: &dyn Store) {
    let agent = mk_agent(store, "a").await.id;
    let gone = mk_agent(store, "gone").await.id;
    let stack = mk_stack(store, "s").await.id;
    let object = mk_object(store, stack, "1").await.id;
    let unknown = AgentId::new();
    expect_not_found(
        store
            .record_health(
                &Actor::Agent(unknown),
                new_health(unknown, object, Vec::new()),
            )
            .await,
        "agent",
    );
    store
        .delete_agent(&ADMIN, gone)
        .await
        .expect("delete agent");
    expect_not_found(
        store
            .record_health(&Actor::Agent(gone), new_health(gone, object, Vec::new()))
            .await,
        "agent",
    );
    let missing = DeploymentObjectId::new();
    expect_not_found(
        store
            .record_health(&Actor::Agent(agent), new_health(agent, missing, Vec::new()))
            .await,
        "deployment object",
    );
    expect_not_found(store.stack_health(StackId::new()).await, "stack");
    assert!(stack_health(store, stack).await.is_empty());
}

/// Health is observed state, not a change: reports write no audit record.
pub async fn health_writes_no_audit_record(store: &dyn Store) {
    let agent = mk_agent(store, "a").await.id;
    let stack = mk_stack(store, "s").await.id;
    let object = mk_object(store, stack, "1").await.id;
    let before = all_audit(store).await;
    mk_health(
        store,
        agent,
        object,
        vec![workload("web", HealthStatus::Degraded)],
    )
    .await;
    mk_health(store, agent, object, Vec::new()).await;
    assert_eq!(all_audit(store).await, before);
}

/// A deleted stack's health still answers, and its agent may still report on it (it
/// reports while it removes the stack's objects).
pub async fn health_of_a_deleted_stack_still_answers(store: &dyn Store) {
    let agent = mk_agent(store, "a").await.id;
    let stack = mk_stack(store, "s").await.id;
    let object = mk_object(store, stack, "1").await.id;
    mk_target(store, agent, stack).await;
    let report = mk_health(
        store,
        agent,
        object,
        vec![workload("web", HealthStatus::Healthy)],
    )
    .await;
    let marker = store.delete_stack(&ADMIN, stack).await.expect("delete");
    assert_eq!(stack_health(store, stack).await, vec![report]);
    let after = mk_health(store, agent, marker.id, Vec::new()).await;
    assert_eq!(after.stack_id, stack);
    assert_eq!(stack_health(store, stack).await, vec![after]);
}

/// Too many resources, or an overlong summary, reason or message, is `Invalid` and
/// writes nothing; a report of exactly the most resources is stored whole.
pub async fn health_invalid_report_writes_nothing(store: &dyn Store) {
    let agent = mk_agent(store, "a").await.id;
    let stack = mk_stack(store, "s").await.id;
    let object = mk_object(store, stack, "1").await.id;
    let actor = Actor::Agent(agent);
    let healthy = workload("web", HealthStatus::Healthy);
    let too_long = "x".repeat(MAX_DESCRIPTION_LEN + 1);

    let too_many = vec![healthy.clone(); NewHealthReport::MAX_RESOURCES + 1];
    expect_invalid(
        store
            .record_health(&actor, new_health(agent, object, too_many))
            .await,
    );
    let mut long_summary = new_health(agent, object, Vec::new());
    long_summary.summary = Some(too_long.clone());
    expect_invalid(store.record_health(&actor, long_summary).await);
    let long_message = ObjectHealth {
        message: Some(too_long),
        ..healthy.clone()
    };
    expect_invalid(
        store
            .record_health(&actor, new_health(agent, object, vec![long_message]))
            .await,
    );
    assert!(stack_health(store, stack).await.is_empty());

    let most = vec![healthy; NewHealthReport::MAX_RESOURCES];
    mk_health(store, agent, object, most).await;
    assert_eq!(
        stack_health(store, stack).await[0].resources.len(),
        NewHealthReport::MAX_RESOURCES
    );
}

// ---------------------------------------------------------------------------------------
// Cases: placement

/// A valid policy: at most `max` clusters, anything else open.
pub fn policy(max: u32) -> PlacementPolicy {
    PlacementPolicy {
        max_clusters: Some(max),
        ..Default::default()
    }
}

/// A decision choosing `chosen`; every agent in `rejected` hit the cluster limit.
pub fn decision(chosen: &[AgentId], rejected: &[AgentId]) -> PlacementDecision {
    let mut chosen = chosen.to_vec();
    chosen.sort();
    let mut rejected: Vec<(AgentId, Rejection)> = rejected
        .iter()
        .map(|a| (*a, Rejection::LimitReached))
        .collect();
    rejected.sort_by_key(|(a, _)| *a);
    PlacementDecision { chosen, rejected }
}

/// Sets `policy(max)` on a stack as the admin.
pub async fn mk_policy(store: &dyn Store, stack: StackId, max: u32) {
    store
        .set_placement_policy(&ADMIN, stack, Some(policy(max)))
        .await
        .expect("set fixture placement policy");
}

async fn record(store: &dyn Store, stack: StackId, decision: PlacementDecision) -> PlacementChange {
    store
        .record_placement(&Actor::System, stack, decision)
        .await
        .expect("record placement")
}

fn sorted(mut ids: Vec<AgentId>) -> Vec<AgentId> {
    ids.sort();
    ids
}

/// The agent's target state entry for `stack`: `None` without one.
async fn action_of(store: &dyn Store, agent: AgentId, stack: StackId) -> Option<TargetAction> {
    target_state(store, agent)
        .await
        .entries
        .iter()
        .find(|e| e.stack_id == stack)
        .map(|e| e.action)
}

async fn targets_of_stack(store: &dyn Store, stack: StackId) -> Vec<crate::model::AgentTarget> {
    let filter = TargetFilter {
        stack_id: Some(stack),
        ..Default::default()
    };
    all(async |p| store.list_agent_targets(&filter, &p).await).await
}

async fn placement_audit(store: &dyn Store, stack: StackId) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        resource_kind: Some(ResourceKind::Placement),
        resource_id: Some(stack.0),
        ..Default::default()
    };
    all(async |p| store.list_audit_records(&filter, &p).await).await
}

/// A policy is stored, read back, replaced (keeping the decision) and removed; removing
/// it unassigns its placement targets. Setting and removing are audited.
pub async fn placement_policy_set_get_clear(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let agent = mk_agent(store, "a").await;
    assert_eq!(store.get_placement(stack.id).await.expect("get"), None);

    let set = store
        .set_placement_policy(&ADMIN, stack.id, Some(policy(2)))
        .await
        .expect("set")
        .expect("a set policy is returned");
    assert_eq!(set.stack_id, stack.id);
    assert_eq!(set.policy, policy(2));
    assert_eq!(set.decision, None);
    assert_eq!(set.decided_at, None);
    assert_eq!(store.get_placement(stack.id).await.expect("get"), Some(set));

    record(store, stack.id, decision(&[agent.id], &[])).await;
    let replaced = store
        .set_placement_policy(&ADMIN, stack.id, Some(policy(3)))
        .await
        .expect("replace")
        .expect("a set policy is returned");
    assert_eq!(replaced.policy, policy(3));
    assert_eq!(
        replaced.decision,
        Some(decision(&[agent.id], &[])),
        "the decision stays until the next one is recorded"
    );
    assert!(replaced.decided_at.is_some());
    assert_eq!(
        store.get_placement(stack.id).await.expect("get"),
        Some(replaced)
    );

    let mut watch = store.watch_target_state(agent.id);
    let cleared = store
        .set_placement_policy(&ADMIN, stack.id, None)
        .await
        .expect("clear");
    assert_eq!(cleared, None);
    assert_eq!(store.get_placement(stack.id).await.expect("get"), None);
    expect_wake(&mut watch, "removing the policy").await;
    assert_eq!(
        action_of(store, agent.id, stack.id).await,
        Some(TargetAction::Remove),
        "the placement target is unassigned and awaits the agent's removal"
    );

    let actions: Vec<AuditAction> = placement_audit(store, stack.id)
        .await
        .iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::Update,
            AuditAction::Place,
            AuditAction::Update,
            AuditAction::Delete
        ]
    );
    // Removing a policy that is not there changes nothing.
    let before = all_audit(store).await.len();
    assert_eq!(
        store
            .set_placement_policy(&ADMIN, stack.id, None)
            .await
            .expect("clear again"),
        None
    );
    assert_eq!(all_audit(store).await.len(), before);
}

/// An invalid policy is `Invalid` and changes nothing, also when one is already set.
pub async fn placement_invalid_policy_writes_nothing(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    let bad = PlacementPolicy {
        spread: Some(Spread {
            topology_key: "region".into(),
            max_per_value: 0,
        }),
        ..Default::default()
    };
    let before = all_audit(store).await;
    expect_invalid(
        store
            .set_placement_policy(&ADMIN, stack.id, Some(bad.clone()))
            .await,
    );
    assert_eq!(store.get_placement(stack.id).await.expect("get"), None);
    assert_eq!(all_audit(store).await, before);

    mk_policy(store, stack.id, 1).await;
    let stored = store.get_placement(stack.id).await.expect("get");
    let before = all_audit(store).await;
    expect_invalid(
        store
            .set_placement_policy(&ADMIN, stack.id, Some(bad))
            .await,
    );
    assert_eq!(store.get_placement(stack.id).await.expect("get"), stored);
    assert_eq!(all_audit(store).await, before);
}

/// Recording a decision gives the chosen agents placement targets that the target
/// state serves; recording the same decision again changes and audits nothing.
pub async fn placement_record_adds_targets_and_repeats_are_no_ops(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    let object = mk_object(store, stack.id, "1").await;
    let a = mk_agent(store, "a").await;
    let b = mk_agent(store, "b").await;
    let c = mk_agent(store, "c").await;
    mk_policy(store, stack.id, 2).await;

    let mut watch = store.watch_target_state(a.id);
    let first = decision(&[a.id, b.id], &[c.id]);
    let change = record(store, stack.id, first.clone()).await;
    assert_eq!(change.added, sorted(vec![a.id, b.id]));
    assert!(change.removed.is_empty());
    assert!(change.decision_changed);
    expect_wake(&mut watch, "a placement").await;

    let targets = targets_of_stack(store, stack.id).await;
    assert_eq!(targets.len(), 2);
    assert!(
        targets
            .iter()
            .all(|t| t.source == TargetSource::Placement && t.removed_at.is_none()),
        "{targets:?}"
    );
    for agent in [a.id, b.id] {
        let state = target_state(store, agent).await;
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].action, TargetAction::Apply);
        assert_eq!(state.entries[0].deployment_object, object);
    }
    assert!(target_state(store, c.id).await.entries.is_empty());

    let stored = store
        .get_placement(stack.id)
        .await
        .expect("get")
        .expect("a policy is set");
    assert_eq!(stored.decision, Some(first.clone()));
    assert!(stored.decided_at.is_some());

    let audit = placement_audit(store, stack.id).await;
    let places: Vec<&AuditRecord> = audit
        .iter()
        .filter(|r| r.action == AuditAction::Place)
        .collect();
    assert_eq!(places.len(), 1, "one audit record per changed decision");
    assert_eq!(places[0].actor, Actor::System);
    assert_eq!(places[0].resource_kind, ResourceKind::Placement);
    assert_eq!(places[0].resource_id, stack.id.0);

    let before = all_audit(store).await;
    let again = record(store, stack.id, first.clone()).await;
    assert_eq!(
        again,
        PlacementChange::default(),
        "the same decision is a no-op"
    );
    assert_eq!(all_audit(store).await, before);
    assert_eq!(
        store.get_placement(stack.id).await.expect("get"),
        Some(stored.clone())
    );

    // Other reasons, the same chosen set: stored, but no target changes and no audit.
    let reasons = PlacementDecision {
        chosen: first.chosen.clone(),
        rejected: vec![(c.id, Rejection::StaleHeartbeat)],
    };
    let change = record(store, stack.id, reasons.clone()).await;
    assert!(change.decision_changed);
    assert!(change.added.is_empty() && change.removed.is_empty());
    assert_eq!(all_audit(store).await, before);
    let stored = store
        .get_placement(stack.id)
        .await
        .expect("get")
        .expect("a policy is set");
    assert_eq!(stored.decision, Some(reasons));
}

/// A changed decision unassigns the agents no longer chosen (they receive a removal)
/// and adds the new ones, waking both, with exactly one audit record.
pub async fn placement_changed_decision_removes_and_adds(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let a = mk_agent(store, "a").await;
    let b = mk_agent(store, "b").await;
    let c = mk_agent(store, "c").await;
    mk_policy(store, stack.id, 2).await;
    record(store, stack.id, decision(&[a.id, b.id], &[c.id])).await;

    let mut watch_a = store.watch_target_state(a.id);
    let mut watch_c = store.watch_target_state(c.id);
    let before = all_audit(store).await.len();
    let change = record(store, stack.id, decision(&[b.id, c.id], &[a.id])).await;
    assert_eq!(change.added, vec![c.id]);
    assert_eq!(change.removed, vec![a.id]);
    assert!(change.decision_changed);
    expect_wake(&mut watch_a, "losing a placement").await;
    expect_wake(&mut watch_c, "gaining a placement").await;
    assert_eq!(all_audit(store).await.len(), before + 1);

    assert_eq!(
        action_of(store, a.id, stack.id).await,
        Some(TargetAction::Remove)
    );
    assert_eq!(
        action_of(store, b.id, stack.id).await,
        Some(TargetAction::Apply)
    );
    assert_eq!(
        action_of(store, c.id, stack.id).await,
        Some(TargetAction::Apply)
    );

    // Choosing nobody unassigns everyone it placed.
    let change = record(store, stack.id, decision(&[], &[a.id, b.id, c.id])).await;
    assert!(change.added.is_empty());
    assert_eq!(change.removed, sorted(vec![b.id, c.id]));
    for agent in [a.id, b.id, c.id] {
        assert_eq!(
            action_of(store, agent, stack.id).await,
            Some(TargetAction::Remove)
        );
    }
}

/// Direct targets are never touched by a decision and count as having the stack.
pub async fn placement_leaves_direct_targets_alone(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let direct = mk_agent(store, "direct").await;
    let placed = mk_agent(store, "placed").await;
    mk_target(store, direct.id, stack.id).await;
    mk_policy(store, stack.id, 2).await;

    let change = record(store, stack.id, decision(&[direct.id, placed.id], &[])).await;
    assert_eq!(change.added, vec![placed.id], "the direct target counts");
    let change = record(store, stack.id, decision(&[placed.id], &[direct.id])).await;
    assert!(change.removed.is_empty(), "{change:?}");
    assert_eq!(
        action_of(store, direct.id, stack.id).await,
        Some(TargetAction::Apply)
    );
    let targets = targets_of_stack(store, stack.id).await;
    let direct_target = targets
        .iter()
        .find(|t| t.agent_id == direct.id)
        .expect("the direct target stays");
    assert_eq!(direct_target.source, TargetSource::Direct);
    assert_eq!(direct_target.removed_at, None);

    store
        .set_placement_policy(&ADMIN, stack.id, None)
        .await
        .expect("clear");
    assert_eq!(
        action_of(store, direct.id, stack.id).await,
        Some(TargetAction::Apply),
        "removing the policy leaves direct targets too"
    );
    assert_eq!(
        action_of(store, placed.id, stack.id).await,
        Some(TargetAction::Remove)
    );
}

/// Assigning a stack to an agent that has it by placement makes the target direct
/// (no conflict), so later decisions leave it alone.
pub async fn placement_assign_turns_a_placement_target_direct(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let agent = mk_agent(store, "a").await;
    mk_policy(store, stack.id, 1).await;
    record(store, stack.id, decision(&[agent.id], &[])).await;

    let target = store
        .assign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("assigning a placed stack succeeds");
    assert_eq!(target.source, TargetSource::Direct);
    assert_eq!(target.removed_at, None);
    expect_conflict(store.assign_stack(&ADMIN, agent.id, stack.id).await);

    let change = record(store, stack.id, decision(&[], &[agent.id])).await;
    assert!(change.removed.is_empty(), "{change:?}");
    assert_eq!(
        action_of(store, agent.id, stack.id).await,
        Some(TargetAction::Apply)
    );
}

/// A target awaiting removal is revived as a placement target when its agent is
/// chosen again; a never-deployed stack's dropped target goes at once; deleted agents
/// among the chosen get nothing.
pub async fn placement_revives_a_target_awaiting_removal(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let agent = mk_agent(store, "a").await;
    let gone = mk_agent(store, "gone").await;
    store
        .delete_agent(&ADMIN, gone.id)
        .await
        .expect("delete agent");
    mk_policy(store, stack.id, 2).await;

    let change = record(store, stack.id, decision(&[agent.id, gone.id], &[])).await;
    assert_eq!(change.added, vec![agent.id], "a deleted agent gets nothing");
    record(store, stack.id, decision(&[], &[agent.id])).await;
    assert_eq!(
        action_of(store, agent.id, stack.id).await,
        Some(TargetAction::Remove)
    );
    let change = record(store, stack.id, decision(&[agent.id], &[])).await;
    assert_eq!(change.added, vec![agent.id]);
    assert_eq!(
        action_of(store, agent.id, stack.id).await,
        Some(TargetAction::Apply)
    );
    let targets = targets_of_stack(store, stack.id).await;
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].source, TargetSource::Placement);

    // Never deployed: nothing to remove, so the dropped target leaves at once.
    let fresh = mk_stack(store, "fresh").await;
    mk_policy(store, fresh.id, 1).await;
    record(store, fresh.id, decision(&[agent.id], &[])).await;
    assert_eq!(targets_of_stack(store, fresh.id).await.len(), 1);
    let change = record(store, fresh.id, decision(&[], &[agent.id])).await;
    assert_eq!(change.removed, vec![agent.id]);
    assert!(targets_of_stack(store, fresh.id).await.is_empty());
}

/// `list_placements` pages through live stacks with a policy, ordered by stack id.
pub async fn placement_list_pages_by_stack_and_skips_deleted(store: &dyn Store) {
    let mut expected = Vec::new();
    for i in 0..5 {
        let stack = mk_stack(store, &format!("s{i}")).await;
        mk_policy(store, stack.id, 1).await;
        expected.push(stack.id);
    }
    mk_stack(store, "no-policy").await;
    let deleted = mk_stack(store, "deleted").await;
    mk_policy(store, deleted.id, 1).await;
    store
        .delete_stack(&ADMIN, deleted.id)
        .await
        .expect("delete stack");
    check_walks(
        "placements",
        expected,
        |p: &StackPlacement| p.stack_id,
        async |p| store.list_placements(&p).await,
    )
    .await;
}

/// Placement needs a live stack; recording needs a policy.
pub async fn placement_needs_a_live_stack_with_a_policy(store: &dyn Store) {
    let agent = mk_agent(store, "a").await;
    let missing = StackId::new();
    expect_not_found(store.get_placement(missing).await, "stack");
    expect_not_found(
        store
            .set_placement_policy(&ADMIN, missing, Some(policy(1)))
            .await,
        "stack",
    );
    expect_not_found(
        store
            .record_placement(&ADMIN, missing, decision(&[agent.id], &[]))
            .await,
        "stack",
    );

    let stack = mk_stack(store, "s").await;
    expect_not_found(
        store
            .record_placement(&ADMIN, stack.id, decision(&[agent.id], &[]))
            .await,
        "placement",
    );
    assert!(targets_of_stack(store, stack.id).await.is_empty());

    mk_policy(store, stack.id, 1).await;
    store
        .delete_stack(&ADMIN, stack.id)
        .await
        .expect("delete stack");
    let before = all_audit(store).await;
    expect_not_found(store.get_placement(stack.id).await, "stack");
    expect_not_found(
        store
            .set_placement_policy(&ADMIN, stack.id, Some(policy(2)))
            .await,
        "stack",
    );
    expect_not_found(
        store.set_placement_policy(&ADMIN, stack.id, None).await,
        "stack",
    );
    expect_not_found(
        store
            .record_placement(&ADMIN, stack.id, decision(&[agent.id], &[]))
            .await,
        "stack",
    );
    assert_eq!(all_audit(store).await, before);
    assert!(targets_of_stack(store, stack.id).await.is_empty());
}

/// Decisions recorded concurrently for one stack (as by two replicas) apply one after
/// the other: the live placement targets end up exactly the stored decision's choice.
pub async fn placement_concurrent_records_serialize(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(mk_agent(store, &format!("a{i}")).await.id);
    }
    mk_policy(store, stack.id, 2).await;
    let records = (0..12).map(|i| {
        let chosen = [agents[i % 4], agents[(i + 1) % 4]];
        async move {
            store
                .record_placement(&Actor::System, stack.id, decision(&chosen, &[]))
                .await
        }
    });
    for result in futures::future::join_all(records).await {
        result.expect("every concurrent record succeeds");
    }
    let stored = store
        .get_placement(stack.id)
        .await
        .expect("get")
        .and_then(|p| p.decision)
        .expect("a decision is stored");
    let live: Vec<AgentId> = targets_of_stack(store, stack.id)
        .await
        .iter()
        .filter(|t| t.removed_at.is_none())
        .map(|t| t.agent_id)
        .collect();
    assert_eq!(live, stored.chosen);
}

// ---------------------------------------------------------------------------------------
// Cases: generators

/// Generators are created, read, listed, updated and soft-deleted.
pub async fn generator_crud(store: &dyn Store) {
    let created = store
        .create_generator(
            &ADMIN,
            NewGenerator {
                name: "ci".into(),
                description: Some("the pipeline".into()),
                key: Pak::generate().stored(),
            },
        )
        .await
        .expect("create");
    assert_eq!(created.name, "ci");
    assert_eq!(created.description.as_deref(), Some("the pipeline"));
    assert_eq!(created.deleted_at, None);
    assert_eq!(store.get_generator(created.id).await.expect("get"), created);

    let updated = store
        .update_generator(
            &ADMIN,
            created.id,
            GeneratorUpdate {
                name: Some("ci-2".into()),
                description: Some(None),
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.name, "ci-2");
    assert_eq!(updated.description, None);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_generator(created.id).await.expect("get"), updated);
    let live = all(async |p| store.list_generators(&GeneratorFilter::default(), &p).await).await;
    assert_eq!(live, vec![updated]);

    store
        .delete_generator(&ADMIN, created.id)
        .await
        .expect("delete");
    expect_not_found(store.get_generator(created.id).await, "generator");
    expect_not_found(
        store.delete_generator(&ADMIN, created.id).await,
        "generator",
    );
    let live = all(async |p| store.list_generators(&GeneratorFilter::default(), &p).await).await;
    assert!(live.is_empty());
    let filter = GeneratorFilter {
        include_deleted: true,
    };
    let with_deleted = all(async |p| store.list_generators(&filter, &p).await).await;
    assert_eq!(with_deleted.len(), 1);
    assert!(with_deleted[0].deleted_at.is_some());
}

/// Live generator names are unique; bad names are `Invalid`; deletion frees the name.
pub async fn generator_names_are_unique_and_reusable(store: &dyn Store) {
    let first = mk_generator(store, "gen").await;
    let second = mk_generator(store, "other").await;
    expect_conflict(
        store
            .create_generator(&ADMIN, new_generator("gen", &Pak::generate()))
            .await,
    );
    let rename = GeneratorUpdate {
        name: Some("gen".into()),
        description: None,
    };
    expect_conflict(store.update_generator(&ADMIN, second.id, rename).await);
    for bad in ["", " gen", "gen\n"] {
        expect_invalid(
            store
                .create_generator(&ADMIN, new_generator(bad, &Pak::generate()))
                .await,
        );
    }
    let long = NewGenerator {
        description: Some("d".repeat(4097)),
        ..new_generator("long", &Pak::generate())
    };
    expect_invalid(store.create_generator(&ADMIN, long).await);
    let bad_rename = GeneratorUpdate {
        name: Some(String::new()),
        description: None,
    };
    expect_invalid(store.update_generator(&ADMIN, second.id, bad_rename).await);
    assert_eq!(store.get_generator(second.id).await.expect("get"), second);

    store
        .delete_generator(&ADMIN, first.id)
        .await
        .expect("delete");
    let again = mk_generator(store, "gen").await;
    assert_ne!(again.id, first.id);
}

/// Deleting a generator revokes its keys; its stacks and templates stay.
pub async fn generator_delete_revokes_keys_and_keeps_stacks(store: &dyn Store) {
    let key = Pak::generate();
    let generator = store
        .create_generator(&ADMIN, new_generator("gen", &key))
        .await
        .expect("create");
    let stack = store
        .create_stack(
            &Actor::Generator(generator.id),
            NewStack {
                name: "owned".into(),
                generator_id: Some(generator.id),
                ..Default::default()
            },
        )
        .await
        .expect("create stack");
    let template = store
        .create_template(
            &Actor::Generator(generator.id),
            NewTemplate {
                generator_id: Some(generator.id),
                ..new_template("owned")
            },
        )
        .await
        .expect("create template");
    assert!(
        store
            .find_api_key(key.short_id())
            .await
            .expect("find")
            .is_some()
    );

    store
        .delete_generator(&ADMIN, generator.id)
        .await
        .expect("delete");
    assert_eq!(
        store.find_api_key(key.short_id()).await.expect("find"),
        None
    );
    let keys = store
        .active_api_keys(KeyOwner::Generator(generator.id))
        .await;
    assert!(keys.expect("active keys").is_empty());
    assert_eq!(store.get_stack(stack.id).await.expect("stack stays"), stack);
    assert_eq!(
        store
            .get_template(template.id)
            .await
            .expect("template stays"),
        template
    );
}

// ---------------------------------------------------------------------------------------
// Cases: templates

/// Templates start at version 1, gain versions, keep old versions readable (also after
/// deletion) and are soft-deleted.
pub async fn template_crud_and_versions(store: &dyn Store) {
    let new = NewTemplate {
        description: Some("a config map".into()),
        labels: labels(&[("kind", "config")]),
        annotations: labels(&[("docs", "see the wiki")]),
        ..new_template("config")
    };
    let created = store
        .create_template(&ADMIN, new.clone())
        .await
        .expect("create");
    assert_eq!(created.name, "config");
    assert_eq!(created.description.as_deref(), Some("a config map"));
    assert_eq!(created.generator_id, None);
    assert_eq!(created.labels, new.labels);
    assert_eq!(created.annotations, new.annotations);
    assert_eq!(created.latest.template_id, created.id);
    assert_eq!(created.latest.version, 1);
    assert_eq!(created.latest.content, new.content);
    assert_eq!(created.latest.parameters_schema, new.parameters_schema);
    assert_eq!(store.get_template(created.id).await.expect("get"), created);

    let v2_body = NewTemplateVersion {
        content: config_map_yaml("{{ name }}", "two"),
        parameters_schema: json!({"type": "object"}),
    };
    let updated = store
        .add_template_version(&ADMIN, created.id, v2_body.clone())
        .await
        .expect("add version");
    assert_eq!(updated.latest.version, 2);
    assert_eq!(updated.latest.content, v2_body.content);
    assert_eq!(updated.latest.parameters_schema, v2_body.parameters_schema);
    assert_eq!(updated.name, created.name);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_template(created.id).await.expect("get"), updated);

    let v1 = store
        .get_template_version(created.id, 1)
        .await
        .expect("version 1");
    assert_eq!(v1, created.latest);
    let v2 = store
        .get_template_version(created.id, 2)
        .await
        .expect("version 2");
    assert_eq!(v2, updated.latest);
    expect_not_found(
        store.get_template_version(created.id, 3).await,
        "template version",
    );
    let versions = all(async |p| store.list_template_versions(created.id, &p).await).await;
    assert_eq!(versions, vec![v1.clone(), v2.clone()]);
    let listed = all(async |p| store.list_templates(&TemplateFilter::default(), &p).await).await;
    assert_eq!(listed, vec![updated.clone()]);

    store
        .delete_template(&ADMIN, created.id)
        .await
        .expect("delete");
    expect_not_found(store.get_template(created.id).await, "template");
    expect_not_found(store.delete_template(&ADMIN, created.id).await, "template");
    expect_not_found(
        store
            .add_template_version(&ADMIN, created.id, v2_body)
            .await,
        "template",
    );
    assert_eq!(
        store
            .get_template_version(created.id, 1)
            .await
            .expect("history stays"),
        v1
    );
    let versions = all(async |p| store.list_template_versions(created.id, &p).await).await;
    assert_eq!(versions, vec![v1, v2]);
    let live = all(async |p| store.list_templates(&TemplateFilter::default(), &p).await).await;
    assert!(live.is_empty());
    let filter = TemplateFilter {
        include_deleted: true,
        ..Default::default()
    };
    let with_deleted = all(async |p| store.list_templates(&filter, &p).await).await;
    assert_eq!(with_deleted.len(), 1);
    assert!(with_deleted[0].deleted_at.is_some());
    assert_eq!(with_deleted[0].latest.version, 2);

    let again = mk_template(store, "config").await;
    assert_ne!(again.id, created.id);
}

/// Live template names are unique; the owning generator must be live; templates filter
/// by owner; bad input is `Invalid` and writes nothing.
pub async fn template_names_owners_and_validation(store: &dyn Store) {
    let global = mk_template(store, "global").await;
    expect_conflict(store.create_template(&ADMIN, new_template("global")).await);
    let generator = mk_generator(store, "gen").await;
    let owned = store
        .create_template(
            &Actor::Generator(generator.id),
            NewTemplate {
                generator_id: Some(generator.id),
                ..new_template("owned")
            },
        )
        .await
        .expect("create owned");
    assert_eq!(owned.generator_id, Some(generator.id));
    let filter = TemplateFilter {
        generator_id: Some(generator.id),
        ..Default::default()
    };
    let listed = all(async |p| store.list_templates(&filter, &p).await).await;
    assert_eq!(listed, vec![owned]);
    let missing = NewTemplate {
        generator_id: Some(GeneratorId::new()),
        ..new_template("orphan")
    };
    expect_not_found(store.create_template(&ADMIN, missing).await, "generator");

    let audit = all_audit(store).await.len();
    expect_invalid(store.create_template(&ADMIN, new_template("")).await);
    expect_invalid(store.create_template(&ADMIN, new_template("x\u{7}")).await);
    let bad_labels = NewTemplate {
        labels: labels(&[("kind", "not valid")]),
        ..new_template("bad-labels")
    };
    expect_invalid(store.create_template(&ADMIN, bad_labels).await);
    let bad_annotations = NewTemplate {
        annotations: labels(&[("Not/Valid", "x")]),
        ..new_template("bad-annotations")
    };
    expect_invalid(store.create_template(&ADMIN, bad_annotations).await);
    let long = NewTemplate {
        description: Some("d".repeat(4097)),
        ..new_template("long")
    };
    expect_invalid(store.create_template(&ADMIN, long).await);
    assert_eq!(all_audit(store).await.len(), audit);
    let filter = TemplateFilter {
        include_deleted: true,
        ..Default::default()
    };
    let listed = all(async |p| store.list_templates(&filter, &p).await).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(store.get_template(global.id).await.expect("get"), global);
}

// ---------------------------------------------------------------------------------------
// Cases: keys

/// A key is found by its short id while it is unrevoked, and verifies the presented key.
pub async fn keys_find_by_short_id(store: &dyn Store) {
    let agent_key = Pak::generate();
    let agent = store
        .create_agent(&ADMIN, new_agent("a", "c", &agent_key))
        .await
        .expect("create agent");
    let generator_key = Pak::generate();
    let generator = store
        .create_generator(&ADMIN, new_generator("g", &generator_key))
        .await
        .expect("create generator");

    let found = store
        .find_api_key(agent_key.short_id())
        .await
        .expect("find")
        .expect("the agent's key");
    assert_eq!(found.short_id, agent_key.short_id());
    assert_eq!(found.owner, KeyOwner::Agent(agent.id));
    assert_eq!(found.hash, agent_key.hash());
    assert!(found.hash.verify(&agent_key));
    assert!(!found.hash.verify(&generator_key));
    assert_eq!(found.revoked_at, None);

    let found = store
        .find_api_key(generator_key.short_id())
        .await
        .expect("find")
        .expect("the generator's key");
    assert_eq!(found.owner, KeyOwner::Generator(generator.id));
    assert_eq!(
        store.find_api_key("nosuchkey000").await.expect("find"),
        None
    );

    let active = store
        .active_api_keys(KeyOwner::Agent(agent.id))
        .await
        .expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].short_id, agent_key.short_id());
    let admin = store
        .active_api_keys(KeyOwner::Admin)
        .await
        .expect("active");
    assert!(admin.is_empty());
}

/// Rotating issues the new key and revokes every earlier key of the same owner only,
/// for agents, generators and the admin.
pub async fn keys_rotation_revokes_previous_keys(store: &dyn Store) {
    let old = Pak::generate();
    let agent = store
        .create_agent(&ADMIN, new_agent("a", "c", &old))
        .await
        .expect("create agent");
    let bystander = Pak::generate();
    store
        .create_agent(&ADMIN, new_agent("b", "c", &bystander))
        .await
        .expect("create bystander");
    let owner = KeyOwner::Agent(agent.id);

    let new = Pak::generate();
    let issued = store
        .rotate_api_key(&Actor::Agent(agent.id), owner, new.stored())
        .await
        .expect("rotate");
    assert_eq!(issued.owner, owner);
    assert_eq!(issued.short_id, new.short_id());
    assert_eq!(issued.hash, new.hash());
    assert_eq!(issued.revoked_at, None);
    assert_eq!(
        store.find_api_key(old.short_id()).await.expect("find"),
        None
    );
    let found = store.find_api_key(new.short_id()).await.expect("find");
    assert_eq!(found, Some(issued.clone()));
    assert_eq!(
        store.active_api_keys(owner).await.expect("active"),
        vec![issued]
    );
    assert!(
        store
            .find_api_key(bystander.short_id())
            .await
            .expect("find")
            .is_some(),
        "rotation revoked another owner's key"
    );

    let newest = Pak::generate();
    store
        .rotate_api_key(&ADMIN, owner, newest.stored())
        .await
        .expect("rotate again");
    let active = store.active_api_keys(owner).await.expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].short_id, newest.short_id());

    let generator = mk_generator(store, "g").await;
    let generator_key = Pak::generate();
    store
        .rotate_api_key(
            &ADMIN,
            KeyOwner::Generator(generator.id),
            generator_key.stored(),
        )
        .await
        .expect("rotate generator key");
    let active = store
        .active_api_keys(KeyOwner::Generator(generator.id))
        .await
        .expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].short_id, generator_key.short_id());

    for _ in 0..2 {
        let admin_key = Pak::generate();
        store
            .rotate_api_key(&Actor::System, KeyOwner::Admin, admin_key.stored())
            .await
            .expect("rotate admin key");
        let active = store
            .active_api_keys(KeyOwner::Admin)
            .await
            .expect("active");
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].short_id, admin_key.short_id());
    }

    store.delete_agent(&ADMIN, agent.id).await.expect("delete");
    expect_not_found(
        store
            .rotate_api_key(&ADMIN, owner, Pak::generate().stored())
            .await,
        "agent",
    );
}

/// Short ids are unique across key records: creating an agent or generator, or
/// rotating, with a taken short id is a `Conflict` and changes nothing.
pub async fn keys_short_ids_are_unique(store: &dyn Store) {
    let key = Pak::generate();
    let agent = store
        .create_agent(&ADMIN, new_agent("a", "c", &key))
        .await
        .expect("create agent");
    expect_conflict(store.create_agent(&ADMIN, new_agent("b", "c", &key)).await);
    expect_conflict(
        store
            .create_generator(&ADMIN, new_generator("g", &key))
            .await,
    );
    let generator = mk_generator(store, "g").await;
    let owner = KeyOwner::Generator(generator.id);
    let before = store.active_api_keys(owner).await.expect("active");
    expect_conflict(store.rotate_api_key(&ADMIN, owner, key.stored()).await);
    assert_eq!(store.active_api_keys(owner).await.expect("active"), before);
    // Reissuing its own current key to the same owner is a conflict too.
    let own = KeyOwner::Agent(agent.id);
    expect_conflict(store.rotate_api_key(&ADMIN, own, key.stored()).await);
    assert_eq!(store.active_api_keys(own).await.expect("active").len(), 1);
    let filter = AgentFilter {
        include_deleted: true,
        ..Default::default()
    };
    assert_eq!(all_agents(store, filter).await.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Cases: audit

/// Tracks which audit records a case has already seen.
struct AuditTrail<'a> {
    store: &'a dyn Store,
    seen: BTreeSet<crate::id::AuditRecordId>,
    secrets: Vec<String>,
}

impl AuditTrail<'_> {
    /// Asserts that exactly one record was written since the last call, and what it says.
    async fn expect(
        &mut self,
        actor: Actor,
        action: AuditAction,
        kind: ResourceKind,
        id: uuid::Uuid,
    ) {
        let fresh: Vec<AuditRecord> = all_audit(self.store)
            .await
            .into_iter()
            .filter(|r| !self.seen.contains(&r.id))
            .collect();
        assert_eq!(
            fresh.len(),
            1,
            "expected one audit record for {action:?} {kind:?}, got {fresh:?}"
        );
        let record = &fresh[0];
        assert_eq!(
            (
                record.actor,
                record.action,
                record.resource_kind,
                record.resource_id
            ),
            (actor, action, kind, id),
            "{record:?}"
        );
        assert!(
            !record.summary.trim().is_empty(),
            "empty summary: {record:?}"
        );
        assert!(
            !record.summary.contains('\n'),
            "multi-line summary: {record:?}"
        );
        for secret in &self.secrets {
            assert!(
                !record.summary.contains(secret.as_str()),
                "key material in {record:?}"
            );
        }
        self.seen.insert(record.id);
    }

    /// Asserts that nothing was written since the last call.
    async fn expect_none(&self, what: &str) {
        let fresh = all_audit(self.store)
            .await
            .into_iter()
            .filter(|r| !self.seen.contains(&r.id))
            .count();
        assert_eq!(fresh, 0, "{what} wrote an audit record");
    }
}

/// Every mutating method writes exactly one audit record naming the actor, action and
/// resource; failed calls, retried events and heartbeats write none.
pub async fn audit_one_record_per_mutation(store: &dyn Store) {
    use AuditAction::*;
    let keys: Vec<Pak> = (0..3).map(|_| Pak::generate()).collect();
    let mut trail = AuditTrail {
        store,
        seen: BTreeSet::new(),
        secrets: keys
            .iter()
            .flat_map(|k| [k.expose().to_owned(), k.hash().to_hex()])
            .collect(),
    };
    let kinds = ResourceKind::Generator;

    let generator = store
        .create_generator(&ADMIN, new_generator("g", &keys[0]))
        .await
        .expect("create generator");
    trail.expect(ADMIN, Create, kinds, generator.id.0).await;
    store
        .update_generator(
            &ADMIN,
            generator.id,
            GeneratorUpdate {
                name: Some("g2".into()),
                description: None,
            },
        )
        .await
        .expect("update generator");
    trail.expect(ADMIN, Update, kinds, generator.id.0).await;

    let gen_actor = Actor::Generator(generator.id);
    let stack = store
        .create_stack(
            &gen_actor,
            NewStack {
                name: "s".into(),
                generator_id: Some(generator.id),
                ..Default::default()
            },
        )
        .await
        .expect("create stack");
    trail
        .expect(gen_actor, Create, ResourceKind::Stack, stack.id.0)
        .await;
    expect_conflict(
        store
            .create_stack(
                &gen_actor,
                NewStack {
                    name: "s".into(),
                    ..Default::default()
                },
            )
            .await,
    );
    trail.expect_none("a failed create_stack").await;
    store
        .update_stack(
            &gen_actor,
            stack.id,
            StackUpdate {
                name: None,
                description: Some(Some("d".into())),
            },
        )
        .await
        .expect("update stack");
    trail
        .expect(gen_actor, Update, ResourceKind::Stack, stack.id.0)
        .await;
    let object = store
        .append_deployment_object(
            &gen_actor,
            NewDeploymentObject::from_yaml(stack.id, config_map_yaml("c", "1")).expect("YAML"),
        )
        .await
        .expect("append");
    trail
        .expect(
            gen_actor,
            Create,
            ResourceKind::DeploymentObject,
            object.id.0,
        )
        .await;

    let agent = store
        .create_agent(&ADMIN, new_agent("a", "c", &keys[1]))
        .await
        .expect("create agent");
    trail
        .expect(ADMIN, Create, ResourceKind::Agent, agent.id.0)
        .await;
    store
        .update_agent(
            &ADMIN,
            agent.id,
            AgentUpdate {
                status: Some(AgentStatus::Inactive),
                ..Default::default()
            },
        )
        .await
        .expect("update agent");
    trail
        .expect(ADMIN, Update, ResourceKind::Agent, agent.id.0)
        .await;

    let stack_target = MetadataTarget::Stack(stack.id);
    store
        .put_metadata(
            &gen_actor,
            stack_target,
            MetadataField::Labels,
            "app",
            "web",
        )
        .await
        .expect("put label");
    trail
        .expect(gen_actor, SetMetadata, ResourceKind::Stack, stack.id.0)
        .await;
    store
        .remove_metadata(&gen_actor, stack_target, MetadataField::Labels, "app")
        .await
        .expect("remove label");
    trail
        .expect(gen_actor, RemoveMetadata, ResourceKind::Stack, stack.id.0)
        .await;
    store
        .put_metadata(
            &ADMIN,
            MetadataTarget::Agent(agent.id),
            MetadataField::Annotations,
            "note",
            "text",
        )
        .await
        .expect("put annotation");
    trail
        .expect(ADMIN, SetMetadata, ResourceKind::Agent, agent.id.0)
        .await;

    store
        .assign_stack(&Actor::System, agent.id, stack.id)
        .await
        .expect("assign");
    trail
        .expect(Actor::System, Assign, ResourceKind::AgentTarget, stack.id.0)
        .await;
    let agent_actor = Actor::Agent(agent.id);
    let new = new_event(agent.id, object.id, EventType::Apply, EventStatus::Success);
    let event = store
        .record_agent_event(&agent_actor, new.clone())
        .await
        .expect("record event");
    trail
        .expect(agent_actor, Create, ResourceKind::AgentEvent, event.id.0)
        .await;
    store
        .record_agent_event(&agent_actor, new)
        .await
        .expect("retry event");
    trail.expect_none("a retried event").await;
    store
        .record_heartbeats(&[Heartbeat {
            agent_id: agent.id,
            at: Utc::now(),
            capabilities: None,
        }])
        .await
        .expect("heartbeat");
    trail.expect_none("a heartbeat").await;
    store
        .unassign_stack(&ADMIN, agent.id, stack.id)
        .await
        .expect("unassign");
    trail
        .expect(ADMIN, Unassign, ResourceKind::AgentTarget, stack.id.0)
        .await;

    let template = store
        .create_template(&gen_actor, new_template("t"))
        .await
        .expect("create template");
    let tk = ResourceKind::Template;
    trail.expect(gen_actor, Create, tk, template.id.0).await;
    store
        .add_template_version(&gen_actor, template.id, NewTemplateVersion::default())
        .await
        .expect("add version");
    trail.expect(gen_actor, Update, tk, template.id.0).await;
    store
        .put_metadata(
            &ADMIN,
            MetadataTarget::Template(template.id),
            MetadataField::Labels,
            "kind",
            "config",
        )
        .await
        .expect("put template label");
    trail.expect(ADMIN, SetMetadata, tk, template.id.0).await;
    store
        .delete_template(&ADMIN, template.id)
        .await
        .expect("delete template");
    trail.expect(ADMIN, Delete, tk, template.id.0).await;

    let key = store
        .rotate_api_key(&agent_actor, KeyOwner::Agent(agent.id), keys[2].stored())
        .await
        .expect("rotate");
    trail
        .expect(agent_actor, RotateKey, ResourceKind::ApiKey, key.id.0)
        .await;

    store
        .delete_stack(&ADMIN, stack.id)
        .await
        .expect("delete stack");
    trail
        .expect(ADMIN, Delete, ResourceKind::Stack, stack.id.0)
        .await;
    store
        .delete_agent(&ADMIN, agent.id)
        .await
        .expect("delete agent");
    trail
        .expect(ADMIN, Delete, ResourceKind::Agent, agent.id.0)
        .await;
    store
        .delete_generator(&ADMIN, generator.id)
        .await
        .expect("delete generator");
    trail.expect(ADMIN, Delete, kinds, generator.id.0).await;
}

/// Audit records filter by actor kind and id, action, resource kind and id, and time.
pub async fn audit_filters(store: &dyn Store) {
    let generator = mk_generator(store, "g").await;
    let gen_actor = Actor::Generator(generator.id);
    let stack = store
        .create_stack(
            &gen_actor,
            NewStack {
                name: "s".into(),
                generator_id: Some(generator.id),
                ..Default::default()
            },
        )
        .await
        .expect("create stack");
    let mid = instant_between_writes().await;
    let agent = mk_agent(store, "a").await;
    store
        .assign_stack(&Actor::System, agent.id, stack.id)
        .await
        .expect("assign");
    let object = mk_object(store, stack.id, "1").await;
    mk_event(
        store,
        agent.id,
        object.id,
        EventType::Apply,
        EventStatus::Success,
    )
    .await;

    let records = async |filter: AuditFilter| {
        all(async |p| store.list_audit_records(&filter, &p).await)
            .await
            .into_iter()
            .map(|r| (r.action, r.resource_kind, r.resource_id))
            .collect::<Vec<_>>()
    };
    let f = AuditFilter::default;
    use AuditAction::{Assign, Create};
    assert_eq!(records(f()).await.len(), 6);
    assert_eq!(
        records(AuditFilter {
            actor_kind: Some(ActorKind::Generator),
            ..f()
        })
        .await,
        vec![(Create, ResourceKind::Stack, stack.id.0)]
    );
    assert_eq!(
        records(AuditFilter {
            actor_id: Some(generator.id.0),
            ..f()
        })
        .await,
        vec![(Create, ResourceKind::Stack, stack.id.0)]
    );
    assert_eq!(
        records(AuditFilter {
            actor_kind: Some(ActorKind::Agent),
            actor_id: Some(agent.id.0),
            ..f()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        records(AuditFilter {
            actor_kind: Some(ActorKind::System),
            ..f()
        })
        .await,
        vec![(Assign, ResourceKind::AgentTarget, stack.id.0)]
    );
    assert_eq!(
        records(AuditFilter {
            action: Some(Assign),
            ..f()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        records(AuditFilter {
            resource_kind: Some(ResourceKind::Agent),
            ..f()
        })
        .await,
        vec![(Create, ResourceKind::Agent, agent.id.0)]
    );
    assert_eq!(
        records(AuditFilter {
            resource_id: Some(stack.id.0),
            ..f()
        })
        .await,
        vec![
            (Create, ResourceKind::Stack, stack.id.0),
            (Assign, ResourceKind::AgentTarget, stack.id.0)
        ]
    );
    let until = records(AuditFilter {
        until: Some(mid),
        ..f()
    })
    .await;
    assert_eq!(
        until,
        vec![
            (Create, ResourceKind::Generator, generator.id.0),
            (Create, ResourceKind::Stack, stack.id.0)
        ]
    );
    assert_eq!(
        records(AuditFilter {
            since: Some(mid),
            ..f()
        })
        .await
        .len(),
        4
    );
    assert_eq!(
        records(AuditFilter {
            since: Some(mid),
            actor_kind: Some(ActorKind::Admin),
            action: Some(Create),
            ..f()
        })
        .await,
        vec![
            (Create, ResourceKind::Agent, agent.id.0),
            (Create, ResourceKind::DeploymentObject, object.id.0)
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Cases: pagination

/// Walks a listing with limits 1, 2 and a large one, both ways, and checks that every
/// row comes exactly once, in key order.
async fn check_walks<T, K: Ord + Clone + Debug>(
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

/// Every listing pages through all its rows exactly once, in order, both ways, with
/// cursors, for several page sizes.
pub async fn pagination_walks_every_listing(store: &dyn Store) {
    let mut stacks = Vec::new();
    let mut agents = Vec::new();
    let mut generators = Vec::new();
    let mut templates = Vec::new();
    for i in 0..5 {
        stacks.push(mk_stack(store, &format!("s{i}")).await.id);
        agents.push(mk_agent(store, &format!("a{i}")).await.id);
        generators.push(mk_generator(store, &format!("g{i}")).await.id);
        templates.push(mk_template(store, &format!("t{i}")).await.id);
    }
    let mut objects = Vec::new();
    for i in 0..5 {
        objects.push(mk_object(store, stacks[0], &i.to_string()).await);
    }
    let mut versions = vec![1];
    for version in 2..=4 {
        store
            .add_template_version(&ADMIN, templates[0], NewTemplateVersion::default())
            .await
            .expect("add version");
        versions.push(version);
    }
    let mut targets = Vec::new();
    for stack in &stacks {
        mk_target(store, agents[0], *stack).await;
        targets.push((agents[0], *stack));
    }
    for agent in &agents[1..] {
        mk_target(store, *agent, stacks[0]).await;
        targets.push((*agent, stacks[0]));
    }
    let mut events = Vec::new();
    for object in &objects {
        let event = mk_event(
            store,
            agents[0],
            object.id,
            EventType::Apply,
            EventStatus::Success,
        );
        events.push(event.await.id);
    }
    let audit: Vec<_> = all_audit(store).await.into_iter().map(|r| r.id).collect();
    assert_eq!(audit.len(), 20 + 5 + 3 + 9 + 5);

    check_walks(
        "stacks",
        stacks.clone(),
        |s: &Stack| s.id,
        async |p| store.list_stacks(&StackFilter::default(), &p).await,
    )
    .await;
    check_walks(
        "agents",
        agents,
        |a: &Agent| a.id,
        async |p| store.list_agents(&AgentFilter::default(), &p).await,
    )
    .await;
    check_walks(
        "generators",
        generators,
        |g: &Generator| g.id,
        async |p| store.list_generators(&GeneratorFilter::default(), &p).await,
    )
    .await;
    check_walks(
        "templates",
        templates.clone(),
        |t: &Template| t.id,
        async |p| store.list_templates(&TemplateFilter::default(), &p).await,
    )
    .await;
    check_walks(
        "template versions",
        versions,
        |v: &crate::model::TemplateVersion| v.version,
        async |p| store.list_template_versions(templates[0], &p).await,
    )
    .await;
    let sequences = objects.iter().map(|o| o.sequence).collect();
    check_walks(
        "deployment objects",
        sequences,
        |o: &DeploymentObject| o.sequence,
        async |p| store.list_deployment_objects(stacks[0], &p).await,
    )
    .await;
    check_walks(
        "targets",
        targets,
        |t: &crate::model::AgentTarget| (t.agent_id, t.stack_id),
        async |p| store.list_agent_targets(&TargetFilter::default(), &p).await,
    )
    .await;
    check_walks(
        "events",
        events,
        |e: &AgentEvent| e.id,
        async |p| {
            store
                .list_agent_events(&AgentEventFilter::default(), &p)
                .await
        },
    )
    .await;
    check_walks(
        "audit records",
        audit,
        |r: &AuditRecord| r.id,
        async |p| store.list_audit_records(&AuditFilter::default(), &p).await,
    )
    .await;
}

/// A cursor the listing did not hand out is `InvalidCursor`, never a backend failure
/// or a silently wrong page.
pub async fn pagination_rejects_foreign_cursors(store: &dyn Store) {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    let bad = PageRequest::default().after(crate::page::Cursor("\0garbage".into()));
    let invalid = |result: Result<(), Error>, listing: &str| match result {
        Err(Error::InvalidCursor(_)) => {}
        other => panic!("{listing}: expected InvalidCursor, got {other:?}"),
    };
    invalid(
        store
            .list_stacks(&StackFilter::default(), &bad)
            .await
            .map(drop),
        "stacks",
    );
    invalid(
        store
            .list_deployment_objects(stack.id, &bad)
            .await
            .map(drop),
        "deployment objects",
    );
    invalid(
        store
            .list_agent_targets(&TargetFilter::default(), &bad)
            .await
            .map(drop),
        "agent targets",
    );
    invalid(
        store
            .list_audit_records(&AuditFilter::default(), &bad)
            .await
            .map(drop),
        "audit records",
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::CASE_NAMES;

    /// Every `pub async fn case(store: &dyn Store)` in this file is listed in the macro,
    /// and every listed name is a case, so no case is silently left out of a backend's run.
    #[test]
    fn every_case_is_expanded_by_the_macro() {
        let source = include_str!("conformance.rs");
        let defined: BTreeSet<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.strip_suffix("(store: &dyn Store) {"))
            .collect();
        let listed: BTreeSet<&str> = CASE_NAMES.iter().copied().collect();
        assert_eq!(listed.len(), CASE_NAMES.len(), "a case is listed twice");
        assert_eq!(defined, listed);
    }
}
