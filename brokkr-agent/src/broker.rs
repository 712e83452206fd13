//! The broker's HTTP API as the agent uses it: readiness, who the key belongs to,
//! heartbeats, the target state (long poll with ETag), events and health reports.
//!
//! Every call is bounded by a timeout. Errors say whether retrying can help
//! ([`BrokerError::is_retryable`]); the callers decide how long to back off. Every
//! call is counted by kind and outcome ([`CallCounters`]).
//!
//! One agent builds one [`BrokerClient`] with [`BrokerClient::new`]. Many agents of one
//! process (a fleet simulation) build theirs from one [`BrokerClients`], which parses
//! the TLS roots once and shares one connection pool and one set of counters.
//!
//! An `https://` broker is verified against the system's roots (rustls with ring, the
//! platform verifier reqwest uses), plus a [`CaBundle`] when one is configured.

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::{AgentId, Capabilities};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Secret;

mod calls;
mod roots;
mod wire;

pub use calls::{Call, CallCounters, Outcome};
pub use roots::{CaBundle, CaBundleError};
pub use wire::{
    Action, DeploymentObjectWire, EventReport, HealthWire, Poll, ResourceHealthWire, TargetEntry,
    TargetStateWire,
};

/// Extra time allowed on top of a long poll's wait before the call times out.
const POLL_SLACK: Duration = Duration::from_secs(10);
/// Timeout of every other call.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a broker call failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker could not be reached (refused, reset, closed).
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The broker did not answer within the call's timeout.
    #[error("broker did not answer in time: {0}")]
    TimedOut(String),
    /// The key was refused (401) or does not grant what was asked (403).
    #[error("broker refused the key ({status}): {message}")]
    Refused {
        /// 401 or 403.
        status: u16,
        /// The broker's message.
        message: String,
    },
    /// Any other error answer.
    #[error("broker answered {status} {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The broker's stable error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer could not be read.
    #[error("unreadable broker answer: {0}")]
    Decode(String),
}

impl BrokerError {
    /// Whether the same call may succeed later: transport failures, timeouts, 5xx and
    /// 429. A refused key, a 404 or a 422 will not change by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::TimedOut(_) | Self::Decode(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Refused { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct KeyIdentity {
    role: String,
    id: Option<Uuid>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Serialize)]
struct HeartbeatBody<'a> {
    capabilities: &'a Capabilities,
}

/// Builds [`BrokerClient`]s for many agents of one broker that share one HTTP client
/// (TLS roots parsed once, one connection pool) and one [`CallCounters`]. The pool
/// still gives each request in flight its own HTTP/1.1 connection, so each agent's
/// long poll holds one connection and its other calls take idle ones.
#[derive(Clone)]
pub struct BrokerClients {
    http: reqwest::Client,
    base: Arc<str>,
    calls: Arc<CallCounters>,
}

impl std::fmt::Debug for BrokerClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerClients")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl BrokerClients {
    /// Clients of the broker at `base_url`, trusting the system's roots.
    pub fn new(base_url: &str) -> Result<Self, BrokerError> {
        Self::with_roots(base_url, None)
    }

    /// Clients of the broker at `base_url`, trusting `extra_roots` besides the
    /// system's roots.
    pub fn with_roots(base_url: &str, extra_roots: Option<&CaBundle>) -> Result<Self, BrokerError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("brokkr-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(roots) = extra_roots {
            builder = roots.trust(builder);
        }
        let http = builder
            .build()
            .map_err(|e| BrokerError::Unreachable(e.to_string()))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').into(),
            calls: Arc::default(),
        })
    }

    /// A client with one agent's key.
    pub fn client(&self, key: Secret) -> BrokerClient {
        BrokerClient {
            http: self.http.clone(),
            base: Arc::clone(&self.base),
            key,
            calls: Arc::clone(&self.calls),
        }
    }

    /// The calls of every client built here.
    pub fn calls(&self) -> &CallCounters {
        &self.calls
    }
}

/// A client of the broker's agent API.
#[derive(Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    base: Arc<str>,
    key: Secret,
    calls: Arc<CallCounters>,
}

impl std::fmt::Debug for BrokerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl BrokerClient {
    /// A client of the broker at `base_url` with the agent's key, with an HTTP client
    /// of its own.
    pub fn new(base_url: &str, key: Secret) -> Result<Self, BrokerError> {
        Ok(BrokerClients::new(base_url)?.client(key))
    }

    /// Its calls so far (with those of every client sharing its [`BrokerClients`]).
    pub fn calls(&self) -> &CallCounters {
        &self.calls
    }

    fn count<T>(&self, call: Call, result: Result<T, BrokerError>) -> Result<T, BrokerError> {
        self.calls.record(call, Outcome::of(&result));
        result
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.bearer_auth(self.key.expose())
    }

    /// Whether `/readyz` answers 200 (the broker and its database are up).
    pub async fn ready(&self) -> Result<(), BrokerError> {
        let result = async {
            let response = self
                .http
                .get(self.url("/readyz"))
                .timeout(CALL_TIMEOUT)
                .send()
                .await
                .map_err(unreachable)?;
            check(response).await.map(drop)
        }
        .await;
        self.count(Call::Ready, result)
    }

    /// The agent the key belongs to; refused unless it is an agent key.
    pub async fn whoami(&self) -> Result<AgentId, BrokerError> {
        let result = async {
            let response = self
                .authorized(self.http.post(self.url("/api/v1/auth/pak")))
                .timeout(CALL_TIMEOUT)
                .send()
                .await
                .map_err(unreachable)?;
            decode::<KeyIdentity>(check(response).await?).await
        }
        .await;
        let identity = self.count(Call::Whoami, result)?;
        match (identity.role.as_str(), identity.id) {
            ("agent", Some(id)) => Ok(AgentId(id)),
            (role, _) => Err(BrokerError::Refused {
                status: 403,
                message: format!("the key belongs to a {role}, not an agent"),
            }),
        }
    }

    /// Reports that the agent is alive, with its cluster's capabilities.
    pub async fn heartbeat(
        &self,
        agent: AgentId,
        capabilities: &Capabilities,
    ) -> Result<(), BrokerError> {
        let result = self
            .post_json(
                &format!("/api/v1/agents/{agent}/heartbeat"),
                &HeartbeatBody { capabilities },
            )
            .await;
        self.count(Call::Heartbeat, result)
    }

    /// The target state; with `etag`, waits up to `wait` for it to change.
    pub async fn target_state(
        &self,
        agent: AgentId,
        etag: Option<&str>,
        wait: Duration,
    ) -> Result<Poll, BrokerError> {
        let result = self.fetch_target_state(agent, etag, wait).await;
        self.calls.record(
            Call::TargetState,
            match result {
                Ok(Poll::Unchanged) => Outcome::Unchanged,
                _ => Outcome::of(&result),
            },
        );
        result
    }

    async fn fetch_target_state(
        &self,
        agent: AgentId,
        etag: Option<&str>,
        wait: Duration,
    ) -> Result<Poll, BrokerError> {
        let path = format!("/api/v1/agents/{agent}/target-state");
        let request = match etag {
            Some(etag) => self
                .authorized(
                    self.http
                        .get(self.url(&format!("{path}?wait={}", wait.as_secs()))),
                )
                .header(reqwest::header::IF_NONE_MATCH, format!("\"{etag}\"")),
            None => self.authorized(self.http.get(self.url(&path))),
        };
        let response = request
            .timeout(wait + POLL_SLACK)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Poll::Unchanged);
        }
        Ok(Poll::Changed(decode(check(response).await?).await?))
    }

    /// Records an event. A repeated id is answered with the stored event, so retrying
    /// a report never duplicates it.
    pub async fn report_event(
        &self,
        agent: AgentId,
        event: &EventReport,
    ) -> Result<(), BrokerError> {
        let result = self
            .post_json(&format!("/api/v1/agents/{agent}/events"), event)
            .await;
        self.count(Call::Event, result)
    }

    /// Reports the health of a stack's workloads.
    pub async fn report_health(
        &self,
        agent: AgentId,
        health: &HealthWire,
    ) -> Result<(), BrokerError> {
        let result = self
            .post_json(&format!("/api/v1/agents/{agent}/health"), health)
            .await;
        self.count(Call::Health, result)
    }

    /// POSTs `body` as JSON with the key; any 2xx is success.
    async fn post_json(&self, path: &str, body: &impl Serialize) -> Result<(), BrokerError> {
        let response = self
            .authorized(self.http.post(self.url(path)))
            .json(body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        check(response).await.map(drop)
    }
}

fn unreachable(err: reqwest::Error) -> BrokerError {
    // Never include the URL's query or headers: only the kind of failure.
    let timed_out = err.is_timeout();
    // With its causes: "error sending request" alone hides a refused certificate.
    let message = brokkr_core::runtime::ErrorChain(&err.without_url()).to_string();
    if timed_out {
        BrokerError::TimedOut(message)
    } else {
        BrokerError::Unreachable(message)
    }
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, BrokerError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: ErrorBody = response.json().await.unwrap_or_default();
    match status.as_u16() {
        status @ (401 | 403) => Err(BrokerError::Refused {
            status,
            message: body.message,
        }),
        status => Err(BrokerError::Status {
            status,
            code: body.code,
            message: body.message,
        }),
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, BrokerError> {
    response.json().await.map_err(|e| {
        if e.is_timeout() {
            BrokerError::TimedOut(e.without_url().to_string())
        } else {
            BrokerError::Decode(e.without_url().to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brokkr_core::{DeploymentObjectId, EventStatus, EventType};

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |status: u16| BrokerError::Status {
            status,
            code: String::new(),
            message: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(422).is_retryable());
        assert!(BrokerError::Unreachable("reset".into()).is_retryable());
        let refused = BrokerError::Refused {
            status: 401,
            message: String::new(),
        };
        assert!(!refused.is_retryable());
    }

    #[test]
    fn reports_leave_out_what_they_do_not_have_rather_than_send_null() {
        let event = EventReport {
            id: Uuid::nil(),
            deployment_object_id: DeploymentObjectId::from(Uuid::nil()),
            event_type: EventType::Apply,
            status: EventStatus::Success,
            message: None,
        };
        let event = serde_json::to_value(&event).expect("serializes");
        assert!(event.get("message").is_none(), "{event}");
        let health = HealthWire {
            deployment_object_id: DeploymentObjectId::from(Uuid::nil()),
            summary: None,
            resources: Vec::new(),
        };
        let health = serde_json::to_value(&health).expect("serializes");
        assert!(health.get("summary").is_none(), "{health}");
    }

    #[test]
    fn the_target_state_wire_format_parses() {
        let json = serde_json::json!({
            "agent_id": "0190b7a0-0000-7000-8000-000000000001",
            "etag": "abc",
            "entries": [{
                "stack_id": "0190b7a0-0000-7000-8000-000000000002",
                "stack_name": "web",
                "action": "remove",
                "deployment_object": {
                    "id": "0190b7a0-0000-7000-8000-000000000003",
                    "stack_id": "0190b7a0-0000-7000-8000-000000000002",
                    "sequence_id": 7,
                    "yaml_content": "",
                    "yaml_checksum": "e3b0",
                    "is_deletion_marker": true,
                    "created_at": "2026-11-22T00:00:00Z"
                }
            }]
        });
        let state: TargetStateWire = serde_json::from_value(json).unwrap();
        assert_eq!(state.entries[0].action, Action::Remove);
        assert!(state.entries[0].deployment_object.is_deletion_marker);
        let created = state.entries[0].deployment_object.created_at;
        assert_eq!(
            created.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-22T00:00:00+00:00")
        );
    }

    #[test]
    fn calls_are_counted_by_kind_and_outcome() {
        let counters = CallCounters::default();
        let refused: Result<(), _> = Err(BrokerError::Refused {
            status: 401,
            message: String::new(),
        });
        counters.record(Call::Heartbeat, Outcome::of(&refused));
        counters.record(Call::Heartbeat, Outcome::of(&Ok(())));
        let overloaded: Result<(), _> = Err(BrokerError::Status {
            status: 503,
            code: String::new(),
            message: String::new(),
        });
        counters.record(Call::Event, Outcome::of(&overloaded));
        assert_eq!(counters.get(Call::Heartbeat, Outcome::Refused), 1);
        assert_eq!(counters.get(Call::Heartbeat, Outcome::Ok), 1);
        assert_eq!(counters.get(Call::Event, Outcome::ServerError), 1);
        assert_eq!(counters.get(Call::Event, Outcome::Ok), 0);
        assert!(Outcome::TimedOut.is_error() && !Outcome::Unchanged.is_error());
    }
}
