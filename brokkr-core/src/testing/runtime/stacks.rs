//! Stacks and deployment objects sent as YAML: who may create, read, change and delete
//! them, that a generator never learns another generator's rows exist, that bad YAML
//! stores nothing, and that a deleted stack's history stays readable by its owner.

use super::callers::{Answer, World, assert_no_mismatches, matrix, mk_owned_stack};
use crate::runtime::{ControlPlane, Error, IncludeContent};
use crate::testing::conformance::{config_map_yaml, mk_stack};
use crate::{
    Actor, DeploymentObjectId, GeneratorId, NewStack, PageRequest, StackFilter, StackId,
    StackUpdate, store,
};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

fn is_not_found<T>(result: &crate::runtime::Result<T>) -> bool {
    matches!(result, Err(Error::Store(store::Error::NotFound { .. })))
}

fn new_stack(name: &str, generator: Option<GeneratorId>) -> NewStack {
    NewStack {
        name: name.into(),
        generator_id: generator,
        ..Default::default()
    }
}

async fn history_len(cp: &ControlPlane, stack: StackId) -> usize {
    let page = PageRequest::first(100);
    let objects = cp
        .list_deployment_objects(&Actor::Admin, stack, IncludeContent::No, &page)
        .await;
    objects.expect("admin reads any history").items.len()
}

crate::runtime_cases! {
    async fn stack_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let page = &PageRequest::first(10);
        let mut bad = Vec::new();
        // Admin and system act on any stack, the owner on its own; another generator
        // does not learn the stack exists; agents are refused.
        let row_owner = [OK, OK, NO, NO, OK, NF];
        bad.extend(matrix("create_stack", [OK, OK, NO, NO, OK, OK], |who| {
            let cp = cp.clone();
            async move {
                let new = new_stack(&format!("new-{who:?}"), None);
                cp.create_stack(&w.actor(who, w.agent), new).await
            }
        }).await);
        bad.extend(matrix("list_stacks", [OK, OK, NO, NO, OK, OK], |who| {
            let cp = cp.clone();
            async move { cp.list_stacks(&w.actor(who, w.agent), StackFilter::default(), page).await }
        }).await);
        bad.extend(matrix("get_stack", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.get_stack(&w.actor(who, w.agent), w.stack).await }
        }).await);
        bad.extend(matrix("update_stack", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let update = StackUpdate { description: Some(Some(format!("{who:?}"))), ..Default::default() };
                cp.update_stack(&w.actor(who, w.agent), w.stack, update).await
            }
        }).await);
        bad.extend(matrix("delete_stack", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let stack = mk_owned_stack(&cp, w.generator, &format!("delete-{who:?}")).await;
                cp.delete_stack(&w.actor(who, w.agent), stack).await
            }
        }).await);
        bad.extend(matrix("append_deployment_object", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let yaml = config_map_yaml("app-config", &format!("{who:?}"));
                cp.append_deployment_object(&w.actor(who, w.agent), w.stack, yaml).await
            }
        }).await);
        bad.extend(matrix("append_deletion_marker", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let stack = mk_owned_stack(&cp, w.generator, &format!("marker-{who:?}")).await;
                cp.append_deletion_marker(&w.actor(who, w.agent), stack).await
            }
        }).await);
        bad.extend(matrix("list_deployment_objects", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.list_deployment_objects(&w.actor(who, w.agent), w.stack, IncludeContent::No, page).await }
        }).await);
        bad.extend(matrix("get_deployment_object", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.get_deployment_object(&w.actor(who, w.agent), w.object).await }
        }).await);
        assert_no_mismatches(bad);
    }

    async fn a_generator_never_learns_of_other_rows(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let other = Actor::Generator(w.other_generator);
        let admins = mk_stack(cp.store().as_ref(), "admins").await;
        // An admin's stack, another generator's stack and one that never existed
        // answer alike.
        for stack in [admins.id, w.stack, StackId::new()] {
            assert!(is_not_found(&cp.get_stack(&other, stack).await), "{stack}");
            assert!(is_not_found(&cp.list_deployment_objects(&other, stack, IncludeContent::No, &PageRequest::first(1)).await));
        }
        // A deployment object of an unseen stack is a missing deployment object, not a
        // hint about its stack.
        let err = cp.get_deployment_object(&other, w.object).await.unwrap_err();
        let Error::Store(store::Error::NotFound { kind, .. }) = err else { panic!("{err:?}") };
        assert_eq!(kind, "deployment object");
        assert!(is_not_found(&cp.get_deployment_object(&other, DeploymentObjectId::new()).await));

        // Listing shows a generator only its own stacks, whatever the filter says,
        // and naming another generator is refused.
        mk_owned_stack(&cp, w.other_generator, "theirs").await;
        let listed = cp
            .list_stacks(&other, StackFilter::default(), &PageRequest::first(100))
            .await
            .unwrap();
        let names: Vec<_> = listed.items.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["theirs"]);
        let filter = StackFilter { generator_id: Some(w.generator), ..Default::default() };
        let err = cp.list_stacks(&other, filter, &PageRequest::first(1)).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
        let filter = StackFilter { id: Some(w.stack), ..Default::default() };
        let listed = cp.list_stacks(&other, filter, &PageRequest::first(1)).await.unwrap();
        assert!(listed.items.is_empty());
    }

    async fn a_generator_creates_stacks_only_for_itself(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Generator(w.generator);
        let mine = cp.create_stack(&me, new_stack("mine", None)).await.unwrap();
        assert_eq!(mine.generator_id, Some(w.generator));
        let err = cp
            .create_stack(&me, new_stack("theirs", Some(w.other_generator)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
        // Admin and system give stacks to anyone, or to no one.
        let given = cp
            .create_stack(&Actor::System, new_stack("given", Some(w.other_generator)))
            .await
            .unwrap();
        assert_eq!(given.generator_id, Some(w.other_generator));
        let admins = cp.create_stack(&Actor::Admin, new_stack("admins", None)).await.unwrap();
        assert_eq!(admins.generator_id, None);
    }

    async fn invalid_yaml_stores_nothing(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let owner = Actor::Generator(w.generator);
        let before = history_len(&cp, w.stack).await;
        let err = cp
            .append_deployment_object(&owner, w.stack, "kind: ConfigMap\n".into())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Manifest(_)), "{err:?}");
        let limit = cp.settings().max_yaml_bytes;
        let huge = format!("{}\n# {}", config_map_yaml("big", "1"), "x".repeat(limit));
        let err = cp.append_deployment_object(&owner, w.stack, huge).await.unwrap_err();
        assert!(
            matches!(err, Error::Manifest(crate::manifest::Error::TooLarge { .. })),
            "{err:?}"
        );
        assert_eq!(history_len(&cp, w.stack).await, before);

        let yaml = config_map_yaml("app-config", "2");
        let object = cp.append_deployment_object(&owner, w.stack, yaml.clone()).await.unwrap();
        assert_eq!(object.yaml_content, yaml);
        assert_eq!(object.yaml_checksum, crate::model::checksum(&yaml));
        assert_eq!(history_len(&cp, w.stack).await, before + 1);
    }

    async fn a_deleted_stacks_history_stays_readable_by_its_owner_only(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let owner = Actor::Generator(w.generator);
        // An append first, so the control plane remembers who owns the stack: that
        // must not let a later append through once the stack is deleted.
        cp.append_deployment_object(&owner, w.stack, config_map_yaml("c", "2")).await.unwrap();
        let marker = cp.delete_stack(&owner, w.stack).await.expect("owner deletes");
        assert!(marker.is_deletion_marker);

        // The stack itself is gone, for everyone.
        assert!(is_not_found(&cp.get_stack(&owner, w.stack).await));
        assert!(is_not_found(&cp.get_stack(&Actor::Admin, w.stack).await));
        assert!(is_not_found(
            &cp.append_deployment_object(&owner, w.stack, config_map_yaml("c", "3")).await
        ));
        assert!(is_not_found(&cp.append_deletion_marker(&owner, w.stack).await));
        // Its history is not, for its owner and admin.
        let page = PageRequest::first(10);
        for caller in [owner, Actor::Admin] {
            let history = cp
                .list_deployment_objects(&caller, w.stack, IncludeContent::Yes, &page)
                .await
                .unwrap();
            assert_eq!(history.items.len(), 3, "{caller:?}");
            assert!(history.items.iter().all(|o| o.yaml_content.is_some()));
            cp.get_deployment_object(&caller, marker.id).await.expect("readable");
        }
        let other = Actor::Generator(w.other_generator);
        assert!(is_not_found(&cp.list_deployment_objects(&other, w.stack, IncludeContent::No, &page).await));
        assert!(is_not_found(&cp.get_deployment_object(&other, marker.id).await));
    }
}
