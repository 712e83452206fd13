//! What wraps every request: the body size limit, a layer that turns a panic into a
//! 500 for that request alone, and one outer layer that turns every error answer into
//! the JSON error body, adds `Allow` to 405s, counts the request in the metrics and
//! logs it.
//!
//! poem answers some requests before any handler of ours runs (an unknown route, a
//! wrong method, a missing `Authorization` header) with a plain-text body. The outer
//! layer rewrites those into `{"code", "message", "details"}`; answers that are
//! already JSON (every [`ApiError`]) pass untouched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use poem::PathPattern;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;

use crate::error::{ApiError, ErrorBody};
use crate::metrics::{Metrics, UNMATCHED_ROUTE};

/// The route templates the server serves, with the methods each accepts, e.g.
/// `/api/v1/agents/{id}` → `GET, HEAD, PATCH, DELETE`.
///
/// poem-openapi registers `/agents/{id}` as `/agents/:param0`, so routes are looked up
/// by their shape (every parameter segment as `*`) and reported by their template.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Shape → (template, `Allow` value).
    routes: HashMap<String, (String, String)>,
}

impl RouteTable {
    /// The table of an OpenAPI document (`spec`, as JSON) whose paths are mounted under
    /// `prefix`, plus `extra` routes outside it.
    pub fn new(spec: &str, prefix: &str, extra: &[(&str, &[&str])]) -> Self {
        let mut methods: HashMap<String, (String, Vec<String>)> = HashMap::new();
        let mut add = |template: String, names: Vec<String>| {
            methods
                .entry(shape_of(&template))
                .or_insert_with(|| (template, Vec::new()))
                .1
                .extend(names);
        };
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        if let Some(paths) = doc.get("paths").and_then(|paths| paths.as_object()) {
            for (path, operations) in paths {
                if let Some(operations) = operations.as_object() {
                    let names = operations.keys().map(|m| m.to_ascii_uppercase());
                    add(format!("{prefix}{path}"), names.collect());
                }
            }
        }
        for (path, names) in extra {
            add(
                (*path).to_owned(),
                names.iter().map(|m| (*m).to_owned()).collect(),
            );
        }
        let routes = methods
            .into_iter()
            .map(|(shape, (template, mut methods))| {
                // poem answers HEAD wherever GET is served.
                if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                    methods.push("HEAD".into());
                }
                methods.sort_by_key(|m| method_rank(m));
                methods.dedup();
                (shape, (template, methods.join(", ")))
            })
            .collect();
        Self { routes }
    }

    /// The template and `Allow` value of a poem path pattern
    /// (`/api/v1/agents/:param0`) or of a template (`/api/v1/agents/{id}`), if served.
    pub fn lookup(&self, pattern: &str) -> Option<(&str, &str)> {
        self.routes
            .get(&shape_of(pattern))
            .map(|(template, allow)| (template.as_str(), allow.as_str()))
    }

    /// The `Allow` value of a route template, if the server serves it.
    pub fn allow(&self, template: &str) -> Option<&str> {
        self.lookup(template).map(|(_, allow)| allow)
    }
}

fn method_rank(method: &str) -> usize {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(usize::MAX)
}

/// A path pattern with every parameter segment (`:name` or `{name}`) as `*`.
fn shape_of(pattern: &str) -> String {
    // A nested endpoint's root (`/docs/`) is the route `/docs`.
    let pattern = match pattern.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => pattern,
    };
    pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with(':') || (segment.starts_with('{') && segment.ends_with('}')) {
                "*"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Rejects bodies larger than the limit with 413 and our JSON body.
///
/// poem's own `SizeLimit` answers 411 to every request without `Content-Length`
/// (including a plain `GET`) and never looks at chunked bodies; this one checks the
/// declared length and reads undeclared bodies up to the limit.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    limit: usize,
}

impl BodyLimit {
    /// At most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            limit: self.limit,
        }
    }
}

/// The endpoint of [`BodyLimit`].
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        match declared {
            Some(length) if length > self.limit as u64 => return Ok(too_large(self.limit)),
            // hyper holds the body to its declared length.
            Some(_) => {}
            None => match req.take_body().into_bytes_limit(self.limit).await {
                Ok(bytes) => req.set_body(bytes),
                Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                    return Ok(too_large(self.limit));
                }
                Err(err) => {
                    return Ok(ApiError::bad_request(
                        "invalid_body",
                        format!("cannot read the body: {err}"),
                    )
                    .into_response());
                }
            },
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

fn too_large(limit: usize) -> Response {
    ApiError::PayloadTooLarge(Json(ErrorBody {
        code: "payload_too_large".into(),
        message: format!("the body is larger than the limit of {limit} bytes"),
        details: None,
    }))
    .into_response()
}

/// Turns a panic while answering a request into a 500 for that request alone: the
/// connection, the process and every other request carry on (the locks a panic can
/// leave poisoned are recovered where they are taken, see `brokkr_core::sync`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanic;

impl<E: Endpoint> Middleware<E> for CatchPanic {
    type Output = CatchPanicEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CatchPanicEndpoint { inner }
    }
}

/// The endpoint of [`CatchPanic`].
#[derive(Debug)]
pub struct CatchPanicEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for CatchPanicEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        use futures::FutureExt;

        // Kept for the log of a panic; cloning them shares their bytes, copies nothing.
        let method = req.method().clone();
        let uri = req.uri().clone();
        let answered = std::panic::AssertUnwindSafe(self.inner.call(req))
            .catch_unwind()
            .await;
        match answered {
            Ok(answered) => answered.map(IntoResponse::into_response),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let path = uri.path();
                tracing::error!(%method, path, panic = message, "a request panicked; answered 500");
                Ok(ApiError::internal_logged_elsewhere().into_response())
            }
        }
    }
}

/// The outer layer: JSON errors, `Allow` on 405, metrics, request log.
#[derive(Debug, Clone)]
pub struct Observe {
    routes: Arc<RouteTable>,
    metrics: Arc<Metrics>,
}

impl Observe {
    /// Knows the served `routes`; counts into `metrics`.
    pub fn new(routes: Arc<RouteTable>, metrics: Arc<Metrics>) -> Self {
        Self { routes, metrics }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint {
            inner,
            layer: self.clone(),
        }
    }
}

/// The endpoint of [`Observe`].
#[derive(Debug)]
pub struct ObserveEndpoint<E> {
    inner: E,
    layer: Observe,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let method = req.method().clone();

        // A body or parameter poem-openapi could not parse is told apart from other
        // 400s while the error still knows its type; the response alone would not say.
        let mut bad_path_param = None;
        let (mut resp, code) = match self.inner.call(req).await {
            Ok(resp) => (resp.into_response(), None),
            Err(err) => {
                bad_path_param = err
                    .downcast_ref::<poem_openapi::error::ParsePathError>()
                    .and_then(|err| BadPathParam::of(err.name, &err.reason));
                let code = if err.is::<poem_openapi::error::ParseRequestPayloadError>() {
                    Some("invalid_body")
                } else if err.is::<poem_openapi::error::ParseParamError>()
                    || err.is::<poem_openapi::error::ParsePathError>()
                {
                    // Malformed, or outside the range the OpenAPI document states.
                    Some("invalid_parameter")
                } else {
                    None
                };
                (err.into_response(), code)
            }
        };

        let routes = &self.layer.routes;
        let matched = resp
            .data::<PathPattern>()
            .and_then(|pattern| routes.lookup(&pattern.0));
        let status = resp.status();
        if status.is_client_error() || status.is_server_error() {
            let message = bad_path_param
                .zip(matched)
                .and_then(|(param, (template, _))| param.message(template));
            resp = json_error(resp, matched.map(|(_, allow)| allow), code, message).await;
        }
        let route = matched.map_or(UNMATCHED_ROUTE, |(template, _)| template);
        let elapsed = started.elapsed();
        self.layer
            .metrics
            .observe_request(method.as_str(), route, status.as_u16(), elapsed);
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(target: "brokkr_server::http", method = %method, route, status = status.as_u16(), latency_ms, "request");
        } else {
            tracing::debug!(target: "brokkr_server::http", method = %method, route, status = status.as_u16(), latency_ms, "request");
        }
        Ok(resp)
    }
}

/// A path parameter that did not parse. poem-openapi names path parameters by position
/// (`param0`, `param1`, ...) when it extracts them, so its message would name `param0`;
/// the route template knows the name the OpenAPI document gives.
struct BadPathParam {
    index: usize,
    reason: String,
}

impl BadPathParam {
    fn of(name: &str, reason: &str) -> Option<Self> {
        let index = name.strip_prefix("param")?.parse().ok()?;
        Some(Self {
            index,
            reason: reason.to_owned(),
        })
    }

    /// The message naming the parameter as `template` (`/api/v1/stacks/{id}`) does.
    fn message(&self, template: &str) -> Option<String> {
        let name = template
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .nth(self.index)?;
        Some(format!(
            "failed to parse path parameter `{name}`: {}",
            self.reason
        ))
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The stable code of an error status that no handler of ours chose.
pub fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        431 => "headers_too_large",
        500 => "internal",
        501 => "not_implemented",
        503 => "unavailable",
        code if code < 500 => "client_error",
        _ => "server_error",
    }
}

/// Longest text of poem's own kept as the message of a rewritten 4xx.
const MAX_MESSAGE: usize = 512;

/// Rewrites a non-JSON error answer into the JSON error body; `message`, when given,
/// replaces poem's text.
async fn json_error(
    mut resp: Response,
    allow: Option<&str>,
    code: Option<&str>,
    message: Option<String>,
) -> Response {
    let status = resp.status();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(value) = allow.and_then(|allow| HeaderValue::from_str(allow).ok())
    {
        resp.headers_mut().insert(header::ALLOW, value);
    }
    if is_json(&resp) {
        return resp;
    }
    let original = resp.take_body().into_string().await.unwrap_or_default();
    let original = original.trim();
    // A 4xx message from poem describes the request; a 5xx one might describe us.
    let message = if let Some(message) = message {
        message
    } else if status.is_client_error() && !original.is_empty() && original.len() <= MAX_MESSAGE {
        original.to_owned()
    } else {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    };
    let body = ErrorBody {
        code: code.unwrap_or_else(|| code_of(status)).to_owned(),
        message,
        details: allow
            .filter(|_| status == StatusCode::METHOD_NOT_ALLOWED)
            .map(|allow| serde_json::json!({ "allow": allow })),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.set_body(bytes);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poem_patterns_find_their_templates() {
        let spec = r#"{"paths": {"/agents/{id}/target-state": {"get": {}}}}"#;
        let table = RouteTable::new(spec, "/api/v1", &[]);
        assert_eq!(
            table.lookup("/api/v1/agents/:param0/target-state"),
            Some(("/api/v1/agents/{id}/target-state", "GET, HEAD"))
        );
        assert_eq!(table.lookup("/api/v1/agents/:param0"), None);
    }

    #[test]
    fn the_route_table_lists_methods_in_a_stable_order() {
        let spec = r#"{"paths": {"/stacks/{id}": {"delete": {}, "get": {}, "patch": {}}}}"#;
        let table = RouteTable::new(spec, "/api/v1", &[("/healthz", &["GET"])]);
        assert_eq!(
            table.allow("/api/v1/stacks/{id}"),
            Some("GET, HEAD, PATCH, DELETE")
        );
        assert_eq!(table.allow("/healthz"), Some("GET, HEAD"));
        assert_eq!(table.allow("/nope"), None);
    }
}
