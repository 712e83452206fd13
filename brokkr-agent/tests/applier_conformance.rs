//! The applier conformance suite (`brokkr_core::testing::applier_conformance`) on the
//! real `KubeApplier`, through the real kube-rs client, against the Kubernetes API
//! emulator: one fresh emulator per case, so the cases run in parallel.
//!
//! "Someone else" is played by the emulator and a second field manager: foreign
//! objects are created with a server-side apply by `someone-else`, hand edits go
//! through the emulator (it serves no merge-patch verb), hand deletions through kube.

mod emulator;

use async_trait::async_trait;
use brokkr_agent::kube_applier::{KubeApplier, KubeApplierOptions};
use brokkr_core::applier::Applier;
use brokkr_core::testing::{ApplierFixture, merge_patch};
use brokkr_core::{Manifest, ObjectKey};
use emulator::Emulator;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// A fresh emulator, a kube client to it and the applier under test.
struct Kube {
    emulator: Emulator,
    client: kube::Client,
    applier: KubeApplier,
}

impl Kube {
    fn api(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }
}

#[async_trait]
impl ApplierFixture for Kube {
    fn applier(&self) -> &dyn Applier {
        &self.applier
    }

    async fn create_foreign(&self, object: &Manifest) {
        self.api(object.api_version(), object.kind(), object.namespace())
            .patch(
                object.name(),
                &PatchParams::apply("someone-else").force(),
                &Patch::Apply(object.as_value()),
            )
            .await
            .expect("a foreign object is created");
    }

    async fn get(&self, key: &ObjectKey) -> Option<Value> {
        let live = self
            .api(&key.api_version, &key.kind, key.namespace.as_deref())
            .get_opt(&key.name)
            .await
            .expect("GET through kube")?;
        // An object waiting for its finalizers is on its way out.
        if live.metadata.deletion_timestamp.is_some() {
            return None;
        }
        Some(serde_json::to_value(live).expect("an object is JSON"))
    }

    async fn edit_by_hand(&self, key: &ObjectKey, patch: &Value) {
        self.emulator.edit(
            &key.api_version,
            &key.kind,
            key.namespace.as_deref(),
            &key.name,
            |live| merge_patch(live, patch),
        );
    }

    async fn delete_by_hand(&self, key: &ObjectKey) {
        self.api(&key.api_version, &key.kind, key.namespace.as_deref())
            .delete(&key.name, &DeleteParams::default())
            .await
            .expect("a hand-made delete");
    }
}

async fn kube() -> Option<Kube> {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let applier = KubeApplier::new(client.clone(), KubeApplierOptions::default())
        .await
        .expect("the applier starts");
    Some(Kube {
        emulator,
        client,
        applier,
    })
}

brokkr_core::applier_conformance_tests!(kube);
