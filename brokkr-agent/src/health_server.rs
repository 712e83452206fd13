//! The agent's own probes: `/healthz` (the process runs), `/readyz` (the key was
//! verified and a target state received, and polls still succeed), `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Route, get, handler, http::StatusCode};

use crate::agent::Readiness;
use crate::metrics::Metrics;

/// Polls older than this make the agent not ready (the broker has been unreachable for
/// several poll periods).
const STALE_POLL_SECS: i64 = 180;

#[derive(Clone)]
struct Probes {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
fn readyz(probes: Data<&Probes>) -> (StatusCode, &'static str) {
    let fresh = probes
        .metrics
        .seconds_since_poll()
        .is_some_and(|age| age <= STALE_POLL_SECS);
    if probes.readiness.is_ready() && fresh {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[handler]
fn prometheus(probes: Data<&Probes>) -> String {
    probes.metrics.render()
}

/// A bound probe server, not yet serving.
pub struct HealthServer {
    acceptor: poem::listener::TcpAcceptor,
    probes: Probes,
}

impl HealthServer {
    /// Binds `listen` (e.g. `127.0.0.1:9440`, or port 0 for any).
    pub async fn bind(
        listen: &str,
        metrics: Arc<Metrics>,
        readiness: Readiness,
    ) -> std::io::Result<Self> {
        let acceptor = TcpListener::bind(listen.to_owned()).into_acceptor().await?;
        Ok(Self {
            acceptor,
            probes: Probes { metrics, readiness },
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.acceptor
            .local_addr()
            .into_iter()
            .find_map(|addr| addr.as_socket_addr().copied())
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let app = Route::new()
            .at("/healthz", get(healthz))
            .at("/readyz", get(readyz))
            .at("/metrics", get(prometheus))
            .data(self.probes);
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown, None)
            .await
    }
}
