//! The webhook outbox: events written by the transaction of the change that causes
//! them, and fan-out, which moves them into deliveries.

use std::collections::{BTreeSet, HashMap};

use brokkr_core::store::Result;
use brokkr_core::{EventSubject, Labels, Subscription, WebhookEvent};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};
use uuid::Uuid;

use crate::convert::{self, from_json};
use crate::entity::{webhook_outbox, webhook_subscriptions};
use crate::errors::db;
use crate::sql::{self, bind_params};
use crate::write::Write;
use crate::{Backend, SqlStore, deliveries};

/// Rows one insert statement takes at most, well within SQLite's bind-parameter
/// limit.
pub(crate) const INSERT_CHUNK: usize = 1_000;

/// The key of the advisory lock that makes fan-outs take turns across replicas on
/// PostgreSQL: any constant, the same in every replica.
const FAN_OUT_LOCK: i64 = 0x6272_6f6b_6b72_7768; // "brokkrwh"

/// Writes `events` to the outbox in `tx`, with one statement per chunk (none for no
/// events). Positions are assigned on insert, in the events' order.
pub(crate) async fn insert(tx: &DatabaseTransaction, events: &[WebhookEvent]) -> Result<()> {
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut stmt = Query::insert();
        stmt.into_table(Alias::new("webhook_outbox")).columns([
            Alias::new("id"),
            Alias::new("event_type"),
            Alias::new("stack_id"),
            Alias::new("agent_id"),
            Alias::new("occurred_at"),
            Alias::new("data"),
        ]);
        for event in chunk {
            stmt.values_panic([
                event.id.0.into(),
                event.event_type.as_str().into(),
                event.stack_id.map(|s| s.0).into(),
                event.agent_id.map(|a| a.0).into(),
                event.occurred_at.into(),
                event.data.clone().into(),
            ]);
        }
        tx.execute(&stmt).await.map_err(db)?;
    }
    Ok(())
}

impl SqlStore {
    /// Moves up to `limit` outbox events into deliveries, in one transaction that
    /// holds the fan-out lock (PostgreSQL; SQLite's one writer serialises it anyway):
    /// the oldest events, the subscriptions, and the events' stacks and agents read
    /// once each; the deliveries inserted in event order, then subscription order; the
    /// moved events deleted by position (an event committed meanwhile with a lower
    /// position stays for the next fan-out).
    pub(crate) async fn fan_out_impl(&self, limit: usize) -> Result<usize> {
        let write = self.begin().await?;
        if write.backend() == Backend::Postgres {
            write
                .tx()
                .execute_raw(sql::stmt(
                    Backend::Postgres,
                    "SELECT pg_advisory_xact_lock(?)",
                    [FAN_OUT_LOCK.into()],
                ))
                .await
                .map_err(db)?;
        }
        let rows = webhook_outbox::Entity::find()
            .order_by_asc(webhook_outbox::Column::Position)
            .limit(limit as u64)
            .all(write.tx())
            .await
            .map_err(db)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let positions: Vec<i64> = rows.iter().map(|r| r.position).collect();
        let events = rows
            .into_iter()
            .map(convert::outbox_event)
            .collect::<Result<Vec<_>>>()?;
        let subscriptions = webhook_subscriptions::Entity::find()
            .filter(webhook_subscriptions::Column::Enabled.eq(true))
            .order_by_asc(webhook_subscriptions::Column::Id)
            .all(write.tx())
            .await
            .map_err(db)?
            .into_iter()
            .map(convert::subscription)
            .collect::<Result<Vec<_>>>()?;
        if !subscriptions.is_empty() {
            let subjects = Subjects::read(&write, &events).await?;
            let queued: Vec<(&Subscription, &WebhookEvent)> = events
                .iter()
                .flat_map(|event| {
                    let subject = subjects.of(event);
                    subscriptions
                        .iter()
                        .filter(move |s| s.wants(event, &subject))
                        .map(move |s| (s, event))
                })
                .collect();
            deliveries::queue(&write, &queued).await?;
        }
        for chunk in positions.chunks(INSERT_CHUNK) {
            let query = format!(
                "DELETE FROM webhook_outbox WHERE position IN ({})",
                bind_params(chunk.len())
            );
            let values = chunk.iter().map(|p| Value::from(*p));
            write
                .tx()
                .execute_raw(sql::stmt(write.backend(), &query, values))
                .await
                .map_err(db)?;
        }
        self.commit(write).await?;
        Ok(positions.len())
    }
}

/// The stacks' and agents' generators and labels, read once for a batch of events.
struct Subjects {
    stacks: HashMap<Uuid, EventSubject>,
    agents: HashMap<Uuid, Labels>,
}

impl Subjects {
    /// Reads the subjects of `events`: their stacks and, for agent events, their
    /// agents, deleted or not, with one query each.
    async fn read(write: &Write, events: &[WebhookEvent]) -> Result<Self> {
        let stacks: BTreeSet<Uuid> = events
            .iter()
            .filter(|e| !e.event_type.is_about_an_agent())
            .filter_map(|e| e.stack_id.map(|s| s.0))
            .collect();
        let agents: BTreeSet<Uuid> = events
            .iter()
            .filter(|e| e.event_type.is_about_an_agent())
            .filter_map(|e| e.agent_id.map(|a| a.0))
            .collect();
        let mut out = Self {
            stacks: HashMap::new(),
            agents: HashMap::new(),
        };
        for row in select_ids(
            write,
            "SELECT id, generator_id, labels FROM stacks",
            &stacks,
        )
        .await?
        {
            let id = row.try_get::<Uuid>("", "id").map_err(db)?;
            let generator = row
                .try_get::<Option<Uuid>>("", "generator_id")
                .map_err(db)?;
            let labels = row.try_get::<serde_json::Value>("", "labels").map_err(db)?;
            out.stacks.insert(
                id,
                EventSubject {
                    generator_id: generator.map(Into::into),
                    labels: from_json("labels", labels)?,
                },
            );
        }
        for row in select_ids(write, "SELECT id, labels FROM agents", &agents).await? {
            let id = row.try_get::<Uuid>("", "id").map_err(db)?;
            let labels = row.try_get::<serde_json::Value>("", "labels").map_err(db)?;
            out.agents.insert(id, from_json("labels", labels)?);
        }
        Ok(out)
    }

    /// What `event` is matched against, as the memory store reads it.
    fn of(&self, event: &WebhookEvent) -> EventSubject {
        if event.event_type.is_about_an_agent() {
            let labels = event.agent_id.and_then(|a| self.agents.get(&a.0));
            return EventSubject {
                generator_id: None,
                labels: labels.cloned().unwrap_or_default(),
            };
        }
        event
            .stack_id
            .and_then(|s| self.stacks.get(&s.0))
            .cloned()
            .unwrap_or_default()
    }
}

/// Runs `select` with `WHERE id IN (...)` over `ids`; nothing for no ids.
async fn select_ids(
    write: &Write,
    select: &str,
    ids: &BTreeSet<Uuid>,
) -> Result<Vec<sea_orm::QueryResult>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(INSERT_CHUNK) {
        let query = format!("{select} WHERE id IN ({})", bind_params(chunk.len()));
        let values = chunk.iter().map(|id| Value::from(*id));
        let found = write
            .tx()
            .query_all_raw(sql::stmt(write.backend(), &query, values))
            .await
            .map_err(db)?;
        rows.extend(found);
    }
    Ok(rows)
}
