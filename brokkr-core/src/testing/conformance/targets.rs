//! Agent targets: assignment, unassignment, listing.

use super::fixtures::{ADMIN, mk_agent, mk_object, mk_stack, mk_target};
use super::support::{all, expect_conflict, expect_not_found};
use crate::id::{AgentId, StackId};
use crate::model::TargetSource;
use crate::store::{Store, TargetFilter};

cases!(
    /// Assigning twice conflicts; unassigning marks the target removed (it stays listed);
    /// assigning again revives the same target.
    pub async fn targets_assign_unassign_revive(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        // Deployed, so the agent may run something and an unassignment awaits its word.
        mk_object(store, stack.id, "1").await;
        let target = store
            .assign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("assign");
        assert_eq!(target.agent_id, agent.id);
        assert_eq!(target.stack_id, stack.id);
        assert_eq!(target.source, TargetSource::Direct);
        assert_eq!(target.removed_at, None);
        expect_conflict(store.assign_stack(&ADMIN, agent.id, stack.id).await);

        let filter = TargetFilter {
            agent_id: Some(agent.id),
            ..Default::default()
        };
        let listed = all(async |p| store.list_agent_targets(&filter, &p).await).await;
        assert_eq!(listed, vec![target.clone()]);

        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        let listed = all(async |p| store.list_agent_targets(&filter, &p).await).await;
        assert_eq!(
            listed.len(),
            1,
            "an unassigned target stays until confirmed"
        );
        assert!(listed[0].removed_at.is_some());
        expect_not_found(
            store.unassign_stack(&ADMIN, agent.id, stack.id).await,
            "agent target",
        );

        let revived = store
            .assign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("revive");
        assert_eq!(revived.removed_at, None);
        let listed = all(async |p| store.list_agent_targets(&filter, &p).await).await;
        assert_eq!(listed, vec![revived]);
    }

    /// Assigning needs a live agent and a live stack; unassigning needs an assignment.
    pub async fn targets_need_live_agent_and_stack(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        expect_not_found(
            store.assign_stack(&ADMIN, AgentId::new(), stack.id).await,
            "agent",
        );
        expect_not_found(
            store.assign_stack(&ADMIN, agent.id, StackId::new()).await,
            "stack",
        );
        expect_not_found(
            store.unassign_stack(&ADMIN, agent.id, stack.id).await,
            "agent target",
        );

        let deleted_stack = mk_stack(store, "deleted").await;
        store
            .delete_stack(&ADMIN, deleted_stack.id)
            .await
            .expect("delete stack");
        expect_not_found(
            store.assign_stack(&ADMIN, agent.id, deleted_stack.id).await,
            "stack",
        );
        let deleted_agent = mk_agent(store, "deleted").await;
        store
            .delete_agent(&ADMIN, deleted_agent.id)
            .await
            .expect("delete agent");
        expect_not_found(
            store.assign_stack(&ADMIN, deleted_agent.id, stack.id).await,
            "agent",
        );
        let none =
            all(async |p| store.list_agent_targets(&TargetFilter::default(), &p).await).await;
        assert!(none.is_empty());
    }

    /// Assignments made at the same moment each get the answer they would get alone:
    /// of five of one pair exactly one succeeds and the rest conflict, a missing agent
    /// and a deleted stack are not found, a removed target is revived, and the others
    /// are assigned.
    pub async fn targets_assigned_together_answer_as_alone(store: &dyn Store) {
        let mut agents = Vec::new();
        let mut stacks = Vec::new();
        for i in 0..4 {
            agents.push(mk_agent(store, &format!("a{i}")).await.id);
            stacks.push(mk_stack(store, &format!("s{i}")).await.id);
        }
        // Agent 3's target on stack 3 awaits removal: deployed, then unassigned.
        mk_object(store, stacks[3], "1").await;
        store
            .assign_stack(&ADMIN, agents[3], stacks[3])
            .await
            .expect("assign");
        store
            .unassign_stack(&ADMIN, agents[3], stacks[3])
            .await
            .expect("unassign");
        let deleted = mk_stack(store, "deleted").await.id;
        store.delete_stack(&ADMIN, deleted).await.expect("delete");

        let mut asked = vec![(agents[0], stacks[0]); 5];
        asked.extend([
            (agents[1], stacks[1]),
            (agents[2], stacks[1]),
            (agents[3], stacks[3]),
            (AgentId::new(), stacks[2]),
            (agents[2], deleted),
        ]);
        let answers = futures::future::join_all(
            asked
                .iter()
                .map(|(agent, stack)| store.assign_stack(&ADMIN, *agent, *stack)),
        )
        .await;
        let mut answers = answers.into_iter();
        let same_pair: Vec<_> = answers.by_ref().take(5).collect();
        assert_eq!(same_pair.iter().filter(|a| a.is_ok()).count(), 1);
        for answer in same_pair.iter().filter(|a| a.is_err()) {
            assert!(
                matches!(answer, Err(crate::store::Error::Conflict(_))),
                "{answer:?}"
            );
        }
        let mut rest = answers;
        for (agent, stack) in [
            (agents[1], stacks[1]),
            (agents[2], stacks[1]),
            (agents[3], stacks[3]),
        ] {
            let target = rest.next().expect("an answer").expect("assigned");
            assert_eq!((target.agent_id, target.stack_id), (agent, stack));
            assert_eq!(target.source, TargetSource::Direct);
            assert_eq!(target.removed_at, None);
        }
        expect_not_found(rest.next().expect("an answer"), "agent");
        expect_not_found(rest.next().expect("an answer"), "stack");

        let listed =
            all(async |p| store.list_agent_targets(&TargetFilter::default(), &p).await).await;
        let mut pairs: Vec<(AgentId, StackId)> = listed
            .iter()
            .map(|t| {
                assert_eq!(t.removed_at, None, "{t:?}");
                (t.agent_id, t.stack_id)
            })
            .collect();
        pairs.sort();
        let mut expected = vec![
            (agents[0], stacks[0]),
            (agents[1], stacks[1]),
            (agents[2], stacks[1]),
            (agents[3], stacks[3]),
        ];
        expected.sort();
        assert_eq!(pairs, expected);
    }

    /// Targets filter by agent and by stack and order by (agent id, stack id).
    pub async fn targets_list_filters_and_order(store: &dyn Store) {
        let a1 = mk_agent(store, "a1").await.id;
        let a2 = mk_agent(store, "a2").await.id;
        let s1 = mk_stack(store, "s1").await.id;
        let s2 = mk_stack(store, "s2").await.id;
        for (agent, stack) in [(a2, s1), (a1, s2), (a1, s1)] {
            mk_target(store, agent, stack).await;
        }
        let pairs = async |filter: TargetFilter| {
            all(async |p| store.list_agent_targets(&filter, &p).await)
                .await
                .into_iter()
                .map(|t| (t.agent_id, t.stack_id))
                .collect::<Vec<_>>()
        };
        let mut expected = vec![(a1, s1), (a1, s2), (a2, s1)];
        expected.sort();
        assert_eq!(pairs(TargetFilter::default()).await, expected);
        let of_a1 = TargetFilter {
            agent_id: Some(a1),
            stack_id: None,
        };
        let mut expected_a1 = vec![(a1, s1), (a1, s2)];
        expected_a1.sort();
        assert_eq!(pairs(of_a1).await, expected_a1);
        let of_s1 = TargetFilter {
            agent_id: None,
            stack_id: Some(s1),
        };
        let mut expected_s1 = vec![(a1, s1), (a2, s1)];
        expected_s1.sort();
        assert_eq!(pairs(of_s1).await, expected_s1);
        let both = TargetFilter {
            agent_id: Some(a2),
            stack_id: Some(s2),
        };
        assert!(pairs(both).await.is_empty());
    }
);
