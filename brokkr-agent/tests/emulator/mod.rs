//! A Kubernetes API emulator: a **test fixture**, not an API server.
//!
//! It serves, over real HTTP on `127.0.0.1:<random port>`, enough of the Kubernetes
//! API for the real kube-rs client (and so the real `KubeApplier`) to run in a test
//! without a cluster, and it is as strict as the API server wherever a lenient fixture
//! would hide an agent defect:
//!
//! - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//!   `/apis/{group}/{version}`, legacy documents and aggregated discovery alike, for a
//!   fixed set of built-in kinds (see [`catalog`]) plus the kinds of every established
//!   CRD, each version of a CRD served separately with one stored object visible at
//!   all of them; subresources are *listed* (`deployments/status`, `deployments/scale`,
//!   `pods/log`, …) as upstream lists them; a group version can be made to answer 503
//!   ([`set_unavailable`](Emulator::set_unavailable)) and a kind withdrawn
//!   ([`unregister_kind`](Emulator::unregister_kind), or a CRD version with
//!   `served: false`), after which its requests are 404 and discovery drops it;
//! - server-side apply by field manager ([`ssa`], [`fields`]): `metadata.managedFields`
//!   in `FieldsV1`, fields a manager stopped setting removed unless another manager
//!   owns them, 409 conflicts naming the fields (`force` takes them over),
//!   `managedFields` in an apply body refused with 400; `dryRun=All`; a JSON merge
//!   patch (an Update); `GET`, `LIST` (with `labelSelector`) and `DELETE` (with
//!   `preconditions`);
//! - validation ([`validation`]): 422 with `details.causes` for immutable fields (Job
//!   template and selector, workload selectors, PVC spec except storage growth,
//!   `roleRef`, a Service's `clusterIP`, `immutable` ConfigMaps and Secrets), the 1 MiB
//!   ConfigMap and Secret limit, label syntax and lengths, the 256 KiB annotation
//!   limit, and new finalizers on an object being deleted — for a dry run as for a
//!   write;
//! - deletion (`store::lifecycle`): finalizers and `deletionTimestamp`, Terminating
//!   namespaces (403 on creating in them) and the namespace and CRD cascades, emulated
//!   operators that clear a finalizer while their Deployment exists
//!   ([`run_operator`](Emulator::run_operator)), 403 on deleting `default`,
//!   `kube-system` and `kube-public`;
//! - authorisation stand-in: [`forbid`](Emulator::forbid) answers 403 in RBAC's
//!   wording; an apply that creates is authorised as `patch` and `create`;
//! - bookkeeping: `uid`, `creationTimestamp`, `generation` (bumped when anything
//!   outside `metadata` and `status` changes) and `resourceVersion` (one global
//!   counter, bumped only when an object really changes, so a no-op apply keeps it —
//!   except a Secret applied with `stringData`, which bumps on every apply, as
//!   upstream);
//! - a built-in "controller" that gives Deployments, StatefulSets, DaemonSets, Jobs,
//!   Pods, Namespaces and CRDs the status they would reach when all goes well, unless a
//!   test set the status ([`set_status`](Emulator::set_status), a status-subresource
//!   write); on request it writes status after every read and apply
//!   ([`churn_status`](Emulator::churn_status)); other writers are simulated with
//!   [`update_as`](Emulator::update_as) (an Update by another field manager, e.g. a
//!   `kubectl edit`).
//!
//! What it still does **not** do, so a passing test proves nothing about these:
//!
//! - Lists are atomic in field ownership: upstream merges associative lists
//!   (containers by name, ports, env) item by item with `k:{…}` keys; here a list is
//!   one field, owned and replaced whole. Apply bodies must be JSON (what kube-rs
//!   sends), not YAML.
//! - No defaulting (no `clusterIP` allocation, no `spec.finalizers` on a Namespace
//!   until it is deleted), no schema validation (not even a CRD's), no admission
//!   webhooks, no conversion between versions, no watch, no create/update verbs and
//!   no strategic merge or JSON patch, no subresource endpoints, no field selectors,
//!   no pagination, no authentication.
//! - Controllers act synchronously inside the request that triggers them: a namespace
//!   with nothing holding it back is gone when its DELETE answers. No garbage
//!   collection by owner references, no grace periods.
//!
//! ```no_run
//! # async fn doc() {
//! let emulator = Emulator::start().await;
//! let client = emulator.client();
//! // … run the code under test against `client` …
//! assert!(emulator.get("v1", "Namespace", None, "default").is_some());
//! emulator.stop().await;
//! # }
//! ```

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

pub mod catalog;
pub mod controller;
pub mod discovery;
pub mod fields;
mod http;
pub mod selector;
pub mod ssa;
pub mod status;
pub mod store;
pub mod validation;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use catalog::{ResourceType, split_api_version};
use store::{Cluster, Key, Operator};

/// The manager [`Emulator::edit`] writes as, like `kubectl edit` does.
pub const EDIT_MANAGER: &str = "kubectl-edit";

/// One apply `PATCH` as the emulator received it. Dry runs are left out; well-formed
/// applies the emulator then refused (a missing namespace, an unserved kind, a 403) are
/// kept, so a test sees everything the client attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRecord {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub field_manager: String,
    pub force: bool,
    pub annotations: BTreeMap<String, String>,
}

/// Everything a request may touch, behind one lock (requests are short and never
/// await while holding it).
#[derive(Debug, Default)]
struct State {
    cluster: Cluster,
    applies: Vec<ApplyRecord>,
    /// (verb, resource) pairs answered with 403; `*` matches any.
    forbidden: BTreeSet<(String, String)>,
}

impl State {
    fn is_forbidden(&self, verb: &str, resource: &str) -> bool {
        [(verb, resource), (verb, "*"), ("*", resource)]
            .iter()
            .any(|(v, r)| self.forbidden.contains(&((*v).to_owned(), (*r).to_owned())))
    }
}

type Shared = Arc<Mutex<State>>;

/// A panicking test thread must not take every later request down with it.
fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running emulator. It serves until [`stop`](Emulator::stop)ped or dropped.
pub struct Emulator {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `127.0.0.1:0` and starts serving a cluster that has the namespaces
    /// `default`, `kube-system`, `kube-public` and `kube-node-lease`, and no nodes.
    pub async fn start() -> Emulator {
        Self::start_on("127.0.0.1:0").await
    }

    /// [`start`](Emulator::start) on a given address: a cluster that appears where a
    /// client was already told to look.
    pub async fn start_on(addr: &str) -> Emulator {
        let acceptor = TcpListener::bind(addr.to_owned())
            .into_acceptor()
            .await
            .expect("binding a loopback port for the emulator");
        let addr = *acceptor
            .local_addr()
            .first()
            .and_then(|a| a.0.as_socket_addr())
            .expect("a TCP acceptor has a socket address");
        let state = Shared::default();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let endpoint = http::endpoint(state.clone());
        let server = tokio::spawn(async move {
            let signal = async {
                let _ = stopped.await;
            };
            // The timeout closes kube-rs's pooled keep-alive connections.
            let _ = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(endpoint, signal, Some(Duration::from_millis(500)))
                .await;
        });
        Emulator {
            addr,
            state,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client pointed at the emulator (no TLS, no auth). Call it inside a Tokio
    /// runtime; it installs rustls's ring provider if none is installed yet.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a plain-HTTP kube client always builds")
    }

    /// The configuration [`client`](Emulator::client) uses, for a test that needs
    /// another (e.g. `default_retry: false`: kube 5 retries 429, 503 and 504 up to 15
    /// times with exponential backoff from 5 ms, minutes in all). Installs rustls's
    /// ring provider if none is installed yet.
    pub fn config(&self) -> kube::Config {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = self.url().parse().expect("the emulator URL is a valid URI");
        kube::Config::new(url)
    }

    /// The stored object, as stored (`apiVersion` as it was applied).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, _) = split_api_version(api_version);
        lock(&self.state)
            .cluster
            .object(&Key::new(group, kind, namespace, name))
    }

    /// Every stored object of a kind, across namespaces, ordered by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let (group, _) = split_api_version(api_version);
        lock(&self.state).cluster.objects_of(group, kind)
    }

    /// A hand edit, as `kubectl edit` would make it: an Update by the field manager
    /// [`EDIT_MANAGER`] (`kubectl-edit`), see [`update_as`](Emulator::update_as).
    /// Panics if there is no such object.
    pub fn edit(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        self.update_as(EDIT_MANAGER, api_version, kind, namespace, name, f);
    }

    /// A write by another party (a person, another controller) under field manager
    /// `manager`, operation `Update`: it takes ownership of every field it changes (a
    /// later non-forced apply of such a field by someone else is a 409), fields it
    /// removes lose their owners, the resource version (and on a spec change the
    /// generation) moves and the built-in controller reacts; an edited `status` is kept
    /// like [`set_status`](Emulator::set_status). Not validated. Panics if there is no
    /// such object.
    pub fn update_as(
        &self,
        manager: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let (group, _) = split_api_version(api_version);
        let key = Key::new(group, kind, namespace, name);
        assert!(
            lock(&self.state)
                .cluster
                .update_as(key, manager, api_version, f),
            "emulator update_as: no {api_version} {kind} {namespace:?}/{name}"
        );
    }

    /// A controller's status write between the agent's calls: sets `status` through the
    /// status subresource (an `Update` entry of manager `emulated-controller` with
    /// `subresource: status`), moves the resource version, never the spec or the
    /// generation. The built-in controller leaves the status alone until the next spec
    /// change. Panics if there is no such object.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) {
        let (group, _) = split_api_version(api_version);
        let key = Key::new(group, kind, namespace, name);
        assert!(
            lock(&self.state)
                .cluster
                .set_status(key, api_version, status),
            "emulator set_status: no {api_version} {kind} {namespace:?}/{name}"
        );
    }

    /// Like [`set_status`](Emulator::set_status), editing the current status in place.
    pub fn update_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut object = self
            .get(api_version, kind, namespace, name)
            .unwrap_or_else(|| {
                panic!("emulator update_status: no {api_version} {kind} {namespace:?}/{name}")
            });
        f(&mut object["status"]);
        self.set_status(api_version, kind, namespace, name, object["status"].take());
    }

    /// While on, the built-in controller writes a new status (an `emulatorHeartbeat`
    /// counter on top of the settled status) to every Deployment, StatefulSet,
    /// DaemonSet, Job, Pod, Namespace or CRD right after a client read (`GET`) or
    /// applied it: a busy controller writing between an agent's calls. Spec and
    /// generation never move.
    pub fn churn_status(&self, on: bool) {
        lock(&self.state).cluster.set_churn(on);
    }

    /// Removes one finalizer from an object, as the controller owning it would; an
    /// object being deleted disappears once its last finalizer is gone. Panics if there
    /// is no such object.
    pub fn remove_finalizer(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        finalizer: &str,
    ) {
        let (group, _) = split_api_version(api_version);
        let key = Key::new(group, kind, namespace, name);
        assert!(
            lock(&self.state).cluster.remove_finalizer(&key, finalizer),
            "emulator remove_finalizer: no {api_version} {kind} {namespace:?}/{name}"
        );
    }

    /// Emulates an operator: while the Deployment `namespace/deployment` exists and is
    /// not being deleted, `finalizer` is removed from every custom resource (an object
    /// of a kind some stored CRD defines) being deleted. Delete the Deployment first and
    /// those resources stay Terminating, as would their namespace and CRD.
    pub fn run_operator(&self, finalizer: &str, namespace: &str, deployment: &str) {
        lock(&self.state).cluster.add_operator(Operator {
            finalizer: finalizer.to_owned(),
            namespace: namespace.to_owned(),
            deployment: deployment.to_owned(),
        });
    }

    /// Makes one group version (`example.com/v1`) answer 503 Service Unavailable, for
    /// discovery and every request, as an aggregated API whose backend is down: the
    /// aggregator's plain-text `service unavailable`, which kube-rs turns into
    /// `Error::Api` with code 503 (after its default retries, see
    /// [`config`](Emulator::config)). `false` restores it. `/apis` still lists the group
    /// and aggregated discovery marks the version `Stale` without resources.
    pub fn set_unavailable(&self, api_version: &str, unavailable: bool) {
        let (group, version) = split_api_version(api_version);
        lock(&self.state)
            .cluster
            .catalog_mut()
            .set_unavailable(group, version, unavailable);
    }

    /// Every non-dry-run apply `PATCH` received, in order.
    pub fn applies(&self) -> Vec<ApplyRecord> {
        lock(&self.state).applies.clone()
    }

    /// Adds (or replaces) a Ready node whose capacity, all allocatable, is `cpu` and
    /// `memory` (quantities such as `"4"` and `"16Gi"`) and 110 pods.
    pub fn add_node(&self, name: &str, cpu: &str, memory: &str) {
        lock(&self.state).cluster.put_node(name, cpu, memory);
    }

    /// Answers `verb` (`get`, `list`, `create`, `patch`, `delete`, `watch`) on
    /// `resource` (a plural such as `nodes`, in any group) with 403 Forbidden from now
    /// on; either may be `*`. An apply is authorised as `patch`, and one that creates
    /// the object also as `create`, as upstream. Discovery is never forbidden.
    pub fn forbid(&self, verb: &str, resource: &str) {
        lock(&self.state)
            .forbidden
            .insert((verb.to_owned(), resource.to_owned()));
    }

    /// Undoes [`forbid`](Emulator::forbid) for exactly this pair.
    pub fn allow(&self, verb: &str, resource: &str) {
        lock(&self.state)
            .forbidden
            .remove(&(verb.to_owned(), resource.to_owned()));
    }

    /// Serves a kind as if some other party had installed it (no CRD object is created).
    pub fn register_kind(&self, api_version: &str, kind: &str, plural: &str, namespaced: bool) {
        let (group, version) = split_api_version(api_version);
        let served = ResourceType::new(group, version, kind, plural, namespaced);
        lock(&self.state).cluster.catalog_mut().register(served);
    }

    /// Stops serving a kind (built-in or not); stored objects of it stay but are
    /// unreachable over HTTP until it is served again.
    pub fn unregister_kind(&self, api_version: &str, kind: &str) {
        let (group, version) = split_api_version(api_version);
        lock(&self.state)
            .cluster
            .catalog_mut()
            .unregister(group, version, kind);
    }

    /// While held, CRDs applied from now on report `Established=False` and their kinds
    /// are not served; releasing establishes every held CRD at once.
    pub fn hold_crd_establishment(&self, hold: bool) {
        lock(&self.state).cluster.hold_crds(hold);
    }

    /// Stops serving and waits until the listener is closed; open connections get a
    /// short grace period.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Dropping cannot wait; the server task winds down on its own.
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
