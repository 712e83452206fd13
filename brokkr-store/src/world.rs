//! A stack's world for a plan ([`StackWorld`]) in one statement.
//!
//! A plan over 10,000 agents reads 10,000 targets and 10,000 applied states. Returned
//! as rows, the driver's cost per row dominates (about 70 ms on SQLite for the two);
//! so the database folds each list into one text (`agent:source:live,...` and
//! `agent:object,...`), parsed here in a few milliseconds. Ids are written as hex
//! (SQLite keeps UUIDs as blobs) or as PostgreSQL's text form; `Uuid::parse_str` reads
//! both.

use brokkr_core::store::{Error, Result};
use brokkr_core::{AgentId, DeploymentObjectId, StackId, StackWorld, TargetSource, WorldTarget};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::errors::{corrupt, db};
use crate::{Backend, sql};

/// The latest object, whether it is a deletion marker, and the two folded lists. The
/// aggregates' order is not guaranteed, so the lists are sorted after parsing.
fn world_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "SELECT d.id, d.is_deletion_marker, \
               (SELECT group_concat(hex(agent_id) || ':' || source || ':' || (removed_at IS NULL), ',') \
                  FROM agent_targets WHERE stack_id = ?) AS targets, \
               (SELECT group_concat(hex(agent_id) || ':' || coalesce(hex(deployment_object_id), ''), ',') \
                  FROM agent_applied WHERE stack_id = ?) AS applied \
             FROM stacks s LEFT JOIN deployment_objects d ON d.id = s.latest_deployment_object_id \
             WHERE s.id = ?"
        }
        Backend::Postgres => {
            "SELECT d.id, d.is_deletion_marker, \
               (SELECT string_agg(agent_id::text || ':' || source || ':' || (removed_at IS NULL)::int, ',') \
                  FROM agent_targets WHERE stack_id = ?) AS targets, \
               (SELECT string_agg(agent_id::text || ':' || coalesce(deployment_object_id::text, ''), ',') \
                  FROM agent_applied WHERE stack_id = ?) AS applied \
             FROM stacks s LEFT JOIN deployment_objects d ON d.id = s.latest_deployment_object_id \
             WHERE s.id = ?"
        }
    }
}

/// Locks the stack's target and applied rows until the transaction ends (PostgreSQL;
/// SQLite's writer holds the whole database), answering one row whatever their count.
const SHARE_SQL: &str = "\
    SELECT (SELECT count(*) FROM (SELECT 1 FROM agent_targets WHERE stack_id = ? FOR SHARE) t) \
         + (SELECT count(*) FROM (SELECT 1 FROM agent_applied WHERE stack_id = ? FOR SHARE) a)";

/// Reads a stack's world on `conn` in one statement (one snapshot). With `lock`, on
/// PostgreSQL, its target and applied rows are first locked `FOR SHARE`. `NotFound`
/// for a stack that never existed.
pub(crate) async fn read_world(
    conn: &impl ConnectionTrait,
    backend: Backend,
    stack_id: StackId,
    lock: bool,
) -> Result<StackWorld> {
    let id = || Value::from(stack_id.0);
    if lock && backend == Backend::Postgres {
        conn.query_one_raw(sql::stmt(backend, SHARE_SQL, [id(), id()]))
            .await
            .map_err(db)?;
    }
    let row = conn
        .query_one_raw(sql::stmt(backend, world_sql(backend), [id(), id(), id()]))
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("stack", stack_id))?;
    let latest: Option<Uuid> = row.try_get_by_index(0).map_err(db)?;
    let marker: Option<bool> = row.try_get_by_index(1).map_err(db)?;
    let targets: Option<String> = row.try_get_by_index(2).map_err(db)?;
    let applied: Option<String> = row.try_get_by_index(3).map_err(db)?;
    Ok(StackWorld {
        targets: parse_targets(targets.as_deref().unwrap_or(""))?,
        applied: parse_applied(applied.as_deref().unwrap_or(""))?,
        latest_live: latest.filter(|_| marker != Some(true)).map(Into::into),
    })
}

fn parse_targets(folded: &str) -> Result<Vec<WorldTarget>> {
    let mut targets = folded
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let mut fields = entry.split(':');
            let (Some(agent), Some(source), Some(live), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("target", entry));
            };
            Ok(WorldTarget {
                agent_id: AgentId::from(uuid(agent)?),
                source: TargetSource::parse(source).ok_or_else(|| bad("target source", entry))?,
                live: match live {
                    "1" => true,
                    "0" => false,
                    _ => return Err(bad("target liveness", entry)),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    targets.sort_unstable_by_key(|t| t.agent_id);
    Ok(targets)
}

fn parse_applied(folded: &str) -> Result<Vec<(AgentId, Option<DeploymentObjectId>)>> {
    let mut applied = folded
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (agent, object) = entry
                .split_once(':')
                .ok_or_else(|| bad("applied state", entry))?;
            let object = match object {
                "" => None,
                id => Some(DeploymentObjectId::from(uuid(id)?)),
            };
            Ok((AgentId::from(uuid(agent)?), object))
        })
        .collect::<Result<Vec<_>>>()?;
    applied.sort_unstable_by_key(|(agent, _)| *agent);
    Ok(applied)
}

/// A folded list of ids (`id,id,...`, in either form), in the order written.
pub(crate) fn parse_ids(folded: &str) -> Result<Vec<Uuid>> {
    folded
        .split(',')
        .filter(|id| !id.is_empty())
        .map(uuid)
        .collect()
}

fn uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| bad("id", text))
}

fn bad(what: &'static str, text: &str) -> Error {
    corrupt(what, format!("unreadable in a stack's world: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lists_parse_in_both_id_forms_and_sort_by_agent() {
        let a = Uuid::parse_str("0190a0b0-0000-7000-8000-000000000002").unwrap();
        let b = Uuid::parse_str("0190a0b0-0000-7000-8000-000000000001").unwrap();
        let hex = |u: Uuid| u.simple().to_string().to_uppercase();
        let folded = format!("{}:direct:1,{}:placement:0", hex(a), b);
        let targets = parse_targets(&folded).expect("parses");
        assert_eq!(
            targets,
            vec![
                WorldTarget {
                    agent_id: b.into(),
                    source: TargetSource::Placement,
                    live: false
                },
                WorldTarget {
                    agent_id: a.into(),
                    source: TargetSource::Direct,
                    live: true
                },
            ]
        );
        let applied = parse_applied(&format!("{}:{},{}:", a, hex(b), hex(b))).expect("parses");
        assert_eq!(applied, vec![(b.into(), None), (a.into(), Some(b.into()))]);
        assert_eq!(parse_targets("").expect("empty"), Vec::new());
        assert!(parse_targets("nonsense").is_err());
        assert!(parse_targets(&format!("{a}:direct:2")).is_err());
    }
}
