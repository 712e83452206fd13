//! The agent operations over HTTP, in process: registration, heartbeat, target state
//! with ETag and long poll, disabling, rotation and deletion.

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::testing::MemoryStore;
use brokkr_core::testing::conformance::config_map_yaml;
use brokkr_core::{Actor, NewDeploymentObject, NewStack, Store};
use poem::http::StatusCode;
use poem::test::{TestClient, TestResponse};
use serde_json::{Value, json};

use crate::config::Config;
use crate::state::AppState;

async fn body(resp: TestResponse) -> Value {
    resp.0.into_body().into_json().await.unwrap()
}

fn etag_of(resp: &TestResponse) -> String {
    resp.0.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn registration_heartbeat_and_target_state() {
    let store = Arc::new(MemoryStore::new());
    let admin = crate::serve::ensure_admin_key(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    let state = AppState::new(store.clone(), Config::default(), Default::default());
    let _background = state.control_plane.start();
    let cli = TestClient::new(crate::app::app(state.clone()));
    let admin = format!("Bearer {}", admin.expose());

    let resp = cli
        .post("/api/v1/agents")
        .header("authorization", &admin)
        .body_json(&json!({"name": "a", "cluster_name": "c", "labels": {"env": "prod"}}))
        .send()
        .await;
    resp.assert_status(StatusCode::CREATED);
    let created = body(resp).await;
    assert_eq!(created["agent"]["status"], "stale");
    assert_eq!(created["agent"]["enabled"], true);
    let id = created["agent"]["id"].as_str().unwrap().to_owned();
    let agent_key = format!("Bearer {}", created["initial_pak"].as_str().unwrap());

    let who = cli
        .post("/api/v1/auth/pak")
        .header("authorization", &agent_key)
        .send()
        .await;
    who.assert_status_is_ok();
    assert_eq!(body(who).await, json!({"role": "agent", "id": id}));

    // A beat shows at once, before it is written.
    let resp = cli
        .post(format!("/api/v1/agents/{id}/heartbeat"))
        .header("authorization", &agent_key)
        .body_json(&json!({"capabilities": {"kubernetes_version": "v1.33.2", "features": ["gpu"]}}))
        .send()
        .await;
    resp.assert_status(StatusCode::NO_CONTENT);
    let resp = cli
        .get(format!("/api/v1/agents/{id}"))
        .header("authorization", &agent_key)
        .send()
        .await;
    resp.assert_status_is_ok();
    assert_eq!(body(resp).await["status"], "active");
    let resp = cli
        .post(format!("/api/v1/agents/{id}/heartbeat"))
        .header("authorization", &admin)
        .body_json(&json!({}))
        .send()
        .await;
    resp.assert_status(StatusCode::FORBIDDEN);

    // Target state: 200 with an ETag, then 304 for it.
    let url = format!("/api/v1/agents/{id}/target-state");
    let resp = cli
        .get(&url)
        .header("authorization", &agent_key)
        .send()
        .await;
    resp.assert_status_is_ok();
    let etag = etag_of(&resp);
    let first = body(resp).await;
    assert_eq!(format!("\"{}\"", first["etag"].as_str().unwrap()), etag);
    assert_eq!(first["entries"], json!([]));
    let resp = cli
        .get(&url)
        .header("authorization", &agent_key)
        .header("if-none-match", &etag)
        .send()
        .await;
    resp.assert_status(StatusCode::NOT_MODIFIED);
    assert_eq!(etag_of(&resp), etag);
    let resp = cli
        .get(format!("{url}?wait=61"))
        .header("authorization", &agent_key)
        .send()
        .await;
    resp.assert_status(StatusCode::BAD_REQUEST);

    // A long poll is woken by a new deployment object.
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
    let poll = {
        let (cli, url, key, etag) = (&cli, &url, &agent_key, &etag);
        async move {
            cli.get(format!("{url}?wait=30"))
                .header("authorization", key)
                .header("if-none-match", etag)
                .send()
                .await
        }
    };
    let change = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let object = NewDeploymentObject::from_yaml(stack.id, config_map_yaml("s", "1")).unwrap();
        store
            .append_deployment_object(&Actor::Admin, object)
            .await
            .unwrap();
        store
            .assign_stack(
                &Actor::Admin,
                id.parse::<uuid::Uuid>().unwrap().into(),
                stack.id,
            )
            .await
            .unwrap();
    };
    let (resp, ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(poll, change)
    })
    .await
    .expect("the long poll answers when the state changes");
    resp.assert_status_is_ok();
    assert_ne!(etag_of(&resp), etag);
    let changed = body(resp).await;
    assert_eq!(changed["entries"][0]["action"], "apply");
    assert_eq!(changed["entries"][0]["deployment_object"]["sequence_id"], 1);

    // A short wait with nothing changing answers 304.
    let resp = cli
        .get(format!("{url}?wait=1"))
        .header("authorization", &agent_key)
        .header(
            "if-none-match",
            format!("\"{}\"", changed["etag"].as_str().unwrap()),
        )
        .send()
        .await;
    resp.assert_status(StatusCode::NOT_MODIFIED);

    // Disabled: the agent may not fetch, admin still may.
    let resp = cli
        .patch(format!("/api/v1/agents/{id}"))
        .header("authorization", &admin)
        .body_json(&json!({"enabled": false}))
        .send()
        .await;
    resp.assert_status_is_ok();
    assert_eq!(body(resp).await["status"], "inactive");
    let resp = cli
        .get(&url)
        .header("authorization", &agent_key)
        .send()
        .await;
    resp.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(body(resp).await["code"], "agent_inactive");
    cli.get(&url)
        .header("authorization", &admin)
        .send()
        .await
        .assert_status_is_ok();

    let resp = cli
        .get("/api/v1/agents?status=inactive")
        .header("authorization", &admin)
        .send()
        .await;
    resp.assert_status_is_ok();
    assert_eq!(body(resp).await["items"].as_array().unwrap().len(), 1);
    let resp = cli
        .get("/api/v1/agents?status=bogus")
        .header("authorization", &admin)
        .send()
        .await;
    resp.assert_status(StatusCode::BAD_REQUEST);

    // Rotation by the agent itself: the old key stops working at once.
    let resp = cli
        .post(format!("/api/v1/agents/{id}/rotate-pak"))
        .header("authorization", &agent_key)
        .send()
        .await;
    resp.assert_status_is_ok();
    let new_key = format!("Bearer {}", body(resp).await["pak"].as_str().unwrap());
    let resp = cli
        .post("/api/v1/auth/pak")
        .header("authorization", &agent_key)
        .send()
        .await;
    resp.assert_status(StatusCode::UNAUTHORIZED);
    let resp = cli
        .post("/api/v1/auth/pak")
        .header("authorization", &new_key)
        .send()
        .await;
    resp.assert_status_is_ok();

    // Deletion revokes the keys.
    let resp = cli
        .delete(format!("/api/v1/agents/{id}"))
        .header("authorization", &admin)
        .send()
        .await;
    resp.assert_status(StatusCode::NO_CONTENT);
    let resp = cli
        .post("/api/v1/auth/pak")
        .header("authorization", &new_key)
        .send()
        .await;
    resp.assert_status(StatusCode::UNAUTHORIZED);
    cli.get(&url)
        .header("authorization", &admin)
        .send()
        .await
        .assert_status(StatusCode::NOT_FOUND);
}
