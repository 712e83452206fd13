//! Certificate authorities and server certificates made inside a test (rcgen, ring),
//! and a certificate and key on disk that a test can renew.
//!
//! Self-contained (rcgen, reqwest, tempfile), so that brokkr-agent's TLS test includes
//! this same file with `#[path]` rather than keeping a copy.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A certificate authority that exists only in this test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA with its own key, named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a self-signed CA");
        TestCa { issuer }
    }

    /// The CA's certificate, PEM: what a client trusts.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's certificate for a reqwest client.
    pub fn certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem().as_bytes()).expect("the CA certificate parses")
    }

    /// A server certificate for `localhost` and `127.0.0.1` signed by this CA, and its
    /// key, both PEM.
    pub fn server_pair(&self) -> (String, String) {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("valid names");
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("the CA signs the server certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A reqwest client that trusts this CA alone (not the system's roots).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([self.certificate()])
            .build()
            .expect("a client trusting the test CA")
    }
}

/// `tls.crt` and `tls.key` in a temporary directory.
pub struct PairOnDisk {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl PairOnDisk {
    /// The files, holding a fresh server pair signed by `ca`.
    pub fn signed_by(ca: &TestCa) -> PairOnDisk {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = PairOnDisk {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            _dir: dir,
        };
        let (cert, key) = ca.server_pair();
        files.replace(&cert, &key);
        files
    }

    /// Replaces both files the way renewal tools do: each written aside, then renamed
    /// over the old one, key first.
    pub fn replace(&self, cert: &str, key: &str) {
        for (path, text) in [(&self.key, key), (&self.cert, cert)] {
            let aside = path.with_extension("new");
            std::fs::write(&aside, text).expect("write the renewed file");
            std::fs::rename(&aside, path).expect("rename it into place");
        }
    }
}
