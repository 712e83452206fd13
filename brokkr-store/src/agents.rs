//! Agents and their heartbeats.

use std::collections::HashMap;

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{AgentFilter, Error, Result};
use brokkr_core::{
    Actor, Agent, AgentId, AgentStatus, AgentUpdate, AuditAction, Capabilities, Heartbeat,
    KeyOwner, NewAgent, ResourceKind, WebhookEvent,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::{self, to_json};
use crate::entity::agents::{self, Column};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::sql::{DeletedAt, live_ids, uuid_in};
use crate::write::Write;
use crate::{Backend, SqlStore, keys, sql};

/// A live agent, locked for update on PostgreSQL when `lock` is set.
pub(crate) async fn live_agent(
    conn: &impl ConnectionTrait,
    id: AgentId,
    lock: bool,
) -> Result<agents::Model> {
    // By primary key alone: see `sql::live_ids`.
    let mut query = agents::Entity::find_by_id(id.0);
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await
        .map_err(db)?
        .filter(|row| row.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("agent", id))
}

/// Ids per `IN` list: far below the bind-parameter limits of both databases.
pub(crate) const CHUNK: usize = 1_000;

/// The live agents among `ids`, one query per [`CHUNK`] ids, matched on the primary
/// key alone (see [`live_ids`](crate::sql::live_ids)).
pub(crate) async fn live_agent_ids(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>> {
    let mut live = std::collections::HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, DeletedAt)> = agents::Entity::find()
            .select_only()
            .columns([Column::Id, Column::DeletedAt])
            .filter(uuid_in(
                Backend::of(conn),
                Column::Id,
                chunk.iter().copied(),
            ))
            .into_tuple()
            .all(conn)
            .await
            .map_err(db)?;
        live.extend(live_ids(rows));
    }
    Ok(live)
}

async fn check_name_free(
    conn: &impl ConnectionTrait,
    name: &str,
    cluster_name: &str,
    except: Option<Uuid>,
) -> Result<()> {
    let mut query = agents::Entity::find()
        .filter(Column::Name.eq(name))
        .filter(Column::ClusterName.eq(cluster_name))
        .filter(Column::DeletedAt.is_null());
    if let Some(id) = except {
        query = query.filter(Column::Id.ne(id));
    }
    if query.one(conn).await.map_err(db)?.is_some() {
        return Err(Error::Conflict(format!(
            "an agent named {name:?} exists in cluster {cluster_name:?}"
        )));
    }
    Ok(())
}

impl SqlStore {
    pub(crate) async fn create_agent_impl(&self, actor: &Actor, new: NewAgent) -> Result<Agent> {
        new.validate()?;

        let mut write = self.begin().await?;
        check_name_free(write.tx(), &new.name, &new.cluster_name, None).await?;
        let row = agents::Model {
            id: AgentId::new().0,
            name: new.name,
            cluster_name: new.cluster_name,
            labels: to_json(&new.labels),
            annotations: to_json(&new.annotations),
            status: AgentStatus::Active.as_str().to_owned(),
            last_heartbeat: None,
            capabilities: to_json(&Capabilities::default()),
            created_at: write.now,
            updated_at: write.now,
            deleted_at: None,
        };
        agents::Entity::insert(agents::ActiveModel::from(row.clone()))
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        keys::insert_key(&write, KeyOwner::Agent(row.id.into()), &new.key).await?;
        let summary = format!(
            "created agent {:?} in cluster {:?}",
            row.name, row.cluster_name
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::Create, ResourceKind::Agent, row.id, summary),
            )
            .await?;
        // Other replicas' placement indexes learn of the new agent at once.
        write.agent_changed([AgentId::from(row.id)]);
        self.commit(write).await?;
        convert::agent(row)
    }

    pub(crate) async fn get_agent_impl(&self, id: AgentId) -> Result<Agent> {
        convert::agent(live_agent(&self.reader, id, false).await?)
    }

    pub(crate) async fn list_agents_impl(
        &self,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<Agent>> {
        let mut query = agents::Entity::find();
        if let Some(cluster) = &filter.cluster_name {
            query = query.filter(Column::ClusterName.eq(cluster.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        if !filter.include_deleted {
            query = query.filter(Column::DeletedAt.is_null());
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(rows, page, convert::agent, |a| a.id.to_string())
    }

    pub(crate) async fn update_agent_impl(
        &self,
        actor: &Actor,
        id: AgentId,
        update: AgentUpdate,
    ) -> Result<Agent> {
        update.validate()?;
        let mut write = self.begin().await?;
        let mut row = live_agent(write.tx(), id, true).await?;
        if update.name.is_some() || update.cluster_name.is_some() {
            let name = update.name.unwrap_or(row.name);
            let cluster = update.cluster_name.unwrap_or(row.cluster_name);
            check_name_free(write.tx(), &name, &cluster, Some(row.id)).await?;
            row.name = name;
            row.cluster_name = cluster;
        }
        if let Some(status) = update.status {
            row.status = status.as_str().to_owned();
        }
        row.updated_at = write.now;
        agents::Entity::update_many()
            .col_expr(Column::Name, Expr::value(row.name.clone()))
            .col_expr(Column::ClusterName, Expr::value(row.cluster_name.clone()))
            .col_expr(Column::Status, Expr::value(row.status.clone()))
            .col_expr(Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        write.affect([id]);
        write.agent_changed([id]);
        let summary = format!(
            "updated agent {:?} in cluster {:?}",
            row.name, row.cluster_name
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::Update, ResourceKind::Agent, row.id, summary),
            )
            .await?;
        self.commit(write).await?;
        convert::agent(row)
    }

    pub(crate) async fn delete_agent_impl(&self, actor: &Actor, id: AgentId) -> Result<()> {
        let mut write = self.begin().await?;
        let row = live_agent(write.tx(), id, true).await?;
        agents::Entity::update_many()
            .col_expr(Column::DeletedAt, Expr::value(write.now))
            .filter(Column::Id.eq(row.id))
            .exec(write.tx())
            .await
            .map_err(db)?;
        keys::revoke_keys(&write, KeyOwner::Agent(id)).await?;
        // Its stacks are no longer placed on it: their rollouts see the change.
        crate::rollout_due::stacks_of_agent(&write, row.id).await?;
        write.affect([id]);
        write.agent_changed([id]);
        let summary = format!(
            "deleted agent {:?} in cluster {:?}",
            row.name, row.cluster_name
        );
        write
            .audit(
                actor,
                Audit::new(AuditAction::Delete, ResourceKind::Agent, row.id, summary),
            )
            .await?;
        self.commit(write).await
    }

    /// One transaction for the whole batch, one `UPDATE` per agent. The batch is
    /// coalesced first: per agent the latest beat, and the latest beat that carried
    /// capabilities. Like the time, capabilities never move back: a beat older than
    /// the stored one changes nothing.
    pub(crate) async fn record_heartbeats_impl(&self, beats: &[Heartbeat]) -> Result<()> {
        type Latest<'a> = (DateTime<Utc>, Option<(DateTime<Utc>, &'a Capabilities)>);
        let mut latest: HashMap<AgentId, Latest<'_>> = HashMap::new();
        for beat in beats {
            let (at, caps) = latest.entry(beat.agent_id).or_insert((beat.at, None));
            *at = (*at).max(beat.at);
            if let Some(reported) = &beat.capabilities
                && caps.is_none_or(|(caps_at, _)| beat.at >= caps_at)
            {
                *caps = Some((beat.at, reported));
            }
        }
        let mut agents: Vec<_> = latest.into_iter().collect();
        if agents.is_empty() {
            return Ok(());
        }
        // A stable order keeps concurrent batches from deadlocking on PostgreSQL.
        agents.sort_by_key(|(agent, _)| *agent);

        let mut write = self.begin().await?;
        let stale = stale_among(&write, &agents).await?;
        for (agent, (at, caps)) in agents {
            if let Some(stale_since) = stale.get(&agent) {
                recover(&mut write, agent, *stale_since, at).await?;
            }
            let time = "last_heartbeat = CASE WHEN last_heartbeat IS NULL OR last_heartbeat < ? \
                        THEN ? ELSE last_heartbeat END";
            let statement = match caps {
                None => sql::stmt(
                    write.backend(),
                    &format!("UPDATE agents SET {time} WHERE id = ? AND deleted_at IS NULL"),
                    [at.into(), at.into(), agent.0.into()],
                ),
                Some((caps_at, caps)) => sql::stmt(
                    write.backend(),
                    &format!(
                        "UPDATE agents SET {time}, \
                           capabilities = CASE WHEN last_heartbeat IS NULL OR last_heartbeat <= ? \
                                          THEN ? ELSE capabilities END \
                         WHERE id = ? AND deleted_at IS NULL"
                    ),
                    [
                        at.into(),
                        at.into(),
                        caps_at.into(),
                        Value::Json(Some(Box::new(to_json(caps)))),
                        agent.0.into(),
                    ],
                ),
            };
            write.tx().execute_raw(statement).await.map_err(db)?;
        }
        self.commit(write).await
    }
}

/// The agents among `agents` marked stale, with when: one indexed read per thousand
/// agents of a heartbeat batch, usually finding none.
async fn stale_among<T>(
    write: &Write,
    agents: &[(AgentId, T)],
) -> Result<HashMap<AgentId, DateTime<Utc>>> {
    let mut stale = HashMap::new();
    for chunk in agents.chunks(1_000) {
        let query = format!(
            "SELECT id, stale_since FROM agents \
             WHERE id IN ({}) AND deleted_at IS NULL AND stale_since IS NOT NULL",
            sql::bind_params(chunk.len())
        );
        let values = chunk.iter().map(|(agent, _)| Value::from(agent.0));
        let rows = write
            .tx()
            .query_all_raw(sql::stmt(write.backend(), &query, values))
            .await
            .map_err(db)?;
        for row in rows {
            let id = row.try_get::<Uuid>("", "id").map_err(db)?;
            let since = row
                .try_get::<DateTime<Utc>>("", "stale_since")
                .map_err(db)?;
            stale.insert(AgentId::from(id), since);
        }
    }
    Ok(stale)
}

/// Clears a stale agent's mark and writes `agent.recovered`, unless a concurrent
/// heartbeat cleared it first (the row lock decides, so the event is written once).
async fn recover(
    write: &mut Write,
    agent: AgentId,
    stale_since: DateTime<Utc>,
    beat: DateTime<Utc>,
) -> Result<()> {
    let cleared = write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            "UPDATE agents SET stale_since = NULL WHERE id = ? AND stale_since IS NOT NULL",
            [agent.0.into()],
        ))
        .await
        .map_err(db)?;
    if cleared.rows_affected() == 1 {
        let event = WebhookEvent::agent_recovered(agent, stale_since, beat, write.now);
        write.emit(event);
    }
    Ok(())
}
