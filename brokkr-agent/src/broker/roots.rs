//! Certificate authorities the agent trusts for an `https://` broker beyond the
//! system's: a PEM bundle (`agent.ca_file`, `--ca-file`), for a broker whose
//! certificate comes from a private CA.
//!
//! They are added to the system's roots, not put in their place: a broker that moves
//! to a public certificate keeps working, and the bundle cannot weaken anything the
//! system already trusts (it can only add).

use std::path::{Path, PathBuf};

/// A CA bundle, parsed.
#[derive(Clone)]
pub struct CaBundle {
    path: PathBuf,
    certificates: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// Why a CA bundle cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    /// The file could not be read.
    #[error("cannot read the CA file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a PEM bundle of certificates.
    #[error("cannot parse the CA file {} as PEM certificates", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The file holds no certificate.
    #[error("the CA file {} holds no PEM certificate", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl CaBundle {
    /// Reads every `CERTIFICATE` block of the PEM file at `path`.
    pub fn read(path: &Path) -> Result<CaBundle, CaBundleError> {
        let pem = std::fs::read(path).map_err(|source| CaBundleError::Read {
            path: path.to_owned(),
            source,
        })?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| CaBundleError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if certificates.is_empty() {
            return Err(CaBundleError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(CaBundle {
            path: path.to_owned(),
            certificates,
        })
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Whether it holds none (never, once read).
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// Adds the bundle to a client's trusted roots, beside the system's.
    pub(super) fn trust(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.tls_certs_merge(self.certificates.iter().cloned())
    }
}
