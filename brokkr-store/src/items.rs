//! Deployment objects' items: the identity and content hash of every object in a
//! deployment object, which plans compare.
//!
//! The append writes them with the object (`deployment_objects.items`, a JSON array).
//! An object stored before the column existed has NULL there: the first read parses
//! its YAML once (leniently: it was valid when stored, whatever the limits are now),
//! writes the column and answers. This one-time backfill is the only write to a stored
//! deployment object, and writes nothing but what its YAML already determines.

use brokkr_core::DeploymentObjectId;
use brokkr_core::manifest::{self, ParseOptions};
use brokkr_core::plan::ItemDigest;
use brokkr_core::store::{Error, Result};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use crate::SqlStore;
use crate::batch::distinct;
use crate::convert::{from_json, to_json};
use crate::errors::{corrupt, db};
use crate::sql::{self, bind_params};

/// The column, outside the entity so that other reads of objects leave it alone.
pub(crate) const ITEMS: &str = "items";

/// The items, and the YAML only of the objects stored before items were kept.
const ITEMS_SQL: &str = "\
    SELECT id, is_deletion_marker, items, \
           CASE WHEN items IS NULL THEN yaml_content END AS yaml_content \
    FROM deployment_objects WHERE id IN ({})";

/// An object whose items are not stored yet.
struct Missing {
    id: Uuid,
    yaml: String,
}

impl SqlStore {
    pub(crate) async fn deployment_object_items_impl(
        &self,
        ids: &[DeploymentObjectId],
    ) -> Result<Vec<(DeploymentObjectId, Vec<ItemDigest>)>> {
        let ids = distinct(ids.iter().copied());
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .reader
            .query_all_raw(sql::stmt(
                self.backend,
                &ITEMS_SQL.replace("{}", &bind_params(ids.len())),
                ids.iter().map(|id| Value::from(id.0)),
            ))
            .await
            .map_err(db)?;
        let mut answer = Vec::with_capacity(rows.len());
        let mut missing = Vec::new();
        for row in rows {
            let id = row.try_get::<Uuid>("", "id").map_err(db)?;
            let items = row
                .try_get::<Option<serde_json::Value>>("", ITEMS)
                .map_err(db)?;
            match items {
                Some(items) => answer.push((id.into(), from_json("items", items)?)),
                None if row.try_get::<bool>("", "is_deletion_marker").map_err(db)? => {
                    missing.push(Missing {
                        id,
                        yaml: String::new(),
                    });
                }
                None => missing.push(Missing {
                    id,
                    yaml: row.try_get::<String>("", "yaml_content").map_err(db)?,
                }),
            }
        }
        if !missing.is_empty() {
            answer.extend(self.backfill_items(missing).await?);
        }
        Ok(answer)
    }

    /// Parses the objects' YAML (on a blocking thread: it may be megabytes), writes
    /// their items and answers them.
    async fn backfill_items(
        &self,
        missing: Vec<Missing>,
    ) -> Result<Vec<(DeploymentObjectId, Vec<ItemDigest>)>> {
        let parsed = tokio::task::spawn_blocking(move || {
            missing
                .into_iter()
                .map(|Missing { id, yaml }| Ok((id, items_of(&yaml)?)))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::Backend(Box::new(e)))??;
        let write = self.begin().await?;
        for (id, items) in &parsed {
            // Another reader may have filled it meanwhile: the same items either way.
            write
                .tx()
                .execute_raw(sql::stmt(
                    self.backend,
                    "UPDATE deployment_objects SET items = ? WHERE id = ? AND items IS NULL",
                    [Value::from(to_json(items)), Value::from(*id)],
                ))
                .await
                .map_err(db)?;
        }
        // Nothing any agent is served changes, so the commit wakes no one.
        self.commit(write).await?;
        Ok(parsed
            .into_iter()
            .map(|(id, items)| (id.into(), items))
            .collect())
    }
}

/// The items of a stored object's YAML (none for a deletion marker's empty YAML).
fn items_of(yaml: &str) -> Result<Vec<ItemDigest>> {
    if yaml.is_empty() {
        return Ok(Vec::new());
    }
    let lenient = ParseOptions {
        max_bytes: usize::MAX,
        max_documents: usize::MAX,
        ..ParseOptions::default()
    };
    let manifests =
        manifest::parse_with(yaml, &lenient).map_err(|e| corrupt("deployment object YAML", e))?;
    Ok(ItemDigest::of_all(&manifests))
}
