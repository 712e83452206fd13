//! Discovery documents, built from the catalog.
//!
//! Legacy documents are k8s-openapi values serialized as they are, so their `kind` and
//! `apiVersion` are exactly what k8s-openapi checks when kube-rs reads them back.
//! Aggregated discovery (`Accept: …;as=APIGroupDiscoveryList`, what
//! `Discovery::run_aggregated` asks for) is answered too.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde_json::{Value, json};

use super::catalog::{Catalog, ResourceType, api_version};

/// The Kubernetes release the emulator claims to be.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";

/// The verbs the emulator implements; discovery advertises no more than that (`create`
/// only as the authorisation of an apply that creates).
const VERBS: &[&str] = &["delete", "get", "list", "patch"];

/// The media type of aggregated discovery, both as asked for and as answered.
pub const AGGREGATED_MEDIA_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("as=APIGroupDiscoveryList"))
}

/// `GET /version`.
pub fn version() -> Value {
    to_json(&Info {
        major: MAJOR.to_owned(),
        minor: MINOR.to_owned(),
        git_version: format!("v{MAJOR}.{MINOR}.0"),
        git_commit: "brokkr-emulator".to_owned(),
        git_tree_state: "clean".to_owned(),
        build_date: "2025-01-01T00:00:00Z".to_owned(),
        go_version: "go1.24.0".to_owned(),
        compiler: "gc".to_owned(),
        platform: "linux/amd64".to_owned(),
        ..Info::default()
    })
}

/// `GET /api`.
pub fn core_versions(catalog: &Catalog) -> Value {
    let versions = catalog
        .group_versions()
        .into_iter()
        .find(|(group, _)| group.is_empty())
        .map(|(_, versions)| versions)
        .unwrap_or_default();
    to_json(&APIVersions {
        versions,
        server_address_by_client_cidrs: Vec::new(),
    })
}

/// `GET /apis`.
pub fn group_list(catalog: &Catalog) -> Value {
    let groups = catalog
        .group_versions()
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, versions)| api_group(&group, &versions))
        .collect();
    to_json(&APIGroupList { groups })
}

/// `GET /apis/{group}`, if the group is served.
pub fn group(catalog: &Catalog, name: &str) -> Option<Value> {
    catalog
        .group_versions()
        .into_iter()
        .find(|(group, _)| !group.is_empty() && group == name)
        .map(|(group, versions)| to_json(&api_group(&group, &versions)))
}

fn api_group(group: &str, versions: &[String]) -> APIGroup {
    let versions: Vec<_> = versions
        .iter()
        .map(|version| GroupVersionForDiscovery {
            group_version: api_version(group, version),
            version: version.clone(),
        })
        .collect();
    APIGroup {
        name: group.to_owned(),
        // Versions come sorted by priority, so the first is the preferred one.
        preferred_version: versions.first().cloned(),
        server_address_by_client_cidrs: None,
        versions,
    }
}

/// `GET /api/{version}` or `GET /apis/{group}/{version}`, if served.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let served = catalog.in_group_version(group, version);
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in served {
        resources.push(api_resource(t));
        resources.extend(t.subresources.iter().map(|sub| api_subresource(t, sub)));
    }
    Some(to_json(&APIResourceList {
        group_version: api_version(group, version),
        resources,
    }))
}

/// What a subresource answers with and which verbs it takes, as upstream lists them.
fn subresource_shape(
    t: &ResourceType,
    subresource: &str,
) -> (String, String, String, &'static [&'static str]) {
    match subresource {
        "scale" => (
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            &["get", "patch", "update"],
        ),
        "log" => (t.group.clone(), t.version.clone(), t.kind.clone(), &["get"]),
        "status" => (
            t.group.clone(),
            t.version.clone(),
            t.kind.clone(),
            &["get", "patch", "update"],
        ),
        "finalize" => (
            t.group.clone(),
            t.version.clone(),
            t.kind.clone(),
            &["update"],
        ),
        _ => (
            t.group.clone(),
            t.version.clone(),
            t.kind.clone(),
            &["create", "get"],
        ),
    }
}

/// A legacy discovery entry for a subresource: `name: "deployments/status"`.
fn api_subresource(t: &ResourceType, subresource: &str) -> APIResource {
    let (group, version, kind, verbs) = subresource_shape(t, subresource);
    APIResource {
        name: format!("{}/{subresource}", t.plural),
        namespaced: t.namespaced,
        kind,
        group: (group != t.group).then_some(group),
        version: (version != t.version).then_some(version),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..APIResource::default()
    }
}

fn api_resource(t: &ResourceType) -> APIResource {
    APIResource {
        name: t.plural.clone(),
        singular_name: t.singular(),
        namespaced: t.namespaced,
        kind: t.kind.clone(),
        verbs: VERBS.iter().map(|v| (*v).to_owned()).collect(),
        ..APIResource::default()
    }
}

/// Aggregated discovery for `/api` (core only) or `/apis` (every other group).
pub fn aggregated(catalog: &Catalog, core: bool) -> Value {
    let items: Vec<Value> = catalog
        .group_versions()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    // Upstream keeps an unavailable aggregated API in the document,
                    // marked stale and without resources.
                    if catalog.is_unavailable(&group, version) {
                        return json!({ "version": version, "resources": [], "freshness": "Stale" });
                    }
                    let resources: Vec<Value> = catalog
                        .in_group_version(&group, version)
                        .into_iter()
                        .map(|t| {
                            let subresources: Vec<Value> = t
                                .subresources
                                .iter()
                                .map(|sub| {
                                    let (group, version, kind, verbs) = subresource_shape(t, sub);
                                    json!({
                                        "subresource": sub,
                                        "responseKind": { "group": group, "version": version, "kind": kind },
                                        "verbs": verbs,
                                    })
                                })
                                .collect();
                            json!({
                                "resource": t.plural,
                                "responseKind": { "group": t.group, "version": t.version, "kind": t.kind },
                                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": t.singular(),
                                "verbs": VERBS,
                                "subresources": subresources,
                            })
                        })
                        .collect();
                    json!({ "version": version, "resources": resources, "freshness": "Current" })
                })
                .collect();
            let metadata = if core { json!({}) } else { json!({ "name": group }) };
            json!({ "metadata": metadata, "versions": versions })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn to_json<T: serde::Serialize>(document: &T) -> Value {
    serde_json::to_value(document).expect("k8s-openapi discovery types always serialize")
}
