//! The connection loop: accepts TCP connections and serves each with hyper on a task
//! of its own until shutdown, then gives open connections the grace period to finish
//! the requests they are answering.
//!
//! Slow or idle clients cannot hold the server ([`Limits`], `[server]` in the
//! configuration): a connection beyond `max_connections` is answered 503 with
//! `Retry-After` and closed; a connection whose request head takes longer than
//! `header_read_timeout_secs` (counted from its first byte, or from the connection's
//! start) is dropped; a connection with no request in flight and nothing received for
//! `idle_timeout_secs` is closed ([`activity`] tells which is which).
//!
//! With `[server.tls]`, each connection first completes a TLS handshake ([`tls`]) on
//! its own task, holding its place under `max_connections`, within the time its first
//! request head is allowed: a client that connects and never finishes the handshake
//! is dropped like one that never sends a head. A connection over the cap is closed
//! without an answer then (a 503 would need a handshake first).
//!
//! poem's own server fixes hyper's settings; owning the loop lets the server choose
//! them. HTTP/1 connections allow half-closed reads, so hyper does not read from a
//! connection while one of its requests is being answered. That read is how hyper
//! would notice a client leaving mid-request, and it costs every parked long poll a
//! second read buffer (8 KiB at 10,000 agents is 80 MiB). A client that left is
//! noticed instead when its answer is written: for a long poll at most
//! `agents.long_poll_max_secs` later, when the wait ends anyway.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::tls::reload::Acceptors;
use activity::{Activity, Check, Watched};

mod activity;
mod tls;

/// What the loop enforces on connections; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub header_read_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
}

/// Where the server is in its life, as every connection task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in flight, then close.
    Stopping,
    /// The grace period is over: close now.
    Closing,
}

/// How long the loop pauses after an accept error that is not about one connection
/// (out of file descriptors, say), so that it does not spin while the cause lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` within `limits`, over TLS when `tls` is given, until
/// `shutdown` completes; then stops accepting, asks every connection to close after its
/// current request, and waits up to `grace` for them. Accept errors are logged and
/// never end the loop.
pub(crate) async fn serve<E>(
    listener: TcpListener,
    app: E,
    limits: Limits,
    tls: Option<Acceptors>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let local = listener
        .local_addr()
        .map(|addr| LocalAddr(Addr::SocketAddr(addr)))
        .unwrap_or_default();
    let app = Arc::new(app);
    let builder = Arc::new(builder());
    let slots = limits
        .max_connections
        .map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
    let mut refusals = Refusals::new();
    // Every connection holds a receiver: the sender sees them all close.
    let (phase, phase_seen) = watch::channel(Phase::Serving);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                let slot = match &slots {
                    Some(slots) => match slots.clone().try_acquire_owned() {
                        Ok(slot) => Some(slot),
                        Err(_) => {
                            refusals.refuse(stream, remote, tls.is_none());
                            continue;
                        }
                    },
                    None => None,
                };
                let connection = Connection {
                    app: app.clone(),
                    local: local.clone(),
                    remote,
                    activity: Arc::new(Activity::new()),
                    limits,
                    scheme: if tls.is_some() {
                        Scheme::HTTPS
                    } else {
                        Scheme::HTTP
                    },
                };
                let phase = phase_seen.clone();
                let acceptor = tls.as_ref().map(Acceptors::current);
                tokio::spawn(connection.serve(stream, acceptor, builder.clone(), phase, slot));
            }
            Err(err) if is_about_one_connection(&err) => {
                tracing::debug!(error = %err, "a connection failed before it was accepted");
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept connections; retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    drop(listener);
    drop(phase_seen);
    phase.send_replace(Phase::Stopping);
    let open = phase.receiver_count();
    if open > 0 {
        tracing::info!(open, ?grace, "waiting for open connections to finish");
    }
    if tokio::time::timeout(grace, phase.closed()).await.is_err() {
        tracing::warn!(
            open = phase.receiver_count(),
            "connections still open after the grace period; closing them"
        );
        phase.send_replace(Phase::Closing);
        phase.closed().await;
    }
}

/// hyper's settings: HTTP/1 (with half-closed reads, see the module documentation)
/// and HTTP/2 with prior knowledge, as poem's server served.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().half_close(true);
    builder
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_about_one_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// One accepted connection and what its requests need.
struct Connection<E> {
    app: Arc<E>,
    local: LocalAddr,
    remote: SocketAddr,
    activity: Arc<Activity>,
    limits: Limits,
    scheme: Scheme,
}

impl<E: Endpoint<Output = Response> + 'static> Connection<E> {
    /// Serves the connection, after a TLS handshake with `acceptor` if given, until it
    /// ends, is closed for its limits, or the server stops; `slot` is its place under
    /// `max_connections`, freed when it closes.
    async fn serve(
        self,
        stream: TcpStream,
        acceptor: Option<TlsAcceptor>,
        builder: Arc<auto::Builder<TokioExecutor>>,
        phase: watch::Receiver<Phase>,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        let _slot = slot;
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        match acceptor {
            None => self.serve_http(stream, &builder, phase).await,
            // Boxed: a task is as large as its largest branch, and the TLS branch holds
            // the TLS session inline; unboxed, every plain connection (a parked agent)
            // would carry that size too.
            Some(acceptor) => Box::pin(self.serve_tls(stream, acceptor, &builder, phase)).await,
        }
    }

    /// The TLS handshake, bounded like a first request head, then HTTP over it.
    async fn serve_tls(
        self,
        stream: TcpStream,
        acceptor: TlsAcceptor,
        builder: &auto::Builder<TokioExecutor>,
        mut phase: watch::Receiver<Phase>,
    ) {
        let deadline = tls::handshake_deadline(&self.limits, self.activity.started());
        let handshake = tls::handshake(acceptor, stream, deadline, self.remote);
        let stream = tokio::select! {
            stream = handshake => stream,
            _ = phase.wait_for(|phase| *phase != Phase::Serving) => None,
        };
        if let Some(stream) = stream {
            self.serve_http(stream, builder, phase).await;
        }
    }

    /// Serves HTTP on `stream` (plain TCP, or TLS after its handshake).
    async fn serve_http<S>(
        self,
        stream: S,
        builder: &auto::Builder<TokioExecutor>,
        mut phase: watch::Receiver<Phase>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote = self.remote;
        let limits = self.limits;
        let activity = self.activity.clone();
        let requests = Arc::new(self);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let requests = requests.clone();
            async move {
                let _in_flight = requests.activity.request();
                Ok::<_, Infallible>(requests.answer(req).await)
            }
        });
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let conn = builder.serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut next_check = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(err) = ended {
                        tracing::debug!(%remote, error = %err, "connection ended with an error");
                    }
                    return;
                }
                _ = phase.wait_for(|phase| *phase != Phase::Serving) => break,
                () = activity.head_began() => {}
                () = next_check.as_mut() => {}
            }
            match activity.check(&limits, tokio::time::Instant::now()) {
                Check::Keep(Some(at)) => next_check.as_mut().reset(at),
                Check::Keep(None) => next_check.as_mut().reset(far_future()),
                Check::SlowHead => {
                    tracing::debug!(%remote, "closing a connection too slow to send a request head");
                    return;
                }
                Check::Idle => {
                    tracing::debug!(%remote, "closing an idle connection");
                    break;
                }
            }
        }
        // Closes at once when idle, after the answer in flight otherwise.
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!(%remote, error = %err, "connection ended with an error");
                }
            }
            _ = phase.wait_for(|phase| *phase == Phase::Closing) => {}
        }
    }

    async fn answer(
        &self,
        req: hyper::Request<Incoming>,
    ) -> hyper::Response<BoxBody<Bytes, io::Error>> {
        let remote = RemoteAddr(Addr::SocketAddr(self.remote));
        let req = poem::Request::from((req, self.local.clone(), remote, self.scheme.clone()));
        self.app.get_response(req).await.into()
    }
}

/// An instant no check waits for in practice (a year from now).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// Connections refused for `max_connections`: each gets a 503 it can act on, and the
/// log says so at most once a second.
struct Refusals {
    answer: Vec<u8>,
    since_logged: u64,
    logged_at: Option<std::time::Instant>,
}

impl Refusals {
    fn new() -> Self {
        Self {
            answer: too_many_connections(),
            since_logged: 0,
            logged_at: None,
        }
    }

    /// Closes `stream`, answering 503 first if it speaks `plain` HTTP.
    fn refuse(&mut self, stream: TcpStream, remote: SocketAddr, plain: bool) {
        if plain {
            // The socket's send buffer is empty: the answer fits without waiting.
            let _ = stream.try_write(&self.answer);
        }
        self.since_logged += 1;
        let now = std::time::Instant::now();
        if self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            tracing::warn!(
                %remote,
                refused = self.since_logged,
                "refusing connections: server.max_connections are open"
            );
            self.since_logged = 0;
            self.logged_at = Some(now);
        }
    }
}

/// The whole answer to a connection over the limit.
fn too_many_connections() -> Vec<u8> {
    let body = serde_json::to_vec(&crate::error::ErrorBody {
        code: "unavailable".into(),
        message: "the server has too many open connections; retry later".into(),
        details: None,
    })
    .unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}
