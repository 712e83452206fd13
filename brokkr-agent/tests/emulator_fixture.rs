//! Tests of the Kubernetes API emulator itself, through the real kube-rs client: if
//! these pass, a failing agent test points at the agent, not at the fixture.

mod emulator;

use emulator::Emulator;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{GroupVersionKind, Status};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

// --- helpers ---

async fn start() -> (Emulator, Client) {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    (emulator, client)
}

/// A dynamic API for one kind, the way the applier addresses objects.
fn api(
    client: &Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn force_apply() -> PatchParams {
    PatchParams::apply("brokkr").force()
}

async fn apply(api: &Api<DynamicObject>, object: Value) -> kube::Result<DynamicObject> {
    apply_with(api, object, &force_apply()).await
}

async fn apply_with(
    api: &Api<DynamicObject>,
    object: Value,
    params: &PatchParams,
) -> kube::Result<DynamicObject> {
    let name = object["metadata"]["name"]
        .as_str()
        .expect("test objects have names")
        .to_owned();
    api.patch(&name, params, &Patch::Apply(&object)).await
}

/// The Status of a request that must have failed with `kube::Error::Api`.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

fn config_map(namespace: &str, name: &str, labels: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "data": data,
    })
}

fn deployment(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "main", "image": "nginx:1.27" }] },
            },
        },
    })
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.example.com" },
        "spec": {
            "group": "example.com",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
            }],
        },
    })
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {object}"))
}

fn names<K: kube::Resource>(objects: impl IntoIterator<Item = K>) -> Vec<String> {
    objects.into_iter().map(|o| o.name_any()).collect()
}

// --- discovery and version ---

#[tokio::test]
async fn discovery_finds_the_built_in_kinds() {
    let (_emulator, client) = start().await;
    let discovery = Discovery::new(client).run().await.expect("discovery runs");
    let expected = [
        ("", "v1", "Namespace", "namespaces", Scope::Cluster),
        ("", "v1", "ConfigMap", "configmaps", Scope::Namespaced),
        ("", "v1", "Node", "nodes", Scope::Cluster),
        ("apps", "v1", "Deployment", "deployments", Scope::Namespaced),
        ("batch", "v1", "CronJob", "cronjobs", Scope::Namespaced),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            Scope::Cluster,
        ),
        (
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            Scope::Namespaced,
        ),
        (
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            Scope::Cluster,
        ),
    ];
    for (group, version, kind, plural, scope) in expected {
        let (resource, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
            .unwrap_or_else(|| panic!("{group}/{version} {kind} not discovered"));
        assert_eq!(resource.plural, plural);
        assert_eq!(caps.scope, scope, "{kind}");
        assert!(caps.supports_operation("patch") && caps.supports_operation("list"));
    }
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
            .is_none()
    );
}

#[tokio::test]
async fn aggregated_discovery_finds_the_same_kinds() {
    let (_emulator, client) = start().await;
    let discovery = Discovery::new(client)
        .run_aggregated()
        .await
        .expect("aggregated discovery runs");
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "StatefulSet"))
        .expect("StatefulSet discovered");
    assert_eq!(resource.plural, "statefulsets");
    assert_eq!(caps.scope, Scope::Namespaced);
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
        .expect("Secret discovered");
    assert_eq!(resource.plural, "secrets");
    assert_eq!(caps.scope, Scope::Namespaced);
}

#[tokio::test]
async fn version_is_reported() {
    let (_emulator, client) = start().await;
    let info = client.apiserver_version().await.expect("version");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
    assert_eq!(info.git_version, "v1.33.0");
}

// --- apply ---

#[tokio::test]
async fn apply_creates_then_a_no_op_apply_keeps_the_resource_version() {
    let (emulator, client) = start().await;
    let deployments = api(
        &client,
        "apps/v1",
        "Deployment",
        "deployments",
        Some("default"),
    );

    let created = apply(&deployments, deployment("default", "web", 2))
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid set");
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let first_rv = resource_version(
        &emulator
            .get("apps/v1", "Deployment", Some("default"), "web")
            .unwrap(),
    );

    let again = apply(&deployments, deployment("default", "web", 2))
        .await
        .expect("re-apply");
    assert_eq!(again.metadata.resource_version, Some(first_rv.to_string()));
    assert_eq!(again.metadata.generation, Some(1));
    assert_eq!(again.metadata.uid.as_deref(), Some(uid.as_str()));

    let changed = apply(&deployments, deployment("default", "web", 5))
        .await
        .expect("change");
    let changed_rv: u64 = changed.metadata.resource_version.unwrap().parse().unwrap();
    assert!(changed_rv > first_rv, "{changed_rv} > {first_rv}");
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(changed.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(changed.data["spec"]["replicas"], 5);

    // A metadata-only change moves the resource version but not the generation.
    let mut labelled = deployment("default", "web", 5);
    labelled["metadata"]["labels"] = json!({ "tier": "front" });
    let labelled = apply(&deployments, labelled).await.expect("label");
    let labelled_rv: u64 = labelled.metadata.resource_version.unwrap().parse().unwrap();
    assert!(labelled_rv > changed_rv);
    assert_eq!(labelled.metadata.generation, Some(2));

    let applies = emulator.applies();
    assert_eq!(applies.len(), 4);
    assert!(
        applies
            .iter()
            .all(|a| a.field_manager == "brokkr" && a.force)
    );
    assert_eq!(
        (
            applies[0].kind.as_str(),
            applies[0].namespace.as_deref(),
            applies[0].name.as_str()
        ),
        ("Deployment", Some("default"), "web")
    );
}

#[tokio::test]
async fn apply_records_annotations_and_replaces_the_object() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let mut object = config_map(
        "default",
        "settings",
        json!({}),
        json!({ "a": "1", "b": "2" }),
    );
    object["metadata"]["annotations"] = json!({ "brokkr.io/checksum": "abc" });
    apply(&config_maps, object).await.expect("apply");
    // A key its only manager leaves out of the next apply is gone.
    apply(
        &config_maps,
        config_map("default", "settings", json!({}), json!({ "a": "1" })),
    )
    .await
    .expect("re-apply");

    let stored = emulator
        .get("v1", "ConfigMap", Some("default"), "settings")
        .unwrap();
    assert_eq!(stored["data"], json!({ "a": "1" }));
    assert!(stored["metadata"].get("annotations").is_none());
    let applies = emulator.applies();
    assert_eq!(
        applies[0]
            .annotations
            .get("brokkr.io/checksum")
            .map(String::as_str),
        Some("abc")
    );
    assert!(applies[1].annotations.is_empty());
}

#[tokio::test]
async fn dry_run_answers_without_storing() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let dry_run = force_apply().dry_run();

    let would_be = apply_with(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "k": "v" })),
        &dry_run,
    )
    .await
    .expect("dry-run create");
    assert_eq!(would_be.data["data"]["k"], "v");
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "x")
            .is_none()
    );

    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "k": "v" })),
    )
    .await
    .expect("create");
    let stored_rv = resource_version(
        &emulator
            .get("v1", "ConfigMap", Some("default"), "x")
            .unwrap(),
    );
    let would_be = apply_with(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "k": "w" })),
        &dry_run,
    )
    .await
    .expect("dry-run change");
    assert_eq!(would_be.data["data"]["k"], "w");
    let stored = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap();
    assert_eq!(stored["data"]["k"], "v");
    assert_eq!(resource_version(&stored), stored_rv);
    // Dry runs are not applies.
    assert_eq!(emulator.applies().len(), 1);
}

#[tokio::test]
async fn a_namespaced_object_in_a_missing_namespace_is_not_found() {
    let (_emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("nope"));
    let status =
        api_error(apply(&config_maps, config_map("nope", "x", json!({}), json!({}))).await);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "namespaces \"nope\" not found");

    // Once the namespace exists, the same apply goes through.
    let namespaces = api(&client, "v1", "Namespace", "namespaces", None);
    apply(
        &namespaces,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "nope" } }),
    )
    .await
    .expect("namespace");
    apply(&config_maps, config_map("nope", "x", json!({}), json!({})))
        .await
        .expect("config map");
}

#[tokio::test]
async fn apply_of_a_kind_the_cluster_does_not_serve_is_not_found() {
    let (_emulator, client) = start().await;
    let widgets = api(
        &client,
        "example.com/v1",
        "Widget",
        "widgets",
        Some("default"),
    );
    let widget =
        json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" } });
    let status = api_error(apply(&widgets, widget).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn malformed_applies_are_rejected_like_upstream() {
    let (_emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));

    let no_manager = PatchParams::default();
    let status = api_error(
        apply_with(
            &config_maps,
            config_map("default", "x", json!({}), json!({})),
            &no_manager,
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    let wrong_kind = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "x" } });
    let status = api_error(apply(&config_maps, wrong_kind).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    let wrong_namespace = config_map("elsewhere", "x", json!({}), json!({}));
    let status = api_error(apply(&config_maps, wrong_namespace).await);
    assert_eq!(status.code, 400);

    let strategic = config_maps
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "data": {} })),
        )
        .await;
    assert_eq!(api_error(strategic).code, 415);
}

// --- controller ---

#[tokio::test]
async fn workloads_settle_unless_a_test_pins_their_status() {
    let (emulator, client) = start().await;
    let dynamic = api(
        &client,
        "apps/v1",
        "Deployment",
        "deployments",
        Some("default"),
    );
    let typed: Api<Deployment> = Api::namespaced(client.clone(), "default");

    apply(&dynamic, deployment("default", "web", 3))
        .await
        .expect("apply");
    let status = typed.get("web").await.expect("get").status.expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (status.ready_replicas, status.available_replicas),
        (Some(3), Some(3))
    );

    emulator.set_status(
        "apps/v1",
        "Deployment",
        Some("default"),
        "web",
        json!({ "observedGeneration": 1, "replicas": 3, "availableReplicas": 0 }),
    );
    apply(&dynamic, deployment("default", "web", 3))
        .await
        .expect("same spec");
    let status = typed.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        status.available_replicas,
        Some(0),
        "a pinned status survives a no-op apply"
    );

    apply(&dynamic, deployment("default", "web", 4))
        .await
        .expect("new spec");
    let status = typed.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.available_replicas, Some(4), "a spec change unpins");

    let jobs = api(&client, "batch/v1", "Job", "jobs", Some("default"));
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "once" },
        "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "busybox" }] } } },
    });
    apply(&jobs, job).await.expect("job");
    let job = Api::<Job>::namespaced(client, "default")
        .get("once")
        .await
        .unwrap();
    let conditions = job.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    );
}

#[tokio::test]
async fn a_hand_edit_bumps_the_resource_version() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "k": "v" })),
    )
    .await
    .unwrap();
    let before = resource_version(
        &emulator
            .get("v1", "ConfigMap", Some("default"), "x")
            .unwrap(),
    );
    emulator.edit("v1", "ConfigMap", Some("default"), "x", |o| {
        o["data"]["k"] = json!("drifted")
    });
    let live = Api::<ConfigMap>::namespaced(client, "default")
        .get("x")
        .await
        .unwrap();
    assert_eq!(live.data.unwrap()["k"], "drifted");
    let after: u64 = live.metadata.resource_version.unwrap().parse().unwrap();
    assert!(after > before);
    assert_eq!(live.metadata.generation, Some(2));
}

// --- list, get, delete ---

#[tokio::test]
async fn list_honours_label_selectors() {
    let (emulator, client) = start().await;
    let namespaces = api(&client, "v1", "Namespace", "namespaces", None);
    apply(
        &namespaces,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "other" } }),
    )
    .await
    .unwrap();
    for (ns, name, labels) in [
        ("default", "a", json!({ "stack": "s1", "tier": "web" })),
        ("default", "b", json!({ "stack": "s1", "tier": "db" })),
        ("default", "c", json!({ "stack": "s2" })),
        ("other", "d", json!({ "stack": "s1", "tier": "web" })),
        ("default", "e", json!({})),
    ] {
        let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some(ns));
        apply(&config_maps, config_map(ns, name, labels, json!({})))
            .await
            .unwrap();
    }

    let stored: Vec<_> = emulator
        .list("v1", "ConfigMap")
        .iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect();
    assert_eq!(
        stored,
        ["a", "b", "c", "e", "d"],
        "ordered by namespace, then name"
    );

    let in_default: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let everywhere: Api<ConfigMap> = Api::all(client.clone());
    let cases: [(&Api<ConfigMap>, &str, &[&str]); 11] = [
        (&in_default, "", &["a", "b", "c", "e"]),
        (&in_default, "stack=s1", &["a", "b"]),
        (&in_default, "stack==s1,tier=web", &["a"]),
        (&in_default, "stack!=s1", &["c", "e"]),
        (&in_default, "tier", &["a", "b"]),
        (&in_default, "!tier", &["c", "e"]),
        (&in_default, "tier in (db, cache)", &["b"]),
        (&in_default, "stack notin (s1)", &["c", "e"]),
        (&in_default, "stack in (s1,s2),!tier", &["c"]),
        (&everywhere, "stack=s1", &["a", "b", "d"]),
        (&everywhere, "tier=web", &["a", "d"]),
    ];
    for (api, selector, expected) in cases {
        let listed = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect(selector);
        assert_eq!(names(listed), expected, "selector {selector:?}");
    }

    let list = in_default.list(&ListParams::default()).await.unwrap();
    assert!(
        list.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    let status = api_error(
        in_default
            .list(&ListParams::default().labels("tier in db"))
            .await,
    );
    assert_eq!(status.code, 400);
}

#[tokio::test]
async fn delete_returns_the_object_then_get_is_not_found() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "gone", json!({}), json!({ "k": "v" })),
    )
    .await
    .unwrap();
    let deleted = config_maps
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    let deleted = deleted.left().expect("the deleted object, not a Status");
    assert_eq!(deleted.name_any(), "gone");
    assert_eq!(deleted.data["data"]["k"], "v");

    let status = api_error(config_maps.get("gone").await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "configmaps \"gone\" not found")
    );
    assert!(
        config_maps
            .get_opt("gone")
            .await
            .expect("get_opt")
            .is_none()
    );
    assert_eq!(
        api_error(config_maps.delete("gone", &DeleteParams::default()).await).code,
        404
    );
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "gone")
            .is_none()
    );
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects() {
    let (emulator, client) = start().await;
    let namespaces = api(&client, "v1", "Namespace", "namespaces", None);
    apply(
        &namespaces,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "team" } }),
    )
    .await
    .unwrap();
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("team"));
    apply(&config_maps, config_map("team", "x", json!({}), json!({})))
        .await
        .unwrap();
    Api::<Namespace>::all(client.clone())
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete namespace");
    assert!(emulator.get("v1", "ConfigMap", Some("team"), "x").is_none());
    let left = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        names(left),
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

// --- CRDs ---

#[tokio::test]
async fn an_applied_crd_is_established_and_its_kind_discovered() {
    let (emulator, client) = start().await;
    let widget_gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let crds = api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    apply(&crds, widget_crd()).await.expect("apply CRD");

    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("widgets.example.com")
        .await
        .expect("typed CRD");
    let conditions = crd.status.and_then(|s| s.conditions).expect("conditions");
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&widget_gvk)
        .expect("Widget discovered");
    assert_eq!(
        (resource.plural.as_str(), caps.scope),
        ("widgets", Scope::Namespaced)
    );

    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource);
    let widget = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": { "size": 3 } });
    apply(&widgets, widget).await.expect("apply a Widget");
    assert_eq!(
        names(widgets.list(&ListParams::default()).await.unwrap()),
        ["w"]
    );

    // Deleting the CRD takes its kind and its objects along.
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete CRD");
    assert!(
        emulator
            .get("example.com/v1", "Widget", Some("default"), "w")
            .is_none()
    );
    let discovery = Discovery::new(client).run().await.unwrap();
    assert!(discovery.resolve_gvk(&widget_gvk).is_none());
}

#[tokio::test]
async fn a_held_crd_is_not_established_until_released() {
    let (emulator, client) = start().await;
    emulator.hold_crd_establishment(true);
    let crds = api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    let applied = apply(&crds, widget_crd()).await.expect("apply CRD");
    let established = |crd: &Value| {
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Established")
            .map(|c| c["status"].clone())
    };
    assert_eq!(established(&applied.data), Some(json!("False")));
    let widgets = api(
        &client,
        "example.com/v1",
        "Widget",
        "widgets",
        Some("default"),
    );
    assert_eq!(
        api_error(widgets.list(&ListParams::default()).await).code,
        404
    );

    emulator.hold_crd_establishment(false);
    let crd = emulator
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "widgets.example.com",
        )
        .unwrap();
    assert_eq!(established(&crd), Some(json!("True")));
    assert!(
        widgets
            .list(&ListParams::default())
            .await
            .expect("served")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn an_invalid_crd_is_rejected() {
    let (_emulator, client) = start().await;
    let crds = api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("gadgets.example.com");
    let status = api_error(apply(&crds, crd).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn registered_and_unregistered_kinds_show_in_discovery() {
    let (emulator, client) = start().await;
    emulator.register_kind("example.com/v1", "Gadget", "gadgets", false);
    emulator.unregister_kind("networking.k8s.io/v1", "Ingress");
    let discovery = Discovery::new(client).run().await.unwrap();
    let (_, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Gadget"))
        .expect("Gadget served");
    assert_eq!(caps.scope, Scope::Cluster);
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"))
            .is_none()
    );
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk(
                "networking.k8s.io",
                "v1",
                "NetworkPolicy"
            ))
            .is_some()
    );
}

// --- RBAC stand-in, nodes, lifecycle ---

#[tokio::test]
async fn forbidden_requests_get_403() {
    let (emulator, client) = start().await;
    emulator.add_node("n1", "2", "8Gi");
    emulator.forbid("list", "nodes");
    let nodes: Api<Node> = Api::all(client.clone());
    let status = api_error(nodes.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status.message.contains("cannot list resource \"nodes\""),
        "{}",
        status.message
    );
    // Only that verb on that resource is forbidden.
    assert!(nodes.get("n1").await.is_ok());
    assert!(
        Api::<Namespace>::all(client.clone())
            .list(&ListParams::default())
            .await
            .is_ok()
    );

    emulator.allow("list", "nodes");
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .expect("allowed again")
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn nodes_are_listed_with_their_allocatable_resources() {
    let (emulator, client) = start().await;
    emulator.add_node("n1", "4", "16Gi");
    emulator.add_node("n2", "8", "32Gi");
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let allocatable: Vec<(String, String, String)> = nodes
        .items
        .iter()
        .map(|node| {
            let resources = node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .expect("allocatable");
            (
                node.name_any(),
                resources["cpu"].0.clone(),
                resources["memory"].0.clone(),
            )
        })
        .collect();
    assert_eq!(
        allocatable,
        [
            ("n1".to_owned(), "4".to_owned(), "16Gi".to_owned()),
            ("n2".to_owned(), "8".to_owned(), "32Gi".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_fresh_cluster_has_the_usual_namespaces() {
    let (_emulator, client) = start().await;
    let namespaces = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        names(namespaces.items.clone()),
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let phase = namespaces.items[0]
        .status
        .as_ref()
        .and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Active"));
}

#[tokio::test]
async fn a_stopped_emulator_refuses_connections() {
    let (emulator, client) = start().await;
    client.apiserver_version().await.expect("serving");
    emulator.stop().await;
    let result = client.apiserver_version().await;
    assert!(
        !matches!(result, Ok(_) | Err(kube::Error::Api(_))),
        "expected a connection error, got {result:?}"
    );
}

// --- server-side apply by field manager ---

/// The `managedFields` entry of `manager` with `operation`, if any.
fn managed_entry(object: &Value, manager: &str, operation: &str) -> Option<Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .cloned()
}

fn apply_as(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

fn to_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).expect("objects serialize")
}

#[tokio::test]
async fn apply_records_managed_fields_in_fields_v1() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let applied = apply(
        &config_maps,
        config_map(
            "default",
            "x",
            json!({ "app": "web" }),
            json!({ "a": "1", "b": "2" }),
        ),
    )
    .await
    .unwrap();
    let entry = managed_entry(&to_json(&applied), "brokkr", "Apply").expect("brokkr's entry");
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].is_string());
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:data": { "f:a": {}, "f:b": {} },
            "f:metadata": { "f:labels": { "f:app": {} } },
        })
    );
    // The typed client reads the same entries.
    let typed = Api::<ConfigMap>::namespaced(client, "default")
        .get("x")
        .await
        .unwrap();
    let entries = typed.metadata.managed_fields.expect("managedFields");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].operation.as_deref(), Some("Apply"));
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "x")
            .unwrap()["metadata"]["managedFields"]
            .is_array()
    );
}

#[tokio::test]
async fn apply_removes_only_what_the_manager_stopped_setting() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "a": "1", "b": "2" })),
    )
    .await
    .unwrap();
    // Another manager adds a key of its own (no conflict: nobody owned it).
    apply_with(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "c": "3" })),
        &apply_as("other-tool"),
    )
    .await
    .expect("a second manager applies its own field");
    // brokkr drops `b`: it goes; `c`, owned by the other manager, stays.
    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "a": "1" })),
    )
    .await
    .unwrap();
    let stored = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap();
    assert_eq!(stored["data"], json!({ "a": "1", "c": "3" }));
    // The test objects carry `labels: {}`: an empty map is owned as such.
    let other = managed_entry(&stored, "other-tool", "Apply").unwrap();
    assert_eq!(
        other["fieldsV1"],
        json!({ "f:data": { "f:c": {} }, "f:metadata": { "f:labels": {} } })
    );
}

#[tokio::test]
async fn a_field_set_by_two_managers_survives_one_of_them_dropping_it() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let both = config_map("default", "x", json!({}), json!({ "shared": "v" }));
    apply(&config_maps, both.clone()).await.unwrap();
    // Same value: shared ownership, not a conflict, even without force.
    apply_with(&config_maps, both, &apply_as("other-tool"))
        .await
        .expect("setting the same value never conflicts");
    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({ "mine": "1" })),
    )
    .await
    .unwrap();
    let stored = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap();
    assert_eq!(stored["data"], json!({ "mine": "1", "shared": "v" }));
}

#[tokio::test]
async fn a_conflicting_apply_is_refused_until_forced() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let desired = config_map("default", "x", json!({}), json!({ "a": "1", "b": "2" }));
    apply(&config_maps, desired.clone()).await.unwrap();
    emulator.update_as(
        "kubectl-edit",
        "v1",
        "ConfigMap",
        Some("default"),
        "x",
        |o| {
            o["data"]["a"] = json!("hand-edited");
            o["data"]["extra"] = json!("added by hand");
        },
    );
    let edited = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap();
    let edit = managed_entry(&edited, "kubectl-edit", "Update").expect("an Update entry");
    assert_eq!(
        edit["fieldsV1"],
        json!({ "f:data": { "f:a": {}, "f:extra": {} } })
    );
    // brokkr no longer owns `a`.
    let mine = managed_entry(&edited, "brokkr", "Apply").unwrap();
    assert_eq!(mine["fieldsV1"]["f:data"], json!({ "f:b": {} }));

    let status = api_error(apply_with(&config_maps, desired.clone(), &apply_as("brokkr")).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1 at "
        ),
        "{}",
        status.message
    );
    assert!(status.message.ends_with(": .data.a"), "{}", status.message);
    let causes = status.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].field.as_str()),
        ("FieldManagerConflict", ".data.a")
    );
    assert_eq!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "x")
            .unwrap()["data"]["a"],
        "hand-edited",
        "a refused apply changes nothing"
    );

    // Forced: brokkr takes `a` back; the key added by hand is not brokkr's to remove.
    apply(&config_maps, desired).await.expect("forced apply");
    let stored = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap();
    assert_eq!(
        stored["data"],
        json!({ "a": "1", "b": "2", "extra": "added by hand" })
    );
    let edit = managed_entry(&stored, "kubectl-edit", "Update").unwrap();
    assert_eq!(edit["fieldsV1"], json!({ "f:data": { "f:extra": {} } }));
    let mine = managed_entry(&stored, "brokkr", "Apply").unwrap();
    assert_eq!(mine["fieldsV1"]["f:data"], json!({ "f:a": {}, "f:b": {} }));
}

#[tokio::test]
async fn managed_fields_in_an_apply_body_are_a_bad_request() {
    let (_emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    for managed in [
        json!([]),
        json!([{ "manager": "brokkr", "operation": "Apply" }]),
    ] {
        let mut object = config_map("default", "x", json!({}), json!({}));
        object["metadata"]["managedFields"] = managed;
        let status = api_error(apply(&config_maps, object).await);
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
        assert_eq!(status.message, "metadata.managedFields must be nil");
    }
}

// --- status written by a controller, and server-side no-op bumps ---

#[tokio::test]
async fn a_controller_status_write_moves_the_resource_version_not_the_generation() {
    let (emulator, client) = start().await;
    let deployments = api(
        &client,
        "apps/v1",
        "Deployment",
        "deployments",
        Some("default"),
    );
    let applied = apply(&deployments, deployment("default", "web", 2))
        .await
        .unwrap();
    let before = to_json(&applied);
    emulator.update_status("apps/v1", "Deployment", Some("default"), "web", |status| {
        status["readyReplicas"] = json!(1);
    });
    let after = emulator
        .get("apps/v1", "Deployment", Some("default"), "web")
        .unwrap();
    assert!(resource_version(&after) > resource_version(&before));
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(after["status"]["readyReplicas"], 1);
    let entry = managed_entry(&after, "emulated-controller", "Update").expect("status entry");
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"]["f:status"]["f:readyReplicas"], json!({}));
    // The built-in controller's own status writes are attributed like on a cluster.
    let settled = managed_entry(&before, "kube-controller-manager", "Update").expect("controller");
    assert_eq!(settled["subresource"], "status");
    assert!(settled["fieldsV1"]["f:status"]["f:availableReplicas"].is_object());
    // brokkr's ownership is untouched, and its unchanged re-apply is still a no-op.
    let reapplied = apply(&deployments, deployment("default", "web", 2))
        .await
        .unwrap();
    assert_eq!(
        resource_version(&to_json(&reapplied)),
        resource_version(&after)
    );
    // A spec change bumps the generation.
    let scaled = apply(&deployments, deployment("default", "web", 3))
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
}

#[tokio::test]
async fn status_churn_moves_the_resource_version_between_a_read_and_an_apply() {
    let (emulator, client) = start().await;
    let deployments = api(
        &client,
        "apps/v1",
        "Deployment",
        "deployments",
        Some("default"),
    );
    apply(&deployments, deployment("default", "web", 2))
        .await
        .unwrap();
    emulator.churn_status(true);
    let read = deployments.get("web").await.unwrap();
    let applied = apply(&deployments, deployment("default", "web", 2))
        .await
        .unwrap();
    let (read_rv, applied_rv) = (
        resource_version(&to_json(&read)),
        resource_version(&to_json(&applied)),
    );
    assert!(
        applied_rv > read_rv,
        "the controller wrote status in between"
    );
    assert_eq!(applied.metadata.generation, read.metadata.generation);
    assert_eq!(to_json(&applied)["spec"], to_json(&read)["spec"]);
    let stored = emulator
        .get("apps/v1", "Deployment", Some("default"), "web")
        .unwrap();
    assert!(stored["status"]["emulatorHeartbeat"].as_u64().unwrap() >= 2);
    // Off again: reads and no-op applies leave the object alone.
    emulator.churn_status(false);
    let read = deployments.get("web").await.unwrap();
    let applied = apply(&deployments, deployment("default", "web", 2))
        .await
        .unwrap();
    assert_eq!(
        read.metadata.resource_version,
        applied.metadata.resource_version
    );
}

#[tokio::test]
async fn a_secret_applied_with_string_data_changes_on_every_apply() {
    let (emulator, client) = start().await;
    let secrets = api(&client, "v1", "Secret", "secrets", Some("default"));
    let with_strings = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "s", "namespace": "default" },
        "stringData": { "password": "hunter2" },
    });
    let first = apply(&secrets, with_strings.clone()).await.unwrap();
    let second = apply(&secrets, with_strings).await.unwrap();
    assert!(
        resource_version(&to_json(&second)) > resource_version(&to_json(&first)),
        "stringData makes every apply a write"
    );
    let stored = emulator.get("v1", "Secret", Some("default"), "s").unwrap();
    assert_eq!(stored["data"], json!({ "password": "aHVudGVyMg==" }));
    assert!(stored.get("stringData").is_none());

    // The same content as `data` is a true no-op.
    let with_data = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "d", "namespace": "default" },
        "data": { "password": "aHVudGVyMg==" },
    });
    let first = apply(&secrets, with_data.clone()).await.unwrap();
    let second = apply(&secrets, with_data).await.unwrap();
    assert_eq!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
}

// --- validation: immutable fields and size limits ---

/// Applies `first`, then `second` (dry run, then for real) and returns the Status of
/// the refused second apply, after checking both attempts were refused alike.
async fn refused_change(api: &Api<DynamicObject>, first: Value, second: Value) -> Status {
    apply(api, first).await.expect("the first version is valid");
    let dry = api_error(apply_with(api, second.clone(), &force_apply().dry_run()).await);
    let real = api_error(apply(api, second).await);
    assert_eq!(
        (dry.code, dry.message.as_str()),
        (real.code, real.message.as_str())
    );
    real
}

/// The `field` of every cause of a 422.
fn invalid_fields(status: &Status) -> Vec<String> {
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{}",
        status.message
    );
    let details = status.details.as_ref().expect("details");
    details.causes.iter().map(|c| c.field.clone()).collect()
}

fn job(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "main", "image": image }],
        } } },
    })
}

#[tokio::test]
async fn a_job_template_is_immutable() {
    let (emulator, client) = start().await;
    let jobs = api(&client, "batch/v1", "Job", "jobs", Some("default"));
    let status = refused_change(&jobs, job("migrate", "tool:1"), job("migrate", "tool:2")).await;
    assert_eq!(invalid_fields(&status), ["spec.template"]);
    assert!(
        status
            .message
            .starts_with("Job.batch \"migrate\" is invalid: spec.template: Invalid value: ")
            && status.message.ends_with(": field is immutable"),
        "{}",
        status.message
    );
    let stored = emulator
        .get("batch/v1", "Job", Some("default"), "migrate")
        .unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["image"],
        "tool:1"
    );
    // Labels may still change.
    let mut relabelled = job("migrate", "tool:1");
    relabelled["metadata"]["labels"] = json!({ "team": "a" });
    apply(&jobs, relabelled).await.expect("metadata is mutable");
}

#[tokio::test]
async fn workload_selectors_are_immutable() {
    let (_emulator, client) = start().await;
    for (api_version, kind, plural) in [
        ("apps/v1", "Deployment", "deployments"),
        ("apps/v1", "DaemonSet", "daemonsets"),
        ("apps/v1", "ReplicaSet", "replicasets"),
    ] {
        let workloads = api(&client, api_version, kind, plural, Some("default"));
        let mut first = deployment("default", "w", 1);
        first["kind"] = json!(kind);
        let mut second = first.clone();
        second["spec"]["selector"]["matchLabels"] = json!({ "app": "w", "tier": "x" });
        second["spec"]["template"]["metadata"]["labels"] = json!({ "app": "w", "tier": "x" });
        let status = refused_change(&workloads, first, second).await;
        assert_eq!(invalid_fields(&status), ["spec.selector"], "{kind}");
    }
}

#[tokio::test]
async fn a_statefulset_spec_is_fixed_but_for_replicas_template_and_strategy() {
    let (_emulator, client) = start().await;
    let sets = api(
        &client,
        "apps/v1",
        "StatefulSet",
        "statefulsets",
        Some("default"),
    );
    let mut first = deployment("default", "db", 1);
    first["kind"] = json!("StatefulSet");
    first["spec"]["serviceName"] = json!("db");
    first["spec"]["volumeClaimTemplates"] = json!([{
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }]);
    let mut scaled = first.clone();
    scaled["spec"]["replicas"] = json!(3);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    scaled["spec"]["updateStrategy"] = json!({ "type": "OnDelete" });
    apply(&sets, first.clone()).await.unwrap();
    apply(&sets, scaled.clone())
        .await
        .expect("replicas, template and strategy may change");
    let mut bigger = scaled.clone();
    bigger["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
        json!("2Gi");
    let status = refused_change(&sets, scaled.clone(), bigger).await;
    assert_eq!(invalid_fields(&status), ["spec"]);
    assert!(
        status
            .message
            .contains("updates to statefulset spec for fields other than"),
        "{}",
        status.message
    );
    let mut reselected = scaled;
    reselected["spec"]["selector"]["matchLabels"] = json!({ "app": "db", "tier": "x" });
    reselected["spec"]["template"]["metadata"]["labels"] = json!({ "app": "db", "tier": "x" });
    let status = api_error(apply(&sets, reselected).await);
    assert_eq!(invalid_fields(&status), ["spec"]);
}

#[tokio::test]
async fn a_claim_spec_is_immutable_but_its_storage_may_grow() {
    let (_emulator, client) = start().await;
    let claims = api(
        &client,
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some("default"),
    );
    let claim = |size: &str, mode: &str| {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": "data", "namespace": "default" },
            "spec": { "accessModes": [mode], "resources": { "requests": { "storage": size } } },
        })
    };
    apply(&claims, claim("1Gi", "ReadWriteOnce")).await.unwrap();
    apply(&claims, claim("2Gi", "ReadWriteOnce"))
        .await
        .expect("growing is allowed");
    let status = api_error(apply(&claims, claim("1Gi", "ReadWriteOnce")).await);
    assert_eq!(invalid_fields(&status), ["spec.resources.requests.storage"]);
    let status = api_error(apply(&claims, claim("2Gi", "ReadWriteMany")).await);
    assert_eq!(invalid_fields(&status), ["spec"]);
}

#[tokio::test]
async fn role_refs_cluster_ips_and_immutable_config_are_fixed() {
    let (_emulator, client) = start().await;
    let bindings = api(
        &client,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        Some("default"),
    );
    let binding = |role: &str| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "b", "namespace": "default" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": "app", "namespace": "default" }],
        })
    };
    let status = refused_change(&bindings, binding("reader"), binding("writer")).await;
    assert_eq!(invalid_fields(&status), ["roleRef"]);
    assert!(
        status.message.ends_with("cannot change roleRef"),
        "{}",
        status.message
    );

    let services = api(&client, "v1", "Service", "services", Some("default"));
    let service = |ip: &str| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web", "namespace": "default" },
            "spec": { "clusterIP": ip, "ports": [{ "port": 80 }] },
        })
    };
    let status = refused_change(&services, service("10.0.0.10"), service("10.0.0.11")).await;
    assert_eq!(invalid_fields(&status), ["spec.clusterIP"]);

    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let mut frozen = config_map("default", "frozen", json!({}), json!({ "k": "1" }));
    frozen["immutable"] = json!(true);
    let mut changed = frozen.clone();
    changed["data"]["k"] = json!("2");
    let status = refused_change(&config_maps, frozen.clone(), changed).await;
    assert_eq!(invalid_fields(&status), ["data"]);
    let mut thawed = frozen;
    thawed["immutable"] = json!(false);
    let status = api_error(apply(&config_maps, thawed).await);
    assert_eq!(invalid_fields(&status), ["immutable"]);
}

#[tokio::test]
async fn a_config_map_over_one_mebibyte_is_too_long() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let limit = 1_048_576;
    let at_limit = config_map(
        "default",
        "big",
        json!({}),
        json!({ "a": "x".repeat(limit - 1), "b": "y" }),
    );
    apply(&config_maps, at_limit)
        .await
        .expect("exactly 1 MiB is allowed");
    let over = config_map(
        "default",
        "bigger",
        json!({}),
        json!({ "a": "x".repeat(limit), "b": "y" }),
    );
    let status = api_error(apply(&config_maps, over).await);
    assert_eq!(invalid_fields(&status), ["[]"]);
    assert_eq!(
        status.message,
        "ConfigMap \"bigger\" is invalid: []: Too long: must have at most 1048576 bytes"
    );
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "bigger")
            .is_none()
    );
}

#[tokio::test]
async fn labels_and_annotations_are_validated() {
    let (_emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let long = "a".repeat(64);
    let ok_63 = "a".repeat(63);
    apply(
        &config_maps,
        config_map(
            "default",
            "ok",
            json!({ "example.com/x": ok_63 }),
            json!({}),
        ),
    )
    .await
    .expect("63 characters are allowed");
    for labels in [
        json!({ long.clone(): "v" }),
        json!({ "k": long }),
        json!({ "k": "-starts-with-dash" }),
        json!({ "Bad_Prefix/k": "v" }),
        json!({ "a/b/c": "v" }),
    ] {
        let status = api_error(
            apply(
                &config_maps,
                config_map("default", "bad", labels.clone(), json!({})),
            )
            .await,
        );
        assert_eq!(invalid_fields(&status), ["metadata.labels"], "{labels}");
    }
    let mut annotated = config_map("default", "notes", json!({}), json!({}));
    annotated["metadata"]["annotations"] = json!({ "big": "x".repeat(256 * 1024) });
    let status = api_error(apply(&config_maps, annotated).await);
    assert_eq!(invalid_fields(&status), ["metadata.annotations"]);
    assert!(
        status
            .message
            .ends_with("Too long: must have at most 262144 bytes"),
        "{}",
        status.message
    );
}

// --- finalizers, Terminating namespaces and CRDs ---

fn namespace(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } })
}

fn with_finalizers(mut object: Value, finalizers: &[&str]) -> Value {
    object["metadata"]["finalizers"] = json!(finalizers);
    object
}

#[tokio::test]
async fn an_object_with_finalizers_waits_for_them() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let held = with_finalizers(
        config_map("default", "held", json!({}), json!({})),
        &["example.com/hold"],
    );
    apply(&config_maps, held).await.unwrap();
    let answer = config_maps
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let marked = answer.left().expect("the object, still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    let live = config_maps.get("held").await.expect("still readable");
    assert!(live.metadata.deletion_timestamp.is_some());
    // A second DELETE changes nothing; new finalizers are refused.
    config_maps
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete again");
    let more = with_finalizers(
        config_map("default", "held", json!({}), json!({})),
        &["example.com/hold", "example.com/more"],
    );
    let status = api_error(apply(&config_maps, more).await);
    assert_eq!(invalid_fields(&status), ["metadata.finalizers"]);
    // The apply that drops the finalizer completes the deletion.
    apply(
        &config_maps,
        config_map("default", "held", json!({}), json!({})),
    )
    .await
    .unwrap();
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "held")
            .is_none()
    );

    // Same through the fixture's controller stand-in.
    let held = with_finalizers(
        config_map("default", "again", json!({}), json!({})),
        &["example.com/hold"],
    );
    apply(&config_maps, held).await.unwrap();
    config_maps
        .delete("again", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "again")
            .is_some()
    );
    emulator.remove_finalizer(
        "v1",
        "ConfigMap",
        Some("default"),
        "again",
        "example.com/hold",
    );
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "again")
            .is_none()
    );
}

#[tokio::test]
async fn a_deleted_namespace_terminates_and_refuses_new_content() {
    let (emulator, client) = start().await;
    apply(
        &api(&client, "v1", "Namespace", "namespaces", None),
        namespace("team"),
    )
    .await
    .unwrap();
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("team"));
    apply(
        &config_maps,
        config_map("team", "plain", json!({}), json!({})),
    )
    .await
    .unwrap();
    let held = with_finalizers(
        config_map("team", "held", json!({}), json!({})),
        &["example.com/hold"],
    );
    apply(&config_maps, held).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete namespace");
    let team = namespaces
        .get("team")
        .await
        .expect("still there while not empty");
    assert!(team.metadata.deletion_timestamp.is_some());
    assert_eq!(
        team.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert_eq!(
        team.spec.and_then(|s| s.finalizers),
        Some(vec!["kubernetes".to_owned()])
    );
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("team"), "plain")
            .is_none()
    );
    let held = emulator
        .get("v1", "ConfigMap", Some("team"), "held")
        .expect("held back");
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    let status = api_error(
        apply(
            &config_maps,
            config_map("team", "new", json!({}), json!({})),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps \"new\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    let cause = &status.details.expect("details").causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("NamespaceTerminating", "metadata.namespace")
    );
    let dry = api_error(
        apply_with(
            &config_maps,
            config_map("team", "new", json!({}), json!({})),
            &force_apply().dry_run(),
        )
        .await,
    );
    assert_eq!(dry.code, 403);

    emulator.remove_finalizer("v1", "ConfigMap", Some("team"), "held", "example.com/hold");
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("team"), "held")
            .is_none()
    );
    assert!(
        emulator.get("v1", "Namespace", None, "team").is_none(),
        "an empty namespace goes"
    );
}

#[tokio::test]
async fn the_clusters_own_namespaces_cannot_be_deleted() {
    let (emulator, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client);
    for name in ["default", "kube-system", "kube-public"] {
        let status = api_error(namespaces.delete(name, &DeleteParams::default()).await);
        assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            status.message,
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
        assert!(emulator.get("v1", "Namespace", None, name).is_some());
    }
    assert!(
        emulator
            .get("v1", "Namespace", None, "kube-node-lease")
            .is_some()
    );
}

/// A CRD, an operator Deployment and one Widget with the operator's finalizer.
async fn widgets_with_an_operator(emulator: &Emulator, client: &Client) -> Api<DynamicObject> {
    let crds = api(
        client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    apply(&crds, widget_crd()).await.unwrap();
    apply(
        &api(client, "v1", "Namespace", "namespaces", None),
        namespace("ops"),
    )
    .await
    .unwrap();
    let deployments = api(client, "apps/v1", "Deployment", "deployments", Some("ops"));
    apply(&deployments, deployment("ops", "widget-operator", 1))
        .await
        .unwrap();
    emulator.run_operator("example.com/cleanup", "ops", "widget-operator");
    let widgets = api(
        client,
        "example.com/v1",
        "Widget",
        "widgets",
        Some("default"),
    );
    let widget = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": {} });
    apply(&widgets, with_finalizers(widget, &["example.com/cleanup"]))
        .await
        .unwrap();
    widgets
}

#[tokio::test]
async fn an_operator_clears_its_finalizer_while_it_runs() {
    let (emulator, client) = start().await;
    let widgets = widgets_with_an_operator(&emulator, &client).await;
    widgets
        .delete("w", &DeleteParams::default())
        .await
        .expect("delete widget");
    assert!(
        emulator
            .get("example.com/v1", "Widget", Some("default"), "w")
            .is_none()
    );
}

#[tokio::test]
async fn custom_resources_stay_terminating_when_their_operator_went_first() {
    let (emulator, client) = start().await;
    let widgets = widgets_with_an_operator(&emulator, &client).await;
    api(&client, "apps/v1", "Deployment", "deployments", Some("ops"))
        .delete("widget-operator", &DeleteParams::default())
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete CRD");
    let crd = crds
        .get("widgets.example.com")
        .await
        .expect("the CRD waits for its resources");
    assert!(crd.metadata.deletion_timestamp.is_some());
    let stuck = widgets.get("w").await.expect("the widget is stuck");
    assert!(stuck.metadata.deletion_timestamp.is_some());
    // Nobody will clear the finalizer until the operator is back.
    apply(
        &api(&client, "apps/v1", "Deployment", "deployments", Some("ops")),
        deployment("ops", "widget-operator", 1),
    )
    .await
    .unwrap();
    assert!(
        emulator
            .get("example.com/v1", "Widget", Some("default"), "w")
            .is_none()
    );
    assert!(
        emulator
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "widgets.example.com"
            )
            .is_none()
    );
}

// --- authorisation of applies ---

#[tokio::test]
async fn an_apply_that_creates_needs_create() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "old", json!({}), json!({})),
    )
    .await
    .unwrap();
    emulator.forbid("create", "configmaps");
    let status = api_error(
        apply(
            &config_maps,
            config_map("default", "new", json!({}), json!({})),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status
            .message
            .contains("cannot create resource \"configmaps\""),
        "{}",
        status.message
    );
    apply(
        &config_maps,
        config_map("default", "old", json!({}), json!({ "k": "v" })),
    )
    .await
    .expect("updating needs only patch");
    emulator.forbid("patch", "configmaps");
    let status = api_error(
        apply(
            &config_maps,
            config_map("default", "old", json!({}), json!({})),
        )
        .await,
    );
    assert!(
        status.message.contains("cannot patch resource"),
        "{}",
        status.message
    );
}

// --- discovery: subresources, unavailable and withdrawn versions ---

#[tokio::test]
async fn discovery_lists_subresources_and_clients_cope() {
    let (_emulator, client) = start().await;
    let apps = client
        .list_api_group_resources("apps/v1")
        .await
        .expect("apps/v1");
    let names: Vec<&str> = apps.resources.iter().map(|r| r.name.as_str()).collect();
    for expected in [
        "deployments",
        "deployments/status",
        "deployments/scale",
        "statefulsets/scale",
        "daemonsets/status",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let scale = apps
        .resources
        .iter()
        .find(|r| r.name == "deployments/scale")
        .unwrap();
    assert_eq!(
        (scale.kind.as_str(), scale.group.as_deref()),
        ("Scale", Some("autoscaling"))
    );
    let core = client.list_core_api_resources("v1").await.expect("v1");
    assert!(core.resources.iter().any(|r| r.name == "pods/log"));

    // kube-rs resolves kinds, not subresources, with either discovery.
    for discovery in [
        Discovery::new(client.clone())
            .run()
            .await
            .expect("legacy discovery"),
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .expect("aggregated discovery"),
    ] {
        let (resource, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .expect("Deployment");
        assert_eq!(resource.plural, "deployments");
        assert!(
            caps.subresources
                .iter()
                .any(|(r, _)| r.plural == "deployments/status" || r.plural == "status"),
            "{:?}",
            caps.subresources
                .iter()
                .map(|(r, _)| &r.plural)
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn an_unavailable_group_version_answers_503() {
    let emulator = Emulator::start().await;
    // kube's default retries would take minutes against a 503 that does not go away.
    let mut config = emulator.config();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    emulator.register_kind("metrics.example.com/v1", "Sample", "samples", true);
    emulator.set_unavailable("metrics.example.com/v1", true);
    let status = api_error(
        client
            .list_api_group_resources("metrics.example.com/v1")
            .await,
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (503, "service unavailable")
    );
    let samples = api(
        &client,
        "metrics.example.com/v1",
        "Sample",
        "samples",
        Some("default"),
    );
    let status = api_error(samples.list(&ListParams::default()).await);
    assert_eq!(status.code, 503);
    // The group is still listed, as upstream lists an APIService whose backend is down.
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "metrics.example.com")
    );
    // Other groups are unaffected; aggregated discovery leaves the version out.
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated");
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk(
                "metrics.example.com",
                "v1",
                "Sample"
            ))
            .is_none()
    );
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .is_some()
    );

    emulator.set_unavailable("metrics.example.com/v1", false);
    assert!(samples.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn a_kind_no_longer_served_is_not_found_and_leaves_discovery() {
    let (emulator, client) = start().await;
    let crds = api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    let mut crd = widget_crd();
    crd["spec"]["versions"] = json!([
        { "name": "v1beta1", "served": true, "storage": false, "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } },
        { "name": "v1", "served": true, "storage": true, "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } },
    ]);
    apply(&crds, crd.clone()).await.unwrap();
    let old = api(
        &client,
        "example.com/v1beta1",
        "Widget",
        "widgets",
        Some("default"),
    );
    let new = api(
        &client,
        "example.com/v1",
        "Widget",
        "widgets",
        Some("default"),
    );
    apply(&old, json!({ "apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": { "name": "w" }, "spec": { "size": 1 } }))
        .await
        .unwrap();
    // v1 is preferred and listed first, whatever the order in the CRD.
    let groups = client.list_api_groups().await.unwrap();
    let example = groups
        .groups
        .iter()
        .find(|g| g.name == "example.com")
        .unwrap();
    let preferred = example
        .preferred_version
        .as_ref()
        .map(|v| v.version.as_str());
    assert_eq!(preferred, Some("v1"));
    assert_eq!(example.versions[1].version, "v1beta1");
    let seen = new
        .get("w")
        .await
        .expect("one object, visible at both versions");
    assert_eq!(seen.types.as_ref().unwrap().api_version, "example.com/v1");
    assert_eq!(to_json(&seen)["spec"]["size"], 1);

    // v1beta1 stops being served: requests 404, discovery drops it, v1 still works.
    crd["spec"]["versions"][0]["served"] = json!(false);
    apply(&crds, crd).await.unwrap();
    let status = api_error(old.get("w").await);
    assert_eq!(status.code, 404);
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1beta1", "Widget"))
            .is_none()
    );
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
            .is_some()
    );
    assert!(new.get("w").await.is_ok());

    emulator.unregister_kind("v1", "ConfigMap");
    let status = api_error(
        api(&client, "v1", "ConfigMap", "configmaps", Some("default"))
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(status.code, 404);
}

// --- merge patch and delete preconditions ---

#[tokio::test]
async fn a_merge_patch_removes_keys_with_null_as_an_update() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let mut object = config_map(
        "default",
        "x",
        json!({ "brokkr.io/stack-id": "s", "team": "a" }),
        json!({ "k": "v" }),
    );
    object["metadata"]["annotations"] = json!({ "brokkr.io/checksum": "c", "note": "keep" });
    apply(&config_maps, object).await.unwrap();
    let release = json!({
        "metadata": {
            "labels": { "brokkr.io/stack-id": null },
            "annotations": { "brokkr.io/checksum": null },
        },
    });
    let patched = config_maps
        .patch(
            "x",
            &PatchParams {
                field_manager: Some("brokkr".into()),
                ..Default::default()
            },
            &Patch::Merge(&release),
        )
        .await
        .expect("merge patch");
    let patched = to_json(&patched);
    assert_eq!(patched["metadata"]["labels"], json!({ "team": "a" }));
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({ "note": "keep" })
    );
    assert_eq!(patched["data"], json!({ "k": "v" }));
    // The Update by brokkr removed the keys from brokkr's Apply entry too.
    let mine = managed_entry(&patched, "brokkr", "Apply").unwrap();
    assert!(
        mine["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:brokkr.io/stack-id")
            .is_none()
    );

    let edit = json!({ "data": { "k": "changed" } });
    let patched = config_maps
        .patch("x", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    // No fieldManager: upstream names the manager after the user agent, which
    // kube-rs does not send; the emulator then says "unknown".
    let entry = managed_entry(&to_json(&patched), "unknown", "Update")
        .expect("an Update entry named after the user agent");
    assert_eq!(entry["fieldsV1"], json!({ "f:data": { "f:k": {} } }));

    let status = api_error(
        config_maps
            .patch("missing", &PatchParams::default(), &Patch::Merge(&edit))
            .await,
    );
    assert_eq!(status.code, 404);
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "missing")
            .is_none()
    );
}

#[tokio::test]
async fn a_merge_patch_that_clears_finalizers_completes_a_deletion() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    let held = with_finalizers(
        config_map("default", "held", json!({}), json!({})),
        &["example.com/hold"],
    );
    apply(&config_maps, held).await.unwrap();
    config_maps
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let clear = json!({ "metadata": { "finalizers": null } });
    config_maps
        .patch("held", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .expect("patch a terminating object");
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "held")
            .is_none()
    );
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({})),
    )
    .await
    .unwrap();
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let status = api_error(config_maps.delete("x", &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .starts_with("Precondition failed: UID in precondition: not-the-uid"),
        "{}",
        status.message
    );
    let uid = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let current = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    config_maps
        .delete("x", &current)
        .await
        .expect("matching uid");
    assert!(
        emulator
            .get("v1", "ConfigMap", Some("default"), "x")
            .is_none()
    );
}

#[tokio::test]
async fn odd_shapes_are_answered_not_panicked_on() {
    let (emulator, client) = start().await;
    let namespaces = api(&client, "v1", "Namespace", "namespaces", None);
    let odd = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "odd" }, "spec": "oops" });
    apply(&namespaces, odd)
        .await
        .expect("nothing validates a namespace's spec here");
    Api::<Namespace>::all(client.clone())
        .delete("odd", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(emulator.get("v1", "Namespace", None, "odd").is_none());

    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "x", json!({ "a": "b" }), json!({})),
    )
    .await
    .unwrap();
    for patch in [
        json!({ "metadata": null }),
        json!({ "metadata": "x", "data": [1] }),
    ] {
        let answer = config_maps
            .patch("x", &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        if let Ok(patched) = answer {
            assert_eq!(patched.metadata.name.as_deref(), Some("x"));
        }
    }
    assert!(
        config_maps.get("x").await.is_ok(),
        "the emulator still serves"
    );
}

#[tokio::test]
async fn an_empty_map_does_not_keep_the_keys_its_manager_dropped() {
    let (emulator, client) = start().await;
    let config_maps = api(&client, "v1", "ConfigMap", "configmaps", Some("default"));
    apply(
        &config_maps,
        config_map("default", "x", json!({ "app": "web" }), json!({ "a": "1" })),
    )
    .await
    .unwrap();
    apply(
        &config_maps,
        config_map("default", "x", json!({}), json!({})),
    )
    .await
    .unwrap();
    let stored = emulator
        .get("v1", "ConfigMap", Some("default"), "x")
        .unwrap();
    assert_eq!(stored["metadata"]["labels"], json!({}));
    assert_eq!(stored["data"], json!({}));
}
