//! Stacks: create, read, update, soft deletion, names.

use super::fixtures::{ADMIN, labels, mk_generator, mk_stack};
use super::support::{
    all_audit, all_stacks, expect_conflict, expect_invalid, expect_not_found,
    include_deleted_stacks,
};
use crate::id::{AgentEventId, AgentId, DeploymentObjectId, GeneratorId, StackId, TemplateId};
use crate::model::{
    Actor, AgentUpdate, GeneratorUpdate, KeyOwner, MetadataField, MetadataTarget, NewStack,
    NewTemplateVersion, StackUpdate,
};
use crate::page::{ContentListing, PageRequest};
use crate::pak::Pak;
use crate::store::{StackFilter, Store};

cases!(
    /// `ping` succeeds on a working store.
    pub async fn ping_succeeds(store: &dyn Store) {
        store.ping().await.expect("ping");
    }

    /// Stacks are created, read, listed and updated.
    pub async fn stack_crud(store: &dyn Store) {
        let created = store
            .create_stack(
                &ADMIN,
                NewStack {
                    name: "crud".into(),
                    description: Some("first".into()),
                    generator_id: None,
                    labels: labels(&[("app", "web"), ("example.com/tier", "front-end")]),
                    annotations: labels(&[("note", "free text: any/thing é")]),
                },
            )
            .await
            .expect("create stack");
        assert_eq!(created.name, "crud");
        assert_eq!(created.description.as_deref(), Some("first"));
        assert_eq!(created.generator_id, None);
        assert_eq!(
            created.labels,
            labels(&[("app", "web"), ("example.com/tier", "front-end")])
        );
        assert_eq!(
            created.annotations,
            labels(&[("note", "free text: any/thing é")])
        );
        assert_eq!(created.deleted_at, None);
        assert!(created.updated_at >= created.created_at);

        assert_eq!(store.get_stack(created.id).await.expect("get"), created);
        let listed = store
            .list_stacks(&StackFilter::default(), &PageRequest::default())
            .await
            .expect("list");
        assert_eq!(listed.items, vec![created.clone()]);
        assert_eq!(listed.next_cursor, None);

        let renamed = store
            .update_stack(
                &ADMIN,
                created.id,
                StackUpdate {
                    name: Some("crud-renamed".into()),
                    description: Some(None),
                },
            )
            .await
            .expect("update");
        assert_eq!(renamed.name, "crud-renamed");
        assert_eq!(renamed.description, None);
        assert_eq!(renamed.labels, created.labels);
        assert_eq!(renamed.created_at, created.created_at);
        assert!(renamed.updated_at >= created.updated_at);
        assert_eq!(store.get_stack(created.id).await.expect("get"), renamed);

        let described = store
            .update_stack(
                &ADMIN,
                created.id,
                StackUpdate {
                    name: None,
                    description: Some(Some("second".into())),
                },
            )
            .await
            .expect("update description only");
        assert_eq!(described.name, "crud-renamed");
        assert_eq!(described.description.as_deref(), Some("second"));

        let by_name = |name: &str| StackFilter {
            name: Some(name.into()),
            ..Default::default()
        };
        assert_eq!(all_stacks(store, by_name("crud-renamed")).await.len(), 1);
        assert!(all_stacks(store, by_name("crud")).await.is_empty());
    }

    /// Deleting a stack is soft: it leaves `get` and default listings, stays listable with
    /// `include_deleted`, refuses changes, and frees its name.
    pub async fn stack_soft_delete_frees_the_name(store: &dyn Store) {
        let stack = mk_stack(store, "gone").await;
        store.delete_stack(&ADMIN, stack.id).await.expect("delete");

        expect_not_found(store.get_stack(stack.id).await, "stack");
        assert!(all_stacks(store, StackFilter::default()).await.is_empty());
        let with_deleted = all_stacks(store, include_deleted_stacks()).await;
        assert_eq!(with_deleted.len(), 1);
        assert_eq!(with_deleted[0].id, stack.id);
        assert!(with_deleted[0].deleted_at.is_some());

        expect_not_found(store.delete_stack(&ADMIN, stack.id).await, "stack");
        let rename = StackUpdate {
            name: Some("still-gone".into()),
            description: None,
        };
        expect_not_found(store.update_stack(&ADMIN, stack.id, rename).await, "stack");
        let target = MetadataTarget::Stack(stack.id);
        expect_not_found(
            store
                .put_metadata(&ADMIN, target, MetadataField::Labels, "app", "x")
                .await,
            "stack",
        );

        let again = mk_stack(store, "gone").await;
        assert_ne!(again.id, stack.id);
        let filter = StackFilter {
            name: Some("gone".into()),
            include_deleted: true,
            ..Default::default()
        };
        assert_eq!(all_stacks(store, filter).await.len(), 2);
        let live = all_stacks(store, StackFilter::default()).await;
        assert_eq!(live, vec![again]);

        // An id filter finds a deleted stack only when deleted rows are asked for.
        let by_id = |include_deleted| StackFilter {
            id: Some(stack.id),
            include_deleted,
            ..Default::default()
        };
        assert!(all_stacks(store, by_id(false)).await.is_empty());
        let found = all_stacks(store, by_id(true)).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, stack.id);
        assert!(found[0].deleted_at.is_some());
    }

    /// Two live stacks never share a name, by creation or by rename.
    pub async fn stack_duplicate_names_conflict(store: &dyn Store) {
        let a = mk_stack(store, "a").await;
        let b = mk_stack(store, "b").await;
        expect_conflict(
            store
                .create_stack(
                    &ADMIN,
                    NewStack {
                        name: "a".into(),
                        ..Default::default()
                    },
                )
                .await,
        );
        let to_a = StackUpdate {
            name: Some("a".into()),
            description: None,
        };
        expect_conflict(store.update_stack(&ADMIN, b.id, to_a.clone()).await);
        assert_eq!(store.get_stack(b.id).await.expect("get").name, "b");
        // Keeping one's own name is not a conflict.
        store
            .update_stack(&ADMIN, a.id, to_a)
            .await
            .expect("rename to itself");
        assert_eq!(all_stacks(store, include_deleted_stacks()).await.len(), 2);
    }

    /// Bad names, descriptions, label keys, label values and annotation keys are `Invalid`
    /// and write nothing, not even an audit record.
    pub async fn stack_invalid_input_writes_nothing(store: &dyn Store) {
        let long_name = "n".repeat(254);
        for name in ["", " padded", "padded ", "line\nbreak", long_name.as_str()] {
            let new = NewStack {
                name: name.into(),
                ..Default::default()
            };
            expect_invalid(store.create_stack(&ADMIN, new).await);
        }
        let new = NewStack {
            name: "ok".into(),
            description: Some("d".repeat(4097)),
            ..Default::default()
        };
        expect_invalid(store.create_stack(&ADMIN, new).await);
        let long_value = "v".repeat(64);
        let bad_labels = [
            ("-bad", "v"),
            ("Bad.Example/x", "v"),
            ("a/b/c", "v"),
            ("", "v"),
            ("ok", "has space"),
            ("ok", "-x"),
            ("ok", long_value.as_str()),
        ];
        for (key, value) in bad_labels {
            let new = NewStack {
                name: "ok".into(),
                labels: labels(&[(key, value)]),
                ..Default::default()
            };
            expect_invalid(store.create_stack(&ADMIN, new).await);
        }
        for key in ["-bad", "a/b/c", ""] {
            let new = NewStack {
                name: "ok".into(),
                annotations: labels(&[(key, "any text")]),
                ..Default::default()
            };
            expect_invalid(store.create_stack(&ADMIN, new).await);
        }
        assert!(all_stacks(store, include_deleted_stacks()).await.is_empty());
        assert!(all_audit(store).await.is_empty());

        let stack = mk_stack(store, "valid").await;
        let audit = all_audit(store).await.len();
        let bad = StackUpdate {
            name: Some(" padded".into()),
            description: None,
        };
        expect_invalid(store.update_stack(&ADMIN, stack.id, bad).await);
        let bad = StackUpdate {
            name: None,
            description: Some(Some("d".repeat(4097))),
        };
        expect_invalid(store.update_stack(&ADMIN, stack.id, bad).await);
        assert_eq!(store.get_stack(stack.id).await.expect("get"), stack);
        assert_eq!(all_audit(store).await.len(), audit);
    }

    /// A stack's generator must be live; stacks filter by generator and outlive it.
    pub async fn stack_generator_must_be_live(store: &dyn Store) {
        let generator = mk_generator(store, "ci").await;
        let owned = store
            .create_stack(
                &Actor::Generator(generator.id),
                NewStack {
                    name: "owned".into(),
                    generator_id: Some(generator.id),
                    ..Default::default()
                },
            )
            .await
            .expect("create owned stack");
        assert_eq!(owned.generator_id, Some(generator.id));
        let _admin_stack = mk_stack(store, "admin-owned").await;

        let filter = StackFilter {
            generator_id: Some(generator.id),
            ..Default::default()
        };
        assert_eq!(all_stacks(store, filter).await, vec![owned.clone()]);

        let missing = NewStack {
            name: "orphan".into(),
            generator_id: Some(GeneratorId::new()),
            ..Default::default()
        };
        expect_not_found(store.create_stack(&ADMIN, missing).await, "generator");

        store
            .delete_generator(&ADMIN, generator.id)
            .await
            .expect("delete generator");
        let deleted = NewStack {
            name: "orphan".into(),
            generator_id: Some(generator.id),
            ..Default::default()
        };
        expect_not_found(store.create_stack(&ADMIN, deleted).await, "generator");
        assert_eq!(store.get_stack(owned.id).await.expect("stack stays"), owned);
    }

    /// Every getter and mutator answers `NotFound` with the right kind for an id that
    /// never existed.
    pub async fn missing_ids_are_not_found(store: &dyn Store) {
        let (stack, agent) = (StackId::new(), AgentId::new());
        let (generator, template) = (GeneratorId::new(), TemplateId::new());
        expect_not_found(store.get_stack(stack).await, "stack");
        expect_not_found(store.get_agent(agent).await, "agent");
        expect_not_found(store.get_generator(generator).await, "generator");
        expect_not_found(store.get_template(template).await, "template");
        expect_not_found(store.get_template_version(template, 1).await, "template");
        expect_not_found(
            store.get_deployment_object(DeploymentObjectId::new()).await,
            "deployment object",
        );
        expect_not_found(
            store.get_agent_event(AgentEventId::new()).await,
            "agent event",
        );
        let page = PageRequest::default();
        expect_not_found(
            store
                .list_deployment_objects(stack, ContentListing::Omit, &page)
                .await,
            "stack",
        );
        expect_not_found(
            store.list_template_versions(template, &page).await,
            "template",
        );
        expect_not_found(store.target_state(agent).await, "agent");

        expect_not_found(
            store
                .update_stack(&ADMIN, stack, StackUpdate::default())
                .await,
            "stack",
        );
        expect_not_found(store.delete_stack(&ADMIN, stack).await, "stack");
        expect_not_found(
            store
                .update_agent(&ADMIN, agent, AgentUpdate::default())
                .await,
            "agent",
        );
        expect_not_found(store.delete_agent(&ADMIN, agent).await, "agent");
        expect_not_found(
            store
                .update_generator(&ADMIN, generator, GeneratorUpdate::default())
                .await,
            "generator",
        );
        expect_not_found(store.delete_generator(&ADMIN, generator).await, "generator");
        expect_not_found(
            store
                .add_template_version(&ADMIN, template, NewTemplateVersion::default())
                .await,
            "template",
        );
        expect_not_found(store.delete_template(&ADMIN, template).await, "template");
        for target in [
            MetadataTarget::Stack(stack),
            MetadataTarget::Agent(agent),
            MetadataTarget::Template(template),
        ] {
            let kind = match target {
                MetadataTarget::Stack(_) => "stack",
                MetadataTarget::Agent(_) => "agent",
                MetadataTarget::Template(_) => "template",
            };
            expect_not_found(
                store
                    .put_metadata(&ADMIN, target, MetadataField::Labels, "app", "x")
                    .await,
                kind,
            );
            expect_not_found(
                store
                    .remove_metadata(&ADMIN, target, MetadataField::Annotations, "app")
                    .await,
                kind,
            );
        }
        expect_not_found(
            store
                .rotate_api_key(&ADMIN, KeyOwner::Agent(agent), Pak::generate().stored())
                .await,
            "agent",
        );
        expect_not_found(
            store
                .rotate_api_key(
                    &ADMIN,
                    KeyOwner::Generator(generator),
                    Pak::generate().stored(),
                )
                .await,
            "generator",
        );
        assert!(all_audit(store).await.is_empty());
    }

    /// Stacks created at once (a store may write them together) each get their own
    /// answer: of two with one name exactly one is created and the other is a
    /// `Conflict`, one for a deleted generator is `NotFound`, the rest are created,
    /// each with one audit record.
    pub async fn concurrent_creates_are_answered_one_by_one(store: &dyn Store) {
        let generator = mk_generator(store, "g").await.id;
        let gone = mk_generator(store, "gone").await.id;
        store
            .delete_generator(&ADMIN, gone)
            .await
            .expect("delete generator");
        let audit_before = all_audit(store).await.len();
        let new = |name: &str, generator: Option<GeneratorId>| NewStack {
            name: name.into(),
            generator_id: generator,
            ..Default::default()
        };
        let mut asked: Vec<NewStack> = (0..10)
            .map(|i| new(&format!("tenant-{i}"), Some(generator)))
            .collect();
        asked.push(new("twice", None));
        asked.push(new("twice", Some(generator)));
        asked.push(new("orphan", Some(gone)));
        let answers = futures::future::join_all(
            asked
                .iter()
                .map(|one| async move { store.create_stack(&ADMIN, one.clone()).await }),
        )
        .await;

        let mut twice = Vec::new();
        for (one, answer) in asked.iter().zip(answers) {
            match one.name.as_str() {
                "twice" => twice.push(answer),
                "orphan" => expect_not_found(answer, "generator"),
                _ => {
                    let stack = answer.expect("a free name is created");
                    assert_eq!(
                        (stack.name.as_str(), stack.generator_id),
                        (one.name.as_str(), Some(generator))
                    );
                }
            }
        }
        let created: Vec<_> = twice.iter().filter(|a| a.is_ok()).collect();
        assert_eq!(created.len(), 1, "one of two stacks with one name");
        expect_conflict(twice.into_iter().find(Result::is_err).expect("the other"));
        let stacks = all_stacks(store, StackFilter::default()).await;
        assert_eq!(stacks.len(), 11);
        assert_eq!(all_audit(store).await.len(), audit_before + 11);
    }
);
