//! Generators and templates.

use serde_json::json;

use super::fixtures::{
    ADMIN, config_map_yaml, labels, mk_generator, mk_template, new_generator, new_template,
};
use super::support::{
    all, all_audit, all_templates, expect_conflict, expect_invalid, expect_not_found,
};
use crate::id::GeneratorId;
use crate::model::{
    Actor, GeneratorUpdate, KeyOwner, NewGenerator, NewStack, NewTemplate, NewTemplateVersion,
};
use crate::pak::Pak;
use crate::store::{GeneratorFilter, Store, TemplateFilter};

cases!(
    // Generators

    /// Generators are created, read, listed, updated and soft-deleted.
    pub async fn generator_crud(store: &dyn Store) {
        let created = store
            .create_generator(
                &ADMIN,
                NewGenerator {
                    name: "ci".into(),
                    description: Some("the pipeline".into()),
                    key: Pak::generate().stored(),
                },
            )
            .await
            .expect("create");
        assert_eq!(created.name, "ci");
        assert_eq!(created.description.as_deref(), Some("the pipeline"));
        assert_eq!(created.deleted_at, None);
        assert_eq!(store.get_generator(created.id).await.expect("get"), created);

        let updated = store
            .update_generator(
                &ADMIN,
                created.id,
                GeneratorUpdate {
                    name: Some("ci-2".into()),
                    description: Some(None),
                },
            )
            .await
            .expect("update");
        assert_eq!(updated.name, "ci-2");
        assert_eq!(updated.description, None);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(store.get_generator(created.id).await.expect("get"), updated);
        let live =
            all(async |p| store.list_generators(&GeneratorFilter::default(), &p).await).await;
        assert_eq!(live, vec![updated]);

        store
            .delete_generator(&ADMIN, created.id)
            .await
            .expect("delete");
        expect_not_found(store.get_generator(created.id).await, "generator");
        expect_not_found(
            store.delete_generator(&ADMIN, created.id).await,
            "generator",
        );
        let live =
            all(async |p| store.list_generators(&GeneratorFilter::default(), &p).await).await;
        assert!(live.is_empty());
        let filter = GeneratorFilter {
            include_deleted: true,
        };
        let with_deleted = all(async |p| store.list_generators(&filter, &p).await).await;
        assert_eq!(with_deleted.len(), 1);
        assert!(with_deleted[0].deleted_at.is_some());
    }

    /// Live generator names are unique; bad names are `Invalid`; deletion frees the name.
    pub async fn generator_names_are_unique_and_reusable(store: &dyn Store) {
        let first = mk_generator(store, "gen").await;
        let second = mk_generator(store, "other").await;
        expect_conflict(
            store
                .create_generator(&ADMIN, new_generator("gen", &Pak::generate()))
                .await,
        );
        let rename = GeneratorUpdate {
            name: Some("gen".into()),
            description: None,
        };
        expect_conflict(store.update_generator(&ADMIN, second.id, rename).await);
        for bad in ["", " gen", "gen\n"] {
            expect_invalid(
                store
                    .create_generator(&ADMIN, new_generator(bad, &Pak::generate()))
                    .await,
            );
        }
        let long = NewGenerator {
            description: Some("d".repeat(4097)),
            ..new_generator("long", &Pak::generate())
        };
        expect_invalid(store.create_generator(&ADMIN, long).await);
        let bad_rename = GeneratorUpdate {
            name: Some(String::new()),
            description: None,
        };
        expect_invalid(store.update_generator(&ADMIN, second.id, bad_rename).await);
        assert_eq!(store.get_generator(second.id).await.expect("get"), second);

        store
            .delete_generator(&ADMIN, first.id)
            .await
            .expect("delete");
        let again = mk_generator(store, "gen").await;
        assert_ne!(again.id, first.id);
    }

    /// Deleting a generator revokes its keys; its stacks and templates stay.
    pub async fn generator_delete_revokes_keys_and_keeps_stacks(store: &dyn Store) {
        let key = Pak::generate();
        let generator = store
            .create_generator(&ADMIN, new_generator("gen", &key))
            .await
            .expect("create");
        let stack = store
            .create_stack(
                &Actor::Generator(generator.id),
                NewStack {
                    name: "owned".into(),
                    generator_id: Some(generator.id),
                    ..Default::default()
                },
            )
            .await
            .expect("create stack");
        let template = store
            .create_template(
                &Actor::Generator(generator.id),
                NewTemplate {
                    generator_id: Some(generator.id),
                    ..new_template("owned")
                },
            )
            .await
            .expect("create template");
        assert!(
            store
                .find_api_key(key.short_id())
                .await
                .expect("find")
                .is_some()
        );

        store
            .delete_generator(&ADMIN, generator.id)
            .await
            .expect("delete");
        assert_eq!(
            store.find_api_key(key.short_id()).await.expect("find"),
            None
        );
        let keys = store
            .active_api_keys(KeyOwner::Generator(generator.id))
            .await;
        assert!(keys.expect("active keys").is_empty());
        assert_eq!(store.get_stack(stack.id).await.expect("stack stays"), stack);
        assert_eq!(
            store
                .get_template(template.id)
                .await
                .expect("template stays"),
            template
        );
    }

    // Templates

    /// Templates start at version 1, gain versions, keep old versions readable (also after
    /// deletion) and are soft-deleted.
    pub async fn template_crud_and_versions(store: &dyn Store) {
        let new = NewTemplate {
            description: Some("a config map".into()),
            labels: labels(&[("kind", "config")]),
            annotations: labels(&[("docs", "see the wiki")]),
            ..new_template("config")
        };
        let created = store
            .create_template(&ADMIN, new.clone())
            .await
            .expect("create");
        assert_eq!(created.name, "config");
        assert_eq!(created.description.as_deref(), Some("a config map"));
        assert_eq!(created.generator_id, None);
        assert_eq!(created.labels, new.labels);
        assert_eq!(created.annotations, new.annotations);
        assert_eq!(created.latest.template_id, created.id);
        assert_eq!(created.latest.version, 1);
        assert_eq!(created.latest.content, new.content);
        assert_eq!(created.latest.parameters_schema, new.parameters_schema);
        assert_eq!(store.get_template(created.id).await.expect("get"), created);

        let v2_body = NewTemplateVersion {
            content: config_map_yaml("{{ name }}", "two"),
            parameters_schema: json!({"type": "object"}),
        };
        let updated = store
            .add_template_version(&ADMIN, created.id, v2_body.clone())
            .await
            .expect("add version");
        assert_eq!(updated.latest.version, 2);
        assert_eq!(updated.latest.content, v2_body.content);
        assert_eq!(updated.latest.parameters_schema, v2_body.parameters_schema);
        assert_eq!(updated.name, created.name);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(store.get_template(created.id).await.expect("get"), updated);

        let v1 = store
            .get_template_version(created.id, 1)
            .await
            .expect("version 1");
        assert_eq!(v1, created.latest);
        let v2 = store
            .get_template_version(created.id, 2)
            .await
            .expect("version 2");
        assert_eq!(v2, updated.latest);
        expect_not_found(
            store.get_template_version(created.id, 3).await,
            "template version",
        );
        let versions = all(async |p| store.list_template_versions(created.id, &p).await).await;
        assert_eq!(versions, vec![v1.clone(), v2.clone()]);
        let listed = all_templates(store, &TemplateFilter::default()).await;
        assert_eq!(listed, vec![updated.clone()]);

        store
            .delete_template(&ADMIN, created.id)
            .await
            .expect("delete");
        expect_not_found(store.get_template(created.id).await, "template");
        expect_not_found(store.delete_template(&ADMIN, created.id).await, "template");
        expect_not_found(
            store
                .add_template_version(&ADMIN, created.id, v2_body)
                .await,
            "template",
        );
        assert_eq!(
            store
                .get_template_version(created.id, 1)
                .await
                .expect("history stays"),
            v1
        );
        let versions = all(async |p| store.list_template_versions(created.id, &p).await).await;
        assert_eq!(versions, vec![v1, v2]);
        let live = all_templates(store, &TemplateFilter::default()).await;
        assert!(live.is_empty());
        let filter = TemplateFilter {
            include_deleted: true,
            ..Default::default()
        };
        let with_deleted = all_templates(store, &filter).await;
        assert_eq!(with_deleted.len(), 1);
        assert!(with_deleted[0].deleted_at.is_some());
        assert_eq!(with_deleted[0].latest.version, 2);

        let again = mk_template(store, "config").await;
        assert_ne!(again.id, created.id);
    }

    /// Live template names are unique; the owning generator must be live; templates filter
    /// by owner; bad input is `Invalid` and writes nothing.
    pub async fn template_names_owners_and_validation(store: &dyn Store) {
        let global = mk_template(store, "global").await;
        expect_conflict(store.create_template(&ADMIN, new_template("global")).await);
        let generator = mk_generator(store, "gen").await;
        let owned = store
            .create_template(
                &Actor::Generator(generator.id),
                NewTemplate {
                    generator_id: Some(generator.id),
                    ..new_template("owned")
                },
            )
            .await
            .expect("create owned");
        assert_eq!(owned.generator_id, Some(generator.id));
        let filter = TemplateFilter {
            generator_id: Some(generator.id),
            ..Default::default()
        };
        let listed = all_templates(store, &filter).await;
        assert_eq!(listed, vec![owned]);
        let missing = NewTemplate {
            generator_id: Some(GeneratorId::new()),
            ..new_template("orphan")
        };
        expect_not_found(store.create_template(&ADMIN, missing).await, "generator");

        let audit = all_audit(store).await.len();
        expect_invalid(store.create_template(&ADMIN, new_template("")).await);
        expect_invalid(store.create_template(&ADMIN, new_template("x\u{7}")).await);
        let bad_labels = NewTemplate {
            labels: labels(&[("kind", "not valid")]),
            ..new_template("bad-labels")
        };
        expect_invalid(store.create_template(&ADMIN, bad_labels).await);
        let bad_annotations = NewTemplate {
            annotations: labels(&[("Not/Valid", "x")]),
            ..new_template("bad-annotations")
        };
        expect_invalid(store.create_template(&ADMIN, bad_annotations).await);
        let long = NewTemplate {
            description: Some("d".repeat(4097)),
            ..new_template("long")
        };
        expect_invalid(store.create_template(&ADMIN, long).await);
        assert_eq!(all_audit(store).await.len(), audit);
        let filter = TemplateFilter {
            include_deleted: true,
            ..Default::default()
        };
        let listed = all_templates(store, &filter).await;
        assert_eq!(listed.len(), 2);
        assert_eq!(store.get_template(global.id).await.expect("get"), global);
    }
);
