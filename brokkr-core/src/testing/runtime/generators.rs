//! Generators, keys and the audit log: who may manage generators and rotate which
//! keys, that a rotated or revoked key is refused at once (the key cache is
//! invalidated), and who reads the audit log.

use super::callers::{Answer, World, assert_no_mismatches, matrix};
use crate::runtime::{ControlPlane, Error, GeneratorSpec};
use crate::{Actor, GeneratorFilter, GeneratorUpdate, PageRequest};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

fn spec(name: &str) -> GeneratorSpec {
    GeneratorSpec {
        name: name.into(),
        description: None,
    }
}

#[track_caller]
fn assert_refused(result: crate::runtime::Result<Actor>) {
    assert!(
        matches!(result, Err(Error::Unauthenticated(_))),
        "{result:?}"
    );
}

crate::runtime_cases! {
    async fn generator_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let page = &PageRequest::first(10);
        let admin_only = [OK, OK, NO, NO, NO, NO];
        // A generator reaches only itself: another generator is not found.
        let itself = [OK, OK, NO, NO, OK, NF];
        let mut bad = Vec::new();
        bad.extend(matrix("create_generator", admin_only, |who| {
            let cp = cp.clone();
            async move { cp.create_generator(&w.actor(who, w.agent), spec(&format!("g-{who:?}"))).await }
        }).await);
        bad.extend(matrix("list_generators", admin_only, |who| {
            let cp = cp.clone();
            async move { cp.list_generators(&w.actor(who, w.agent), GeneratorFilter::default(), page).await }
        }).await);
        bad.extend(matrix("get_generator", itself, |who| {
            let cp = cp.clone();
            async move { cp.get_generator(&w.actor(who, w.agent), w.generator).await }
        }).await);
        bad.extend(matrix("update_generator", admin_only, |who| {
            let cp = cp.clone();
            async move {
                let update = GeneratorUpdate { description: Some(Some(format!("{who:?}"))), ..Default::default() };
                cp.update_generator(&w.actor(who, w.agent), w.generator, update).await
            }
        }).await);
        bad.extend(matrix("rotate_generator_key", itself, |who| {
            let cp = cp.clone();
            async move { cp.rotate_generator_key(&w.actor(who, w.agent), w.generator).await }
        }).await);
        bad.extend(matrix("delete_generator", admin_only, |who| {
            let cp = cp.clone();
            async move {
                let created = cp.create_generator(&Actor::System, spec(&format!("d-{who:?}"))).await;
                let id = created.expect("create fixture generator").generator.id;
                cp.delete_generator(&w.actor(who, w.agent), id).await
            }
        }).await);
        bad.extend(matrix("rotate_admin_key", admin_only, |who| {
            let cp = cp.clone();
            async move { cp.rotate_admin_key(&w.actor(who, w.agent)).await }
        }).await);
        bad.extend(matrix("list_audit_records", admin_only, |who| {
            let cp = cp.clone();
            async move { cp.list_audit_records(&w.actor(who, w.agent), Default::default(), page).await }
        }).await);
        assert_no_mismatches(bad);
    }

    async fn rotated_and_revoked_generator_keys_are_refused_at_once(cp: ControlPlane) {
        let created = cp.create_generator(&Actor::Admin, spec("tenant")).await.unwrap();
        let id = created.generator.id;
        let first = created.key.expose().to_owned();
        // Authenticated once, so the key cache holds it.
        assert_eq!(cp.authenticate(&first).await.unwrap(), Actor::Generator(id));

        let second = cp.rotate_generator_key(&Actor::Generator(id), id).await.unwrap();
        assert_refused(cp.authenticate(&first).await);
        assert_eq!(cp.authenticate(second.expose()).await.unwrap(), Actor::Generator(id));

        cp.delete_generator(&Actor::Admin, id).await.unwrap();
        assert_refused(cp.authenticate(second.expose()).await);
    }

    async fn a_rotated_admin_key_is_refused_at_once(cp: ControlPlane) {
        let first = cp.rotate_admin_key(&Actor::System).await.unwrap();
        assert_eq!(cp.authenticate(first.expose()).await.unwrap(), Actor::Admin);
        let second = cp.rotate_admin_key(&Actor::Admin).await.unwrap();
        assert_refused(cp.authenticate(first.expose()).await);
        assert_eq!(cp.authenticate(second.expose()).await.unwrap(), Actor::Admin);
    }
}
