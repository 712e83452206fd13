//! The per-stack inventory: a ConfigMap listing every object Brokkr applied for a stack.
//!
//! Pruning and removal read it instead of listing every kind in the cluster, which
//! would be slow, would need `list` on everything, and would trust labels alone. The
//! ConfigMap `brokkr-inventory-<stack id>` lives in the agent's inventory namespace and
//! holds three keys:
//!
//! - `objects`: a JSON array of [`ObjectKey`]s, namespaces resolved;
//! - `adopted`: the JSON array of those that existed before Brokkr applied them
//!   (released, never deleted, when the stack lets them go);
//! - `deploymentObjectId` and `checksum`: the deployment object last applied
//!   completely (absent until the first apply completes).
//!
//! Inventories written by older agents keep loading: entries naming one object at two
//! `apiVersion`s collapse into one (identity is group, kind, namespace and name), and
//! without an `adopted` key nobody recorded which objects existed before. Those agents
//! took over existing objects without asking (a forced apply stamped their label), so
//! any entry may be an object Brokkr did not create, and every one counts as adopted:
//! released, never deleted. An object left behind can be deleted by hand; one deleted
//! by mistake (a PersistentVolumeClaim, a Namespace with everything in it) cannot be
//! brought back.
//!
//! A ConfigMap holds at most 1 MiB of data (keys and values summed; Kubernetes
//! `pkg/apis/core/validation/validation.go`, `ValidateConfigMap`). An inventory that
//! would not fit is [`Error::InventoryTooLarge`], a permanent failure: the stack must
//! be split.
//!
//! Failing to read or write an inventory (its namespace missing, no RBAC for it, a
//! damaged ConfigMap) is `Unavailable`, never `Rejected`: it is not the deployment
//! object's fault, and it is worth retrying once an admin has fixed it.

use std::collections::BTreeMap;

use brokkr_core::applier::{Error, FIELD_MANAGER, Inventory, STACK_LABEL};
use brokkr_core::manifest::collapse_versions;
use brokkr_core::{DeploymentObjectId, ObjectKey, StackId};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::errors::{bookkeeping_error, is_forbidden, is_not_found};

/// The label that marks what Brokkr manages, on inventories and the namespace.
pub(crate) const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
const MANAGED_BY: &str = "brokkr";

const OBJECTS_KEY: &str = "objects";
const ADOPTED_KEY: &str = "adopted";
const DEPLOYMENT_OBJECT_KEY: &str = "deploymentObjectId";
const CHECKSUM_KEY: &str = "checksum";

/// Most bytes of `data` (keys and values) a ConfigMap may hold.
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The inventory ConfigMaps of one agent.
pub(crate) struct Inventories {
    api: Api<ConfigMap>,
    namespace: String,
}

impl Inventories {
    pub(crate) fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// The stack's inventory, if it has one.
    pub(crate) async fn read(&self, stack_id: StackId) -> Result<Option<Inventory>, Error> {
        let key = self.key(stack_id);
        let config_map = self
            .api
            .get_opt(&key.name)
            .await
            .map_err(|e| bookkeeping_error(&key, e))?;
        config_map
            .map(|cm| {
                decode(stack_id, &cm).map_err(|message| {
                    Error::Unavailable(format!("{key}: damaged inventory: {message}"))
                })
            })
            .transpose()
    }

    /// Writes the inventory whole (server-side apply, so a key left out is removed).
    pub(crate) async fn write(&self, inventory: &Inventory) -> Result<(), Error> {
        let key = self.key(inventory.stack_id);
        let config_map = encode(inventory, &self.namespace)
            .map_err(|e| Error::Unavailable(format!("{key}: cannot encode the inventory: {e}")))?;
        let bytes = data_bytes(&config_map);
        if bytes > MAX_DATA_BYTES {
            return Err(Error::InventoryTooLarge {
                stack_id: inventory.stack_id,
                bytes,
                limit: MAX_DATA_BYTES,
            });
        }
        self.api
            .patch(
                &key.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&config_map),
            )
            .await
            .map_err(|e| match e {
                // A server that counts more than data (or a lower limit): still the
                // inventory's size, and still permanent.
                kube::Error::Api(status)
                    if status.code == 422 && status.message.contains("Too long") =>
                {
                    Error::InventoryTooLarge {
                        stack_id: inventory.stack_id,
                        bytes,
                        limit: MAX_DATA_BYTES,
                    }
                }
                e => bookkeeping_error(&key, e),
            })?;
        tracing::debug!(stack_id = %inventory.stack_id, objects = inventory.objects.len(), "inventory written");
        Ok(())
    }

    /// Deletes the stack's inventory; one already gone is fine.
    pub(crate) async fn delete(&self, stack_id: StackId) -> Result<(), Error> {
        let key = self.key(stack_id);
        match self.api.delete(&key.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(bookkeeping_error(&key, e)),
        }
    }

    /// The inventory ConfigMap's identity, for errors.
    fn key(&self, stack_id: StackId) -> ObjectKey {
        ObjectKey {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            namespace: Some(self.namespace.clone()),
            name: config_map_name(stack_id),
        }
    }
}

/// Creates the inventory namespace if it is missing. Best effort: an agent limited to
/// namespaced roles may not read or create Namespaces, and its inventory namespace
/// is then expected to exist already, so every failure is only logged.
pub(crate) async fn ensure_namespace(client: Client, name: &str) {
    let api: Api<Namespace> = Api::all(client);
    match api.get_opt(name).await {
        Ok(Some(_)) => return,
        Ok(None) => {}
        Err(e) if is_forbidden(&e) => {
            tracing::warn!(
                namespace = name,
                "may not read namespaces; assuming the inventory namespace exists"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(namespace = name, error = %e, "cannot check the inventory namespace; assuming it exists");
            return;
        }
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&namespace),
        )
        .await
    {
        Ok(_) => tracing::info!(namespace = name, "created the inventory namespace"),
        Err(e) if is_forbidden(&e) => {
            tracing::warn!(
                namespace = name,
                "the inventory namespace is missing and may not be created; inventories cannot be written until it exists"
            );
        }
        Err(e) => {
            tracing::warn!(namespace = name, error = %e, "cannot create the inventory namespace");
        }
    }
}

/// `brokkr-inventory-<stack id>`.
pub(crate) fn config_map_name(stack_id: StackId) -> String {
    format!("brokkr-inventory-{stack_id}")
}

/// The ConfigMap holding `inventory`.
fn encode(inventory: &Inventory, namespace: &str) -> Result<ConfigMap, serde_json::Error> {
    let mut data = BTreeMap::from([
        (
            OBJECTS_KEY.to_owned(),
            serde_json::to_string(&inventory.objects)?,
        ),
        (
            ADOPTED_KEY.to_owned(),
            serde_json::to_string(&inventory.adopted)?,
        ),
    ]);
    if let Some(id) = inventory.deployment_object_id {
        data.insert(DEPLOYMENT_OBJECT_KEY.to_owned(), id.to_string());
    }
    if let Some(checksum) = &inventory.checksum {
        data.insert(CHECKSUM_KEY.to_owned(), checksum.clone());
    }
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(inventory.stack_id)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (STACK_LABEL.to_owned(), inventory.stack_id.to_string()),
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    })
}

/// Reads an inventory ConfigMap; the error says what is wrong with it.
fn decode(stack_id: StackId, config_map: &ConfigMap) -> Result<Inventory, String> {
    let empty = BTreeMap::new();
    let data = config_map.data.as_ref().unwrap_or(&empty);
    let keys = |name: &str| -> Result<Option<Vec<ObjectKey>>, String> {
        data.get(name)
            .map(|json| {
                serde_json::from_str::<Vec<ObjectKey>>(json)
                    .map(collapse_versions)
                    .map_err(|e| format!("inventory key {name} is not a list of objects: {e}"))
            })
            .transpose()
    };
    let objects = keys(OBJECTS_KEY)?.unwrap_or_default();
    let adopted = match keys(ADOPTED_KEY)? {
        Some(adopted) => adopted,
        // Written before adoption was recorded: see the module documentation.
        None => objects.clone(),
    };
    let deployment_object_id = data
        .get(DEPLOYMENT_OBJECT_KEY)
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<DeploymentObjectId>()
                .map_err(|e| format!("inventory key {DEPLOYMENT_OBJECT_KEY} is not an id: {e}"))
        })
        .transpose()?;
    let checksum = data.get(CHECKSUM_KEY).filter(|c| !c.is_empty()).cloned();
    Ok(Inventory {
        stack_id,
        deployment_object_id,
        checksum,
        objects,
        adopted,
    })
}

/// The bytes of a ConfigMap's `data` the API server counts against its limit.
fn data_bytes(config_map: &ConfigMap) -> usize {
    config_map
        .data
        .iter()
        .flatten()
        .map(|(key, value)| key.len() + value.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        Inventory {
            stack_id: StackId::new(),
            deployment_object_id: Some(DeploymentObjectId::new()),
            checksum: Some("abc".into()),
            objects: vec![
                ObjectKey {
                    api_version: "v1".into(),
                    kind: "Namespace".into(),
                    namespace: None,
                    name: "team".into(),
                },
                ObjectKey {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: Some("team".into()),
                    name: "web".into(),
                },
            ],
            adopted: vec![ObjectKey {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: "team".into(),
            }],
        }
    }

    #[test]
    fn round_trips_through_a_config_map() {
        let inventory = inventory();
        let config_map = encode(&inventory, "brokkr-system").unwrap();
        assert_eq!(
            config_map.metadata.name.as_deref(),
            Some(config_map_name(inventory.stack_id).as_str())
        );
        assert_eq!(
            config_map.metadata.namespace.as_deref(),
            Some("brokkr-system")
        );
        let labels = config_map.metadata.labels.clone().unwrap();
        assert_eq!(labels[STACK_LABEL], inventory.stack_id.to_string());
        assert_eq!(labels[MANAGED_BY_LABEL], "brokkr");
        assert_eq!(decode(inventory.stack_id, &config_map).unwrap(), inventory);
    }

    #[test]
    fn an_unfinished_first_apply_has_no_deployment_object() {
        let inventory = Inventory {
            deployment_object_id: None,
            checksum: None,
            ..inventory()
        };
        let config_map = encode(&inventory, "ns").unwrap();
        let data = config_map.data.clone().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), [ADOPTED_KEY, OBJECTS_KEY]);
        assert_eq!(decode(inventory.stack_id, &config_map).unwrap(), inventory);
    }

    #[test]
    fn a_damaged_inventory_is_an_error_not_an_empty_one() {
        let mut config_map = encode(&inventory(), "ns").unwrap();
        config_map
            .data
            .as_mut()
            .unwrap()
            .insert(OBJECTS_KEY.into(), "{not json".into());
        let error = decode(StackId::new(), &config_map).unwrap_err();
        assert!(error.contains(OBJECTS_KEY), "{error}");
    }

    /// What an agent before adoption and group-kind identity wrote.
    fn old_format(objects: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([(
                OBJECTS_KEY.to_owned(),
                objects.to_owned(),
            )])),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn old_inventories_load_with_versions_collapsed_and_every_object_adopted() {
        let objects = r#"[
            {"api_version": "v1", "kind": "Namespace", "namespace": null, "name": "team"},
            {"api_version": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "namespace": null, "name": "widgets.example.com"},
            {"api_version": "example.com/v1beta1", "kind": "Widget", "namespace": "team", "name": "w"},
            {"api_version": "example.com/v1", "kind": "Widget", "namespace": "team", "name": "w"},
            {"api_version": "v1", "kind": "ConfigMap", "namespace": "team", "name": "c"}
        ]"#;
        let inventory = decode(StackId::new(), &old_format(objects)).unwrap();
        let shown: Vec<String> = inventory.objects.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "v1 Namespace team",
                "apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com",
                "example.com/v1 Widget team/w",
                "v1 ConfigMap team/c"
            ]
        );
        // The old agent may have taken any of them over: none is Brokkr's to delete.
        assert_eq!(inventory.adopted, inventory.objects);
        // Written back, the provenance is explicit from then on.
        let again = decode(inventory.stack_id, &encode(&inventory, "ns").unwrap()).unwrap();
        assert_eq!(again, inventory);
    }

    #[test]
    fn the_configmap_limit_is_counted_like_the_api_server() {
        let mut inventory = inventory();
        let config_map = encode(&inventory, "ns").unwrap();
        assert!(data_bytes(&config_map) < 1000);
        let key = inventory.objects[1].clone();
        inventory.objects = (0..20_000)
            .map(|n| ObjectKey {
                name: format!("web-{n}"),
                ..key.clone()
            })
            .collect();
        assert!(data_bytes(&encode(&inventory, "ns").unwrap()) > MAX_DATA_BYTES);
    }
}
