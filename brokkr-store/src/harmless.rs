//! The guard's shortcut, judged inside an append batch's transaction
//! (`Store::append_if_harmless`): for every stack of the batch at once, what its agents
//! run (with those versions' items, and whether one runs it without a live target), and
//! which of the batch's contents a reverted rollout of the stack rejected. One
//! statement per batch, where the guard read two per append before it.
//!
//! Read after the stacks are locked: a rollout cannot be reverted between the check
//! and the write, since rollout changes of a stack take the same lock.

use std::collections::{HashMap, HashSet};

use brokkr_core::plan::{ItemDigest, append_keeps_everything};
use brokkr_core::store::Result;
use brokkr_core::{AppliedVersions, DeploymentObjectId, NewDeploymentObject, StackId};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::batch::distinct;
use crate::convert::from_json;
use crate::errors::db;
use crate::sql::{self, AnyOf};
use crate::write::Write;

/// One statement for the whole batch. Rows with a `checksum` are the (stack, content)
/// pairs of the batch a reverted rollout rejected. The others are, per stack and
/// version its agents run, whether an agent runs it without a live target, and the
/// version's items (NULL for an object stored before items were kept, which the
/// shortcut then cannot clear): one range of `agent_applied` per stack.
const FACTS_SQL: &str = "\
    SELECT g.stack_id, g.version, g.untargeted, d.items, NULL AS checksum FROM ( \
      SELECT a.stack_id, a.deployment_object_id AS version, \
             CAST(MAX(CASE WHEN t.agent_id IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS untargeted \
      FROM agent_applied a \
      LEFT JOIN agent_targets t ON t.agent_id = a.agent_id AND t.stack_id = a.stack_id \
        AND t.removed_at IS NULL \
      WHERE a.stack_id {stacks} AND a.deployment_object_id IS NOT NULL \
      GROUP BY a.stack_id, a.deployment_object_id) g \
    LEFT JOIN deployment_objects d ON d.id = g.version \
    UNION ALL \
    SELECT r.stack_id, NULL, CAST(0 AS BIGINT), NULL, d.yaml_checksum FROM rollouts r \
    JOIN deployment_objects d ON d.id = r.candidate_deployment_object_id \
    WHERE r.stack_id {stacks} AND r.state IN ('reverted', 'revert_failed') \
      AND d.yaml_checksum {checksums}";

/// What the shortcut knows of the batch's stacks.
#[derive(Default)]
struct Facts<'a> {
    running: HashMap<StackId, Running>,
    /// (stack, content) pairs of the batch a reverted rollout rejected.
    rejected: HashSet<(StackId, &'a str)>,
}

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
    let facts = facts(write, &asking).await?;
    let nothing = Running::default();
    Ok(appends
        .iter()
        .map(|(asks, new)| {
            let stack = new.stack_id();
            let here = facts.running.get(&stack).unwrap_or(&nothing);
            *asks
                && (facts.rejected.contains(&(stack, new.yaml_checksum()))
                    || !append_keeps_everything(&here.applied, &here.items, new.items()))
        })
        .collect())
}

/// The facts of the stacks `asking` appends to, with one statement.
async fn facts<'a>(write: &Write, asking: &[&'a NewDeploymentObject]) -> Result<Facts<'a>> {
    let stacks = distinct(asking.iter().map(|new| new.stack_id()));
    let checksums: Vec<&'a str> = distinct(asking.iter().map(|new| new.yaml_checksum()));
    let backend = write.backend();
    let stack_ids = AnyOf::uuids(backend, stacks.iter().map(|s| s.0));
    let contents = AnyOf::strings(backend, checksums.iter().copied());
    let query = FACTS_SQL
        .replace("{stacks}", &stack_ids.sql)
        .replace("{checksums}", &contents.sql);
    let values = stack_ids
        .values
        .iter()
        .chain(&stack_ids.values)
        .chain(&contents.values)
        .cloned();
    let rows = write
        .tx()
        .query_all_raw(sql::stmt(backend, &query, values))
        .await
        .map_err(db)?;
    let mut facts = Facts::default();
    for row in rows {
        let stack = StackId::from(row.try_get::<Uuid>("", "stack_id").map_err(db)?);
        if let Some(checksum) = row.try_get::<Option<String>>("", "checksum").map_err(db)? {
            // Borrowed from the batch, so the set holds no copies.
            if let Some(own) = checksums.iter().find(|c| **c == checksum) {
                facts.rejected.insert((stack, *own));
            }
            continue;
        }
        let version = DeploymentObjectId::from(row.try_get::<Uuid>("", "version").map_err(db)?);
        let untargeted = row.try_get::<i64>("", "untargeted").map_err(db)? != 0;
        let items: Option<serde_json::Value> = row.try_get("", "items").map_err(db)?;
        let here = facts.running.entry(stack).or_default();
        here.applied.versions.push(version);
        here.applied.untargeted |= untargeted;
        if let Some(items) = items {
            here.items.push((version, from_json("items", items)?));
        }
    }
    for here in facts.running.values_mut() {
        here.applied.versions.sort_unstable();
    }
    Ok(facts)
}
