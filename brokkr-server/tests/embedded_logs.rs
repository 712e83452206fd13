//! An embedded server logs through the embedder's tracing subscriber, even one set only
//! for the embedder's own scope rather than globally: poem serves each connection on a
//! task of its own, and the app carries the subscriber into every request.

use std::io::Write;
use std::sync::{Arc, Mutex};

use brokkr_core::testing::MemoryStore;
use brokkr_server::config::Config;
use brokkr_server::serve::Server;
use tracing::instrument::WithSubscriber;

/// Log lines written by the subscriber under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_server_logs_through_the_embedders_scoped_subscriber() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();

    async {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        let server =
            Server::bind_with_store(Arc::new(MemoryStore::new()), config, Default::default())
                .await
                .expect("binds on loopback");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(
            server
                .run(async {
                    let _ = stopped.await;
                })
                .with_current_subscriber(),
        );
        let answer = reqwest::Client::new()
            .get(format!("http://{addr}/api/v1/stacks"))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(answer.status(), 401);
        let _ = stop.send(());
        serving.await.unwrap().expect("stops cleanly");
    }
    .with_subscriber(subscriber)
    .await;

    let text = logs.text();
    assert!(text.contains("listening"), "no start-up line in:\n{text}");
    assert!(
        text.contains("route=\"/api/v1/stacks\"") || text.contains("/api/v1/stacks"),
        "the request was not logged through the scoped subscriber:\n{text}"
    );
    assert!(text.contains("stopped"), "no shutdown line in:\n{text}");
}
