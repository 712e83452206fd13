//! sea-orm entities, one per table. They never leave this crate: callers see
//! `brokkr_core` types only, converted in `convert`.

pub(crate) mod agent_applied;
pub(crate) mod agent_events;
pub(crate) mod agent_stack_pins;
pub(crate) mod agent_targets;
pub(crate) mod agents;
pub(crate) mod api_keys;
pub(crate) mod audit_chain;
pub(crate) mod audit_chain_queue;
pub(crate) mod audit_records;
pub(crate) mod deployment_objects;
pub(crate) mod gate_evaluations;
pub(crate) mod generators;
pub(crate) mod health_reports;
pub(crate) mod plans;
pub(crate) mod rollout_agents;
pub(crate) mod rollout_commands;
pub(crate) mod rollout_waves;
pub(crate) mod rollouts;
pub(crate) mod stack_placements;
pub(crate) mod stacks;
pub(crate) mod template_versions;
pub(crate) mod templates;
pub(crate) mod webhook_deliveries;
pub(crate) mod webhook_outbox;
pub(crate) mod webhook_subscriptions;
