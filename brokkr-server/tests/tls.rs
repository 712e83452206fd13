//! HTTPS over a real socket, through `Server::run`: a certificate signed by a CA made
//! in the test, clients that trust it or not, a renewal picked up without a restart
//! (and a broken one refused), handshakes that never finish, and start-up errors that
//! name the file.

mod common;
#[path = "common/test_ca.rs"]
mod test_ca;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use brokkr_server::config::{Config, TlsSection};
use brokkr_server::serve::{ServeError, Server};
use common::{Backend, install_crypto, test_config, test_generators};
use test_ca::{PairOnDisk, TestCa};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A server on 127.0.0.1:0 serving `files`; stops when dropped.
struct TlsServer {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _store: common::StoreGuard,
}

impl TlsServer {
    async fn start(files: &PairOnDisk, tweak: impl FnOnce(&mut Config)) -> TlsServer {
        let mut config = tls_config(&files.cert, &files.key);
        tweak(&mut config);
        let (store, guard) = common::store(Backend::Sqlite).await.expect("SQLite");
        let server = Server::bind_with_store(store, config, test_generators())
            .await
            .expect("the server starts with a valid pair");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TlsServer {
            addr,
            _stop: stop,
            _store: guard,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
}

fn tls_config(cert: &Path, key: &Path) -> Config {
    install_crypto();
    let mut config = test_config();
    config.server.listen = "127.0.0.1:0".into();
    config.server.tls = Some(TlsSection {
        cert_file: cert.to_owned(),
        key_file: key.to_owned(),
        reload_secs: 1,
    });
    config
}

/// Whether a new connection from a client trusting only `ca` gets 200 on `/healthz`.
async fn trusted_by(ca: &TestCa, server: &TlsServer) -> bool {
    match ca.client().get(server.url("/healthz")).send().await {
        Ok(response) => response.status() == 200,
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_answers_over_h2_and_others_are_refused() {
    let ca = TestCa::new("brokkr test CA");
    let files = PairOnDisk::signed_by(&ca);
    let server = TlsServer::start(&files, |_| {}).await;

    let response = ca
        .client()
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("a client trusting the CA connects");
    assert_eq!(response.status(), 200);
    // ALPN offered h2 and the client took it.
    assert_eq!(response.version(), reqwest::Version::HTTP_2);

    let http1 = reqwest::Client::builder()
        .tls_certs_only([ca.certificate()])
        .http1_only()
        .build()
        .unwrap();
    let response = http1.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);

    let stranger = TestCa::new("someone else's CA");
    assert!(!trusted_by(&stranger, &server).await);
    // The system's roots do not know the test CA either.
    let system_roots = reqwest::Client::new();
    let refused = system_roots
        .get(server.url("/healthz"))
        .send()
        .await
        .expect_err("an unknown CA is refused");
    assert!(refused.is_connect(), "{refused:?}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::get(format!("http://{}/healthz", server.addr)).await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn a_renewed_pair_serves_new_connections_and_a_broken_one_is_ignored() {
    let first = TestCa::new("first CA");
    let files = PairOnDisk::signed_by(&first);
    let server = TlsServer::start(&files, |_| {}).await;
    assert!(trusted_by(&first, &server).await);

    // A key that is not PEM: logged, and the first pair stays.
    let (cert, _) = first.server_pair();
    files.replace(&cert, "not a key");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(trusted_by(&first, &server).await, "the old pair is kept");

    let second = TestCa::new("second CA");
    let (cert, key) = second.server_pair();
    files.replace(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trusted_by(&second, &server).await {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !trusted_by(&first, &server).await,
        "new connections use the new pair"
    );
}

/// Reads until the server closes the connection; how long that took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {within:?}"),
        }
    }
}

#[tokio::test]
async fn a_handshake_that_never_ends_is_dropped_and_holds_its_place_until_then() {
    let ca = TestCa::new("brokkr test CA");
    let files = PairOnDisk::signed_by(&ca);
    let server = TlsServer::start(&files, |config| {
        config.server.header_read_timeout_secs = 1;
        config.server.max_connections = 1;
    })
    .await;

    // Connects, never says hello: the only place is taken.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Over the cap: closed without an answer (a 503 would need a handshake).
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    let closed_after = closed_within(&mut over, Duration::from_millis(500)).await;
    assert!(closed_after < Duration::from_millis(500));
    assert!(
        !trusted_by(&ca, &server).await,
        "the cap holds during a handshake"
    );

    // The header-read timeout ends the handshake.
    let waited = closed_within(&mut silent, Duration::from_secs(3)).await;
    assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
    assert!(trusted_by(&ca, &server).await, "the place is free again");
}

async fn start_error(config: Config) -> String {
    let (store, _guard) = common::store(Backend::Sqlite).await.expect("SQLite");
    let err = match Server::bind_with_store(store, config, test_generators()).await {
        Ok(_) => panic!("the server started"),
        Err(err) => err,
    };
    assert!(matches!(err, ServeError::Tls(_)), "{err:?}");
    brokkr_server::error::ErrorChain(&err).to_string()
}

#[tokio::test]
async fn start_fails_naming_the_file_that_cannot_be_used() {
    let ca = TestCa::new("brokkr test CA");
    let files = PairOnDisk::signed_by(&ca);
    let missing = files.cert.with_file_name("missing.crt");

    let text = start_error(tls_config(&missing, &files.key)).await;
    assert!(text.contains("missing.crt"), "{text}");

    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nnot base64\n").unwrap();
    let text = start_error(tls_config(&files.cert, &files.key)).await;
    assert!(text.contains("tls.key"), "{text}");

    std::fs::write(&files.key, "no PEM at all").unwrap();
    let text = start_error(tls_config(&files.cert, &files.key)).await;
    assert!(
        text.contains("tls.key") && text.contains("no PEM private key"),
        "{text}"
    );

    // A key of another certificate.
    let (_, other_key) = ca.server_pair();
    std::fs::write(&files.key, other_key).unwrap();
    let text = start_error(tls_config(&files.cert, &files.key)).await;
    assert!(
        text.contains("tls.crt") && text.contains("tls.key"),
        "{text}"
    );

    std::fs::write(&files.cert, "").unwrap();
    let text = start_error(tls_config(&files.cert, &files.key)).await;
    assert!(
        text.contains("tls.crt") && text.contains("no PEM certificate"),
        "{text}"
    );
}
