//! `brokkr-agent start` as a library function: from a [`Config`] to a running agent
//! for one cluster, until a shutdown signal.
//!
//! The probes listen first, so that `/healthz` answers while the rest waits. The
//! cluster's API is then reached with the same capped exponential backoff as the
//! broker: an API server that is down or not reachable yet (a network policy, a
//! control plane upgrading) is logged at every attempt with its URL and retried,
//! never a reason to exit. Only what retrying cannot fix ends the start: no usable
//! kubeconfig, an unreadable CA file, a port already taken.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use brokkr_core::runtime::ErrorChain;
use tokio::sync::watch;

use crate::agent::{Agent, AgentError, Readiness};
use crate::broker::{BrokerClients, BrokerError, CaBundle, CaBundleError};
use crate::capabilities::KubeCapabilities;
use crate::config::{AgentSection, Config};
use crate::health_server::HealthServer;
use crate::kube_applier::{KubeApplier, KubeApplierOptions};
use crate::metrics::Metrics;
use crate::reconcile::backoff;

/// Why the agent could not start, or stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The kubeconfig (or the in-cluster configuration) cannot be used.
    #[error("cannot configure the Kubernetes client")]
    Kubeconfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `agent.ca_file` cannot be used.
    #[error("cannot use agent.ca_file")]
    CaFile(#[source] CaBundleError),
    /// The broker client cannot be built.
    #[error("cannot build the broker client")]
    Broker(#[source] BrokerError),
    /// The probes cannot listen on `agent.health_listen`.
    #[error("cannot serve the probes on {listen}")]
    Probes {
        /// The address.
        listen: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent stopped on its own.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// Runs the agent that `config` describes until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let agent_config = config.agent;
    let roots = agent_config
        .ca_file
        .as_deref()
        .map(CaBundle::read)
        .transpose()
        .map_err(StartError::CaFile)?;
    if let Some(roots) = &roots {
        tracing::info!(ca_file = ?agent_config.ca_file, certificates = roots.len(), "trusting the CA file besides the system's roots");
    }
    let broker = BrokerClients::with_roots(&agent_config.broker_url, roots.as_ref())
        .map_err(StartError::Broker)?
        .client(agent_config.pak.clone());
    let kube_config = kube_config(agent_config.kubeconfig.as_deref()).await?;
    let cluster_url = kube_config.cluster_url.to_string();
    let client =
        kube::Client::try_from(kube_config).map_err(|err| StartError::Kubeconfig(Box::new(err)))?;

    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    let listen = agent_config.health_listen.clone();
    let probes = HealthServer::bind(&listen, Arc::clone(&metrics), readiness.clone())
        .await
        .map_err(|source| StartError::Probes {
            listen: listen.clone(),
            source,
        })?;
    tracing::info!(listen = ?probes.local_addr(), "probes listening");
    let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
    let probes = tokio::spawn(probes.run(async {
        let _ = probes_stopped.await;
    }));

    let (stop, mut stopped) = watch::channel(false);
    let work = async {
        let options = applier_options(&agent_config);
        let Some(applier) =
            connect_cluster(&client, &options, &cluster_url, &agent_config, &mut stopped).await
        else {
            return Ok(());
        };
        let agent = Agent::new(
            agent_config,
            broker,
            Arc::new(applier),
            Arc::new(KubeCapabilities(client)),
        )
        .with_probes(metrics, readiness);
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        agent.run(shutdown).await.map_err(StartError::from)
    };
    tokio::pin!(work);
    let result = tokio::select! {
        result = &mut work => result,
        // Stopping waits for the work, which the agent's grace period bounds.
        () = shutdown => {
            stop.send_replace(true);
            work.await
        }
    };
    let _ = stop_probes.send(());
    let _ = probes.await;
    result
}

/// The kube client's configuration: the kubeconfig at `path`, or the usual places
/// (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account).
async fn kube_config(path: Option<&Path>) -> Result<kube::Config, StartError> {
    let boxed = |err: Box<dyn std::error::Error + Send + Sync>| StartError::Kubeconfig(err);
    match path {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|err| boxed(Box::new(err)))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|err| boxed(Box::new(err)))
        }
        None => kube::Config::infer()
            .await
            .map_err(|err| boxed(Box::new(err))),
    }
}

fn applier_options(agent: &AgentSection) -> KubeApplierOptions {
    let secs = Duration::from_secs;
    KubeApplierOptions {
        inventory_namespace: agent.inventory_namespace.clone(),
        default_namespace: agent.default_namespace.clone(),
        crd_established_timeout: secs(agent.crd_established_timeout_secs),
        ensure_inventory_namespace: agent.ensure_inventory_namespace,
        deletion_timeout: secs(agent.deletion_timeout_secs),
        discovery_ttl: secs(agent.discovery_ttl_secs),
        discovery_timeout: secs(agent.discovery_timeout_secs),
    }
}

/// The applier, once the cluster's API answers discovery; retried with backoff
/// (logged with the URL at every attempt) until then. `None` if stopped meanwhile.
async fn connect_cluster(
    client: &kube::Client,
    options: &KubeApplierOptions,
    cluster_url: &str,
    agent: &AgentSection,
    stop: &mut watch::Receiver<bool>,
) -> Option<KubeApplier> {
    let mut attempts = 0;
    loop {
        let connecting = KubeApplier::new(client.clone(), options.clone());
        let result = tokio::select! {
            result = connecting => result,
            _ = stop.wait_for(|stop| *stop) => return None,
        };
        match result {
            Ok(applier) => {
                if attempts > 0 {
                    tracing::info!(cluster = cluster_url, attempts, "cluster API reachable");
                }
                return Some(applier);
            }
            Err(err) => {
                attempts += 1;
                let pause = backoff(attempts, agent.max_backoff());
                tracing::warn!(
                    cluster = cluster_url,
                    attempt = attempts,
                    retry_in = ?pause,
                    error = %ErrorChain(&err),
                    "cluster API unreachable; retrying"
                );
                let sleep = tokio::time::sleep(pause);
                tokio::select! {
                    () = sleep => {}
                    _ = stop.wait_for(|stop| *stop) => return None,
                }
            }
        }
    }
}
