//! `events tail`: polls the events listing and prints each event once, as it is stored.
//!
//! Events are listed by the id their agent chose, which need not follow time, and a
//! batched write becomes visible a little after its `created_at`. So each poll asks
//! for everything stored since a little before the newest event seen ([`LAG`]) and
//! prints only ids it has not printed; ids older than that window are forgotten, so
//! memory stays bounded however long it runs.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use serde_json::Value;

use crate::client::error::Result;
use crate::client::http::{Api, Rows};
use crate::client::output::{Format, Printer, cell};

use super::events::EventFilter;

/// How long after its `created_at` an event may become visible and still be printed.
const LAG: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// When to stop and how often to ask.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Seconds between polls (1-60).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub interval: u64,
    /// Stop after printing this many events.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print the events stored since this time (RFC 3339) first; by default only
    /// events stored after the command starts.
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
}

/// What has been printed, and from when to ask next.
#[derive(Debug, Default)]
struct Follower {
    /// Never ask for events before this.
    start: Option<DateTime<Utc>>,
    /// The newest `created_at` seen (or the server's time at the start).
    newest: Option<DateTime<Utc>>,
    /// Ids printed within [`LAG`] of `newest`.
    seen: HashMap<String, DateTime<Utc>>,
}

impl Follower {
    /// The `since` of the next poll.
    fn since(&self) -> Option<DateTime<Utc>> {
        let window = self.newest.map(|newest| newest - LAG);
        window.max(self.start)
    }

    /// The events of a poll not seen before, oldest first; remembers them.
    fn take_new(&mut self, events: Vec<Value>) -> Vec<Value> {
        let mut fresh: Vec<(DateTime<Utc>, String, Value)> = events
            .into_iter()
            .filter_map(|event| {
                let id = event.get("id")?.as_str()?.to_owned();
                let created = event.get("created_at")?.as_str()?.parse().ok()?;
                Some((created, id, event))
            })
            .filter(|(_, id, _)| !self.seen.contains_key(id))
            .collect();
        fresh.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (created, id, _) in &fresh {
            self.seen.insert(id.clone(), *created);
            self.newest = self.newest.max(Some(*created));
        }
        if let Some(floor) = self.since() {
            self.seen.retain(|_, created| *created >= floor);
        }
        fresh.into_iter().map(|(_, _, event)| event).collect()
    }
}

/// Follows the events `filter` selects until Ctrl-C, `--max` or `--timeout`.
pub async fn tail(api: &Api, out: Printer, filter: &EventFilter, args: &TailArgs) -> Result<()> {
    let (path, query) = filter.resolve(api).await?;
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let poll = |since: Option<DateTime<Utc>>| {
        let mut query = query.clone();
        if let Some(since) = since {
            query.push(("since", since.to_rfc3339_opts(SecondsFormat::Micros, true)));
        }
        let path = path.clone();
        async move { api.list(&path, &query, Rows::All).await }
    };

    let mut follower = Follower {
        start: args.since,
        ..Follower::default()
    };
    if args.since.is_none() {
        // What exists now is not news: start from the server's clock (not ours, which
        // may be skewed) and remember the recent events without printing them.
        follower.newest = Some(api.server_time().await?);
        follower.take_new(poll(follower.since()).await?);
    }

    let deadline = args
        .timeout
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    let mut printed = 0u64;
    loop {
        for event in follower.take_new(poll(follower.since()).await?) {
            print_event(out.format, &event);
            printed += 1;
            if args.max.is_some_and(|max| printed >= max) {
                return Ok(());
            }
        }
        let until_deadline = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let interrupted = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            () = until_deadline => return Ok(()),
            () = interrupted => return Ok(()),
        }
    }
}

/// One line per event: JSON lines for scripts, fixed columns for people.
fn print_event(format: Format, event: &Value) {
    match format {
        Format::Json => println!("{event}"),
        Format::Table => {
            let field = |name: &str| cell(event.get(name));
            println!(
                "{}  {}  {}  {:<6}  {:<7}  {}",
                field("created_at"),
                field("agent_id"),
                field("stack_id"),
                field("event_type"),
                field("status"),
                field("message"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(id: &str, secs: i64) -> Value {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        json!({"id": id, "created_at": at.to_rfc3339()})
    }

    fn ids(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["id"].as_str().unwrap()).collect()
    }

    #[test]
    fn each_event_is_printed_once_in_time_order() {
        let mut follower = Follower::default();
        let first = follower.take_new(vec![event("b", 5), event("a", 1)]);
        assert_eq!(ids(&first), ["a", "b"]);
        // The next poll overlaps: only the late arrival (older than the newest) is new.
        let second = follower.take_new(vec![event("a", 1), event("b", 5), event("c", 3)]);
        assert_eq!(ids(&second), ["c"]);
        assert_eq!(
            follower.since(),
            Some(DateTime::from_timestamp(1_700_000_005, 0).unwrap() - LAG)
        );
    }

    #[test]
    fn old_ids_are_forgotten_and_start_bounds_the_window() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut follower = Follower {
            start: Some(start),
            ..Follower::default()
        };
        assert_eq!(follower.since(), Some(start));
        follower.take_new(vec![event("a", 1)]);
        follower.take_new(vec![event("z", 100)]);
        assert_eq!(follower.seen.len(), 1, "{:?}", follower.seen);
    }
}
