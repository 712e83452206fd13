//! The guard's shortcut, judged inside an append batch's transaction
//! (`Store::append_if_harmless`): for every stack of the batch at once, what its agents
//! run (with those versions' items, and whether one runs it without a live target), and
//! which of the batch's contents a reverted rollout of the stack rejected. Two
//! statements per batch, where the guard read two per append before it.
//!
//! Read after the stacks are locked: a rollout cannot be reverted between the check
//! and the write, since rollout changes of a stack take the same lock.

use std::collections::{HashMap, HashSet};

use brokkr_core::plan::{ItemDigest, append_keeps_everything};
use brokkr_core::store::Result;
use brokkr_core::{AppliedVersions, DeploymentObjectId, NewDeploymentObject, StackId};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::batch::distinct;
use crate::convert::from_json;
use crate::errors::db;
use crate::sql::{self, bind_params};
use crate::write::Write;

/// Per stack and version its agents run: whether an agent runs it without a live
/// target, and the version's items (NULL for an object stored before items were kept,
/// which the shortcut then cannot clear). One range of `agent_applied` per stack.
const APPLIED_SQL: &str = "\
    SELECT g.stack_id, g.version, g.untargeted, d.items FROM ( \
      SELECT a.stack_id, a.deployment_object_id AS version, \
             CAST(MAX(CASE WHEN t.agent_id IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS untargeted \
      FROM agent_applied a \
      LEFT JOIN agent_targets t ON t.agent_id = a.agent_id AND t.stack_id = a.stack_id \
        AND t.removed_at IS NULL \
      WHERE a.stack_id IN ({stacks}) AND a.deployment_object_id IS NOT NULL \
      GROUP BY a.stack_id, a.deployment_object_id) g \
    LEFT JOIN deployment_objects d ON d.id = g.version";

/// Which (stack, content) pairs of the batch a reverted rollout rejected.
const REJECTED_SQL: &str = "\
    SELECT DISTINCT r.stack_id, d.yaml_checksum FROM rollouts r \
    JOIN deployment_objects d ON d.id = r.candidate_deployment_object_id \
    WHERE r.stack_id IN ({stacks}) AND r.state IN ('reverted', 'revert_failed') \
      AND d.yaml_checksum IN ({checksums})";

/// What the agents of one stack run.
#[derive(Default)]
struct Running {
    applied: AppliedVersions,
    items: Vec<(DeploymentObjectId, Vec<ItemDigest>)>,
}

/// For each of `appends` that asks for the shortcut (`true` in the pair), whether it
/// needs the full guard instead; `false` for the others.
pub(crate) async fn needs_plan(
    write: &Write,
    appends: &[(bool, &NewDeploymentObject)],
) -> Result<Vec<bool>> {
    let asking: Vec<&NewDeploymentObject> = appends
        .iter()
        .filter_map(|(asks, new)| asks.then_some(*new))
        .collect();
    if asking.is_empty() {
        return Ok(vec![false; appends.len()]);
    }
    let stacks = distinct(asking.iter().map(|new| new.stack_id()));
    let running = running(write, &stacks).await?;
    let rejected = rejected(write, &stacks, &asking).await?;
    let nothing = Running::default();
    Ok(appends
        .iter()
        .map(|(asks, new)| {
            let stack = new.stack_id();
            let here = running.get(&stack).unwrap_or(&nothing);
            *asks
                && (rejected.contains(&(stack, new.yaml_checksum()))
                    || !append_keeps_everything(&here.applied, &here.items, new.items()))
        })
        .collect())
}

/// What the agents of each of `stacks` run; stacks nobody runs are left out.
async fn running(write: &Write, stacks: &[StackId]) -> Result<HashMap<StackId, Running>> {
    let query = APPLIED_SQL.replace("{stacks}", &bind_params(stacks.len()));
    let rows = write
        .tx()
        .query_all_raw(sql::stmt(
            write.backend(),
            &query,
            stacks.iter().map(|s| Value::from(s.0)),
        ))
        .await
        .map_err(db)?;
    let mut out: HashMap<StackId, Running> = HashMap::new();
    for row in rows {
        let stack = StackId::from(row.try_get::<Uuid>("", "stack_id").map_err(db)?);
        let version = DeploymentObjectId::from(row.try_get::<Uuid>("", "version").map_err(db)?);
        let untargeted = row.try_get::<i64>("", "untargeted").map_err(db)? != 0;
        let items: Option<serde_json::Value> = row.try_get("", "items").map_err(db)?;
        let here = out.entry(stack).or_default();
        here.applied.versions.push(version);
        here.applied.untargeted |= untargeted;
        if let Some(items) = items {
            here.items.push((version, from_json("items", items)?));
        }
    }
    for here in out.values_mut() {
        here.applied.versions.sort_unstable();
    }
    Ok(out)
}

/// The (stack, checksum) pairs among `asking` that a reverted rollout rejected.
async fn rejected<'a>(
    write: &Write,
    stacks: &[StackId],
    asking: &[&'a NewDeploymentObject],
) -> Result<HashSet<(StackId, &'a str)>> {
    let checksums: Vec<&'a str> = distinct(asking.iter().map(|new| new.yaml_checksum()));
    let query = REJECTED_SQL
        .replace("{stacks}", &bind_params(stacks.len()))
        .replace("{checksums}", &bind_params(checksums.len()));
    let values = stacks
        .iter()
        .map(|s| Value::from(s.0))
        .chain(checksums.iter().map(|c| Value::from(*c)));
    let rows = write
        .tx()
        .query_all_raw(sql::stmt(write.backend(), &query, values))
        .await
        .map_err(db)?;
    let mut out = HashSet::new();
    for row in rows {
        let stack = StackId::from(row.try_get::<Uuid>("", "stack_id").map_err(db)?);
        let checksum: String = row.try_get("", "yaml_checksum").map_err(db)?;
        // Borrowed from the batch, so the set holds no copies.
        if let Some(own) = checksums.iter().find(|c| **c == checksum) {
            out.insert((stack, *own));
        }
    }
    Ok(out)
}
