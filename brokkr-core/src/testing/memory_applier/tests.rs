//! Unit tests of the simulated cluster beyond the conformance suite: its hand tools
//! (edits, unmanaged objects, health, refusals) and the details of its reports.

use crate::applier::{ApplyPolicy, CHECKSUM_ANNOTATION, STACK_LABEL};
use crate::manifest;

use super::*;

const V1: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n";

fn stack_ref(stack: StackId) -> StackRef {
    StackRef {
        stack_id: stack,
        deployment_object_id: DeploymentObjectId::new(),
        checksum: "abc".into(),
        policy: ApplyPolicy::default(),
    }
}

fn key(kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    let api_version = if kind == "Deployment" {
        "apps/v1"
    } else {
        "v1"
    };
    ObjectKey {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
    }
}

#[tokio::test]
async fn apply_stamps_prunes_and_detects_changes() {
    let cluster = MemoryApplier::new();
    let stack = StackId::new();
    let first = stack_ref(stack);
    let report = cluster
        .apply(&first, &manifest::parse(V1).unwrap())
        .await
        .unwrap();
    assert_eq!(report.applied.len(), 3);
    assert_eq!(report.changed.len(), 3);
    let web = cluster
        .get(&key("Deployment", Some("shop"), "web"))
        .unwrap();
    assert_eq!(web["metadata"]["labels"][STACK_LABEL], stack.to_string());
    assert_eq!(web["metadata"]["annotations"][CHECKSUM_ANNOTATION], "abc");

    // The same again changes nothing; a hand edit is put back and reported.
    let again = cluster
        .apply(&first, &manifest::parse(V1).unwrap())
        .await
        .unwrap();
    assert!(again.changed.is_empty());
    cluster.edit(&key("Deployment", Some("shop"), "web"), |v| {
        v["spec"]["replicas"] = json!(9)
    });
    let again = cluster
        .apply(&first, &manifest::parse(V1).unwrap())
        .await
        .unwrap();
    assert_eq!(again.changed, [key("Deployment", Some("shop"), "web")]);

    // Dropping the ConfigMap prunes it; an unlabelled object of the same name that
    // someone else made would not be touched.
    let v2 = V1.rsplit_once("---").unwrap().0;
    let report = cluster
        .apply(&stack_ref(stack), &manifest::parse(v2).unwrap())
        .await
        .unwrap();
    assert_eq!(report.pruned, [key("ConfigMap", Some("shop"), "cfg")]);
    assert!(
        cluster
            .get(&key("ConfigMap", Some("shop"), "cfg"))
            .is_none()
    );
}

#[tokio::test]
async fn unlabelled_objects_survive_pruning_and_removal() {
    let cluster = MemoryApplier::new();
    let stack = StackId::new();
    // In a namespace the stack does not own: deleting a Namespace takes everything in
    // it along, Brokkr's or not.
    let in_default = V1.replace("namespace: shop", "namespace: default");
    cluster
        .apply(&stack_ref(stack), &manifest::parse(&in_default).unwrap())
        .await
        .unwrap();
    // Someone replaces the ConfigMap with their own, without Brokkr's label.
    let theirs = manifest::parse(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: default\n",
    )
    .unwrap();
    cluster.create_unmanaged(&theirs[0]);
    let removed = cluster.remove(stack).await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(
        cluster
            .get(&key("ConfigMap", Some("default"), "cfg"))
            .is_some()
    );
    assert!(cluster.inventory(stack).await.unwrap().is_none());
    assert!(cluster.remove(stack).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_objects_are_refused_before_anything_changes() {
    let cluster = MemoryApplier::new();
    let stack = stack_ref(StackId::new());
    let missing_ns = manifest::parse(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nowhere\n",
    )
    .unwrap();
    let err = cluster.dry_run(&stack, &missing_ns).await.unwrap_err();
    assert!(
        matches!(err, applier::Error::Rejected { ref reason, .. } if reason == "NotFound"),
        "{err}"
    );
    let unknown =
        manifest::parse("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
            .unwrap();
    assert!(matches!(
        cluster.apply(&stack, &unknown).await.unwrap_err(),
        applier::Error::UnknownKind { .. }
    ));
    assert_eq!(
        cluster.objects().len(),
        4,
        "only the cluster's own namespaces"
    );

    // A CRD in the same deployment object makes its kind usable.
    let with_crd = manifest::parse("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n").unwrap();
    cluster.dry_run(&stack, &with_crd).await.unwrap();
    let report = cluster.apply(&stack, &with_crd).await.unwrap();
    assert_eq!(report.applied[1].namespace.as_deref(), Some("default"));
}

#[tokio::test]
async fn health_follows_what_tests_set() {
    let cluster = MemoryApplier::new();
    let stack = StackId::new();
    cluster
        .apply(&stack_ref(stack), &manifest::parse(V1).unwrap())
        .await
        .unwrap();
    let health = cluster.health(stack).await.unwrap();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].status, HealthStatus::Healthy);
    cluster.set_health(
        &key("Deployment", Some("shop"), "web"),
        HealthStatus::Failed,
        "CrashLoopBackOff",
    );
    let health = cluster.health(stack).await.unwrap();
    assert_eq!(health[0].reason.as_deref(), Some("CrashLoopBackOff"));
    cluster.set_unavailable(true);
    assert!(cluster.health(stack).await.unwrap_err().is_transient());
}

fn parse(yaml: &str) -> Vec<Manifest> {
    manifest::parse(yaml).unwrap()
}

const TEAM_CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: theirs\n  namespace: team\ndata:\n  k: v\n";

#[tokio::test]
async fn an_existing_object_is_taken_only_when_adoption_is_allowed() {
    let cluster = MemoryApplier::new();
    // Someone else's namespace, with a workload of theirs in it.
    cluster
        .create_unmanaged(&parse("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n")[0]);
    cluster.create_unmanaged(&parse(TEAM_CM)[0]);
    let stack = StackId::new();
    let ours = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine\n  namespace: team\n";
    match cluster.dry_run(&stack_ref(stack), &parse(ours)).await {
        Err(error @ applier::Error::NotOwned { owner: None, .. }) => {
            assert!(error.to_string().contains("v1 Namespace team"), "{error}")
        }
        other => panic!("expected NotOwned, got {other:?}"),
    }
    assert!(matches!(
        cluster.apply(&stack_ref(stack), &parse(ours)).await,
        Err(applier::Error::NotOwned { .. })
    ));
    assert!(
        cluster
            .get(&key("ConfigMap", Some("team"), "mine"))
            .is_none(),
        "nothing written"
    );

    // Allowed on the manifest: adopted, recorded as adopted.
    let adopting = ours.replace(
        "name: team\n---",
        "name: team\n  annotations:\n    brokkr.io/adopt: \"true\"\n---",
    );
    let report = cluster
        .apply(&stack_ref(stack), &parse(&adopting))
        .await
        .unwrap();
    assert_eq!(report.adopted, [key("Namespace", None, "team")]);
    let inventory = cluster.inventory(stack).await.unwrap().unwrap();
    assert_eq!(inventory.adopted, [key("Namespace", None, "team")]);

    // Removal deletes what Brokkr created and only unlabels the adopted namespace:
    // the other workload in it survives.
    let removed = cluster.remove(stack).await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(
        cluster
            .get(&key("ConfigMap", Some("team"), "mine"))
            .is_none()
    );
    let namespace = cluster.get(&key("Namespace", None, "team")).expect("kept");
    assert!(namespace["metadata"]["labels"].get(STACK_LABEL).is_none());
    assert!(
        namespace["metadata"]["annotations"]
            .get(CHECKSUM_ANNOTATION)
            .is_none()
    );
    assert!(
        cluster
            .get(&key("ConfigMap", Some("team"), "theirs"))
            .is_some()
    );

    // Another stack's object is never taken, even with a stack-wide adopt.
    let first = StackId::new();
    let shared =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\n";
    cluster
        .apply(&stack_ref(first), &parse(shared))
        .await
        .unwrap();
    let mut greedy = stack_ref(StackId::new());
    greedy.policy.adopt = true;
    match cluster.apply(&greedy, &parse(shared)).await {
        Err(applier::Error::NotOwned {
            owner: Some(owner), ..
        }) => assert_eq!(owner, first.to_string()),
        other => panic!("expected NotOwned, got {other:?}"),
    }
}

#[tokio::test]
async fn an_api_version_move_keeps_the_object() {
    let cluster = MemoryApplier::new();
    let stack = StackId::new();
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n";
    let at = |version: &str| {
        parse(&format!(
            "{crd}---\napiVersion: example.com/{version}\nkind: Widget\nmetadata:\n  name: w\n  namespace: default\nspec:\n  size: 1\n"
        ))
    };
    cluster
        .apply(&stack_ref(stack), &at("v1beta1"))
        .await
        .unwrap();
    let report = cluster.apply(&stack_ref(stack), &at("v1")).await.unwrap();
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    let widget = ObjectKey {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        namespace: Some("default".into()),
        name: "w".into(),
    };
    assert_eq!(
        cluster.get(&widget).unwrap()["apiVersion"],
        "example.com/v1"
    );
    let inventory = cluster.inventory(stack).await.unwrap().unwrap();
    assert_eq!(inventory.objects.len(), 2);
    assert!(inventory.objects.iter().any(|k| k.same_version(&widget)));
}

#[tokio::test]
async fn an_immutable_change_fails_naming_the_field_unless_recreation_is_allowed() {
    let cluster = MemoryApplier::new();
    cluster.make_immutable("Job", "spec.template");
    let stack = StackId::new();
    let job = |image: &str| {
        parse(&format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          image: {image}\n"
        ))
    };
    cluster.apply(&stack_ref(stack), &job("a:1")).await.unwrap();
    match cluster.apply(&stack_ref(stack), &job("a:2")).await {
        Err(applier::Error::Immutable { fields, .. }) => assert_eq!(fields, ["spec.template"]),
        other => panic!("expected Immutable, got {other:?}"),
    }
    let mut allowed = stack_ref(stack);
    allowed.policy.recreate_on_immutable = true;
    let report = cluster.apply(&allowed, &job("a:2")).await.unwrap();
    let once = ObjectKey {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: Some("default".into()),
        name: "once".into(),
    };
    assert_eq!(report.recreated, std::slice::from_ref(&once));
    assert_eq!(report.changed, std::slice::from_ref(&once));
    assert_eq!(
        cluster.get(&once).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        "a:2"
    );
}

#[tokio::test]
async fn a_refused_deletion_fails_the_removal_and_keeps_the_inventory() {
    let cluster = MemoryApplier::new();
    let stack = StackId::new();
    cluster.apply(&stack_ref(stack), &parse(V1)).await.unwrap();
    let cfg = key("ConfigMap", Some("shop"), "cfg");
    cluster.refuse_deletion(&cfg);
    assert!(matches!(
        cluster.remove(stack).await,
        Err(applier::Error::Rejected { ref reason, .. }) if reason == "Forbidden"
    ));
    assert!(cluster.inventory(stack).await.unwrap().is_some());
}
