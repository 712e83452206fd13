//! Keyset pagination of every listing.

use super::fixtures::{
    ADMIN, mk_agent, mk_event, mk_generator, mk_object, mk_stack, mk_target, mk_template,
};
use super::support::{all_audit, check_walks};
use crate::model::{
    Agent, AgentEvent, AuditRecord, EventStatus, EventType, Generator, ListedDeploymentObject,
    ListedTemplate, NewTemplateVersion, Stack,
};
use crate::page::{ContentListing, PageRequest};
use crate::store::{
    AgentEventFilter, AgentFilter, AuditFilter, Error, GeneratorFilter, Result, StackFilter, Store,
    TargetFilter, TemplateFilter,
};

cases!(
    /// Every listing pages through all its rows exactly once, in order, both ways, with
    /// cursors, for several page sizes.
    pub async fn pagination_walks_every_listing(store: &dyn Store) {
        let mut stacks = Vec::new();
        let mut agents = Vec::new();
        let mut generators = Vec::new();
        let mut templates = Vec::new();
        for i in 0..5 {
            stacks.push(mk_stack(store, &format!("s{i}")).await.id);
            agents.push(mk_agent(store, &format!("a{i}")).await.id);
            generators.push(mk_generator(store, &format!("g{i}")).await.id);
            templates.push(mk_template(store, &format!("t{i}")).await.id);
        }
        let mut objects = Vec::new();
        for i in 0..5 {
            objects.push(mk_object(store, stacks[0], &i.to_string()).await);
        }
        let mut versions = vec![1];
        for version in 2..=4 {
            store
                .add_template_version(&ADMIN, templates[0], NewTemplateVersion::default())
                .await
                .expect("add version");
            versions.push(version);
        }
        let mut targets = Vec::new();
        for stack in &stacks {
            mk_target(store, agents[0], *stack).await;
            targets.push((agents[0], *stack));
        }
        for agent in &agents[1..] {
            mk_target(store, *agent, stacks[0]).await;
            targets.push((*agent, stacks[0]));
        }
        let mut events = Vec::new();
        for object in &objects {
            let event = mk_event(
                store,
                agents[0],
                object.id,
                EventType::Apply,
                EventStatus::Success,
            );
            events.push(event.await.id);
        }
        let audit: Vec<_> = all_audit(store).await.into_iter().map(|r| r.id).collect();
        assert_eq!(audit.len(), 20 + 5 + 3 + 9 + 5);

        check_walks(
            "stacks",
            stacks.clone(),
            |s: &Stack| s.id,
            async |p| store.list_stacks(&StackFilter::default(), &p).await,
        )
        .await;
        check_walks(
            "agents",
            agents,
            |a: &Agent| a.id,
            async |p| store.list_agents(&AgentFilter::default(), &p).await,
        )
        .await;
        check_walks(
            "generators",
            generators,
            |g: &Generator| g.id,
            async |p| store.list_generators(&GeneratorFilter::default(), &p).await,
        )
        .await;
        check_walks(
            "templates",
            templates.clone(),
            |t: &ListedTemplate| t.id,
            async |p| {
                let filter = TemplateFilter::default();
                store
                    .list_templates(&filter, ContentListing::Omit, &p)
                    .await
            },
        )
        .await;
        check_walks(
            "template versions",
            versions,
            |v: &crate::model::TemplateVersion| v.version,
            async |p| store.list_template_versions(templates[0], &p).await,
        )
        .await;
        let sequences: Vec<i64> = objects.iter().map(|o| o.sequence).collect();
        for yaml in [
            ContentListing::Omit,
            ContentListing::Include { page_bytes: 1 },
        ] {
            check_walks(
                "deployment objects",
                sequences.clone(),
                |o: &ListedDeploymentObject| o.sequence,
                async |p| store.list_deployment_objects(stacks[0], yaml, &p).await,
            )
            .await;
        }
        check_walks(
            "targets",
            targets,
            |t: &crate::model::AgentTarget| (t.agent_id, t.stack_id),
            async |p| store.list_agent_targets(&TargetFilter::default(), &p).await,
        )
        .await;
        check_walks(
            "events",
            events,
            |e: &AgentEvent| e.id,
            async |p| {
                store
                    .list_agent_events(&AgentEventFilter::default(), &p)
                    .await
            },
        )
        .await;
        check_walks(
            "audit records",
            audit,
            |r: &AuditRecord| r.id,
            async |p| store.list_audit_records(&AuditFilter::default(), &p).await,
        )
        .await;
    }

    /// A cursor the listing did not hand out is `InvalidCursor`, never a backend failure
    /// or a silently wrong page.
    pub async fn pagination_rejects_foreign_cursors(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let bad = PageRequest::default().after(crate::page::Cursor("\0garbage".into()));
        let invalid = |result: Result<(), Error>, listing: &str| match result {
            Err(Error::InvalidCursor(_)) => {}
            other => panic!("{listing}: expected InvalidCursor, got {other:?}"),
        };
        invalid(
            store
                .list_stacks(&StackFilter::default(), &bad)
                .await
                .map(drop),
            "stacks",
        );
        invalid(
            store
                .list_deployment_objects(stack.id, ContentListing::Omit, &bad)
                .await
                .map(drop),
            "deployment objects",
        );
        invalid(
            store
                .list_agent_targets(&TargetFilter::default(), &bad)
                .await
                .map(drop),
            "agent targets",
        );
        invalid(
            store
                .list_audit_records(&AuditFilter::default(), &bad)
                .await
                .map(drop),
            "audit records",
        );
    }
);
