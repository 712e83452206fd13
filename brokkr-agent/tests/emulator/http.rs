//! The HTTP face of the emulator: Kubernetes URL layout, query parameters and status
//! codes, turned into calls on the [`Cluster`](super::store::Cluster).

use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::catalog::{Catalog, ResourceType};
use super::discovery;
use super::selector::Selector;
use super::status::ApiError;
use super::store::{ApplyRequest, Cluster, MergePatch};
use super::{ApplyRecord, Shared, lock};

const APPLY_PATCH: &str = "application/apply-patch+yaml";
const MERGE_PATCH: &str = "application/merge-patch+json";

/// The whole API server as one poem endpoint (routing is Kubernetes' own, so it is
/// done here rather than with poem's router).
pub fn endpoint(state: Shared) -> impl Endpoint<Output = Response> {
    poem::endpoint::make(move |request: Request| {
        let state = state.clone();
        async move {
            match handle(&state, request).await {
                Ok(reply) => reply.into_response(),
                Err(error) => Reply::error(&error).into_response(),
            }
        }
    })
}

/// An answer: JSON, or plain text when `body` is a JSON string.
struct Reply {
    code: StatusCode,
    body: Value,
    content_type: &'static str,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            code: StatusCode::OK,
            body,
            content_type: "application/json",
        }
    }

    fn error(error: &ApiError) -> Reply {
        Reply {
            code: StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: error.body(),
            content_type: "application/json",
        }
    }

    fn into_response(self) -> Response {
        let body = match self.body {
            Value::String(text) => text.into_bytes(),
            json => serde_json::to_vec(&json).expect("JSON values always serialize"),
        };
        let mut response = Response::builder()
            .status(self.code)
            .content_type(self.content_type);
        if self.code == StatusCode::METHOD_NOT_ALLOWED {
            response = response.header(header::ALLOW, "GET, PATCH, DELETE");
        }
        response.body(body)
    }
}

/// The query parameters the emulator reads; others are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Query {
    label_selector: Option<String>,
    field_selector: Option<String>,
    field_manager: Option<String>,
    force: Option<String>,
    dry_run: Option<String>,
    watch: Option<String>,
}

/// Which object or collection a resource URL names.
struct Target<'a> {
    group: &'a str,
    version: &'a str,
    plural: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

async fn handle(state: &Shared, mut request: Request) -> Result<Reply, ApiError> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // The aggregator answers for an unavailable APIService in plain text, not with a
    // Status (`k8s.io/kube-aggregator/pkg/apiserver/handler_proxy.go`, `proxyError`).
    if let ["apis", group, version, ..] = segments.as_slice()
        && lock(state).cluster.catalog().is_unavailable(group, version)
    {
        return Ok(Reply {
            code: StatusCode::SERVICE_UNAVAILABLE,
            body: Value::String("service unavailable\n".to_owned()),
            content_type: "text/plain; charset=utf-8",
        });
    }
    if request.method() == Method::GET {
        let aggregated = discovery::wants_aggregated(request.header(header::ACCEPT));
        if let Some(reply) = discovery_reply(&lock(state).cluster, &segments, aggregated) {
            return reply;
        }
    }
    let target = match segments.as_slice() {
        ["api", version, rest @ ..] => target("", version, rest)?,
        ["apis", group, version, rest @ ..] => target(group, version, rest)?,
        _ => return Err(ApiError::no_route()),
    };
    let body = request
        .take_body()
        .into_vec()
        .await
        .map_err(|e| ApiError::bad_request(format!("unreadable body: {e}")))?;
    resource(state, &request, &target, body)
}

/// The answer to a discovery path, or `None` if `segments` is not one.
fn discovery_reply(
    cluster: &Cluster,
    segments: &[&str],
    aggregated: bool,
) -> Option<Result<Reply, ApiError>> {
    let catalog = cluster.catalog();
    let document = match *segments {
        ["version"] => Some(discovery::version()),
        ["api"] | ["apis"] if aggregated => {
            let body = discovery::aggregated(catalog, segments[0] == "api");
            return Some(Ok(Reply {
                content_type: discovery::AGGREGATED_MEDIA_TYPE,
                ..Reply::ok(body)
            }));
        }
        ["api"] => Some(discovery::core_versions(catalog)),
        ["api", version] => discovery::resource_list(catalog, "", version),
        ["apis"] => Some(discovery::group_list(catalog)),
        ["apis", group] => discovery::group(catalog, group),
        ["apis", group, version] => discovery::resource_list(catalog, group, version),
        _ => return None,
    };
    Some(document.map(Reply::ok).ok_or_else(ApiError::no_route))
}

fn target<'a>(group: &'a str, version: &'a str, rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
    let (namespace, plural, name) = match *rest {
        [plural] => (None, plural, None),
        [plural, name] => (None, plural, Some(name)),
        ["namespaces", namespace, plural] => (Some(namespace), plural, None),
        ["namespaces", namespace, plural, name] => (Some(namespace), plural, Some(name)),
        // Subresources (`/status`, `/scale`, …) are not emulated.
        _ => return Err(ApiError::no_route()),
    };
    Ok(Target {
        group,
        version,
        plural,
        namespace,
        name,
    })
}

/// A request on an object or a collection.
fn resource(
    state: &Shared,
    request: &Request,
    target: &Target<'_>,
    body: Vec<u8>,
) -> Result<Reply, ApiError> {
    let query: Query = request
        .params()
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let verb = match (request.method(), target.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if query.watch.as_deref() == Some("true") => "watch",
        (&Method::GET, None) => "list",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (method, _) => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not emulated: the emulator implements get, list, delete, server-side apply and merge patch"
            )));
        }
    };
    let merge = verb == "patch" && media_type(request) == MERGE_PATCH;
    // What an apply sent is worth recording even when the request then fails.
    let apply = if verb == "patch" && !merge {
        Some(parse_apply(request, &query, &body)?)
    } else {
        None
    };
    if let Some(apply) = &apply
        && !apply.dry_run
    {
        lock(state).applies.push(ApplyRecord {
            namespace: target.namespace.map(str::to_owned),
            name: target.name.unwrap_or_default().to_owned(),
            ..apply.record.clone()
        });
    }

    let mut state = lock(state);
    if state.is_forbidden(verb, target.plural) {
        return Err(ApiError::forbidden(
            verb,
            target.group,
            target.plural,
            target.namespace,
            target.name,
        ));
    }
    let served = served_type(state.cluster.catalog(), target)?;
    let namespace = target.namespace;
    // An apply that creates is also authorised as `create`
    // (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`, `createAuthorizerAttributes`).
    if let (Some(_), Some(name)) = (&apply, target.name)
        && state.cluster.get(&served, namespace, name).is_none()
        && state.is_forbidden("create", target.plural)
    {
        return Err(ApiError::forbidden(
            "create",
            target.group,
            target.plural,
            target.namespace,
            target.name,
        ));
    }
    match (verb, target.name, apply) {
        ("get", Some(name), _) => {
            let object = state
                .cluster
                .get(&served, namespace, name)
                .ok_or_else(|| ApiError::not_found(&served.group, &served.plural, name))?;
            state.cluster.churn(&served, namespace, name);
            Ok(Reply::ok(object))
        }
        ("list", None, _) => {
            if query
                .field_selector
                .as_deref()
                .is_some_and(|f| !f.is_empty())
            {
                return Err(ApiError::bad_request(
                    "fieldSelector is not supported by the emulator",
                ));
            }
            let selector = Selector::parse(query.label_selector.as_deref().unwrap_or_default())
                .map_err(ApiError::bad_request)?;
            let items = state.cluster.list(&served, namespace, &selector);
            Ok(Reply::ok(json!({
                "apiVersion": served.api_version(),
                "kind": format!("{}List", served.kind),
                "metadata": { "resourceVersion": state.cluster.resource_version() },
                "items": items,
            })))
        }
        ("patch", Some(name), None) => {
            let patch: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!("error decoding merge patch as JSON: {e}"))
            })?;
            let field_manager = query
                .field_manager
                .clone()
                .unwrap_or_else(|| default_manager(request));
            let patched = state.cluster.merge_patch(MergePatch {
                served: &served,
                namespace,
                name,
                patch,
                field_manager: &field_manager,
                dry_run: dry_run(&query)?,
            })?;
            Ok(Reply::ok(patched))
        }
        ("patch", Some(name), Some(apply)) => {
            let applied = state.cluster.apply(ApplyRequest {
                served: &served,
                namespace,
                name,
                body: apply.object,
                field_manager: &apply.record.field_manager,
                force: apply.record.force,
                dry_run: apply.dry_run,
            })?;
            if !apply.dry_run {
                state.cluster.churn(&served, namespace, name);
            }
            let code = if applied.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(Reply {
                code,
                ..Reply::ok(applied.object)
            })
        }
        ("delete", Some(name), _) => {
            if let Some(live) = state.cluster.get(&served, namespace, name) {
                check_preconditions(&served, name, &live, &body)?;
            }
            state
                .cluster
                .delete(&served, namespace, name)
                .map(Reply::ok)
        }
        _ => Err(ApiError::method_not_allowed("watch is not emulated")),
    }
}

/// The served type a URL names, if it exists at that scope.
fn served_type(catalog: &Catalog, target: &Target<'_>) -> Result<ResourceType, ApiError> {
    let served = catalog
        .by_plural(target.group, target.version, target.plural)
        .ok_or_else(ApiError::no_route)?;
    // A namespaced kind can be listed across namespaces, but an object of it is only
    // reachable under its namespace; a cluster-scoped kind never is.
    let unreachable = matches!(
        (served.namespaced, target.namespace, target.name),
        (true, None, Some(_)) | (false, Some(_), _)
    );
    if unreachable {
        Err(ApiError::no_route())
    } else {
        Ok(served.clone())
    }
}

/// A well-formed server-side apply request.
struct Apply {
    object: Value,
    dry_run: bool,
    record: ApplyRecord,
}

/// The media type of the request body, without parameters.
fn media_type(request: &Request) -> &str {
    let content_type = request.content_type().unwrap_or_default();
    content_type.split(';').next().unwrap_or_default().trim()
}

fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match query.dry_run.as_deref() {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported dryRun value {other:?}"
        ))),
    }
}

/// Upstream names a manager that gave no `fieldManager` after its user agent, up to
/// the first `/` (`k8s.io/apiserver/pkg/endpoints/handlers/rest.go`, `prefixFromUserAgent`).
fn default_manager(request: &Request) -> String {
    let agent = request.header(header::USER_AGENT).unwrap_or("unknown");
    agent.split('/').next().unwrap_or(agent).to_owned()
}

/// A DELETE's `preconditions` (uid, resourceVersion) must match the live object, or
/// 409 as upstream (`k8s.io/apiserver/pkg/storage/interfaces.go`, `Preconditions.Check`).
fn check_preconditions(
    served: &ResourceType,
    name: &str,
    live: &Value,
    body: &[u8],
) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let options: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let wanted = &options["preconditions"][field];
        let actual = &live["metadata"][field];
        if wanted.is_string() && wanted != actual {
            let mut error = ApiError::conflict(&served.group, &served.plural, name);
            error.message = format!(
                "Precondition failed: {label} in precondition: {}, {label} in object meta: {}",
                wanted.as_str().unwrap_or_default(),
                actual.as_str().unwrap_or_default()
            );
            return Err(error);
        }
    }
    Ok(())
}

fn parse_apply(request: &Request, query: &Query, body: &[u8]) -> Result<Apply, ApiError> {
    let content_type = request.content_type().unwrap_or_default();
    if media_type(request) != APPLY_PATCH {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let dry_run = dry_run(query)?;
    let field_manager = query.field_manager.clone().ok_or_else(|| {
        ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            "fieldManager: Required value: is required for apply patch",
        )
    })?;
    // kube-rs sends JSON (a subset of YAML); YAML proper is not accepted here.
    let object: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding apply patch as JSON: {e}")))?;
    let annotations = object["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    let record = ApplyRecord {
        api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: None,
        name: String::new(),
        field_manager,
        force: query.force.as_deref() == Some("true"),
        annotations,
    };
    Ok(Apply {
        object,
        dry_run,
        record,
    })
}
