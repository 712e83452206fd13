//! Labels and annotations of stacks, agents and templates.

use super::fixtures::{ADMIN, labels, mk_agent, mk_stack, mk_template, new_agent, new_template};
use super::support::{all_audit, expect_invalid, expect_not_found};
use crate::metadata::{Annotations, MAX_ANNOTATIONS_BYTES};
use crate::model::{MetadataField, MetadataTarget, NewStack, NewTemplate};
use crate::pak::Pak;
use crate::store::Store;

cases!(
    /// Labels and annotations of stacks, agents and templates are set, overwritten and
    /// removed one at a time; each call returns the whole map.
    pub async fn metadata_put_and_remove(store: &dyn Store) {
        let stack = mk_stack(store, "meta").await;
        let agent = mk_agent(store, "meta").await;
        let template = mk_template(store, "meta").await;
        for target in [
            MetadataTarget::Stack(stack.id),
            MetadataTarget::Agent(agent.id),
            MetadataTarget::Template(template.id),
        ] {
            let put = async |field, key: &str, value: &str| {
                store
                    .put_metadata(&ADMIN, target, field, key, value)
                    .await
                    .expect("put metadata")
            };
            let l = MetadataField::Labels;
            let a = MetadataField::Annotations;
            assert_eq!(put(l, "app", "web").await, labels(&[("app", "web")]));
            assert_eq!(
                put(l, "example.com/tier", "db").await,
                labels(&[("app", "web"), ("example.com/tier", "db")])
            );
            assert_eq!(
                put(l, "app", "api").await,
                labels(&[("app", "api"), ("example.com/tier", "db")])
            );
            assert_eq!(
                put(a, "note", "free text, with spaces: é").await,
                labels(&[("note", "free text, with spaces: é")])
            );
            let removed = store
                .remove_metadata(&ADMIN, target, l, "app")
                .await
                .expect("remove");
            assert_eq!(removed, labels(&[("example.com/tier", "db")]));

            let (got_labels, got_annotations) = match target {
                MetadataTarget::Stack(id) => {
                    let s = store.get_stack(id).await.expect("get");
                    (s.labels, s.annotations)
                }
                MetadataTarget::Agent(id) => {
                    let a = store.get_agent(id).await.expect("get");
                    (a.labels, a.annotations)
                }
                MetadataTarget::Template(id) => {
                    let t = store.get_template(id).await.expect("get");
                    (t.labels, t.annotations)
                }
            };
            assert_eq!(got_labels, labels(&[("example.com/tier", "db")]));
            assert_eq!(
                got_annotations,
                labels(&[("note", "free text, with spaces: é")])
            );
        }
    }

    /// Invalid keys and values are `Invalid` and change nothing; removing an unset key is
    /// `NotFound`.
    pub async fn metadata_invalid_or_missing(store: &dyn Store) {
        let stack = mk_stack(store, "meta").await;
        let target = MetadataTarget::Stack(stack.id);
        let audit = all_audit(store).await.len();
        let (l, a) = (MetadataField::Labels, MetadataField::Annotations);
        for (field, key, value) in [
            (l, "-bad", "v"),
            (l, "UPPER.example.com/x", "v"),
            (l, "app", "has space"),
            (l, "app", "-v"),
            (a, "", "text"),
            (a, "a/b/c", "text"),
        ] {
            expect_invalid(store.put_metadata(&ADMIN, target, field, key, value).await);
        }
        let huge = "x".repeat(crate::metadata::MAX_ANNOTATION_VALUE_BYTES + 1);
        expect_invalid(store.put_metadata(&ADMIN, target, a, "big", &huge).await);
        assert_eq!(store.get_stack(stack.id).await.expect("get"), stack);
        assert_eq!(all_audit(store).await.len(), audit);

        expect_not_found(
            store.remove_metadata(&ADMIN, target, l, "app").await,
            "label",
        );
        expect_not_found(
            store.remove_metadata(&ADMIN, target, a, "note").await,
            "annotation",
        );
        // A label is not an annotation.
        store
            .put_metadata(&ADMIN, target, l, "app", "web")
            .await
            .expect("put");
        expect_not_found(
            store.remove_metadata(&ADMIN, target, a, "app").await,
            "annotation",
        );
    }

    /// An object's annotations, keys and values together, stay within 256 KiB: a put
    /// that would pass it is `Invalid` and changes nothing, one that shrinks the total
    /// passes, a create with too much is refused, and of two concurrent puts that fit
    /// alone but not together exactly one lands. On stacks, agents and templates.
    pub async fn annotations_together_stay_within_256_kib(store: &dyn Store) {
        let kib = 1024;
        let too_much: Annotations = ["a", "b", "c"]
            .into_iter()
            .map(|k| (k.to_owned(), "x".repeat(90 * kib)))
            .collect();
        let audit = all_audit(store).await.len();
        let stack = NewStack {
            name: "crowded".into(),
            annotations: too_much.clone(),
            ..Default::default()
        };
        expect_invalid(store.create_stack(&ADMIN, stack).await);
        let mut agent = new_agent("crowded", "cluster-1", &Pak::generate());
        agent.annotations = too_much.clone();
        expect_invalid(store.create_agent(&ADMIN, agent).await);
        let template = NewTemplate {
            annotations: too_much,
            ..new_template("crowded")
        };
        expect_invalid(store.create_template(&ADMIN, template).await);
        assert_eq!(all_audit(store).await.len(), audit, "nothing was created");

        let stack = mk_stack(store, "annotated").await;
        let agent = mk_agent(store, "annotated").await;
        let template = mk_template(store, "annotated").await;
        let a = MetadataField::Annotations;
        for target in [
            MetadataTarget::Stack(stack.id),
            MetadataTarget::Agent(agent.id),
            MetadataTarget::Template(template.id),
        ] {
            let put = async |key: &str, bytes: usize| {
                let value = "v".repeat(bytes);
                store.put_metadata(&ADMIN, target, a, key, &value).await
            };
            put("a", 100 * kib).await.expect("100 KiB fit");
            let map = put("b", 100 * kib).await.expect("200 KiB fit");
            let audit = all_audit(store).await.len();
            let err = put("c", 60 * kib).await.unwrap_err();
            assert!(err.to_string().contains("256 KiB"), "{err}");
            expect_invalid(put("a", 157 * kib).await);
            assert_eq!(annotations_of(store, target).await, map, "unchanged");
            assert_eq!(all_audit(store).await.len(), audit, "nothing audited");
            // Exactly at the cap, keys counted.
            let rest = MAX_ANNOTATIONS_BYTES
                - map.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                - 1;
            put("c", rest).await.expect("exactly the cap");
            // Shrinking one value makes room again.
            put("a", 10 * kib).await.expect("a smaller value");
            put("d", 50 * kib).await.expect("room again");

            // Two writers, each fitting alone: the transaction sees the other's write.
            store
                .remove_metadata(&ADMIN, target, a, "c")
                .await
                .expect("remove");
            store
                .remove_metadata(&ADMIN, target, a, "d")
                .await
                .expect("remove");
            let (first, second) = tokio::join!(put("e", 100 * kib), put("f", 100 * kib));
            assert!(
                first.is_ok() != second.is_ok(),
                "exactly one of two concurrent puts lands: {first:?} / {second:?}"
            );
            let total: usize = annotations_of(store, target)
                .await
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum();
            assert!(total <= MAX_ANNOTATIONS_BYTES, "{total}");
        }
    }
);

/// The annotations a target has now.
async fn annotations_of(store: &dyn Store, target: MetadataTarget) -> Annotations {
    match target {
        MetadataTarget::Stack(id) => store.get_stack(id).await.expect("stack").annotations,
        MetadataTarget::Agent(id) => store.get_agent(id).await.expect("agent").annotations,
        MetadataTarget::Template(id) => store.get_template(id).await.expect("template").annotations,
    }
}
