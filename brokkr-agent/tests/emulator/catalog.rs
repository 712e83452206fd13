//! The kinds the emulator serves: a fixed set of built-in resources plus whatever
//! established CRDs (or a test, via `register_kind`) add at runtime.

use std::collections::BTreeSet;

/// One served resource at one version, e.g. `apps/v1` `deployments` (`Deployment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The URL segment, e.g. `deployments`.
    pub plural: String,
    pub namespaced: bool,
    /// Subresource names (`status`, `scale`, `log`, …), listed in discovery only: the
    /// emulator serves none of them.
    pub subresources: Vec<String>,
    origin: Origin,
}

/// Who put a resource type in the catalog, so a CRD's update or deletion replaces or
/// removes exactly the types it introduced.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    BuiltIn,
    Crd(String),
    Test,
}

impl ResourceType {
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> ResourceType {
        ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
            subresources: Vec::new(),
            origin: Origin::Test,
        }
    }

    pub fn with_subresources(mut self, subresources: &[&str]) -> ResourceType {
        self.subresources = subresources.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }
}

/// `v1` for the core group, `group/version` otherwise.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// (group/version, kind, plural, namespaced) of every built-in resource.
const BUILT_IN: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "Service", "services", true),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "Pod", "pods", true),
    ("v1", "Node", "nodes", false),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("apps/v1", "ReplicaSet", "replicasets", true),
    ("batch/v1", "Job", "jobs", true),
    ("batch/v1", "CronJob", "cronjobs", true),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

/// Kubernetes' version priority as a sort key, highest first: GA before beta before
/// alpha, higher numbers first, anything else last and alphabetically
/// (`k8s.io/apimachinery/pkg/version/helpers.go`, `CompareKubeAwareVersionStrings`).
fn version_priority(version: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    let parsed = version.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        let (rank, number) = match tail {
            "" => (0, "0"),
            _ if tail.starts_with("beta") => (1, &tail[4..]),
            _ if tail.starts_with("alpha") => (2, &tail[5..]),
            _ => return None,
        };
        Some((rank, major, number.parse::<u64>().ok()?))
    });
    match parsed {
        Some((rank, major, minor)) => (
            rank,
            std::cmp::Reverse(major),
            std::cmp::Reverse(minor),
            String::new(),
        ),
        None => (
            3,
            std::cmp::Reverse(0),
            std::cmp::Reverse(0),
            version.to_owned(),
        ),
    }
}

/// The subresources upstream serves for a built-in kind (as `kubectl api-resources`
/// and `/apis/{group}/{version}` list them).
fn built_in_subresources(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ],
        ("", "Namespace") => &["finalize", "status"],
        ("", "Node") => &["proxy", "status"],
        ("", "Service") => &["proxy", "status"],
        ("", "ServiceAccount") => &["token"],
        ("", "PersistentVolumeClaim") => &["status"],
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") => &["scale", "status"],
        ("apps", "DaemonSet") | ("batch", "Job" | "CronJob") => &["status"],
        ("networking.k8s.io", "Ingress") => &["status"],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &["status"],
        _ => &[],
    }
}

/// Every served resource type, in discovery order, and the group versions that
/// answer 503.
#[derive(Debug, Clone)]
pub struct Catalog(Vec<ResourceType>, BTreeSet<(String, String)>);

impl Default for Catalog {
    fn default() -> Self {
        let built_in = BUILT_IN
            .iter()
            .map(|&(api_version, kind, plural, namespaced)| {
                let (group, version) = split_api_version(api_version);
                ResourceType {
                    origin: Origin::BuiltIn,
                    ..ResourceType::new(group, version, kind, plural, namespaced)
                        .with_subresources(built_in_subresources(group, kind))
                }
            });
        Catalog(built_in.collect(), BTreeSet::new())
    }
}

impl Catalog {
    /// Whether `group`/`version` answers 503 (see `Emulator::set_unavailable`).
    pub fn is_unavailable(&self, group: &str, version: &str) -> bool {
        self.1.contains(&(group.to_owned(), version.to_owned()))
    }

    pub fn set_unavailable(&mut self, group: &str, version: &str, unavailable: bool) {
        let key = (group.to_owned(), version.to_owned());
        if unavailable {
            self.1.insert(key);
        } else {
            self.1.remove(&key);
        }
    }

    /// The type behind a URL: `/apis/{group}/{version}/…/{plural}`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.0
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<&ResourceType> {
        self.0
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Groups in first-seen order, each with its versions by priority (the first is the
    /// preferred one); the core group (``) is included and the caller decides whether
    /// to show it.
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.0 {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| version_priority(v));
        }
        groups
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.0
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }

    /// Makes the versions of CRD `crd_name` the only types it contributes (an update
    /// can add or drop versions).
    pub fn set_crd_types(&mut self, crd_name: &str, types: Vec<ResourceType>) {
        self.remove_crd_types(crd_name);
        let origin = Origin::Crd(crd_name.to_owned());
        self.0.extend(types.into_iter().map(|t| ResourceType {
            origin: origin.clone(),
            ..t
        }));
    }

    pub fn remove_crd_types(&mut self, crd_name: &str) {
        self.0
            .retain(|t| t.origin != Origin::Crd(crd_name.to_owned()));
    }

    /// Adds (or replaces) a type on a test's behalf.
    pub fn register(&mut self, served: ResourceType) {
        self.unregister(&served.group, &served.version, &served.kind);
        self.0.push(served);
    }

    pub fn unregister(&mut self, group: &str, version: &str, kind: &str) {
        self.0
            .retain(|t| !(t.group == group && t.version == version && t.kind == kind));
    }
}
