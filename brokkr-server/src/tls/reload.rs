//! Picking up a renewed certificate without a restart.
//!
//! Every period the files' modification times and sizes are compared with those seen
//! last. When they changed, the files are read; if their SHA-256 differs from the
//! pair being served, a new `ServerConfig` is built and handed to the connection loop,
//! which gives it to every connection accepted from then on (open connections keep
//! the one they were accepted with). A renewed pair that does not load (half written,
//! a key that does not match) is logged once and the previous pair kept; it is tried
//! again when the files change again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{Pair, PairFiles, TlsError};
use crate::error::ErrorChain;

/// The TLS configuration of new connections, as the connection loop reads it.
#[derive(Clone)]
pub(crate) struct Acceptors(watch::Receiver<Arc<ServerConfig>>);

impl Acceptors {
    /// An acceptor with the pair served now.
    pub(crate) fn current(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.0.borrow()))
    }
}

/// A loaded pair and how to notice its renewal: built at start, run while serving.
pub(crate) struct Reloader {
    files: PairFiles,
    period: Option<Duration>,
    seen: Stamps,
    served: [u8; 32],
    configs: watch::Sender<Arc<ServerConfig>>,
}

/// What a file's metadata says about its content, cheaply; `None` when it cannot be
/// read (a renewal replacing it, say).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamps {
    cert: Option<(SystemTime, u64)>,
    key: Option<(SystemTime, u64)>,
}

impl Stamps {
    fn of(files: &PairFiles) -> Stamps {
        let stamp = |path: &std::path::Path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        };
        Stamps {
            cert: stamp(&files.cert),
            key: stamp(&files.key),
        }
    }
}

impl Reloader {
    /// Loads the pair (an error names the file); `period` is how often to look for a
    /// renewal, `None` never.
    pub(crate) fn load(files: PairFiles, period: Option<Duration>) -> Result<Self, TlsError> {
        // Stamps first: a renewal landing between the two is then seen as a change.
        let seen = Stamps::of(&files);
        let pair = Pair::read(&files)?;
        let config = pair.server_config(&files)?;
        let (configs, _) = watch::channel(config);
        Ok(Reloader {
            served: pair.digest(),
            files,
            period,
            seen,
            configs,
        })
    }

    /// Where the connection loop takes each connection's configuration from.
    pub(crate) fn acceptors(&self) -> Acceptors {
        Acceptors(self.configs.subscribe())
    }

    /// Looks for renewals every period until every [`Acceptors`] is gone.
    pub(crate) async fn run(mut self) {
        let Some(period) = self.period else {
            return;
        };
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.configs.closed() => return,
            }
            // Reading and parsing a few kilobytes: not worth a blocking thread.
            self.check();
        }
    }

    /// One look at the files.
    fn check(&mut self) {
        let stamps = Stamps::of(&self.files);
        if stamps == self.seen {
            return;
        }
        self.seen = stamps;
        let loaded = Pair::read(&self.files).and_then(|pair| {
            let digest = pair.digest();
            if digest == self.served {
                return Ok(None);
            }
            Ok(Some((digest, pair.server_config(&self.files)?)))
        });
        match loaded {
            Ok(None) => {}
            Ok(Some((digest, config))) => {
                self.served = digest;
                self.configs.send_replace(config);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded; new connections use it"
                );
            }
            Err(err) => tracing::error!(
                error = %ErrorChain(&err),
                "the renewed TLS certificate or key cannot be used; still serving the previous one"
            ),
        }
    }
}
