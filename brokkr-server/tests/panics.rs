//! A panic while answering a request is a 500 for that request alone: the server, the
//! connection's other requests and every other client carry on. The panic comes from
//! an embedder's code on the request path, here a placement whose policy check panics.

mod common;

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::placement::PolicyError;
use brokkr_core::runtime::ControlPlane;
use brokkr_core::{Placement, PlacementDecision, PlacementInput, PlacementPolicy};
use brokkr_server::serve::Server;
use common::{Backend, test_config};
use serde_json::{Value, json};

struct Panicking;

impl Placement for Panicking {
    fn place(&self, _input: &PlacementInput<'_>) -> PlacementDecision {
        PlacementDecision::default()
    }

    fn validate(&self, _policy: &PlacementPolicy) -> Result<(), PolicyError> {
        panic!("a bug in a custom placement");
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_carries_on() {
    common::install_crypto();
    let (store, guard) = common::store(Backend::Sqlite).await.expect("sqlite");
    let world = common::seed(store.as_ref()).await;
    let control_plane = ControlPlane::builder(store)
        .register_placement("panicking", Arc::new(Panicking))
        .build();
    let mut config = test_config();
    config.server.listen = "127.0.0.1:0".into();
    let server = Server::bind_with_control_plane(control_plane, config)
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // One client, one connection: the panic must not take the connection down either.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let admin = format!("Bearer {}", world.admin_key);
    let placement = format!("{base}/api/v1/stacks/{}/placement", world.stack);
    let panicked = client
        .put(&placement)
        .header("authorization", &admin)
        .json(&json!({"placement": "panicking"}))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(panicked.status(), 500);
    let body: Value = panicked.json().await.expect("a JSON error body");
    assert_eq!(body["code"], "internal");

    for _ in 0..3 {
        let stack = client
            .get(format!("{base}/api/v1/stacks/{}", world.stack))
            .header("authorization", &admin)
            .send()
            .await
            .expect("later requests are answered");
        assert_eq!(stack.status(), 200);
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("status=\"500\"} 1"),
        "the 500 is counted:\n{metrics}"
    );

    let _ = stop.send(());
    serving
        .await
        .expect("the server task did not panic")
        .expect("the server stops cleanly");
    common::teardown_guard(guard).await;
}
