//! Labels and annotations of stacks, agents and templates through one set of
//! operations: who may read and change which map, and what each answer holds.

use super::callers::{Answer, World, assert_no_mismatches, matrix};
use crate::runtime::{ControlPlane, Error};
use crate::{Actor, MetadataField, MetadataTarget, NewTemplate, store};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

async fn template(
    cp: &ControlPlane,
    name: &str,
    owner: Option<crate::GeneratorId>,
) -> MetadataTarget {
    let new = NewTemplate {
        name: name.into(),
        generator_id: owner,
        content: "{}".into(),
        parameters_schema: serde_json::json!({"type": "object"}),
        ..Default::default()
    };
    let template = cp
        .create_template(&Actor::System, new)
        .await
        .expect("create fixture template");
    MetadataTarget::Template(template.id)
}

crate::runtime_cases! {
    async fn metadata_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let row_owner = [OK, OK, NO, NO, OK, NF];
        let admin_only = [OK, OK, NO, NO, NO, NO];
        let cells = [
            // (target, who may read, who may change)
            (MetadataTarget::Stack(w.stack), row_owner, row_owner),
            // An agent reads its own maps; only admin and system change them.
            (MetadataTarget::Agent(w.agent), [OK, OK, OK, NO, NO, NO], admin_only),
            (template(&cp, "mine", Some(w.generator)).await, row_owner, row_owner),
            // Every generator sees a global template; only admin and system change it.
            (template(&cp, "global", None).await, [OK, OK, NO, NO, OK, OK], admin_only),
        ];
        let mut bad = Vec::new();
        for (target, read, write) in cells {
            for field in [MetadataField::Labels, MetadataField::Annotations] {
                let name = format!("{target:?} {field:?}");
                bad.extend(matrix(&format!("metadata {name}"), read, |who| {
                    let cp = cp.clone();
                    async move { cp.metadata(&w.actor(who, w.agent), target, field).await }
                }).await);
                bad.extend(matrix(&format!("put_metadata {name}"), write, |who| {
                    let cp = cp.clone();
                    async move {
                        cp.put_metadata(&w.actor(who, w.agent), target, field, "team", "a").await
                    }
                }).await);
                bad.extend(matrix(&format!("remove_metadata {name}"), write, |who| {
                    let cp = cp.clone();
                    async move {
                        let key = format!("k-{who:?}").to_lowercase();
                        cp.put_metadata(&Actor::System, target, field, &key, "v").await?;
                        cp.remove_metadata(&w.actor(who, w.agent), target, field, &key).await
                    }
                }).await);
            }
        }
        assert_no_mismatches(bad);
    }

    async fn every_answer_is_the_whole_map(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let owner = Actor::Generator(w.generator);
        let target = MetadataTarget::Stack(w.stack);
        let labels = MetadataField::Labels;
        cp.put_metadata(&owner, target, labels, "team", "a").await.unwrap();
        let map = cp.put_metadata(&owner, target, labels, "tier", "web").await.unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(cp.metadata(&owner, target, labels).await.unwrap(), map);
        let annotations = cp.metadata(&owner, target, MetadataField::Annotations).await.unwrap();
        assert!(annotations.is_empty());

        let map = cp.remove_metadata(&owner, target, labels, "team").await.unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["tier"]);
        let err = cp.remove_metadata(&owner, target, labels, "team").await.unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
        // Label values follow Kubernetes' syntax; annotation values are free text.
        let err = cp.put_metadata(&owner, target, labels, "note", "two words").await.unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::Invalid(_))), "{err:?}");
        cp.put_metadata(&owner, target, MetadataField::Annotations, "note", "two words")
            .await
            .unwrap();
        // The agent's own maps, as the agent reads them.
        let agent = MetadataTarget::Agent(w.agent);
        cp.put_metadata(&Actor::Admin, agent, labels, "zone", "eu").await.unwrap();
        let map = cp.metadata(&Actor::Agent(w.agent), agent, labels).await.unwrap();
        assert_eq!(map.get("zone").map(String::as_str), Some("eu"));
    }
}
