//! Labels and annotations of stacks, agents and templates.

use super::fixtures::{ADMIN, labels, mk_agent, mk_stack, mk_template};
use super::support::{all_audit, expect_invalid, expect_not_found};
use crate::model::{MetadataField, MetadataTarget};
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
);
