//! Webhooks end to end, over real HTTP on SQLite and PostgreSQL: the server (the code
//! path of `brokkr-server serve`) delivers to the loopback receiver of
//! `common/receiver.rs`. A committed change reaches the receiver signed; a receiver
//! that fails (500, too slow, a closed connection) gets retries with the same
//! delivery id, then the delivery is dead and a redelivery sends it again; a redirect
//! is not followed; a URL outside the allowlist is refused with a 422.

mod common;

use std::time::Duration;

use brokkr_core::webhook::signature;
use common::receiver::{Answer, Received, Receiver};
use common::{Backend, CONFIGMAP_YAML, Mode, TestApp, test_config};
use serde_json::{Value, json};

/// Attempts before a delivery is dead, in these tests.
const MAX_ATTEMPTS: usize = 3;

/// A server on `backend` whose webhooks may reach `receiver`, with fast retries.
async fn start(backend: Backend, receiver: &Receiver) -> Option<TestApp> {
    let mut config = test_config();
    config.webhooks.allowed_hosts = vec![receiver.host_port()];
    config.webhooks.timeout_millis = 300;
    config.webhooks.max_attempts = MAX_ATTEMPTS as u32;
    config.webhooks.backoff_base_millis = 20;
    config.webhooks.backoff_max_secs = 1;
    config.webhooks.lease_secs = 2;
    config.webhooks.poll_millis = 50;
    TestApp::start_with(backend, Mode::Socket, config).await
}

/// Subscribes `url` (as admin) to `event_types` of the seeded stack; answers the
/// subscription's id and secret. Waits first until the seed's own events are fanned
/// out, so that they cannot reach the new subscription.
async fn subscribe(app: &TestApp, url: &str, event_types: &[&str]) -> (String, String) {
    for _ in 0..200 {
        let stats = app
            .store()
            .webhook_queue_stats()
            .await
            .expect("queue stats");
        if stats.outbox == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let resp = app
        .admin_post(
            "/api/v1/webhooks",
            &json!({"url": url, "event_types": event_types, "stack_id": app.world.stack.to_string()}),
        )
        .await;
    resp.expect(201);
    let body = resp.json();
    let id = body["subscription"]["id"].as_str().unwrap().to_owned();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (id, secret)
}

/// Waits until the delivery `id` has `status`, and answers it.
async fn delivery_with_status(app: &TestApp, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = app
            .admin_get(&format!("/api/v1/webhook-deliveries/{id}"))
            .await
            .json();
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery {id} never became {status}: {last}");
}

/// Checks `request`'s signature with `secret`, as a receiver would.
#[track_caller]
fn verify(request: &Received, secret: &str) {
    let timestamp: i64 = request
        .header("x-brokkr-timestamp")
        .expect("a timestamp")
        .parse()
        .expect("seconds");
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        secret.as_bytes(),
        timestamp,
        &request.body,
        request.header("x-brokkr-signature").expect("a signature"),
        now,
        signature::DEFAULT_TOLERANCE,
    )
    .expect("the signature verifies");
}

async fn committed_change_reaches_the_receiver_signed(backend: Backend) {
    let receiver = Receiver::start().await;
    let Some(app) = start(backend, &receiver).await else {
        return;
    };
    let (subscription, secret) =
        subscribe(&app, &receiver.url("/hook"), &["deployment_object.created"]).await;
    let stack = app.world.stack;
    let resp = app
        .admin_post(
            &format!("/api/v1/stacks/{stack}/deployment-objects"),
            &json!({"yaml_content": CONFIGMAP_YAML}),
        )
        .await;
    resp.expect(201);
    let object = resp.json();

    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("x-brokkr-event"),
        Some("deployment_object.created")
    );
    verify(request, &secret);
    let body = request.json();
    assert_eq!(body["type"], "deployment_object.created");
    assert_eq!(body["stack_id"], stack.to_string());
    assert_eq!(body["data"]["deployment_object_id"], object["id"], "{body}");
    assert_eq!(body["data"]["sequence"], object["sequence_id"], "{body}");

    // The API shows the same delivery, delivered, under the id the receiver got.
    let delivery_id = request.header("x-brokkr-delivery").expect("a delivery id");
    let delivery = delivery_with_status(&app, delivery_id, "delivered").await;
    assert_eq!(delivery["subscription_id"], subscription.as_str());
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_status"], 200);
    let listed = app
        .admin_get(&format!(
            "/api/v1/webhooks/{subscription}/deliveries?status=delivered"
        ))
        .await;
    listed.expect(200);
    assert_eq!(listed.json()["items"][0]["id"], delivery_id);

    // Exactly one delivery: nothing else was subscribed to, nothing was repeated.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);

    // The metrics count it, and the queue is empty again.
    let metrics = app.send(common::Req::new("GET", "/metrics")).await;
    metrics.expect(200);
    for line in [
        "brokkr_webhook_deliveries_total{outcome=\"delivered\"} 1",
        "brokkr_webhook_deliveries_total{outcome=\"dead\"} 0",
        "brokkr_webhook_pending_deliveries 0",
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "{line} in\n{}",
            metrics.text
        );
    }
    app.teardown().await;
}

async fn failures_are_retried_with_one_delivery_id_then_dead_until_redelivered(backend: Backend) {
    let receiver = Receiver::start().await;
    let Some(app) = start(backend, &receiver).await else {
        return;
    };
    receiver.script([
        Answer::Status(500),
        Answer::Sleep(Duration::from_secs(2)),
        Answer::Close,
    ]);
    let (subscription, secret) = subscribe(&app, &receiver.url("/hook"), &["stack.deleted"]).await;
    app.admin_post(&format!("/api/v1/webhooks/{subscription}/test"), &json!({}))
        .await
        .expect(201);

    let received = receiver
        .wait_for(MAX_ATTEMPTS, Duration::from_secs(20))
        .await;
    let id = received[0].header("x-brokkr-delivery").unwrap().to_owned();
    for request in &received {
        assert_eq!(request.header("x-brokkr-delivery"), Some(id.as_str()));
        assert_eq!(request.header("x-brokkr-event"), Some("webhook.test"));
        verify(request, &secret);
    }
    let dead = delivery_with_status(&app, &id, "dead").await;
    assert_eq!(dead["attempts"], MAX_ATTEMPTS);
    // The last attempt's failure: a connection closed without an answer.
    assert!(dead.get("last_status").is_none(), "{dead}");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .starts_with("request failed"),
        "{dead}"
    );
    let dead_letters = app
        .admin_get(&format!(
            "/api/v1/webhooks/{subscription}/deliveries?status=dead"
        ))
        .await;
    assert_eq!(dead_letters.json()["items"][0]["id"], id.as_str());
    // Dead means no more attempts.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), MAX_ATTEMPTS);

    // A redelivery sends it again, same id; the receiver (out of script) answers 200.
    let resp = app
        .admin_post(
            &format!("/api/v1/webhook-deliveries/{id}/redeliver"),
            &json!({}),
        )
        .await;
    resp.expect(200);
    assert_eq!(resp.json()["status"], "pending");
    let received = receiver
        .wait_for(MAX_ATTEMPTS + 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        received[MAX_ATTEMPTS].header("x-brokkr-delivery"),
        Some(id.as_str())
    );
    let delivered = delivery_with_status(&app, &id, "delivered").await;
    assert_eq!(delivered["attempts"], 1);
    app.teardown().await;
}

async fn a_redirect_is_not_followed(backend: Backend) {
    let receiver = Receiver::start().await;
    let Some(app) = start(backend, &receiver).await else {
        return;
    };
    let elsewhere = receiver.url("/elsewhere");
    receiver.script((0..MAX_ATTEMPTS).map(|_| Answer::Redirect(elsewhere.clone())));
    let (subscription, _) = subscribe(&app, &receiver.url("/hook"), &["stack.deleted"]).await;
    let resp = app
        .admin_post(&format!("/api/v1/webhooks/{subscription}/test"), &json!({}))
        .await;
    resp.expect(201);
    let id = resp.json()["id"].as_str().unwrap().to_owned();
    let dead = delivery_with_status(&app, &id, "dead").await;
    assert_eq!(dead["last_status"], 302);
    assert!(
        dead["last_error"].as_str().unwrap().contains(&elsewhere),
        "the error names where it pointed: {dead}"
    );
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/hook"; MAX_ATTEMPTS]);
    app.teardown().await;
}

async fn a_url_outside_the_allowlist_is_refused(backend: Backend) {
    let receiver = Receiver::start().await;
    let Some(app) = start(backend, &receiver).await else {
        return;
    };
    for (url, code) in [
        ("http://127.0.0.1:1/hook", "url_not_allowed"),
        ("https://hooks.example.com/hook", "url_not_allowed"),
        ("ftp://127.0.0.1/hook", "invalid_url"),
        ("http://user:pw@127.0.0.1/hook", "invalid_url"),
    ] {
        let resp = app
            .admin_post(
                "/api/v1/webhooks",
                &json!({"url": url, "event_types": ["stack.deleted"]}),
            )
            .await;
        resp.expect(422);
        assert_eq!(resp.json()["code"], code, "{url}: {}", resp.text);
    }
    // An allowed URL passes, and moving it outside the allowlist is refused too.
    let (subscription, _) = subscribe(&app, &receiver.url("/hook"), &["stack.deleted"]).await;
    let resp = app
        .send(
            common::Req::new("PATCH", format!("/api/v1/webhooks/{subscription}"))
                .key(&app.world.admin_key)
                .json(&json!({"url": "http://127.0.0.1:1/moved"})),
        )
        .await;
    resp.expect(422);
    assert_eq!(resp.json()["code"], "url_not_allowed");
    let listed = app.admin_get("/api/v1/webhooks").await.json();
    let urls: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["url"].as_str())
        .filter(|url| !url.contains("hooks.invalid"))
        .collect();
    assert_eq!(urls, vec![receiver.url("/hook").as_str()]);
    app.teardown().await;
}

/// A generator subscribes to its own stacks only, and sees only its own
/// subscriptions; another generator's are a 404 to it.
#[tokio::test]
async fn a_generator_subscribes_to_its_own_stacks_only() {
    let app = common::TestApp::start(Backend::Memory)
        .await
        .expect("memory");
    let w = app.world.clone();
    let subscribe_as = |key: String, stack: brokkr_core::StackId| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/webhooks",
                &key,
                &json!({"url": "https://hooks.invalid/g", "event_types": ["agent.failed"], "stack_id": stack.to_string()}),
            )
            .await
        }
    };
    let refused = subscribe_as(w.generator_key.clone(), w.other_stack).await;
    refused.expect(404);
    let created = subscribe_as(w.generator_key.clone(), w.spare_stack).await;
    created.expect(201);
    let body = created.json();
    assert_eq!(
        body["subscription"]["generator_id"],
        w.generator.to_string()
    );
    let id = body["subscription"]["id"].as_str().unwrap().to_owned();

    let other = app.get("/api/v1/webhooks", &w.other_generator_key).await;
    assert_eq!(other.json()["items"], json!([]));
    app.get(&format!("/api/v1/webhooks/{id}"), &w.other_generator_key)
        .await
        .expect(404);
    let own = app.get("/api/v1/webhooks", &w.generator_key).await.json();
    let ids: Vec<&str> = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()), "{own}");
    // Moving it to another generator's stack is refused the same way.
    let moved = app
        .send(
            common::Req::new("PATCH", format!("/api/v1/webhooks/{id}"))
                .key(&w.generator_key)
                .json(&json!({"stack_id": w.other_stack.to_string()})),
        )
        .await;
    moved.expect(404);
    app.teardown().await;
}

macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::Postgres).await;
            })*
        }
    };
}

on_both_databases!(
    committed_change_reaches_the_receiver_signed,
    failures_are_retried_with_one_delivery_id_then_dead_until_redelivered,
    a_redirect_is_not_followed,
    a_url_outside_the_allowlist_is_refused,
);
