//! Cross-replica change notification on PostgreSQL.
//!
//! Writers send `pg_notify(CHANNEL, payload)` inside their transaction, where the
//! payload is the writing store's origin tag, `|`, then comma-separated agent ids
//! (split to stay under PostgreSQL's 8,000-byte payload limit) or `*` for every agent.
//! One task per store holds a `LISTEN` connection and publishes what arrives into the
//! store's hub, except its own notifications: the writer published those locally at
//! commit already, and a second invalidation would cost every affected agent a
//! second query. Notifications are lost
//! while that connection is down, so once it listens again the task publishes
//! `TargetChange::All`: a spurious wake-up is allowed, a missed one is not.
//!
//! Agent changes travel the same way on [`AGENT_CHANNEL`] and reach the hub's agent
//! changes ([`ChangeHub::publish_agent_changes`]), so every replica's placement index
//! follows agents changed elsewhere; after a reconnect, "any agent" is published.

use std::time::Duration;

use brokkr_core::store::{Error, Result};
use brokkr_core::{AgentId, ChangeHub, TargetChange};
use sea_orm::sqlx::postgres::PgListener;

/// The `LISTEN/NOTIFY` channel.
pub(crate) const CHANNEL: &str = "brokkr_target_change";

/// The channel of agent changes (registration, status, labels, annotations, deletion),
/// same payloads, published into the hub's agent changes for placement indexes.
pub(crate) const AGENT_CHANNEL: &str = "brokkr_agent_change";

/// Payloads stay below this many bytes (PostgreSQL's limit is 8,000).
const MAX_PAYLOAD: usize = 7_900;

/// Payload meaning "every agent".
const ALL: &str = "*";

/// Stops the listener task when the store is dropped.
#[derive(Debug)]
pub(crate) struct ListenerGuard(tokio::task::AbortHandle);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A fresh origin tag for one store.
pub(crate) fn origin() -> std::sync::Arc<str> {
    uuid::Uuid::new_v4().simple().to_string().into()
}

/// The payloads announcing `agents` from `origin`, none when the list is empty.
pub(crate) fn payloads(origin: &str, agents: &[AgentId]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let start = |current: &mut String| {
        current.push_str(origin);
        current.push('|');
    };
    for agent in agents {
        let id = agent.to_string();
        if current.is_empty() {
            start(&mut current);
        } else if current.len() + 1 + id.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut current));
            start(&mut current);
        } else {
            current.push(',');
        }
        current.push_str(&id);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What a payload announces, `None` when it came from `own` origin. A payload
/// without an origin (an older writer) counts as another replica's.
fn parse(payload: &str, own: &str) -> Option<TargetChange> {
    let body = match payload.split_once('|') {
        Some((origin, _)) if origin == own => return None,
        Some((_, body)) => body,
        None => payload,
    };
    if body == ALL {
        return Some(TargetChange::All);
    }
    let agents: Result<Vec<AgentId>, _> = body.split(',').map(str::parse).collect();
    // A payload we cannot read may still have been meant for any watch.
    Some(agents.map_or(TargetChange::All, TargetChange::Agents))
}

/// Connects the listener (so that no notification sent after `connect` returns is
/// missed) and spawns the task that forwards notifications into `hub`.
pub(crate) async fn listen(
    url: &str,
    hub: ChangeHub,
    origin: std::sync::Arc<str>,
) -> Result<ListenerGuard> {
    let listener = connect(url)
        .await
        .map_err(|e| Error::Backend(Box::new(e)))?;
    let task = tokio::spawn(forward(listener, url.to_owned(), hub, origin));
    Ok(ListenerGuard(task.abort_handle()))
}

async fn connect(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([CHANNEL, AGENT_CHANNEL]).await?;
    Ok(listener)
}

async fn forward(
    mut listener: PgListener,
    url: String,
    hub: ChangeHub,
    origin: std::sync::Arc<str>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let change = parse(notification.payload(), &origin);
                match (notification.channel() == AGENT_CHANNEL, change) {
                    (_, None) => {}
                    (false, Some(change)) => hub.publish(change),
                    (true, Some(TargetChange::Agents(agents))) => {
                        hub.publish_agent_changes(Some(agents));
                    }
                    (true, Some(TargetChange::All)) => hub.publish_agent_changes(None),
                }
            }
            Ok(None) | Err(_) => {
                listener = reconnect(&url).await;
                // Listening again, and whatever was sent in between is gone. Not
                // announced earlier: while the database is away nothing can change,
                // and invalidating every cached target state then would leave agents
                // nothing to read.
                hub.publish(TargetChange::All);
                hub.publish_agent_changes(None);
            }
        }
    }
}

/// A new listening connection, retried with backoff until the database answers.
async fn reconnect(url: &str) -> PgListener {
    let mut backoff = Duration::from_millis(100);
    let mut attempts: u32 = 0;
    loop {
        match connect(url).await {
            Ok(listener) => {
                tracing::info!(attempts, "change listener reconnected");
                return listener;
            }
            Err(error) => {
                if attempts == 0 {
                    tracing::warn!(%error, "change listener lost its connection; reconnecting");
                } else {
                    tracing::debug!(%error, ?backoff, "change listener still cannot connect");
                }
                attempts = attempts.saturating_add(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_split_below_the_limit_and_parse_back() {
        let agents: Vec<AgentId> = (0..500).map(|_| AgentId::new()).collect();
        let chunks = payloads("writer", &agents);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|p| p.len() < MAX_PAYLOAD));
        let parsed: Vec<AgentId> = chunks
            .iter()
            .flat_map(|p| match parse(p, "reader") {
                Some(TargetChange::Agents(a)) => a,
                other => panic!("chunk {p} did not parse: {other:?}"),
            })
            .collect();
        assert_eq!(parsed, agents);
        assert!(payloads("writer", &[]).is_empty());
        assert_eq!(parse("*", "reader"), Some(TargetChange::All));
        assert_eq!(parse("writer|*", "reader"), Some(TargetChange::All));
        assert_eq!(parse("garbage", "reader"), Some(TargetChange::All));
        // Its own notifications a store published locally already.
        assert!(chunks.iter().all(|p| parse(p, "writer").is_none()));
    }
}
