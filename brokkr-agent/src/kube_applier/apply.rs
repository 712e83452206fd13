//! Dry run and apply: sending a resolved [`Plan`] with server-side apply.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use brokkr_core::applier::{ApplyReport, Error, FIELD_MANAGER, Inventory, Result, StackRef};
use brokkr_core::{Manifest, ObjectKey};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use tokio::time::Instant;

use super::KubeApplier;
use super::crd::{self, Definition};
use super::discovery::{Found, Kind, Lookup};
use super::errors::object_error;
use super::plan::{Resolution, Step, not_served, plan};

/// Pause between discovery refreshes while an established CRD's kind is not served
/// yet (the API server publishes it a moment after `Established`).
const SERVED_POLL: Duration = Duration::from_millis(200);

impl KubeApplier {
    /// [`Applier::dry_run`](brokkr_core::Applier::dry_run).
    pub(super) async fn dry_run_all(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<()> {
        let mut lookup = Lookup::new(&self.discovery);
        let plan = plan(
            manifests,
            stack,
            &mut lookup,
            &self.options.default_namespace,
        )
        .await?;
        let created = plan.namespaces();
        // Whether each namespace the plan creates exists already, asked once.
        let mut exists: BTreeMap<&str, bool> = BTreeMap::new();
        for step in &plan.steps {
            let Resolution::Served(kind) = &step.resolution else {
                tracing::debug!(stack_id = %stack.stack_id, object = %step.key, "kind defined by this deployment object; checked when applied");
                continue;
            };
            if let Some(namespace) = step.key.namespace.as_deref()
                && created.contains(namespace)
            {
                let present = match exists.get(namespace) {
                    Some(&present) => present,
                    None => {
                        let present = self.namespace_exists(namespace).await?;
                        exists.insert(namespace, present);
                        present
                    }
                };
                if !present {
                    tracing::debug!(stack_id = %stack.stack_id, object = %step.key, "namespace created by this deployment object; checked when applied");
                    continue;
                }
            }
            self.send(kind, step, true).await?;
        }
        tracing::debug!(stack_id = %stack.stack_id, objects = plan.steps.len(), "dry run passed");
        Ok(())
    }

    /// [`Applier::apply`](brokkr_core::Applier::apply).
    pub(super) async fn apply_all(
        &self,
        stack: &StackRef,
        manifests: &[Manifest],
    ) -> Result<ApplyReport> {
        let mut lookup = Lookup::new(&self.discovery);
        let plan = plan(
            manifests,
            stack,
            &mut lookup,
            &self.options.default_namespace,
        )
        .await?;
        let new_keys = plan.keys();

        let previous = self.inventories.read(stack.stack_id).await?;
        let old_keys = previous
            .as_ref()
            .map(|i| i.objects.clone())
            .unwrap_or_default();
        let union = union(&old_keys, &new_keys);
        if previous.is_none() || union.len() > old_keys.len() {
            // Recorded before anything is applied: what a crash leaves behind is still
            // named by the inventory and pruned by the next apply.
            self.inventories
                .write(&Inventory {
                    stack_id: stack.stack_id,
                    deployment_object_id: previous.as_ref().and_then(|i| i.deployment_object_id),
                    checksum: previous.as_ref().and_then(|i| i.checksum.clone()),
                    objects: union,
                })
                .await?;
        }

        let mut report = ApplyReport::default();
        for step in &plan.steps {
            let kind = match &step.resolution {
                Resolution::Served(kind) => kind.clone(),
                Resolution::Deferred => {
                    match lookup.find(&step.key.api_version, &step.key.kind).await? {
                        Found::Served(kind) => kind,
                        found => return Err(not_served(step.key.clone(), found)),
                    }
                }
            };
            let changed = self.send(&kind, step, false).await?;
            if step.is_crd() {
                self.establish(&kind, step, &mut lookup).await?;
            }
            if changed {
                tracing::info!(stack_id = %stack.stack_id, object = %step.key, "applied: created or changed");
                report.changed.push(step.key.clone());
            } else {
                tracing::debug!(stack_id = %stack.stack_id, object = %step.key, "applied: unchanged");
            }
            report.applied.push(step.key.clone());
        }

        let keep: HashSet<&ObjectKey> = new_keys.iter().collect();
        let dropped: Vec<ObjectKey> = old_keys.into_iter().filter(|k| !keep.contains(k)).collect();
        report.pruned = self.prune(stack.stack_id, &dropped, &mut lookup).await?;

        self.inventories
            .write(&Inventory {
                stack_id: stack.stack_id,
                deployment_object_id: Some(stack.deployment_object_id),
                checksum: Some(stack.checksum.clone()),
                objects: new_keys,
            })
            .await?;
        tracing::info!(
            stack_id = %stack.stack_id,
            deployment_object_id = %stack.deployment_object_id,
            applied = report.applied.len(),
            changed = report.changed.len(),
            pruned = report.pruned.len(),
            "deployment object applied"
        );
        Ok(report)
    }

    /// Server-side applies one object (or dry-runs it) and tells whether it was
    /// created or changed. A dry run never counts as a change.
    async fn send(&self, kind: &Kind, step: &Step<'_>, dry_run: bool) -> Result<bool> {
        let api = self.api(kind, step.key.namespace.as_deref());
        let key = &step.key;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
            api.patch(&key.name, &params, &Patch::Apply(&step.object))
                .await
                .map_err(|e| object_error(key, e))?;
            return Ok(false);
        }
        // The resourceVersion moves only when the stored object changes, so comparing
        // it before and after tells a correction (drift) from a no-op.
        let before = api
            .get_opt(&key.name)
            .await
            .map_err(|e| object_error(key, e))?;
        let after = api
            .patch(&key.name, &params, &Patch::Apply(&step.object))
            .await
            .map_err(|e| object_error(key, e))?;
        Ok(match before {
            None => true,
            Some(before) => before.metadata.resource_version != after.metadata.resource_version,
        })
    }

    /// Waits until the CRD just applied is established and its kind served, then
    /// leaves the discovery cache knowing it.
    async fn establish(&self, kind: &Kind, step: &Step<'_>, lookup: &mut Lookup<'_>) -> Result<()> {
        let timeout = self.options.crd_established_timeout;
        let deadline = Instant::now() + timeout;
        let api = self.api(kind, None);
        crd::wait_established(&api, &step.key, deadline, timeout).await?;
        let definition = Definition::of(step.manifest);
        loop {
            lookup.refresh().await?;
            let served = definition.as_ref().is_none_or(|d| {
                d.api_versions().all(|api_version| {
                    matches!(
                        self.discovery.find(&api_version, d.kind()),
                        Found::Served(_)
                    )
                })
            });
            if served {
                tracing::info!(object = %step.key, "custom resource definition established");
                return Ok(());
            }
            if Instant::now() + SERVED_POLL > deadline {
                return Err(Error::NotEstablished {
                    object: step.key.clone(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(SERVED_POLL).await;
        }
    }

    /// Whether the Namespace `name` exists.
    async fn namespace_exists(&self, name: &str) -> Result<bool> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let key = ObjectKey {
            api_version: "v1".to_owned(),
            kind: "Namespace".to_owned(),
            namespace: None,
            name: name.to_owned(),
        };
        api.get_opt(name)
            .await
            .map(|ns| ns.is_some())
            .map_err(|e| object_error(&key, e))
    }
}

/// `old` followed by the keys of `new` it lacks.
fn union(old: &[ObjectKey], new: &[ObjectKey]) -> Vec<ObjectKey> {
    let known: HashSet<&ObjectKey> = old.iter().collect();
    let mut union = old.to_vec();
    union.extend(new.iter().filter(|k| !known.contains(k)).cloned());
    union
}
