//! Which kinds the cluster serves, cached.
//!
//! Built from the same documents as kube-rs's `Discovery` (`/api`, `/apis`, one
//! `APIResourceList` per group version), but one group version that fails to answer
//! does not fail the whole discovery: an aggregated API whose backend is down (a broken
//! metrics-server is the classic) answers 503, and that must not stop the agent from
//! applying Deployments. The failure is remembered, so an object of that group version
//! gets "unavailable" (retry) rather than "unknown kind" (fix your manifest).
//!
//! The cache is refreshed when a kind is unknown, at most once per operation (see
//! [`Lookup`]), after a CustomResourceDefinition becomes established, when it is older
//! than its time to live (a kind the server stopped serving must not be trusted until
//! restart), and when the server answers 404 for a kind the cache says it serves.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use brokkr_core::ObjectKey;
use brokkr_core::applier::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use kube::discovery::ApiResource;

use super::errors::cluster_error;

/// A kind the cluster serves, as needed to address its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kind {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

/// One discovery's results.
#[derive(Debug)]
struct Snapshot {
    /// When it was taken.
    taken: Instant,
    /// By `(apiVersion, kind)`.
    kinds: HashMap<(String, String), Kind>,
    /// Group versions the cluster announced but failed to describe, with the error.
    failed: HashMap<String, String>,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The cluster serves the kind.
    Served(Kind),
    /// The cluster announced the kind's group version but could not describe it.
    GroupVersionFailed(String),
    /// The cluster does not serve the kind.
    Unknown,
}

/// The cached discovery of one cluster. Shared by concurrent operations; a refresh
/// replaces the snapshot in one step.
pub(crate) struct Discovery {
    client: Client,
    ttl: Duration,
    /// How long one group version may take to answer.
    timeout: Duration,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Snapshot {
    fn empty() -> Self {
        Self {
            taken: Instant::now(),
            kinds: HashMap::new(),
            failed: HashMap::new(),
        }
    }
}

impl Discovery {
    /// Discovers the cluster's kinds; the result is trusted for `ttl`, and one group
    /// version that does not answer within `timeout` is recorded as failed.
    pub(crate) async fn new(
        client: Client,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let discovery = Self {
            client,
            ttl,
            timeout,
            snapshot: RwLock::new(Arc::new(Snapshot::empty())),
        };
        discovery.refresh().await?;
        Ok(discovery)
    }

    /// What the cache says about `kind` in `api_version`.
    pub(crate) fn find(&self, api_version: &str, kind: &str) -> Found {
        let snapshot = self.current();
        if let Some(found) = snapshot
            .kinds
            .get(&(api_version.to_owned(), kind.to_owned()))
        {
            return Found::Served(found.clone());
        }
        match snapshot.failed.get(api_version) {
            Some(error) => Found::GroupVersionFailed(error.clone()),
            None => Found::Unknown,
        }
    }

    /// `kind` of `group` at any version the cache says is served.
    fn find_in_group(&self, group: &str, kind: &str) -> Option<Kind> {
        self.current()
            .kinds
            .values()
            .filter(|k| k.resource.group == group && k.resource.kind == kind)
            .min_by(|a, b| a.resource.version.cmp(&b.resource.version))
            .cloned()
    }

    /// Whether the cache is older than its time to live.
    fn is_stale(&self) -> bool {
        self.current().taken.elapsed() > self.ttl
    }

    /// Discovers again and replaces the cache. Fails only when the lists of groups
    /// cannot be read; a single group version failing is recorded instead.
    pub(crate) async fn refresh(&self) -> Result<(), Error> {
        let late = |what: &str| {
            Error::Unavailable(format!(
                "{what}: no answer within {}s",
                self.timeout.as_secs_f32()
            ))
        };
        let core = tokio::time::timeout(self.timeout, self.client.list_core_api_versions())
            .await
            .map_err(|_| late("discovery of /api"))?
            .map_err(|e| cluster_error("discovery of /api", e))?;
        let groups = tokio::time::timeout(self.timeout, self.client.list_api_groups())
            .await
            .map_err(|_| late("discovery of /apis"))?
            .map_err(|e| cluster_error("discovery of /apis", e))?;

        let group_versions = core.versions.into_iter().chain(
            groups
                .groups
                .into_iter()
                .flat_map(|g| g.versions.into_iter().map(|v| v.group_version)),
        );
        // kube's client retries a 503 with backoff for minutes (`RetryPolicy`, on by
        // default); one aggregated API whose backend is down must not hold every
        // refresh that long, so each group version gets `timeout` to answer.
        let timeout = self.timeout;
        let answers = futures::future::join_all(group_versions.map(|gv| async move {
            let request = async {
                if gv.contains('/') {
                    self.client.list_api_group_resources(&gv).await
                } else {
                    self.client.list_core_api_resources(&gv).await
                }
            };
            let answer = match tokio::time::timeout(timeout, request).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f32())),
            };
            (gv, answer)
        }))
        .await;

        let mut snapshot = Snapshot::empty();
        for (group_version, answer) in answers {
            match answer {
                Ok(list) => add_kinds(&mut snapshot.kinds, &list),
                Err(error) => {
                    tracing::warn!(%group_version, %error, "discovery: group version failed; its kinds are unavailable until the next refresh");
                    snapshot.failed.insert(group_version, error);
                }
            }
        }
        tracing::debug!(
            kinds = snapshot.kinds.len(),
            failed = snapshot.failed.len(),
            "discovery refreshed"
        );
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    fn current(&self) -> Arc<Snapshot> {
        // A panic elsewhere while holding the lock cannot leave a half-written
        // snapshot (it is swapped whole), so a poisoned lock is still good.
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Adds the top-level resources of one group version (subresources such as
/// `deployments/status` have a `/` in their name and are skipped).
fn add_kinds(kinds: &mut HashMap<(String, String), Kind>, list: &APIResourceList) {
    let (group, version) = match list.group_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", list.group_version.as_str()),
    };
    for resource in list.resources.iter().filter(|r| !r.name.contains('/')) {
        let key = (list.group_version.clone(), resource.kind.clone());
        kinds.entry(key).or_insert_with(|| Kind {
            resource: ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version: list.group_version.clone(),
                kind: resource.kind.clone(),
                plural: resource.name.clone(),
            },
            namespaced: resource.namespaced,
        });
    }
}

/// The discovery as seen by one operation: an unknown kind triggers at most one
/// refresh, so an apply naming ten unknown kinds costs one discovery, not ten.
pub(crate) struct Lookup<'a> {
    discovery: &'a Discovery,
    refreshed: bool,
}

impl<'a> Lookup<'a> {
    pub(crate) fn new(discovery: &'a Discovery) -> Self {
        Self {
            discovery,
            refreshed: false,
        }
    }

    /// Finds a kind, refreshing the cache first if it is unknown and this operation
    /// has not refreshed yet.
    pub(crate) async fn find(&mut self, api_version: &str, kind: &str) -> Result<Found, Error> {
        if !self.refreshed && self.discovery.is_stale() {
            tracing::debug!("discovery cache expired; refreshing");
            self.refresh().await?;
        }
        let found = self.discovery.find(api_version, kind);
        if matches!(found, Found::Served(_)) || self.refreshed {
            return Ok(found);
        }
        tracing::debug!(api_version, kind, "kind not in discovery cache; refreshing");
        self.refresh().await?;
        Ok(self.discovery.find(api_version, kind))
    }

    /// Finds the kind of an object recorded in an inventory: at its recorded version,
    /// or, when that version is no longer served, at any served version of its group
    /// (identity is group, kind, namespace and name, so it is the same object).
    pub(crate) async fn find_object(&mut self, key: &ObjectKey) -> Result<Found, Error> {
        let found = self.find(&key.api_version, &key.kind).await?;
        if found != Found::Unknown {
            return Ok(found);
        }
        Ok(self
            .discovery
            .find_in_group(key.group(), &key.kind)
            .map_or(Found::Unknown, Found::Served))
    }

    /// Refreshes now (after a CRD became established, or a 404 for a kind the cache
    /// says is served), whether or not this operation refreshed before.
    pub(crate) async fn refresh(&mut self) -> Result<(), Error> {
        self.discovery.refresh().await?;
        self.refreshed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    use super::*;

    fn resource(name: &str, kind: &str, namespaced: bool) -> APIResource {
        APIResource {
            name: name.into(),
            kind: kind.into(),
            namespaced,
            singular_name: String::new(),
            verbs: vec!["get".into()],
            ..APIResource::default()
        }
    }

    #[test]
    fn top_level_resources_become_kinds() {
        let mut kinds = HashMap::new();
        add_kinds(
            &mut kinds,
            &APIResourceList {
                group_version: "apps/v1".into(),
                resources: vec![
                    resource("deployments", "Deployment", true),
                    resource("deployments/status", "Deployment", true),
                ],
            },
        );
        add_kinds(
            &mut kinds,
            &APIResourceList {
                group_version: "v1".into(),
                resources: vec![resource("namespaces", "Namespace", false)],
            },
        );
        assert_eq!(kinds.len(), 2);
        let deployment = &kinds[&("apps/v1".to_owned(), "Deployment".to_owned())];
        assert_eq!(deployment.resource.plural, "deployments");
        assert_eq!(deployment.resource.group, "apps");
        assert!(deployment.namespaced);
        let namespace = &kinds[&("v1".to_owned(), "Namespace".to_owned())];
        assert_eq!(namespace.resource.group, "");
        assert_eq!(namespace.resource.version, "v1");
        assert!(!namespace.namespaced);
    }
}
