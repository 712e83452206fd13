//! Connection hygiene over a real socket, through `Server::run`: slow and idle clients
//! are closed, a waiting long poll is not, and connections beyond the cap get a 503
//! they can act on.

mod common;

use std::time::{Duration, Instant};

use brokkr_server::config::Config;
use common::{Backend, Mode, Req, TestApp, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(header_read_timeout_secs: u64, idle_timeout_secs: u64, max_connections: usize) -> Config {
    let mut config = test_config();
    config.server.header_read_timeout_secs = header_read_timeout_secs;
    config.server.idle_timeout_secs = idle_timeout_secs;
    config.server.max_connections = max_connections;
    config
}

async fn start(config: Config) -> (TestApp, String) {
    let app = TestApp::start_with(Backend::Sqlite, Mode::Socket, config)
        .await
        .expect("sqlite");
    let common::Transport::Socket { base, .. } = &app.replica.transport else {
        unreachable!("a socket replica");
    };
    let addr = base.trim_start_matches("http://").to_owned();
    (app, addr)
}

/// Reads until the server closes the connection (or `within` passes); returns what
/// arrived and when the close came.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {within:?}; received:\n{}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

fn healthz(addr: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n")
}

#[tokio::test]
async fn a_client_sending_its_head_slowly_is_dropped() {
    let (app, addr) = start(config(1, 60, 0)).await;
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let request = healthz(&addr);
    let trickle = async {
        for byte in request.as_bytes().iter().take(request.len() - 2) {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The head would take about 3.5 s; the limit is 1 s.
    let started = Instant::now();
    trickle.await;
    let cut_after = started.elapsed();
    let (received, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        received.is_empty(),
        "no answer to a partial head: {received}"
    );
    assert!(
        cut_after < Duration::from_millis(2500),
        "the server closed the connection before the head was complete, not after {cut_after:?}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_header_read_timeout() {
    let (app, addr) = start(config(1, 60, 0)).await;
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let (received, took) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.is_empty());
    assert!(
        took >= Duration::from_millis(900),
        "not closed before the timeout: {took:?}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let (app, addr) = start(config(30, 1, 0)).await;
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream
        .write_all(healthz(&addr).as_bytes())
        .await
        .expect("send");
    let (received, took) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(
        took >= Duration::from_millis(900),
        "kept alive until the idle timeout: {took:?}"
    );

    // A long poll waits three times the idle timeout and is answered, not closed.
    let path = format!("/api/v1/agents/{}/target-state", app.world.agent);
    let first = app.get(&path, &app.world.agent_key).await;
    let etag = first.header("etag").expect("etag").to_owned();
    let poll = Req::new("GET", format!("{path}?wait=3"))
        .key(&app.world.agent_key)
        .header("if-none-match", &etag);
    let started = Instant::now();
    app.send(poll).await.expect(304);
    assert!(started.elapsed() >= Duration::from_millis(2900));
    app.teardown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_503_with_retry_after() {
    let (app, addr) = start(config(30, 60, 2)).await;
    let first = TcpStream::connect(&addr).await.expect("connect");
    let _second = TcpStream::connect(&addr).await.expect("connect");
    // Both are accepted before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&addr).await.expect("connect");
    let (received, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(
        received.starts_with("HTTP/1.1 503") && received.contains("retry-after: 1"),
        "{received}"
    );
    assert!(received.contains("\"code\":\"unavailable\""), "{received}");

    // A closed connection frees its place.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(&addr).await.expect("connect");
    fourth
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let (received, _) = read_until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    app.teardown().await;
}

/// At shutdown a request still in flight when the grace period ends is cut off: its
/// connection is closed then, not left to the runtime.
#[tokio::test]
async fn a_request_outlasting_the_shutdown_grace_is_cut_off() {
    let (store, guard) = common::store(Backend::Sqlite).await.expect("sqlite");
    let world = common::seed(store.as_ref()).await;
    let mut config = config(30, 60, 0);
    config.server.shutdown_grace_secs = 1;
    let replica = common::Replica::start(store, config, Mode::Socket).await;
    let common::Transport::Socket { base, .. } = &replica.transport else {
        unreachable!("a socket replica");
    };
    let addr = base.trim_start_matches("http://").to_owned();

    // A body announced as 1,000 bytes of which 10 arrive: the request stays in flight.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/stacks HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"name\": \"",
        world.admin_key
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let stopping = tokio::spawn(replica.stop());
    let (_, took) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(4),
        "closed when the 1 s grace ended, not {took:?} later"
    );
    stopping.await.expect("the replica stops");
    assert!(started.elapsed() < Duration::from_secs(5));
    common::teardown_guard(guard).await;
}
