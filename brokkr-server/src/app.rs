//! The HTTP application: the API under `/api/v1`, its OpenAPI document and docs page,
//! the dashboard (`/ui/`), the public probes, and the middleware around all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, get, handler};
use poem_openapi::OpenApiService;
use serde_json::json;
use tracing::instrument::WithSubscriber;

use crate::api::Api;
use crate::deferred::Deferred;
use crate::metrics::{Snapshot, WebhookQueue};
use crate::middleware::{BodyLimit, CatchPanic, Observe, RouteTable};
use crate::state::AppState;

/// Where the API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// How long a probe or a scrape waits for the database before calling it down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes outside the OpenAPI service, with their methods.
const PUBLIC_ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/docs", &["GET"]),
    ("/ui", &["GET"]),
    ("/ui/{file}", &["GET"]),
];

/// The OpenAPI service of the API, with `/api/v1` as its server.
pub fn openapi_service() -> OpenApiService<Api, ()> {
    OpenApiService::new(crate::api::api(), "Brokkr", env!("CARGO_PKG_VERSION")).server(API_PREFIX)
}

/// The OpenAPI document as JSON, as `/openapi.json` serves it.
pub fn openapi_json() -> String {
    openapi_service().spec()
}

/// The whole server as one poem endpoint, ready for `poem::Server::run` or to be
/// nested in a larger application.
///
/// Public routes: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`, and
/// the dashboard's files under `/ui/` (which asks for a key); everything else needs a
/// key. Takes an [`AppState`] or a
/// [`ControlPlane`](brokkr_core::runtime::ControlPlane) (served with the default
/// configuration). Background tasks are not started here: call
/// [`ControlPlane::start`](brokkr_core::runtime::ControlPlane::start) as well.
pub fn app(state: impl Into<AppState>) -> impl Endpoint<Output = Response> {
    let state = state.into();
    let service = openapi_service();
    let routes = Arc::new(RouteTable::new(&service.spec(), API_PREFIX, PUBLIC_ROUTES));
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let limit = state.config.server.body_limit_bytes;
    let metrics = Arc::clone(&state.metrics);
    let dispatch = embedder_dispatch();
    Route::new()
        .nest(API_PREFIX, service)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest_no_strip(crate::ui::UI_PREFIX, crate::ui::endpoint())
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(prometheus))
        .with(BodyLimit::new(limit))
        .data(state)
        .with(Deferred)
        .with(CatchPanic)
        .with(Observe::new(routes, metrics))
        .around(move |endpoint, request| {
            let dispatch = dispatch.clone();
            async move {
                match dispatch {
                    Some(dispatch) => endpoint.call(request).with_subscriber(dispatch).await,
                    None => endpoint.call(request).await,
                }
            }
        })
}

/// The subscriber in effect where the app is built, unless there is none yet. poem
/// serves each connection on a task of its own, where a subscriber the embedder set
/// only for its own scope (`with_default`, `with_subscriber`) is not in effect; the
/// app carries it into every request. Without one, requests log to whatever global
/// subscriber is set later.
fn embedder_dispatch() -> Option<tracing::Dispatch> {
    tracing::dispatcher::get_default(|dispatch| {
        (!dispatch.is::<tracing::subscriber::NoSubscriber>()).then(|| dispatch.clone())
    })
}

/// Always 200 while the process serves.
#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the database answers, 503 otherwise.
#[handler]
async fn readyz(state: Data<&AppState>) -> Response {
    match ping(&state).await {
        (true, _) => Json(json!({ "status": "ready", "database": "up" })).into_response(),
        (false, _) => Json(json!({
            "code": "unavailable",
            "message": "the database is unreachable",
            "details": { "status": "not_ready", "database": "down" },
        }))
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .into_response(),
    }
}

/// Prometheus text exposition.
#[handler]
async fn prometheus(state: Data<&AppState>) -> Response {
    let (store_up, store_ping) = ping(&state).await;
    let webhook_queue = match state.control_plane.webhook_queue_stats().await {
        Ok(stats) => Some(WebhookQueue::new(&stats, chrono::Utc::now())),
        Err(_) => None,
    };
    let text = state.metrics.render(Snapshot {
        target_state_cache_entries: state.control_plane.cached_target_states(),
        store_up,
        store_ping,
        webhook_counts: state.control_plane.webhook_counts(),
        webhook_queue,
        rollout_counts: state.control_plane.rollout_counts(),
    });
    text.with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}

async fn ping(state: &AppState) -> (bool, Duration) {
    let started = Instant::now();
    let up = match tokio::time::timeout(PING_TIMEOUT, state.control_plane.store().ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(error = %crate::error::ErrorChain(&err), "database ping failed");
            false
        }
        Err(_) => {
            tracing::warn!("database ping timed out");
            false
        }
    };
    (up, started.elapsed())
}

#[cfg(test)]
mod tests {
    use brokkr_core::testing::MemoryStore;
    use poem::test::TestClient;

    use super::*;
    use crate::config::Config;

    fn client(config: Config) -> (TestClient<impl Endpoint>, AppState) {
        let state = AppState::new(Arc::new(MemoryStore::new()), config, Default::default());
        (TestClient::new(app(state.clone())), state)
    }

    async fn json_body(resp: poem::test::TestResponse) -> serde_json::Value {
        resp.0.into_body().into_json().await.unwrap()
    }

    #[tokio::test]
    async fn probes_spec_and_metrics_are_public() {
        let (cli, _state) = client(Config::default());
        let resp = cli.get("/healthz").send().await;
        resp.assert_status_is_ok();
        let resp = cli.get("/readyz").send().await;
        resp.assert_status_is_ok();
        let resp = cli.get("/openapi.json").send().await;
        resp.assert_status_is_ok();
        let spec = json_body(resp).await;
        assert_eq!(spec["servers"][0]["url"], "/api/v1");
        cli.get("/docs").send().await.assert_status_is_ok();

        cli.get("/api/v1/stacks")
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        let stack = uuid::Uuid::new_v4();
        cli.get(format!("/api/v1/stacks/{stack}"))
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        let resp = cli.get("/metrics").send().await;
        resp.assert_status_is_ok();
        let text = resp.0.into_body().into_string().await.unwrap();
        assert!(text.contains(
            "brokkr_http_requests_total{method=\"GET\",route=\"/api/v1/stacks\",status=\"401\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "brokkr_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "brokkr_http_requests_total{method=\"GET\",route=\"/api/v1/stacks/{id}\",status=\"401\"} 1"
        ), "{text}");
        assert!(text.contains("brokkr_store_up 1"));
    }

    #[tokio::test]
    async fn errors_outside_handlers_get_the_json_body() {
        let (cli, _state) = client(Config::default());

        let resp = cli.get("/nowhere").send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
        assert_eq!(json_body(resp).await["code"], "not_found");

        let resp = cli.get("/api/v1/nowhere").send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
        assert_eq!(json_body(resp).await["code"], "not_found");

        let resp = cli.put("/api/v1/stacks").send().await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_header("allow", "GET, HEAD, POST");
        assert_eq!(json_body(resp).await["code"], "method_not_allowed");

        let agent = uuid::Uuid::new_v4();
        let resp = cli
            .put(format!("/api/v1/agents/{agent}/target-state"))
            .send()
            .await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_header("allow", "GET, HEAD");

        let resp = cli.post("/healthz").send().await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_header("allow", "GET, HEAD");

        let resp = cli.get("/api/v1/stacks").send().await;
        resp.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(json_body(resp).await["code"], "unauthorized");

        let resp = cli
            .get("/api/v1/stacks")
            .header("authorization", "Bearer nonsense")
            .send()
            .await;
        resp.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(json_body(resp).await["code"], "unauthorized");
    }

    #[tokio::test]
    async fn oversized_bodies_get_413_declared_or_not() {
        let mut config = Config::default();
        config.server.body_limit_bytes = 16;
        let (cli, _state) = client(config);
        let big = "x".repeat(64);
        let resp = cli
            .post("/api/v1/stacks")
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json_body(resp).await["code"], "payload_too_large");

        let stream = futures::stream::iter([Ok::<_, std::io::Error>(big.into_bytes())]);
        let resp = cli
            .post("/api/v1/stacks")
            .header("content-type", "application/json")
            .body(poem::Body::from_bytes_stream(stream))
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    }
}
