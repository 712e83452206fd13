//! HTTPS: the certificate and key of `[server.tls]` made into a rustls
//! `ServerConfig` (ring, ALPN `h2` and `http/1.1`), and kept current when the files
//! are renewed ([`reload`]).
//!
//! The pair is read at start; a file that cannot be read or parsed, or a key that does
//! not match the certificate, fails the start with an error naming the file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

pub(crate) mod reload;

/// Why a certificate and key could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("cannot parse {} as PEM", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key block (PKCS#8, PKCS#1 or SEC1).
    #[error("{} holds no PEM private key", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair, e.g. a key that does not match the certificate.
    #[error("cannot serve the certificate {} with the key {}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The contents of both files, read once so that what is parsed is what was hashed.
pub(crate) struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Pair {
    /// Reads both files.
    pub(crate) fn read(files: &PairFiles) -> Result<Pair, TlsError> {
        Ok(Pair {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
        })
    }

    /// SHA-256 over both files, to tell a renewal from a rewrite of the same bytes
    /// without keeping a second copy of the key.
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update((self.cert.len() as u64).to_be_bytes());
        hash.update(&self.cert);
        hash.update(&self.key);
        hash.finalize().into()
    }

    /// The rustls configuration serving this pair.
    pub(crate) fn server_config(&self, files: &PairFiles) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Parse {
                path: files.cert.clone(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|source| match source {
            pem::Error::NoItemsFound => TlsError::NoKey {
                path: files.key.clone(),
            },
            source => TlsError::Parse {
                path: files.key.clone(),
                source,
            },
        })?;
        let rejected = |source| TlsError::Rejected {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        };
        // ring, whatever provider the process installed: one TLS backend everywhere.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(rejected)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}
