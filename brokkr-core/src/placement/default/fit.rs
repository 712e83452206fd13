//! Whether one agent fits a policy (the per-agent checks, in order), and where it
//! ranks among the agents that do.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::id::AgentId;
use crate::model::{Agent, AgentStatus, Capabilities, Liveness};
use crate::placement::{
    KubernetesVersion, PlacementPolicy, Rejection, TAINTS_ANNOTATION, Taint, TaintEffect,
    TaintError, parse_taints,
};

/// A policy prepared for judging many agents at one instant: what can be parsed once
/// per decision is parsed here.
pub(super) struct Fit<'p> {
    pub(super) policy: &'p PlacementPolicy,
    /// `Some(None)`: a minimum version is required but does not parse (a policy that
    /// skipped validation); no agent meets it.
    min_version: Option<Option<KubernetesVersion>>,
    /// `None` when the policy never evicts (or the bound is too large to matter).
    evict_after: Option<Duration>,
    now: DateTime<Utc>,
    stale_after: Duration,
}

/// An agent that fits, with what ranks it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<'a> {
    pub(super) id: AgentId,
    /// Ranked before every agent without it (an incumbent, unless `rebalance`).
    pub(super) keep_first: bool,
    pub(super) cpu: u64,
    pub(super) memory: u64,
    /// Its value of the spread label; `None` when it lacks the label (one more domain).
    pub(super) domain: Option<&'a str>,
}

impl Candidate<'_> {
    /// Kept incumbents first, then most allocatable CPU, then most memory, then
    /// ascending id: a total order, so the ranking never depends on input order.
    pub(super) fn rank(a: &Self, b: &Self) -> Ordering {
        b.keep_first
            .cmp(&a.keep_first)
            .then(b.cpu.cmp(&a.cpu))
            .then(b.memory.cmp(&a.memory))
            .then(a.id.cmp(&b.id))
    }
}

impl<'p> Fit<'p> {
    pub(super) fn new(
        policy: &'p PlacementPolicy,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> Self {
        Self {
            policy,
            min_version: policy
                .requirements
                .min_kubernetes_version
                .as_deref()
                .map(KubernetesVersion::parse),
            evict_after: policy
                .evict_after_secs
                .and_then(|secs| i64::try_from(secs).ok())
                .and_then(Duration::try_seconds),
            now,
            stale_after,
        }
    }

    /// The first check `agent` fails, without building the explanation (no
    /// allocation, except to parse a taint list). An `incumbent` (already chosen) is
    /// judged more leniently: it keeps its place despite `NoSchedule` and
    /// `PreferNoSchedule` taints, an unparsable taint list, and a stale heartbeat
    /// (until `evict_after_secs`).
    pub(super) fn failing(&self, agent: &Agent, incumbent: bool) -> Option<Check> {
        let policy = self.policy;
        if agent.deleted_at.is_some() || agent.status != AgentStatus::Active {
            Some(Check::Active)
        } else if !policy.agent_selector.matches(&agent.labels) {
            Some(Check::Labels)
        } else if !policy.annotations.matches(&agent.annotations) {
            Some(Check::Annotations)
        } else if self.unmet_requirement(&agent.capabilities).is_some() {
            Some(Check::Requirements)
        } else if self.untolerated_taint(agent, incumbent).is_some() {
            Some(Check::Taints)
        } else if !self.heartbeat_ok(agent, incumbent) {
            Some(Check::Heartbeat)
        } else {
            None
        }
    }

    /// The rejection for `agent` failing `check`.
    pub(super) fn explain(&self, agent: &Agent, incumbent: bool, check: Check) -> Rejection {
        let policy = self.policy;
        let unexplained = || "no detail".to_owned();
        match check {
            Check::Active => Rejection::NotActive,
            Check::Labels => Rejection::LabelMismatch(
                policy
                    .agent_selector
                    .first_mismatch(&agent.labels)
                    .map_or_else(unexplained, |miss| miss.to_string()),
            ),
            Check::Annotations => Rejection::AnnotationMismatch(
                policy
                    .annotations
                    .first_mismatch(&agent.annotations)
                    .map_or_else(unexplained, |miss| miss.to_string()),
            ),
            Check::Requirements => Rejection::MissingCapability(
                self.unmet_requirement(&agent.capabilities)
                    .map_or_else(unexplained, |unmet| unmet.to_string()),
            ),
            Check::Taints => Rejection::Taint(
                self.untolerated_taint(agent, incumbent)
                    .map_or_else(unexplained, |taint| taint.to_string()),
            ),
            Check::Heartbeat => Rejection::StaleHeartbeat,
        }
    }

    /// The candidate `agent` makes, once it fits.
    pub(super) fn candidate<'a>(&self, agent: &'a Agent, keep_first: bool) -> Candidate<'a> {
        Candidate {
            id: agent.id,
            keep_first,
            cpu: agent.capabilities.allocatable_cpu_millis.unwrap_or(0),
            memory: agent.capabilities.allocatable_memory_bytes.unwrap_or(0),
            domain: self.domain(agent),
        }
    }

    /// The agent's spread domain; `None` also without a spread.
    pub(super) fn domain<'a>(&self, agent: &'a Agent) -> Option<&'a str> {
        let spread = self.policy.spread.as_ref()?;
        agent.labels.get(&spread.topology_key).map(String::as_str)
    }

    /// The first requirement the capabilities do not meet: Kubernetes version, CPU,
    /// memory, then features in name order.
    fn unmet_requirement<'a>(&'a self, capabilities: &'a Capabilities) -> Option<Unmet<'a>> {
        let requirements = &self.policy.requirements;
        if let (Some(min), Some(required)) =
            (self.min_version, &requirements.min_kubernetes_version)
        {
            let reported = capabilities.kubernetes_version.as_deref();
            let version = reported.and_then(KubernetesVersion::parse);
            let met = matches!((min, version), (Some(min), Some(version)) if version >= min);
            if !met {
                return Some(Unmet::Version {
                    required,
                    required_parses: min.is_some(),
                    reported,
                    reported_parses: version.is_some(),
                });
            }
        }
        let quantities = [
            (
                "allocatable_cpu_millis",
                capabilities.allocatable_cpu_millis,
                requirements.min_cpu_millis,
            ),
            (
                "allocatable_memory_bytes",
                capabilities.allocatable_memory_bytes,
                requirements.min_memory_bytes,
            ),
        ];
        for (name, reported, min) in quantities {
            if let Some(min) = min
                && reported.is_none_or(|have| have < min)
            {
                return Some(Unmet::Quantity {
                    name,
                    min,
                    reported,
                });
            }
        }
        requirements
            .features
            .iter()
            .find(|feature| !capabilities.features.contains(*feature))
            .map(|feature| Unmet::Feature(feature))
    }

    /// The first taint in the annotation that no toleration covers and that applies:
    /// `NoExecute` always, `NoSchedule` and `PreferNoSchedule` only to a newcomer. An
    /// annotation that does not parse is one untolerable `NoSchedule`-like taint: it
    /// keeps new stacks away but removes none (metadata validation refuses such values,
    /// so only data written around it can hold one).
    fn untolerated_taint(&self, agent: &Agent, incumbent: bool) -> Option<Untolerated> {
        let text = agent.annotations.get(TAINTS_ANNOTATION)?;
        let taints = match parse_taints(text) {
            Ok(taints) => taints,
            Err(_) if incumbent => return None,
            Err(error) => return Some(Untolerated::Unparsable(error)),
        };
        let tolerations = &self.policy.tolerations;
        taints
            .into_iter()
            .find(|taint| {
                (!incumbent || taint.effect == TaintEffect::NoExecute)
                    && !tolerations
                        .iter()
                        .any(|toleration| taint.tolerated_by(toleration))
            })
            .map(Untolerated::Taint)
    }

    /// An agent whose last heartbeat is older than `evict_after_secs` is out, even
    /// when that bound is shorter than the staleness window (never seen counts as
    /// infinitely old); otherwise a newcomer must be live and an incumbent stays while
    /// stale. Refusing newcomers past the bound too keeps a decision from choosing an
    /// agent it would evict at once.
    fn heartbeat_ok(&self, agent: &Agent, incumbent: bool) -> bool {
        let evicted = self
            .evict_after
            .is_some_and(|bound| agent.last_heartbeat.is_none_or(|at| self.now - at > bound));
        if evicted {
            return false;
        }
        incumbent || agent.liveness(self.now, self.stale_after) == Liveness::Active
    }
}

/// One of the per-agent checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    Active,
    Labels,
    Annotations,
    Requirements,
    Taints,
    Heartbeat,
}

impl Check {
    /// The rejection for failing this check, with an empty detail (not allocated).
    pub(super) fn unexplained(self) -> Rejection {
        match self {
            Self::Active => Rejection::NotActive,
            Self::Labels => Rejection::LabelMismatch(String::new()),
            Self::Annotations => Rejection::AnnotationMismatch(String::new()),
            Self::Requirements => Rejection::MissingCapability(String::new()),
            Self::Taints => Rejection::Taint(String::new()),
            Self::Heartbeat => Rejection::StaleHeartbeat,
        }
    }

    /// The check an [`unexplained`](Self::unexplained) rejection came from; `None` for
    /// the ones explained already (limits) or that have no detail.
    pub(super) fn of(rejection: &Rejection) -> Option<Self> {
        match rejection {
            Rejection::LabelMismatch(d) if d.is_empty() => Some(Self::Labels),
            Rejection::AnnotationMismatch(d) if d.is_empty() => Some(Self::Annotations),
            Rejection::MissingCapability(d) if d.is_empty() => Some(Self::Requirements),
            Rejection::Taint(d) if d.is_empty() => Some(Self::Taints),
            _ => None,
        }
    }
}

/// A requirement not met, formatted only when a rejection is explained.
enum Unmet<'a> {
    Version {
        required: &'a str,
        required_parses: bool,
        reported: Option<&'a str>,
        reported_parses: bool,
    },
    Quantity {
        name: &'static str,
        min: u64,
        reported: Option<u64>,
    },
    Feature(&'a str),
}

impl fmt::Display for Unmet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Version {
                required,
                required_parses: false,
                ..
            } => {
                write!(
                    f,
                    "kubernetes_version: requirement {required:?} is not a version"
                )
            }
            Self::Version {
                required,
                reported: None,
                ..
            } => {
                write!(f, "kubernetes_version not reported (need >= {required})")
            }
            Self::Version {
                required,
                reported: Some(reported),
                reported_parses: false,
                ..
            } => {
                write!(
                    f,
                    "kubernetes_version {reported:?} is not a version (need >= {required})"
                )
            }
            Self::Version {
                required,
                reported: Some(reported),
                ..
            } => {
                write!(f, "kubernetes_version {reported} < {required}")
            }
            Self::Quantity {
                name,
                min,
                reported: None,
            } => {
                write!(f, "{name} not reported (need >= {min})")
            }
            Self::Quantity {
                name,
                min,
                reported: Some(have),
            } => write!(f, "{name} {have} < {min}"),
            Self::Feature(feature) => write!(f, "feature {feature} not reported"),
        }
    }
}

/// A taint that keeps the agent away.
enum Untolerated {
    Taint(Taint),
    Unparsable(TaintError),
}

impl fmt::Display for Untolerated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taint(taint) => taint.fmt(f),
            Self::Unparsable(error) => write!(f, "{TAINTS_ANNOTATION} does not parse ({error})"),
        }
    }
}
