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
    // Simplified SSA: a key left out of the next apply is gone, whoever set it.
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

    let merge = config_maps
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": {} })),
        )
        .await;
    assert_eq!(api_error(merge).code, 415);
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
