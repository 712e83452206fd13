//! The connection loop: accepts TCP connections and serves each with hyper on a task
//! of its own until shutdown, then gives open connections the grace period to finish
//! the requests they are answering.
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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long the loop pauses after an accept error that is not about one connection
/// (out of file descriptors, say), so that it does not spin while the cause lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, asks
/// every connection to close after its current request, and waits up to `grace` for
/// them. Accept errors are logged and never end the loop.
pub(crate) async fn serve<E>(
    listener: TcpListener,
    app: E,
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
    // Every connection holds a receiver: the sender sees them all close.
    let (stopping, stop_seen) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                let connection = Connection {
                    app: app.clone(),
                    local: local.clone(),
                    remote,
                };
                tokio::spawn(connection.serve(stream, builder.clone(), stop_seen.clone()));
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
    drop(stop_seen);
    stopping.send_replace(true);
    let open = stopping.receiver_count();
    if open > 0 {
        tracing::info!(open, ?grace, "waiting for open connections to finish");
    }
    if tokio::time::timeout(grace, stopping.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = stopping.receiver_count(),
            "connections still open after the grace period; closing them"
        );
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
}

impl<E: Endpoint<Output = Response> + 'static> Connection<E> {
    async fn serve(
        self,
        stream: TcpStream,
        builder: Arc<auto::Builder<TokioExecutor>>,
        mut stopping: watch::Receiver<bool>,
    ) {
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        let remote = self.remote;
        let requests = Arc::new(self);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let requests = requests.clone();
            async move { Ok::<_, Infallible>(requests.answer(req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!(%remote, error = %err, "connection ended with an error");
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop) => {}
        }
        conn.as_mut().graceful_shutdown();
        if let Err(err) = conn.await {
            tracing::debug!(%remote, error = %err, "connection ended with an error");
        }
    }

    async fn answer(
        &self,
        req: hyper::Request<Incoming>,
    ) -> hyper::Response<BoxBody<Bytes, io::Error>> {
        let remote = RemoteAddr(Addr::SocketAddr(self.remote));
        let req = poem::Request::from((req, self.local.clone(), remote, Scheme::HTTP));
        self.app.get_response(req).await.into()
    }
}
