//! Answers a handler finishes after its request is gone.
//!
//! A long poll spends nearly all its life waiting, and a handler that waits keeps its
//! whole request alive meanwhile: the parsed request with the header bytes it points
//! into (a buffer of 8 KiB that hyper reads into), poem-openapi's extractors and every
//! boxed layer between the router and the handler. Measured on a parked
//! `GET /agents/{id}/target-state?wait=N`, letting them go saved 12 of the 43 KiB a
//! waiting agent cost the server (the server's own connection loop saved 6 more, see
//! `crate::connections`). A handler that has checked everything and only has to wait
//! hands the rest of its answer to [`Deferral::defer`] and returns; the [`Deferred`]
//! layer lets the request and the layers under it go (they run in a future of their
//! own, freed when the handler returns), then awaits the deferred answer in their
//! place.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use brokkr_core::sync::lock;
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response};

type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Where a handler leaves the rest of its answer; every request under [`Deferred`]
/// carries one, which a handler takes as `Data<&Deferral>`.
#[derive(Clone, Default)]
pub struct Deferral(Arc<Mutex<Option<Answer>>>);

impl Deferral {
    /// Answers the request with what `answer` resolves to, instead of whatever the
    /// handler returns. `answer` must own what it needs: it runs after the request,
    /// its extractors and the handler are dropped.
    pub fn defer(&self, answer: impl Future<Output = Response> + Send + 'static) {
        *lock(&self.0) = Some(Box::pin(answer));
    }

    fn take(&self) -> Option<Answer> {
        lock(&self.0).take()
    }
}

impl std::fmt::Debug for Deferral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let deferred = lock(&self.0).is_some();
        f.debug_struct("Deferral")
            .field("deferred", &deferred)
            .finish()
    }
}

/// The layer that gives each request a [`Deferral`] and answers deferred requests.
/// Layers outside it (metrics, logs) see the deferred answer, with the route the
/// router matched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deferred;

impl<E: Endpoint> Middleware<E> for Deferred {
    type Output = DeferredEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        DeferredEndpoint { inner }
    }
}

/// The endpoint of [`Deferred`].
#[derive(Debug)]
pub struct DeferredEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for DeferredEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let head = req.method() == Method::HEAD;
        let deferral = Deferral::default();
        req.extensions_mut().insert(deferral.clone());
        // Boxed, so that the layers under this one are freed when the handler returns,
        // not kept as part of this future while a deferred answer waits.
        let answered = Box::pin(self.inner.call(req))
            .await
            .map(IntoResponse::into_response);
        let Some(answer) = deferral.take() else {
            return answered;
        };
        // The handler's own answer only stood in; the route it was matched to stays.
        let pattern = answered
            .ok()
            .and_then(|resp| resp.data::<PathPattern>().cloned());
        let mut resp = answer.await;
        if let Some(pattern) = pattern {
            resp.set_data(pattern);
        }
        if head {
            resp.set_body(());
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::StatusCode;
    use poem::test::TestClient;
    use poem::web::Data;
    use poem::{EndpointExt, Route, get, handler};

    #[handler]
    fn wait_then_answer(deferral: Data<&Deferral>) -> StatusCode {
        deferral.defer(async {
            tokio::task::yield_now().await;
            Response::builder()
                .status(StatusCode::ACCEPTED)
                .body("finished later")
        });
        StatusCode::IM_A_TEAPOT
    }

    #[handler]
    fn answer_now() -> &'static str {
        "now"
    }

    fn app() -> impl Endpoint {
        Route::new()
            .at("/later", get(wait_then_answer))
            .at("/now", get(answer_now))
            .with(Deferred)
            .after(|resp| async move {
                // What an outer layer sees: the deferred answer, with its route.
                let mut resp = resp?;
                let route = resp.data::<PathPattern>().map(|p| p.0.to_string());
                resp.headers_mut()
                    .insert("x-route", route.unwrap_or_default().parse().unwrap());
                Ok(resp)
            })
    }

    #[tokio::test]
    async fn a_deferred_answer_replaces_the_handlers_and_keeps_its_route() {
        let client = TestClient::new(app());
        let resp = client.get("/later").send().await;
        resp.assert_status(StatusCode::ACCEPTED);
        resp.assert_header("x-route", "/later");
        resp.assert_text("finished later").await;
    }

    #[tokio::test]
    async fn a_head_request_gets_the_deferred_status_without_its_body() {
        let client = TestClient::new(app());
        let resp = client.head("/later").send().await;
        resp.assert_status(StatusCode::ACCEPTED);
        resp.assert_text("").await;
    }

    #[tokio::test]
    async fn requests_that_do_not_defer_pass_untouched() {
        let client = TestClient::new(app());
        let resp = client.get("/now").send().await;
        resp.assert_status_is_ok();
        resp.assert_text("now").await;
    }
}
