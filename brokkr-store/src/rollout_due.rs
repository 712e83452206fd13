//! Making rollouts due now, in the transaction of what makes them due: agents' reports
//! and placement changes (a stack's active rollout), commands and gate outcomes (one
//! rollout, queued or active). One statement each, whatever the batch.
//!
//! The write sets `next_eval_at` to the transaction's time and `signalled`, which
//! survives until the rollout's next claim, so an evaluation in flight that did not see
//! the cause keeps the rollout due instead of setting its own timer
//! (`brokkr_core::store::next_eval_after`). A rollout already due and not claimed is
//! left alone: its next evaluation sees the cause anyway, and a fleet's reports do not
//! all rewrite one row (`brokkr_core::store::needs_signal`).

use brokkr_core::store::Result;
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::errors::db;
use crate::rollout_rows::{ACTIVE, OPEN};
use crate::sql::{self, bind_params};
use crate::write::Write;

/// Rows per statement, far below either database's bind-parameter limit.
const CHUNK: usize = 1_000;

/// The condition under which a rollout made due at `?` is written.
const UNSEEN: &str = "(next_eval_at IS NULL OR next_eval_at > ? OR lease_owner IS NOT NULL)";

/// Runs `UPDATE rollouts SET next_eval_at = now, signalled = true WHERE {filter} AND
/// {states} AND UNSEEN`, `filter`'s parameters first.
async fn signal(write: &Write, filter: &str, states: &str, params: Vec<Value>) -> Result<()> {
    let query = format!(
        "UPDATE rollouts SET next_eval_at = ?, signalled = ? WHERE {filter} AND {states} AND {UNSEEN}"
    );
    let mut values: Vec<Value> = vec![write.now.into(), true.into()];
    values.extend(params);
    values.push(write.now.into());
    write
        .tx()
        .execute_raw(sql::stmt(write.backend(), &query, values))
        .await
        .map_err(db)?;
    Ok(())
}

/// Makes the active rollouts of `stacks` due now: their agents reported, or where they
/// are placed changed.
pub(crate) async fn stacks(write: &Write, stacks: &[Uuid]) -> Result<()> {
    for chunk in stacks.chunks(CHUNK) {
        let filter = format!("stack_id IN ({})", bind_params(chunk.len()));
        let params = chunk.iter().map(|s| Value::from(*s)).collect();
        signal(write, &filter, ACTIVE, params).await?;
    }
    Ok(())
}

/// Makes the active rollouts of every stack `agent` has a target on due now: the agent
/// was deleted, so those stacks are no longer placed on it.
pub(crate) async fn stacks_of_agent(write: &Write, agent: Uuid) -> Result<()> {
    let filter = "stack_id IN (SELECT stack_id FROM agent_targets WHERE agent_id = ?)";
    signal(write, filter, ACTIVE, vec![agent.into()]).await
}

/// Makes one rollout due now, if it is queued or active: an operator's command or a
/// gate's outcome waits for it.
pub(crate) async fn rollout(write: &Write, id: Uuid) -> Result<()> {
    signal(write, "id = ?", OPEN, vec![id.into()]).await
}
