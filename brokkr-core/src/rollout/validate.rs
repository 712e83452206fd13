//! Checks a [`RolloutPolicy`] before it is stored (`PUT .../rollout-policy` answers
//! 422 with every violation). Each rule names the field it is about by JSON pointer,
//! so a client can show the message next to the input that caused it.
//!
//! Allowlisted webhook hosts and registered custom gates are the control plane's
//! configuration, so they are checked where that configuration lives; this module
//! checks only what the policy says by itself.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::metadata;
use crate::webhook::validate_url;

use super::{GateKind, GatePhase, GateSpec, Quantity, RolloutPolicy, WaveSpec};

/// Most waves a policy may have.
pub const MAX_WAVES: usize = 100;
/// Most gates a policy may have (the built-in health gate not counted).
pub const MAX_GATES: usize = 20;
/// Most agents one wave may list by name or id.
pub const MAX_LISTED_AGENTS: usize = 1_000;
/// Longest a webhook or custom gate may take to answer.
pub const MAX_GATE_TIMEOUT: Duration = super::webhook_gate::MAX_TIMEOUT;
/// Longest any of the policy's timers may be: longer ones are almost always a typo,
/// and a rollout that holds a stack for over a year holds every later version too.
pub const MAX_SPAN: Duration = Duration::from_secs(365 * 86_400);
/// Wave names the rollout itself gives to waves the policy did not write.
pub const RESERVED_WAVE_NAMES: [&str; 2] = ["implicit", "late"];

/// One broken rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    /// The field, as a JSON pointer into the policy (`/waves/1/split`).
    pub path: String,
    /// A stable name for the rule (`zero`, `duplicate`, ...).
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl RolloutPolicy {
    /// Checks every rule; `Err` holds every violation, in the order of the fields.
    pub fn validate(&self) -> Result<(), Vec<PolicyViolation>> {
        let mut check = Check::default();
        check.waves(&self.waves);
        check.budgets(self);
        check.timers(self);
        check.gates(&self.gates, &self.waves);
        if check.violations.is_empty() {
            Ok(())
        } else {
            Err(check.violations)
        }
    }
}

#[derive(Default)]
struct Check {
    violations: Vec<PolicyViolation>,
}

impl Check {
    fn add(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.violations.push(PolicyViolation {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn waves(&mut self, waves: &[WaveSpec]) {
        if waves.is_empty() {
            self.add("/waves", "required", "a policy needs at least one wave");
        }
        if waves.len() > MAX_WAVES {
            self.add(
                "/waves",
                "too_many",
                format!("{} waves; at most {MAX_WAVES}", waves.len()),
            );
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        // Where each listed agent was first listed: a later wave never gets it, since
        // the first wave that selects an agent takes it.
        let mut first_listed: HashMap<&str, usize> = HashMap::new();
        for (i, wave) in waves.iter().enumerate() {
            let path = format!("/waves/{i}");
            self.name(&format!("{path}/name"), &wave.name, "wave");
            if RESERVED_WAVE_NAMES.contains(&wave.name.as_str()) {
                self.add(
                    format!("{path}/name"),
                    "reserved_name",
                    format!(
                        "{:?} names the waves a rollout adds itself; choose another name",
                        wave.name
                    ),
                );
            }
            match names.get(wave.name.as_str()) {
                Some(first) => self.add(
                    format!("{path}/name"),
                    "duplicate",
                    format!("wave {first} is already named {:?}", wave.name),
                ),
                None if !wave.name.is_empty() => {
                    names.insert(&wave.name, i);
                }
                None => {}
            }
            self.select(&path, wave, i + 1 == waves.len());
            self.listed_agents(&path, wave, i, &mut first_listed);
            if let Some(key) = &wave.group_by
                && let Err(err) = metadata::validate_key(key)
            {
                self.add(
                    format!("{path}/group_by"),
                    "invalid_label_key",
                    err.to_string(),
                );
            }
            if let Some(split) = wave.split
                && is_zero(split)
            {
                self.add(
                    format!("{path}/split"),
                    "zero",
                    "a split of 0 would make no chunk; leave split out to keep the wave whole",
                );
            }
        }
    }

    fn select(&mut self, path: &str, wave: &WaveSpec, is_last: bool) {
        let select = &wave.select;
        let chosen = [
            !select.agents.is_empty(),
            !select.match_labels.is_empty(),
            select.remaining,
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if chosen != 1 {
            self.add(
                format!("{path}/select"),
                "invalid_select",
                "select exactly one of agents, match_labels or remaining",
            );
        }
        if select.remaining && !is_last {
            self.add(
                format!("{path}/select/remaining"),
                "remaining_not_last",
                "only the last wave may take the remaining agents: a wave after it would always be empty",
            );
        }
        for (key, value) in &select.match_labels {
            let here = format!("{path}/select/match_labels/{}", pointer_token(key));
            if let Err(err) = metadata::validate_key(key)
                .and_then(|()| metadata::validate_label_value(key, value))
            {
                self.add(here, "invalid_label", err.to_string());
            }
        }
    }

    /// The agents a wave lists: at most [`MAX_LISTED_AGENTS`], none empty, none listed
    /// twice (in this wave or an earlier one).
    fn listed_agents<'p>(
        &mut self,
        path: &str,
        wave: &'p WaveSpec,
        index: usize,
        first_listed: &mut HashMap<&'p str, usize>,
    ) {
        let agents = &wave.select.agents;
        if agents.len() > MAX_LISTED_AGENTS {
            self.add(
                format!("{path}/select/agents"),
                "too_many",
                format!(
                    "{} agents listed; at most {MAX_LISTED_AGENTS} per wave (select by labels instead)",
                    agents.len()
                ),
            );
        }
        for (j, agent) in agents.iter().enumerate() {
            let here = format!("{path}/select/agents/{j}");
            if agent.trim().is_empty() || agent.len() > 253 {
                self.add(
                    here,
                    "invalid_agent",
                    "an agent is named by its name or id (1-253 characters)",
                );
                continue;
            }
            match first_listed.get(agent.as_str()) {
                Some(&first) if first == index => self.add(
                    here,
                    "duplicate",
                    format!("{agent:?} is listed twice in this wave"),
                ),
                Some(&first) => self.add(
                    here,
                    "duplicate",
                    format!("{agent:?} is already listed by wave {first}, which takes it first"),
                ),
                None => {
                    first_listed.insert(agent, index);
                }
            }
        }
    }

    fn budgets(&mut self, policy: &RolloutPolicy) {
        if policy.max_concurrency == Some(0) {
            self.add(
                "/max_concurrency",
                "zero",
                "0 would never pin an agent; leave max_concurrency out for no cap",
            );
        }
        if let Some(quantity) = policy.max_unavailable
            && is_zero(quantity)
        {
            self.add(
                "/max_unavailable",
                "zero",
                "0 would never pin an agent; leave max_unavailable out for no cap",
            );
        }
    }

    fn timers(&mut self, policy: &RolloutPolicy) {
        if policy.progress_deadline.0.is_zero() {
            self.add(
                "/progress_deadline",
                "zero",
                "a progress deadline of 0 would time out every agent at once",
            );
        }
        if let Some(deadline) = policy.rollout_deadline
            && deadline.0.is_zero()
        {
            self.add(
                "/rollout_deadline",
                "zero",
                "a rollout deadline of 0 would revert every rollout at once; leave it out for no limit",
            );
        }
        let spans = [
            ("/bake_time", Some(policy.bake_time)),
            ("/progress_deadline", Some(policy.progress_deadline)),
            ("/rollout_deadline", policy.rollout_deadline),
        ];
        for (path, span) in spans {
            if let Some(span) = span
                && span.0 > MAX_SPAN
            {
                self.add(path, "too_long", format!("{span} is longer than 365 days"));
            }
        }
    }

    fn gates(&mut self, gates: &[GateSpec], waves: &[WaveSpec]) {
        if gates.len() > MAX_GATES {
            self.add(
                "/gates",
                "too_many",
                format!("{} gates; at most {MAX_GATES}", gates.len()),
            );
        }
        let wave_names: HashSet<&str> = waves.iter().map(|w| w.name.as_str()).collect();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, gate) in gates.iter().enumerate() {
            let path = format!("/gates/{i}");
            self.name(&format!("{path}/name"), &gate.name, "gate");
            match names.get(gate.name.as_str()) {
                Some(first) => self.add(
                    format!("{path}/name"),
                    "duplicate",
                    format!("gate {first} is already named {:?}", gate.name),
                ),
                None if !gate.name.is_empty() => {
                    names.insert(&gate.name, i);
                }
                None => {}
            }
            self.gate_fields(&path, gate);
            for (j, wave) in gate.waves.iter().enumerate() {
                if !wave_names.contains(wave.as_str()) {
                    self.add(
                        format!("{path}/waves/{j}"),
                        "unknown_wave",
                        format!("no wave is named {wave:?}"),
                    );
                }
            }
        }
    }

    fn gate_fields(&mut self, path: &str, gate: &GateSpec) {
        let kind = match gate.kind {
            GateKind::Approval => "approval",
            GateKind::Webhook => "webhook",
            GateKind::Custom => "custom",
        };
        let not_allowed = |check: &mut Self, field: &str, set: bool| {
            if set {
                check.add(
                    format!("{path}/{field}"),
                    "not_allowed",
                    format!("{field} does not apply to a gate of type {kind}"),
                );
            }
        };
        match gate.kind {
            GateKind::Approval => {
                not_allowed(self, "url", gate.url.is_some());
                not_allowed(self, "secret_ref", gate.secret_ref.is_some());
                not_allowed(self, "custom", gate.custom.is_some());
                not_allowed(self, "timeout", gate.timeout.is_some());
                not_allowed(self, "error_limit", gate.error_limit.is_some());
                if gate.phase == GatePhase::Continuous {
                    self.add(
                        format!("{path}/phase"),
                        "not_allowed",
                        "an approval is given once per wave; it cannot run continuously",
                    );
                }
            }
            GateKind::Webhook => {
                not_allowed(self, "custom", gate.custom.is_some());
                match gate.url.as_deref() {
                    None => self.add(
                        format!("{path}/url"),
                        "required",
                        "a webhook gate needs a url",
                    ),
                    Some(url) => {
                        if let Err(err) = validate_url(url) {
                            self.add(format!("{path}/url"), "invalid_url", err.to_string());
                        }
                    }
                }
                self.required_text(path, "secret_ref", gate.secret_ref.as_deref(), kind);
            }
            GateKind::Custom => {
                not_allowed(self, "url", gate.url.is_some());
                not_allowed(self, "secret_ref", gate.secret_ref.is_some());
                self.required_text(path, "custom", gate.custom.as_deref(), kind);
            }
        }
        if let Some(timeout) = gate.timeout
            && (timeout.0.is_zero() || timeout.0 > MAX_GATE_TIMEOUT)
        {
            self.add(
                format!("{path}/timeout"),
                "out_of_range",
                format!("{timeout} is not more than 0s and at most 60s"),
            );
        }
        if gate.error_limit == Some(0) {
            self.add(
                format!("{path}/error_limit"),
                "out_of_range",
                "error_limit must be at least 1",
            );
        }
    }

    fn required_text(&mut self, path: &str, field: &str, value: Option<&str>, kind: &str) {
        match value {
            None => self.add(
                format!("{path}/{field}"),
                "required",
                format!("a {kind} gate needs {field}"),
            ),
            Some(text) if text.trim().is_empty() || text.len() > 253 => self.add(
                format!("{path}/{field}"),
                "invalid_name",
                format!("{field} must be 1-253 characters"),
            ),
            Some(_) => {}
        }
    }

    /// Wave and gate names are DNS labels, so they read the same in URLs, logs and
    /// the sub-wave names built from them (`eu/zone=a#2`).
    fn name(&mut self, path: &str, name: &str, what: &str) {
        if name.is_empty() {
            self.add(path, "required", format!("a {what} needs a name"));
        } else if !is_dns_label(name) {
            self.add(
                path,
                "invalid_name",
                format!(
                    "{name:?} is not 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
                ),
            );
        }
    }
}

fn is_zero(quantity: Quantity) -> bool {
    matches!(quantity, Quantity::Count(0) | Quantity::Percent(0))
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A map key as one JSON-pointer reference token (RFC 6901: `~` as `~0`, `/` as `~1`).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests;
