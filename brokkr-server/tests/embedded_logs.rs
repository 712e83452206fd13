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

/// The control plane's background tasks log through the same scoped subscriber: here
/// the placement controller, recording the decision of a policy stored before the
/// server started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_placement_controller_logs_through_the_embedders_scoped_subscriber() {
    use brokkr_core::{Actor, Heartbeat, NewStack, Pak, PlacementPolicy, Store};

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();

    async {
        let store = Arc::new(MemoryStore::new());
        let agent = store
            .create_agent(
                &Actor::Admin,
                brokkr_core::testing::conformance::new_agent("a", "c", &Pak::generate()),
            )
            .await
            .unwrap();
        store
            .record_heartbeats(&[Heartbeat {
                agent_id: agent.id,
                at: chrono::Utc::now(),
                capabilities: None,
            }])
            .await
            .unwrap();
        let stack = store
            .create_stack(
                &Actor::Admin,
                NewStack {
                    name: "s".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        store
            .set_placement_policy(&Actor::Admin, stack.id, Some(PlacementPolicy::default()))
            .await
            .unwrap();

        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        let server = Server::bind_with_store(store.clone(), config, Default::default())
            .await
            .expect("binds on loopback");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(
            server
                .run(async {
                    let _ = stopped.await;
                })
                .with_current_subscriber(),
        );
        // The controller's first run decides the stack.
        let decided = async {
            loop {
                let placement = store.get_placement(stack.id).await.unwrap().unwrap();
                if placement.decision.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), decided)
            .await
            .expect("the placement controller decides the stack");
        let _ = stop.send(());
        serving.await.unwrap().expect("stops cleanly");
    }
    .with_subscriber(subscriber)
    .await;

    let text = logs.text();
    assert!(
        text.contains("placement decision changed"),
        "the controller's decision was not logged through the scoped subscriber:\n{text}"
    );
}
