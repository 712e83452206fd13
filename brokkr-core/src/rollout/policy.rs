//! A stack's rollout policy: its waves, budgets, timers, failure rules and gates
//! (ROLLOUTS.md section 4). Each rollout keeps a copy taken when it was created, so a
//! policy changed mid-rollout applies to the next one only.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A stack's rollout policy, as stored and as the API takes it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// The waves, in order. An agent goes into the first wave whose selection it
    /// matches; agents matching none go into a final implicit wave.
    pub waves: Vec<WaveSpec>,
    /// Most agents in flight at once (pinned, not yet healthy on the candidate).
    /// `None`: no cap. An explicit 0 is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Most of the stack's agents not healthy at once, those unhealthy before the
    /// rollout included. `None`: no cap. An explicit 0 is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<Quantity>,
    /// Failed agents a wave tolerates (of the wave's agents); more fail the wave.
    #[serde(default = "Quantity::zero")]
    pub max_failures: Quantity,
    /// How long every agent of a wave must stay healthy on the candidate before the
    /// wave's `after_wave` gates run.
    #[serde(default)]
    pub bake_time: Span,
    /// How long a pinned agent has to become healthy, and how long a healthy one may
    /// stay degraded, before it counts as failed.
    #[serde(default = "Span::default_progress_deadline")]
    pub progress_deadline: Span,
    /// How long the whole rollout may run before it is reverted. `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_deadline: Option<Span>,
    /// What an agent that is stale when its wave starts does to the wave.
    #[serde(default)]
    pub offline_agents: OfflineAgents,
    /// What a failed wave does. `None`: `revert`, or `halt` for a stack's first
    /// deployment object (which has nothing to revert to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// What `error_limit` gate errors in a row do.
    #[serde(default)]
    pub on_gate_error: OnGateError,
    /// What a deployment object appended during a rollout does.
    #[serde(default)]
    pub on_new_version: OnNewVersion,
    /// Gates beyond the built-in health gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateSpec>,
}

/// One wave of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    /// Unique within the policy; gates name waves by it.
    pub name: String,
    /// Which agents it takes (of those not taken by an earlier wave).
    pub select: WaveSelect,
    /// One sub-wave per value of this agent label (agents without it: one more
    /// sub-wave), in the order of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Chunks of this size (a count, or a percentage of the wave, rounded up),
    /// ordered by (`group_by` value, agent id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Quantity>,
}

/// Which agents a wave takes: exactly one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveSelect {
    /// Agents by name or id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Agents whose labels include all of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Every agent no earlier wave took.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remaining: bool,
}

/// A gate of a policy (the health gate is built in and always on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Unique within the policy.
    pub name: String,
    /// What evaluates it.
    #[serde(rename = "type")]
    pub kind: GateKind,
    /// When it runs.
    pub phase: GatePhase,
    /// The waves it runs for, by name; empty: every wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<String>,
    /// `webhook`: where to `POST` (http or https, on the allowlist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `webhook`: the name of the signing secret in the control plane's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// `custom`: the name the control plane registered its gate under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// `webhook` and `custom`: how long one evaluation may take (default 10 s, at most
    /// 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    /// Errors in a row after which `on_gate_error` applies (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_limit: Option<u32>,
}

/// What evaluates a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// An operator's `approve` for the wave.
    Approval,
    /// A signed `POST` to a URL that answers a verdict.
    Webhook,
    /// A gate the control plane registered in its `GateRegistry`.
    Custom,
}

/// When a gate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatePhase {
    /// Before a wave's first pin.
    BeforeWave,
    /// After a wave baked, before it succeeds.
    AfterWave,
    /// While the rollout runs, on every evaluation; a failure reverts.
    Continuous,
}

/// What an agent stale at its wave's start does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineAgents {
    /// It is skipped; it gets the release head when the rollout ends.
    #[default]
    Skip,
    /// The wave waits for it (until the progress deadline).
    Wait,
    /// It counts as failed.
    Fail,
}

/// What a failed wave does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Every pin is removed: every agent goes back to the baseline at once.
    Revert,
    /// The rollout stops with its pins kept, for an operator's `abort` or `retry-wave`.
    Halt,
}

/// What too many gate errors in a row do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnGateError {
    /// The rollout pauses until an operator resumes it.
    #[default]
    Pause,
    /// The gate counts as failed.
    Fail,
}

/// What a deployment object appended during a rollout does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNewVersion {
    /// It waits for the running rollout to end; only the newest waiting one is kept.
    #[default]
    Queue,
    /// The running rollout ends (`superseded`, its pins removed) and the new one
    /// starts from its first wave.
    Supersede,
    /// The append is refused with 409 while a rollout runs.
    Reject,
}

/// A count, or a percentage of some total (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    /// This many.
    Count(u32),
    /// This percentage (0 to 100) of the total, rounded up.
    Percent(u8),
}

impl Quantity {
    /// Zero.
    pub fn zero() -> Self {
        Self::Count(0)
    }

    /// The absolute number this quantity means out of `total`.
    pub fn of(self, total: usize) -> usize {
        match self {
            Self::Count(n) => n as usize,
            Self::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// A quantity that is not `N` or `N%` with N at most 100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a count or a percentage (e.g. 3 or \"10%\")")]
pub struct BadQuantity(pub String);

impl FromStr for Quantity {
    type Err = BadQuantity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadQuantity(s.to_owned());
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                _ => Err(bad()),
            },
            None => s.trim().parse().map(Self::Count).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(n) => serializer.serialize_u32(*n),
            Self::Percent(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Count(n) => Ok(Self::Count(n)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A span of time written as a number with a unit, or several: `"500ms"`, `"30s"`,
/// `"10m"`, `"6h"`, `"1h30m"`, `"2d"`; `"0s"` is zero. A bare number is seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// The default `progress_deadline`: 15 minutes.
    pub fn default_progress_deadline() -> Self {
        Self(Duration::from_secs(15 * 60))
    }

    /// This span as a `chrono` duration, to add to a time.
    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

/// A span that is not one or more `<number><unit>` with unit ms, s, m, h or d.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (e.g. \"30s\", \"10m\", \"1h30m\")")]
pub struct BadSpan(pub String);

impl FromStr for Span {
    type Err = BadSpan;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSpan(s.to_owned());
        let text = s.trim();
        if text.is_empty() {
            return Err(bad());
        }
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Self(Duration::from_secs(secs)));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit_ms: u64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            let ms = number.checked_mul(unit_ms).ok_or_else(bad)?;
            total = total
                .checked_add(Duration::from_millis(ms))
                .ok_or_else(bad)?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Span {
    /// The largest unit that divides the span exactly: `90s` shows as `90s`, `600s`
    /// as `10m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        if ms == 0 {
            return f.write_str("0s");
        }
        for (size, unit) in units {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Secs(secs) => Ok(Self(Duration::from_secs(secs))),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_show() {
        for (text, secs) in [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172_800)] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0, Duration::from_secs(secs), "{text}");
        }
        assert_eq!(
            "500ms".parse::<Span>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(Span(Duration::from_secs(600)).to_string(), "10m");
        assert_eq!(Span(Duration::from_secs(90)).to_string(), "90s");
        assert_eq!(
            "10".parse::<Span>().unwrap().0,
            Duration::from_secs(10),
            "bare seconds"
        );
        for bad in ["", "m", "10x", "1.5h", "-3s"] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_parse_and_count() {
        assert_eq!("3".parse::<Quantity>().unwrap(), Quantity::Count(3));
        assert_eq!("10%".parse::<Quantity>().unwrap(), Quantity::Percent(10));
        assert!("101%".parse::<Quantity>().is_err());
        assert!("x".parse::<Quantity>().is_err());
        assert_eq!(Quantity::Percent(10).of(11), 2, "rounded up");
        assert_eq!(Quantity::Percent(50).of(0), 0);
        let json: Quantity = serde_json::from_str("\"25%\"").unwrap();
        assert_eq!(json, Quantity::Percent(25));
        let json: Quantity = serde_json::from_str("4").unwrap();
        assert_eq!(json, Quantity::Count(4));
    }

    #[test]
    fn the_design_example_parses_and_round_trips() {
        let text = r#"{"waves":[{"name":"canary","select":{"agents":["edge-7"]}},
          {"name":"eu","select":{"match_labels":{"region":"eu"}},"split":"50%"},
          {"name":"rest","select":{"remaining":true},"group_by":"zone"}],
         "max_concurrency":5,"max_unavailable":"10%","max_failures":"0","bake_time":"10m",
         "progress_deadline":"15m","rollout_deadline":"6h","offline_agents":"skip",
         "on_failure":"revert","on_gate_error":"pause","on_new_version":"queue",
         "gates":[{"name":"slo","type":"webhook","phase":"after_wave",
                   "url":"https://slo.example/gate","secret_ref":"slo-hmac","timeout":"10s",
                   "error_limit":3},
                  {"name":"prod-ok","type":"approval","phase":"before_wave","waves":["rest"]}]}"#;
        let policy: RolloutPolicy = serde_json::from_str(text).unwrap();
        assert_eq!(policy.waves.len(), 3);
        assert_eq!(policy.bake_time.0, Duration::from_secs(600));
        assert_eq!(policy.gates[0].kind, GateKind::Webhook);
        let again: RolloutPolicy =
            serde_json::from_value(serde_json::to_value(&policy).unwrap()).unwrap();
        assert_eq!(again, policy);
    }
}
