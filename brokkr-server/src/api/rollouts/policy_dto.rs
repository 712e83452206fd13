//! The rollout policy as the API shows it: the same JSON as
//! `brokkr_core::rollout::RolloutPolicy`, with each field documented in the OpenAPI
//! document. Durations are text (`"30s"`, `"10m"`, `"1h30m"`), quantities a count or a
//! percentage (`"3"`, `"10%"`).

use std::collections::BTreeMap;

use brokkr_core::rollout::{
    GateKind, GatePhase, GateSpec, OfflineAgents, OnFailure, OnGateError, OnNewVersion, Quantity,
    RolloutPolicy, Span, WaveSelect, WaveSpec,
};
use poem_openapi::{Enum, Object};

use crate::error::{ApiError, ApiResult};

/// A stack's rollout policy: how a new deployment object reaches its agents.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutPolicy")]
pub struct RolloutPolicyDto {
    /// The waves, in order; an agent goes into the first that selects it, agents no
    /// wave selects into a final implicit wave (1-100 waves).
    pub waves: Vec<WaveSpecDto>,
    /// Most agents in flight at once (pinned, not yet healthy on the candidate); at
    /// least 1. Absent: no cap.
    #[oai(skip_serializing_if_is_none)]
    pub max_concurrency: Option<u32>,
    /// Most of the stack's agents not healthy at once, counting those unhealthy before
    /// the rollout: a count or a percentage, at least 1. Absent: no cap.
    #[oai(skip_serializing_if_is_none)]
    pub max_unavailable: Option<String>,
    /// Failed agents a wave tolerates: a count or a percentage of the wave (default 0).
    #[oai(skip_serializing_if_is_none)]
    pub max_failures: Option<String>,
    /// How long a wave's agents must all stay healthy before it succeeds (default 0s).
    #[oai(skip_serializing_if_is_none)]
    pub bake_time: Option<String>,
    /// How long a pinned agent has to become healthy, and how long a healthy one may
    /// stay degraded (default 15m).
    #[oai(skip_serializing_if_is_none)]
    pub progress_deadline: Option<String>,
    /// How long the whole rollout may run before it is reverted. Absent: no limit.
    #[oai(skip_serializing_if_is_none)]
    pub rollout_deadline: Option<String>,
    /// What an agent that is offline when its wave starts does (default `skip`).
    #[oai(skip_serializing_if_is_none)]
    pub offline_agents: Option<OfflineAgentsDto>,
    /// What a failed wave does (default `revert`; `halt` for a stack's first object).
    #[oai(skip_serializing_if_is_none)]
    pub on_failure: Option<OnFailureDto>,
    /// What `error_limit` gate errors in a row do (default `pause`).
    #[oai(skip_serializing_if_is_none)]
    pub on_gate_error: Option<OnGateErrorDto>,
    /// What an object appended during a rollout does (default `queue`).
    #[oai(skip_serializing_if_is_none)]
    pub on_new_version: Option<OnNewVersionDto>,
    /// Gates beyond the built-in health gate (at most 20).
    #[oai(default)]
    pub gates: Vec<GateSpecDto>,
}

/// One wave of a policy.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutWaveSpec")]
pub struct WaveSpecDto {
    /// Unique within the policy; gates name waves by it.
    pub name: String,
    /// Which agents it takes: exactly one of `agents`, `match_labels`, `remaining`.
    pub select: WaveSelectDto,
    /// One sub-wave per value of this agent label.
    #[oai(skip_serializing_if_is_none)]
    pub group_by: Option<String>,
    /// Chunks of this size: a count, or a percentage of the wave (rounded up).
    #[oai(skip_serializing_if_is_none)]
    pub split: Option<String>,
}

/// Which agents a wave takes.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutWaveSelect")]
pub struct WaveSelectDto {
    /// Agents by name or id.
    #[oai(default)]
    pub agents: Vec<String>,
    /// Agents whose labels include all of these.
    #[oai(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Every agent no earlier wave took (the last wave only).
    #[oai(default)]
    pub remaining: bool,
}

/// A gate of a policy.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutGateSpec")]
pub struct GateSpecDto {
    /// Unique within the policy.
    pub name: String,
    /// `approval`, `webhook` or `custom`.
    #[oai(rename = "type")]
    pub kind: GateKindDto,
    /// `before_wave`, `after_wave` or `continuous` (not for approvals).
    pub phase: GatePhaseDto,
    /// The waves it runs for, by name; empty: every wave.
    #[oai(default)]
    pub waves: Vec<String>,
    /// `webhook`: where to POST (on the server's `[webhooks] allowed_hosts`).
    #[oai(skip_serializing_if_is_none)]
    pub url: Option<String>,
    /// `webhook`: the name of a signing secret in `[rollouts] gate_secrets`.
    #[oai(skip_serializing_if_is_none)]
    pub secret_ref: Option<String>,
    /// `custom`: the name the control plane registered its gate under.
    #[oai(skip_serializing_if_is_none)]
    pub custom: Option<String>,
    /// How long one evaluation may take (default 10s, at most 60s).
    #[oai(skip_serializing_if_is_none)]
    pub timeout: Option<String>,
    /// Errors in a row after which `on_gate_error` applies (default 3).
    #[oai(skip_serializing_if_is_none)]
    pub error_limit: Option<u32>,
}

macro_rules! mirror_enum {
    ($(#[$doc:meta])* $dto:ident as $name:literal <=> $core:ident { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
        #[oai(rename = $name, rename_all = "snake_case")]
        pub enum $dto { $($(#[$vdoc])* $variant),* }

        impl From<$core> for $dto {
            fn from(value: $core) -> Self {
                match value { $($core::$variant => Self::$variant),* }
            }
        }

        impl From<$dto> for $core {
            fn from(value: $dto) -> Self {
                match value { $($dto::$variant => Self::$variant),* }
            }
        }
    };
}

mirror_enum!(
    /// What evaluates a gate.
    GateKindDto as "RolloutGateType" <=> GateKind {
        /// An operator's approval of the wave.
        Approval,
        /// A signed POST answered with a verdict.
        Webhook,
        /// A gate the control plane registered.
        Custom,
    }
);
mirror_enum!(
    /// When a gate runs.
    GatePhaseDto as "RolloutGatePhase" <=> GatePhase {
        /// Before the wave's first pin.
        BeforeWave,
        /// After the wave baked.
        AfterWave,
        /// On every evaluation while the rollout runs; a failure reverts.
        Continuous,
    }
);
mirror_enum!(
    /// What an agent offline at its wave's start does.
    OfflineAgentsDto as "RolloutOfflineAgents" <=> OfflineAgents {
        /// Skipped; it gets the release head when the rollout ends.
        Skip,
        /// The wave waits for it (until the progress deadline).
        Wait,
        /// It counts as failed.
        Fail,
    }
);
mirror_enum!(
    /// What a failed wave does.
    OnFailureDto as "RolloutOnFailure" <=> OnFailure {
        /// Every agent goes back to the baseline at once.
        Revert,
        /// The rollout stops with its pins kept.
        Halt,
    }
);
mirror_enum!(
    /// What too many gate errors in a row do.
    OnGateErrorDto as "RolloutOnGateError" <=> OnGateError {
        /// The rollout pauses.
        Pause,
        /// The gate counts as failed.
        Fail,
    }
);
mirror_enum!(
    /// What an object appended during a rollout does.
    OnNewVersionDto as "RolloutOnNewVersion" <=> OnNewVersion {
        /// It waits; only the newest waiting one is kept.
        Queue,
        /// The running rollout ends and the new one starts.
        Supersede,
        /// The append is refused with 409.
        Reject,
    }
);

impl RolloutPolicyDto {
    /// The policy, or 422 `invalid_rollout_policy` naming the field whose duration or
    /// quantity does not parse. Its rules are checked by the control plane.
    pub fn into_policy(self) -> ApiResult<RolloutPolicy> {
        let waves = self
            .waves
            .into_iter()
            .enumerate()
            .map(|(index, wave)| wave.into_spec(index))
            .collect::<ApiResult<_>>()?;
        let gates = self
            .gates
            .into_iter()
            .enumerate()
            .map(|(index, gate)| gate.into_spec(index))
            .collect::<ApiResult<_>>()?;
        Ok(RolloutPolicy {
            waves,
            max_concurrency: self.max_concurrency,
            max_unavailable: quantity(self.max_unavailable, "/max_unavailable")?,
            max_failures: quantity(self.max_failures, "/max_failures")?.unwrap_or(Quantity::zero()),
            bake_time: span(self.bake_time, "/bake_time")?.unwrap_or_default(),
            progress_deadline: span(self.progress_deadline, "/progress_deadline")?
                .unwrap_or_else(Span::default_progress_deadline),
            rollout_deadline: span(self.rollout_deadline, "/rollout_deadline")?,
            offline_agents: self.offline_agents.map(Into::into).unwrap_or_default(),
            on_failure: self.on_failure.map(Into::into),
            on_gate_error: self.on_gate_error.map(Into::into).unwrap_or_default(),
            on_new_version: self.on_new_version.map(Into::into).unwrap_or_default(),
            gates,
        })
    }
}

impl WaveSpecDto {
    fn into_spec(self, index: usize) -> ApiResult<WaveSpec> {
        Ok(WaveSpec {
            name: self.name,
            select: WaveSelect {
                agents: self.select.agents,
                match_labels: self.select.match_labels,
                remaining: self.select.remaining,
            },
            group_by: self.group_by,
            split: quantity(self.split, &format!("/waves/{index}/split"))?,
        })
    }
}

impl GateSpecDto {
    fn into_spec(self, index: usize) -> ApiResult<GateSpec> {
        Ok(GateSpec {
            name: self.name,
            kind: self.kind.into(),
            phase: self.phase.into(),
            waves: self.waves,
            url: self.url,
            secret_ref: self.secret_ref,
            custom: self.custom,
            timeout: span(self.timeout, &format!("/gates/{index}/timeout"))?,
            error_limit: self.error_limit,
        })
    }
}

impl From<RolloutPolicy> for RolloutPolicyDto {
    fn from(policy: RolloutPolicy) -> Self {
        Self {
            waves: policy
                .waves
                .into_iter()
                .map(|wave| WaveSpecDto {
                    name: wave.name,
                    select: WaveSelectDto {
                        agents: wave.select.agents,
                        match_labels: wave.select.match_labels,
                        remaining: wave.select.remaining,
                    },
                    group_by: wave.group_by,
                    split: wave.split.map(|q| q.to_string()),
                })
                .collect(),
            max_concurrency: policy.max_concurrency,
            max_unavailable: policy.max_unavailable.map(|q| q.to_string()),
            max_failures: Some(policy.max_failures.to_string()),
            bake_time: Some(policy.bake_time.to_string()),
            progress_deadline: Some(policy.progress_deadline.to_string()),
            rollout_deadline: policy.rollout_deadline.map(|s| s.to_string()),
            offline_agents: Some(policy.offline_agents.into()),
            on_failure: policy.on_failure.map(Into::into),
            on_gate_error: Some(policy.on_gate_error.into()),
            on_new_version: Some(policy.on_new_version.into()),
            gates: policy
                .gates
                .into_iter()
                .map(|gate| GateSpecDto {
                    name: gate.name,
                    kind: gate.kind.into(),
                    phase: gate.phase.into(),
                    waves: gate.waves,
                    url: gate.url,
                    secret_ref: gate.secret_ref,
                    custom: gate.custom,
                    timeout: gate.timeout.map(|s| s.to_string()),
                    error_limit: gate.error_limit,
                })
                .collect(),
        }
    }
}

fn quantity(text: Option<String>, path: &str) -> ApiResult<Option<Quantity>> {
    text.map(|text| text.parse().map_err(|err| bad_field(path, err)))
        .transpose()
}

fn span(text: Option<String>, path: &str) -> ApiResult<Option<Span>> {
    text.map(|text| text.parse().map_err(|err| bad_field(path, err)))
        .transpose()
}

fn bad_field(path: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(
        "invalid_rollout_policy",
        format!("invalid rollout policy: {path}: {err}"),
        Some(serde_json::json!({
            "violations": [{ "path": path, "code": "invalid_value", "message": err.to_string() }]
        })),
    )
}
