//! `events list | tail`: agent events, across agents or of one.

use clap::{Args, Subcommand};

use crate::client::error::Result;
use crate::client::http::Api;
use crate::client::output::{Column, Printer, col};
use crate::client::{ListArgs, refs};

use super::tail::{TailArgs, tail};

/// Columns of an agent event.
pub const EVENT_COLUMNS: &[Column] = &[
    col("CREATED", "/created_at"),
    col("AGENT", "/agent_id"),
    col("STACK", "/stack_id"),
    col("OBJECT", "/deployment_object_id"),
    col("TYPE", "/event_type"),
    col("STATUS", "/status"),
    col("MESSAGE", "/message"),
];

/// Which events.
#[derive(Debug, Clone, Args)]
pub struct EventFilter {
    /// Only this agent's (its id or CLUSTER/NAME); an agent key must name itself.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only events about this stack (its id or name).
    #[arg(long)]
    pub stack: Option<String>,
    /// `success` or `failure`.
    #[arg(long)]
    pub status: Option<String>,
    /// `apply`, `delete` or `drift`.
    #[arg(long = "type")]
    pub event_type: Option<String>,
}

impl EventFilter {
    /// The listing's path and query: `/agents/{id}/events` for one agent (which an
    /// agent key may read), `/agent-events` otherwise (admin).
    pub async fn resolve(&self, api: &Api) -> Result<(Vec<String>, Vec<(&'static str, String)>)> {
        let path = match &self.agent {
            Some(agent) => {
                let id = refs::agent_id(api, agent).await?;
                vec!["agents".into(), id, "events".into()]
            }
            None => vec!["agent-events".into()],
        };
        let mut query = Vec::new();
        if let Some(stack) = &self.stack {
            query.push(("stack_id", refs::stack_id(api, stack).await?));
        }
        query.extend(self.status.clone().map(|s| ("status", s)));
        query.extend(self.event_type.clone().map(|t| ("event_type", t)));
        Ok((path, query))
    }
}

/// `events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events by id (the agent's, time-ordered for UUID v7 ids).
    List {
        /// Which events.
        #[command(flatten)]
        filter: EventFilter,
        /// Only events stored at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// How many.
        #[command(flatten)]
        list: ListArgs,
    },
    /// Print events as they are stored, until Ctrl-C, `--max` or `--timeout`.
    Tail {
        /// Which events.
        #[command(flatten)]
        filter: EventFilter,
        /// When to stop, how often to ask.
        #[command(flatten)]
        tail: TailArgs,
    },
}

/// Runs an `events` command.
pub async fn run(api: &Api, out: Printer, command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::List {
            filter,
            since,
            list,
        } => {
            let (path, mut query) = filter.resolve(api).await?;
            query.extend(list.order());
            query.extend(since.map(|s| ("since", s.to_rfc3339())));
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let events = api.list(&path, &query, list.rows()).await?;
            out.list(&events, EVENT_COLUMNS);
            Ok(())
        }
        EventsCommand::Tail { filter, tail: args } => tail(api, out, &filter, &args).await,
    }
}
