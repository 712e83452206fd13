//! The API over HTTP: one JSON request at a time, errors turned into [`Error`], and
//! listings followed through their cursors.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::error::{Error, Result};

/// Most rows the server gives in one page.
const MAX_PAGE: usize = 1000;

/// A connection is given up after this long: an unreachable server fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request is given up after this long (a large deployment object included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How many rows a listing gathers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// At most this many.
    AtMost(usize),
    /// Every row, page after page.
    All,
}

/// A client of one server's API v1, with one key.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    pak: Option<String>,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`, or a prefix the API is
    /// nested under), sending `pak` as the bearer key.
    pub fn new(base: &str, pak: Option<String>) -> Result<Self> {
        let base = Url::parse(base)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| Error::Input(format!("--url {base:?} is not an http(s) URL")))?;
        // reqwest is built without a TLS provider; ring is the workspace's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("brokkr-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Unreachable {
                url: base.to_string(),
                source,
            })?;
        Ok(Self { http, base, pak })
    }

    /// `{base}/api/v1/{segments...}?{query}`; each segment is percent-encoded, so a
    /// label key `example.com/team` stays one segment.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// The server's clock, from the `Date` header of its `/healthz` answer (second
    /// precision; the caller's clock when the server sends none).
    pub async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .push("healthz");
        let response =
            self.http
                .get(url.clone())
                .send()
                .await
                .map_err(|source| Error::Unreachable {
                    url: url.to_string(),
                    source,
                })?;
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|date| date.to_str().ok())
            .and_then(|date| chrono::DateTime::parse_from_rfc2822(date).ok());
        Ok(date.map_or_else(chrono::Utc::now, |date| date.to_utc()))
    }

    /// GET a JSON answer.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value> {
        let url = self.url(segments, query);
        self.send(Method::GET, url, None).await
    }

    /// POST a JSON body, answering the JSON answer.
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value> {
        self.post_query(segments, &[], body).await
    }

    /// POST a JSON body with query parameters, answering the JSON answer.
    pub async fn post_query(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value> {
        let url = self.url(segments, query);
        self.send(Method::POST, url, Some(body)).await
    }

    /// PUT a JSON body, answering the JSON answer.
    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Value> {
        let url = self.url(segments, &[]);
        self.send(Method::PUT, url, Some(body)).await
    }

    /// DELETE, answering the JSON answer (`null` for 204).
    pub async fn delete(&self, segments: &[&str]) -> Result<Value> {
        let url = self.url(segments, &[]);
        self.send(Method::DELETE, url, None).await
    }

    /// The items of a listing, following `next_cursor` until `rows` are gathered or
    /// the last page, each page no larger than needed.
    pub async fn list(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        rows: Rows,
    ) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let wanted = match rows {
                Rows::AtMost(n) => n.saturating_sub(items.len()).min(MAX_PAGE),
                Rows::All => MAX_PAGE,
            };
            if wanted == 0 {
                return Ok(items);
            }
            let mut page_query = query.to_vec();
            page_query.push(("limit", wanted.to_string()));
            if let Some(cursor) = cursor.take() {
                page_query.push(("cursor", cursor));
            }
            let page = self.get(segments, &page_query).await?;
            if let Some(Value::Array(page_items)) = page.get("items") {
                items.extend(page_items.iter().cloned());
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Value> {
        let mut request = self.http.request(method, url.clone());
        if let Some(pak) = &self.pak {
            request = request.bearer_auth(pak);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| Error::Unreachable {
            url: url.to_string(),
            source,
        })?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let bytes = response.bytes().await.map_err(|err| Error::BadAnswer {
            url: url.to_string(),
            reason: err.to_string(),
        })?;
        if status.is_client_error() || status.is_server_error() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|err| Error::BadAnswer {
            url: url.to_string(),
            reason: format!("{status} with a body that is not JSON ({err})"),
        })
    }
}

/// The server's `{code, message, details}`, or a code made from the status when the
/// body is not one (a proxy's page, say).
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = |field: &str| {
        parsed
            .as_ref()
            .and_then(|body| body.get(field))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (text("code"), text("message")) {
        (Some(code), Some(message)) => Error::Api {
            status: status.as_u16(),
            code,
            message,
            details: parsed.and_then(|mut body| body.get_mut("details").map(Value::take)),
        },
        _ => Error::Api {
            status: status.as_u16(),
            code: format!("http_{}", status.as_u16()),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
            details: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_prefix_and_encode_segments() {
        let api = Api::new("http://127.0.0.1:3000/brokkr/", None).unwrap();
        let url = api.url(
            &["agents", "a", "labels", "example.com/team"],
            &[("since", "2025-01-01T00:00:00+00:00".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:3000/brokkr/api/v1/agents/a/labels/example.com%2Fteam?since=2025-01-01T00%3A00%3A00%2B00%3A00"
        );
        assert!(Api::new("127.0.0.1:3000", None).is_err());
    }

    #[test]
    fn error_bodies_keep_code_and_message() {
        let error = api_error(
            StatusCode::UNAUTHORIZED,
            br#"{"code":"unauthorized","message":"bad key"}"#,
        );
        assert_eq!(error.to_string(), "unauthorized: bad key");
        let error = api_error(StatusCode::BAD_GATEWAY, b"<html>proxy</html>");
        assert_eq!(error.to_string(), "http_502: <html>proxy</html>");
        assert_eq!(error.exit_code(), super::super::error::EXIT_UNAVAILABLE);
    }
}
