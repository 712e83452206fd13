use super::*;
use crate::broker::DeploymentObjectWire;
use brokkr_core::testing::MemoryApplier;

const WEB: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n";
const BAD: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nowhere\n";

fn entry(stack: StackId, action: Action, yaml: &str) -> TargetEntry {
    TargetEntry {
        stack_id: stack,
        stack_name: "s".into(),
        action,
        deployment_object: DeploymentObjectWire {
            id: DeploymentObjectId::new(),
            sequence_id: 1,
            yaml_content: yaml.into(),
            yaml_checksum: brokkr_core::model::checksum(yaml),
            is_deletion_marker: action == Action::Remove && yaml.is_empty(),
            created_at: None,
        },
    }
}

fn reconciler(cluster: &Arc<MemoryApplier>) -> Reconciler {
    let applier: Arc<dyn Applier> = Arc::clone(cluster) as Arc<dyn Applier>;
    Reconciler::new(
        applier,
        AgentId::new(),
        4,
        Duration::from_secs(60),
        Arc::new(Metrics::default()),
    )
}

fn kinds(events: &[EventReport]) -> Vec<(EventType, EventStatus)> {
    events.iter().map(|e| (e.event_type, e.status)).collect()
}

#[tokio::test]
async fn one_event_per_deployment_object_and_none_when_unchanged() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let web = entry(StackId::new(), Action::Apply, WEB);
    let events = reconciler
        .reconcile(std::slice::from_ref(&web), false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Success)]);
    assert!(
        reconciler
            .reconcile(std::slice::from_ref(&web), false)
            .await
            .is_empty()
    );
    // A resync of an untouched cluster applies again but reports nothing.
    assert!(
        reconciler
            .reconcile(std::slice::from_ref(&web), true)
            .await
            .is_empty()
    );
    assert_eq!(cluster.applies().len(), 2);
}

#[tokio::test]
async fn a_failing_stack_does_not_block_the_others() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let good = entry(StackId::new(), Action::Apply, WEB);
    let bad = entry(StackId::new(), Action::Apply, BAD);
    let unparsable = entry(StackId::new(), Action::Apply, "kind: [");
    let events = reconciler
        .reconcile(&[good.clone(), bad.clone(), unparsable.clone()], false)
        .await;
    let by_object: HashMap<DeploymentObjectId, &EventReport> =
        events.iter().map(|e| (e.deployment_object_id, e)).collect();
    assert_eq!(
        by_object[&good.deployment_object.id].status,
        EventStatus::Success
    );
    let failure = by_object[&bad.deployment_object.id];
    assert_eq!(failure.status, EventStatus::Failure);
    assert!(
        failure
            .message
            .as_deref()
            .unwrap()
            .contains("namespaces \"nowhere\" not found")
    );
    assert!(
        by_object[&unparsable.deployment_object.id]
            .message
            .as_deref()
            .unwrap()
            .contains("invalid deployment object")
    );
    // A permanent failure is not retried before the next resync.
    assert!(reconciler.next_retry().is_none());
    assert!(
        reconciler
            .reconcile(&[good, bad, unparsable], false)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_new_version_leaves_the_previous_objects_in_place() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let stack = StackId::new();
    reconciler
        .reconcile(&[entry(stack, Action::Apply, WEB)], false)
        .await;
    let broken = format!("{WEB}---\n{BAD}");
    let events = reconciler
        .reconcile(&[entry(stack, Action::Apply, &broken)], false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Failure)]);
    assert_eq!(
        cluster
            .inventory(stack)
            .await
            .unwrap()
            .unwrap()
            .objects
            .len(),
        2
    );
}

#[tokio::test]
async fn going_back_after_a_failed_version_applies_and_reports_the_old_one_again() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let stack = StackId::new();
    let good = entry(stack, Action::Apply, WEB);
    reconciler
        .reconcile(std::slice::from_ref(&good), false)
        .await;
    let broken = entry(stack, Action::Apply, &format!("{WEB}---\n{BAD}"));
    reconciler
        .reconcile(std::slice::from_ref(&broken), false)
        .await;
    // A revert: the target names the good version again.
    let events = reconciler
        .reconcile(std::slice::from_ref(&good), false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Success)]);
    assert_eq!(events[0].deployment_object_id, good.deployment_object.id);
    // Then it is in place: nothing more until a resync.
    assert!(
        reconciler
            .reconcile(std::slice::from_ref(&good), false)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let web = entry(StackId::new(), Action::Apply, WEB);
    cluster.set_unavailable(true);
    let events = reconciler
        .reconcile(std::slice::from_ref(&web), false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Failure)]);
    let retry = reconciler.next_retry().expect("a retry is scheduled");
    assert!(retry > Instant::now());
    cluster.set_unavailable(false);
    // Not yet due: nothing happens.
    assert!(
        reconciler
            .reconcile(std::slice::from_ref(&web), false)
            .await
            .is_empty()
    );
    tokio::time::sleep(retry - Instant::now() + Duration::from_millis(10)).await;
    let events = reconciler
        .reconcile(std::slice::from_ref(&web), false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Success)]);
}

#[tokio::test]
async fn drift_is_corrected_and_reported_on_resync() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let web = entry(StackId::new(), Action::Apply, WEB);
    reconciler
        .reconcile(std::slice::from_ref(&web), false)
        .await;
    let deployment = ObjectKey {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: "web".into(),
    };
    // A hand edit of a field the manifest sets.
    cluster.edit(&deployment, |v| {
        v["spec"]["replicas"] = serde_json::json!(7)
    });
    let events = reconciler.reconcile(std::slice::from_ref(&web), true).await;
    assert_eq!(kinds(&events), [(EventType::Drift, EventStatus::Success)]);
    assert!(
        events[0]
            .message
            .as_deref()
            .unwrap()
            .contains("Deployment shop/web")
    );
    assert_eq!(cluster.get(&deployment).unwrap()["spec"]["replicas"], 2);
}

#[tokio::test]
async fn only_a_remove_entry_deletes_and_absence_does_not() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let stack = StackId::new();
    reconciler
        .reconcile(&[entry(stack, Action::Apply, WEB)], false)
        .await;
    // The stack vanishes from the state (an error, an empty answer): left alone.
    assert!(reconciler.reconcile(&[], false).await.is_empty());
    assert!(reconciler.reconcile(&[], true).await.is_empty());
    assert_eq!(
        cluster
            .inventory(stack)
            .await
            .unwrap()
            .unwrap()
            .objects
            .len(),
        2
    );
    // An explicit deletion marker removes it.
    let events = reconciler
        .reconcile(&[entry(stack, Action::Remove, "")], false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Delete, EventStatus::Success)]);
    assert!(cluster.inventory(stack).await.unwrap().is_none());
}

#[tokio::test]
async fn after_a_restart_the_inventory_says_what_is_applied_and_ids_repeat() {
    let cluster = Arc::new(MemoryApplier::new());
    let agent = AgentId::new();
    let web = entry(StackId::new(), Action::Apply, WEB);
    let applier: Arc<dyn Applier> = Arc::clone(&cluster) as Arc<dyn Applier>;
    let mut first = Reconciler::new(
        Arc::clone(&applier),
        agent,
        1,
        Duration::from_secs(1),
        Arc::new(Metrics::default()),
    );
    let before = first.reconcile(std::slice::from_ref(&web), false).await;
    let mut restarted = Reconciler::new(
        applier,
        agent,
        1,
        Duration::from_secs(1),
        Arc::new(Metrics::default()),
    );
    let after = restarted.reconcile(std::slice::from_ref(&web), false).await;
    assert_eq!(
        cluster.applies().len(),
        1,
        "the restart did not apply again"
    );
    assert_eq!(
        before[0].id, after[0].id,
        "the repeated report has the same id"
    );
    assert_eq!(
        restarted.applied(),
        [(web.stack_id, web.deployment_object.id)]
    );
}

#[test]
fn backoff_grows_to_its_ceiling_with_jitter() {
    let max = Duration::from_secs(60);
    let first = backoff(1, max);
    assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1250));
    assert!(backoff(4, max) >= Duration::from_secs(8));
    assert_eq!(backoff(30, max), max);
}

#[tokio::test]
async fn the_stacks_apply_policy_document_allows_adoption_and_is_never_applied() {
    let cluster = Arc::new(MemoryApplier::new());
    let mut reconciler = reconciler(&cluster);
    let theirs =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\n";
    cluster.create_unmanaged(&manifest::parse(theirs).unwrap()[0]);

    // Without the policy, the existing object is refused, named in the event.
    let refused = entry(StackId::new(), Action::Apply, theirs);
    let events = reconciler
        .reconcile(std::slice::from_ref(&refused), false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Failure)]);
    let message = events[0].message.as_deref().unwrap();
    assert!(
        message.contains("v1 ConfigMap default/settings"),
        "{message}"
    );
    assert!(message.contains("brokkr.io/adopt"), "{message}");

    let policy = "apiVersion: brokkr.io/v1\nkind: ApplyPolicy\nmetadata:\n  name: policy\nspec:\n  adopt: true\n---\n";
    let adopting = entry(StackId::new(), Action::Apply, &format!("{policy}{theirs}"));
    let events = reconciler
        .reconcile(std::slice::from_ref(&adopting), false)
        .await;
    assert_eq!(kinds(&events), [(EventType::Apply, EventStatus::Success)]);
    let message = events[0].message.as_deref().unwrap();
    assert!(
        message.contains("adopted v1 ConfigMap default/settings"),
        "{message}"
    );
    assert!(
        cluster
            .objects()
            .iter()
            .all(|(k, _)| k.kind != "ApplyPolicy"),
        "the policy document is the agent's, not the cluster's"
    );

    let broken = format!("{}{theirs}", policy.replace("adopt: true", "adopt: maybe"));
    let events = reconciler
        .reconcile(&[entry(StackId::new(), Action::Apply, &broken)], false)
        .await;
    let message = events[0].message.as_deref().unwrap();
    assert!(
        message.starts_with("invalid deployment object: ApplyPolicy policy"),
        "{message}"
    );
}
