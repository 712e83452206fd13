//! Dry run and apply: claiming and sending a resolved [`Plan`] with server-side apply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use brokkr_core::applier::{
    ApplyReport, Claim, Error, FIELD_MANAGER, Inventory, Result, STACK_LABEL, StackRef, claim,
};
use brokkr_core::{Manifest, ObjectKey};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use tokio::time::Instant;

use super::KubeApplier;
use super::crd::{self, Definition};
use super::discovery::{Found, Kind, Lookup};
use super::drift;
use super::errors::{immutable_fields, is_unserved, object_error};
use super::plan::{Resolution, Step, not_served, plan};
use super::prune::{Deleting, delete_exactly};

/// Pause between discovery refreshes while an established CRD's kind is not served
/// yet (the API server publishes it a moment after `Established`).
const SERVED_POLL: Duration = Duration::from_millis(200);

/// What applying one object did.
struct Applied {
    changed: bool,
    recreated: bool,
}

/// What the API server made of one apply.
enum Sent {
    /// Applied (or, in a dry run, accepted); the object as stored.
    Applied(Box<DynamicObject>),
    /// Refused for changing these immutable fields, and recreation is allowed.
    Immutable(Vec<String>),
}

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
        let adopted = self
            .inventories
            .read(stack.stack_id)
            .await?
            .map(|i| i.adopted)
            .unwrap_or_default();
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
            let api = self.api(kind, step.key.namespace.as_deref());
            let live = self.read(&api, &step.key).await?;
            let claimed = self.claim(stack, step, live.as_ref())?;
            if let Sent::Immutable(fields) = self.send(stack, step, kind, true, &mut lookup).await?
            {
                if claimed == Claim::Adopt || adopted.contains(&step.key) {
                    return Err(not_recreated(&step.key, fields));
                }
                tracing::debug!(stack_id = %stack.stack_id, object = %step.key, ?fields, "immutable change; will recreate");
            }
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

        // Every object is claimed before anything is written: one Brokkr may not take
        // fails the apply with nothing changed. (A kind not served yet has no objects.)
        let mut adopting = Vec::new();
        for step in &plan.steps {
            if let Resolution::Served(kind) = &step.resolution {
                let api = self.api(kind, step.key.namespace.as_deref());
                let live = self.read(&api, &step.key).await?;
                if self.claim(stack, step, live.as_ref())? == Claim::Adopt {
                    adopting.push(step.key.clone());
                }
            }
        }

        let previous = self.inventories.read(stack.stack_id).await?;
        let (old_keys, old_adopted) = previous
            .as_ref()
            .map(|i| (i.objects.clone(), i.adopted.clone()))
            .unwrap_or_default();
        let union_keys = union(&old_keys, &new_keys);
        let mut union_adopted = union(&old_adopted, &adopting);
        // The inventory as it stands while applying: old ∪ new, adoptions included.
        let applying = |adopted: &[ObjectKey]| Inventory {
            stack_id: stack.stack_id,
            deployment_object_id: previous.as_ref().and_then(|i| i.deployment_object_id),
            checksum: previous.as_ref().and_then(|i| i.checksum.clone()),
            objects: union_keys.clone(),
            adopted: adopted.to_vec(),
        };
        if previous.is_none()
            || !same_versions(&union_keys, &old_keys)
            || union_adopted.len() > old_adopted.len()
        {
            // Recorded before anything is applied: what a crash leaves behind is still
            // named by the inventory (adoptions included) and pruned by the next apply.
            self.inventories.write(&applying(&union_adopted)).await?;
        }

        let mut report = ApplyReport::default();
        for step in &plan.steps {
            let kind = match &step.resolution {
                Resolution::Served(kind) => kind.clone(),
                Resolution::Deferred => {
                    let kind = match lookup.find(&step.key.api_version, &step.key.kind).await? {
                        Found::Served(kind) => kind,
                        found => return Err(not_served(step.key.clone(), found)),
                    };
                    // Unreadable before its CRD served this version, the object may
                    // exist all the same (at another version): claimed now, and an
                    // adoption recorded before it is applied.
                    let api = self.api(&kind, step.key.namespace.as_deref());
                    let live = self.read(&api, &step.key).await?;
                    if self.claim(stack, step, live.as_ref())? == Claim::Adopt
                        && !adopting.contains(&step.key)
                    {
                        adopting.push(step.key.clone());
                        union_adopted.push(step.key.clone());
                        self.inventories.write(&applying(&union_adopted)).await?;
                    }
                    kind
                }
            };
            let adopted = adopting.contains(&step.key) || old_adopted.contains(&step.key);
            let applied = self
                .apply_step(stack, step, &kind, adopted, &mut lookup)
                .await?;
            if step.is_crd() {
                self.establish(&kind, step, &mut lookup).await?;
            }
            if applied.recreated {
                tracing::info!(stack_id = %stack.stack_id, object = %step.key, "recreated: an immutable field changed");
                report.recreated.push(step.key.clone());
            }
            if adopting.contains(&step.key) {
                tracing::info!(stack_id = %stack.stack_id, object = %step.key, "adopted");
                report.adopted.push(step.key.clone());
            }
            if applied.changed {
                tracing::info!(stack_id = %stack.stack_id, object = %step.key, "applied: created or changed");
                report.changed.push(step.key.clone());
            } else {
                tracing::debug!(stack_id = %stack.stack_id, object = %step.key, "applied: unchanged");
            }
            report.applied.push(step.key.clone());
        }

        let keep: HashSet<&ObjectKey> = new_keys.iter().collect();
        let dropped: Vec<ObjectKey> = old_keys
            .iter()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        report.pruned = self
            .prune(stack.stack_id, &dropped, &old_adopted, &mut lookup)
            .await?;

        let adopted = old_adopted
            .iter()
            .filter(|k| keep.contains(k))
            .chain(&adopting)
            .cloned()
            .collect();
        self.inventories
            .write(&Inventory {
                stack_id: stack.stack_id,
                deployment_object_id: Some(stack.deployment_object_id),
                checksum: Some(stack.checksum.clone()),
                objects: new_keys,
                adopted,
            })
            .await?;
        tracing::info!(
            stack_id = %stack.stack_id,
            deployment_object_id = %stack.deployment_object_id,
            applied = report.applied.len(),
            changed = report.changed.len(),
            adopted = report.adopted.len(),
            recreated = report.recreated.len(),
            pruned = report.pruned.len(),
            "deployment object applied"
        );
        Ok(report)
    }

    /// Applies one object: reads it, claims it again (it may have appeared since the
    /// apply began), sends it, and recreates it when an allowed immutable change
    /// demands, unless it was `adopted`: Brokkr never deletes what it did not create.
    async fn apply_step(
        &self,
        stack: &StackRef,
        step: &Step<'_>,
        kind: &Kind,
        adopted: bool,
        lookup: &mut Lookup<'_>,
    ) -> Result<Applied> {
        let api = self.api(kind, step.key.namespace.as_deref());
        let before = self.read(&api, &step.key).await?;
        if self.claim(stack, step, before.as_ref())? == Claim::Adopt && !adopted {
            // It appeared since it was claimed: the inventory would take it for one
            // Brokkr created. The next attempt claims and records it first.
            return Err(Error::Unavailable(format!(
                "{}: appeared while the deployment object was being applied; retrying",
                step.key
            )));
        }
        let fields = match self.send(stack, step, kind, false, lookup).await? {
            Sent::Applied(after) => {
                return Ok(Applied {
                    changed: drift::changed(before.as_ref(), &after),
                    recreated: false,
                });
            }
            Sent::Immutable(fields) if adopted => return Err(not_recreated(&step.key, fields)),
            Sent::Immutable(fields) => fields,
        };
        tracing::info!(stack_id = %stack.stack_id, object = %step.key, ?fields, "immutable field(s) changed; deleting to recreate");
        let uid = before.as_ref().and_then(ResourceExt::uid);
        if delete_exactly(&api, &step.key, uid.clone()).await? {
            self.wait_gone(vec![Deleting::new(api, step.key.clone(), uid)])
                .await?;
        }
        match self.send(stack, step, kind, false, lookup).await? {
            Sent::Applied(_) => Ok(Applied {
                changed: true,
                recreated: true,
            }),
            Sent::Immutable(fields) => Err(Error::Immutable {
                object: step.key.clone(),
                fields,
                message: "refused again after the object was deleted".to_owned(),
            }),
        }
    }

    /// Whether this stack may apply to `live` (see [`claim`]).
    fn claim(
        &self,
        stack: &StackRef,
        step: &Step<'_>,
        live: Option<&DynamicObject>,
    ) -> Result<Claim> {
        let owner = live.map(|live| live.labels().get(STACK_LABEL).map(String::as_str));
        claim(
            &step.key,
            stack.stack_id,
            owner,
            stack.policy.allows_adoption(step.manifest),
        )
    }

    /// The live object at `key`, if any.
    async fn read(
        &self,
        api: &Api<DynamicObject>,
        key: &ObjectKey,
    ) -> Result<Option<DynamicObject>> {
        api.get_opt(&key.name)
            .await
            .map_err(|e| object_error(key, e))
    }

    /// Server-side applies one object (or dry-runs it). A 404 for the kind itself
    /// (the cache said it is served, the server no longer does) refreshes discovery
    /// and tries once more; an immutable-field refusal is handed back when recreation
    /// is allowed, and fails naming the fields otherwise.
    async fn send(
        &self,
        stack: &StackRef,
        step: &Step<'_>,
        kind: &Kind,
        dry_run: bool,
        lookup: &mut Lookup<'_>,
    ) -> Result<Sent> {
        let key = &step.key;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
        }
        let mut kind = kind.clone();
        for attempt in 0..2 {
            let api = self.api(&kind, key.namespace.as_deref());
            let err = match api
                .patch(&key.name, &params, &Patch::Apply(&step.object))
                .await
            {
                Ok(object) => return Ok(Sent::Applied(Box::new(object))),
                Err(err) => err,
            };
            if let Some(fields) = immutable_fields(&err) {
                if stack.policy.allows_recreation(step.manifest) {
                    return Ok(Sent::Immutable(fields));
                }
                let message = match err {
                    kube::Error::Api(status) => status.message,
                    other => other.to_string(),
                };
                return Err(Error::Immutable {
                    object: key.clone(),
                    fields,
                    message,
                });
            }
            if attempt > 0 || !is_unserved(&err) {
                return Err(object_error(key, err));
            }
            tracing::info!(object = %key, "the server no longer serves the kind the discovery cache had; refreshing");
            lookup.refresh().await?;
            kind = match lookup.find(&key.api_version, &key.kind).await? {
                Found::Served(kind) => kind,
                found => return Err(not_served(key.clone(), found)),
            };
        }
        Err(Error::UnknownKind {
            object: key.clone(),
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

/// The refusal to recreate an adopted object: deleting it would delete an object
/// Brokkr did not create (for an adopted Namespace or CRD, with everything in it).
fn not_recreated(object: &ObjectKey, fields: Vec<String>) -> Error {
    Error::Immutable {
        object: object.clone(),
        fields,
        message: "not recreated: the object was adopted, and Brokkr never deletes an object \
                  it did not create; recreate it by hand"
            .to_owned(),
    }
}

/// `old` followed by the keys of `new` it lacks; an object in both is addressed at
/// its version in `new` (the one the cluster is being asked to serve it at).
fn union(old: &[ObjectKey], new: &[ObjectKey]) -> Vec<ObjectKey> {
    let newer: HashMap<&ObjectKey, &ObjectKey> = new.iter().map(|k| (k, k)).collect();
    let mut union: Vec<ObjectKey> = old
        .iter()
        .map(|k| newer.get(k).map_or_else(|| k.clone(), |&n| n.clone()))
        .collect();
    let known: HashSet<&ObjectKey> = old.iter().collect();
    union.extend(new.iter().filter(|k| !known.contains(k)).cloned());
    union
}

/// Whether `a` and `b` list the same objects at the same versions, in order.
fn same_versions(a: &[ObjectKey], b: &[ObjectKey]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.same_version(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(api_version: &str, name: &str) -> ObjectKey {
        ObjectKey {
            api_version: api_version.into(),
            kind: "Widget".into(),
            namespace: Some("n".into()),
            name: name.into(),
        }
    }

    #[test]
    fn the_union_addresses_an_object_at_its_new_version() {
        let old = [
            key("example.com/v1beta1", "a"),
            key("example.com/v1beta1", "b"),
        ];
        let new = [key("example.com/v1", "a"), key("example.com/v1", "c")];
        let union = union(&old, &new);
        let shown: Vec<String> = union.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "example.com/v1 Widget n/a",
                "example.com/v1beta1 Widget n/b",
                "example.com/v1 Widget n/c"
            ]
        );
        assert!(!same_versions(&union[..2], &old));
        assert!(same_versions(&old, &old));
    }
}
