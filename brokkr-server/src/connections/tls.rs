//! The TLS handshake of one connection, bounded in time: a client that connects and
//! never finishes it must not hold a connection (and a place under the cap) forever.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::Limits;

/// When a handshake begun at `started` must be done: the first request head's
/// deadline, which the handshake is part of (the head's clock starts with the
/// connection), or with no header-read limit, the idle timeout; `None` when neither
/// is set.
pub(super) fn handshake_deadline(limits: &Limits, started: Instant) -> Option<Instant> {
    limits
        .header_read_timeout
        .or(limits.idle_timeout)
        .map(|limit| started + limit)
}

/// The connection after a completed handshake; `None` (and the socket closed) when the
/// handshake failed or was not done by `deadline`.
pub(super) async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    deadline: Option<Instant>,
    remote: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let accepting = acceptor.accept(stream);
    let done = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, accepting).await {
            Ok(done) => done,
            Err(_) => {
                tracing::debug!(%remote, "closing a connection too slow to finish the TLS handshake");
                return None;
            }
        },
        None => accepting.await,
    };
    done.inspect_err(|err| tracing::debug!(%remote, error = %err, "TLS handshake failed"))
        .ok()
}
