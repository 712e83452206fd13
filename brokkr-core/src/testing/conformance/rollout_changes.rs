//! Rollouts as the driver sees them: claims, versioned changes, snapshots, the slot a
//! final state frees, audit records and webhook events, gates and commands.

use chrono::Duration;
use serde_json::json;

use super::fixtures::{ADMIN, mk_agent, mk_event, mk_health, mk_object, workload};
use super::rollout_support::{
    DRIVER, apply, keep, now, released, rollout_agent, running, start, succeed, the_rollout, wave,
};
use super::support::{all_audit, expect_not_found};
use super::webhooks::{catch_all, mk_subscription, new_events, new_subscription};
use crate::health::HealthStatus;
use crate::id::{GateEvaluationId, RolloutCommandId, RolloutId};
use crate::model::{
    Actor, AuditAction, EventStatus, EventType, GateOutcome, ResourceKind, RolloutAgentState,
    RolloutCommandKind, RolloutState, WaveState, WebhookEventType,
};
use crate::rollout::{
    ConsumedCommand, GatePhase, NewGateEvaluation, OnNewVersion, RolloutChange, Transition,
};
use crate::store::{Error, GateOutcomeRecord, Store};

/// Audit records about rollout `id`, oldest first.
async fn rollout_audit(store: &dyn Store, id: RolloutId) -> Vec<(AuditAction, Actor)> {
    all_audit(store)
        .await
        .into_iter()
        .filter(|r| r.resource_kind == ResourceKind::Rollout && r.resource_id == id.0)
        .map(|r| (r.action, r.actor))
        .collect()
}

/// A gate evaluation of wave 0 to start.
fn gate(name: &str, attempt: u32) -> NewGateEvaluation {
    NewGateEvaluation {
        id: GateEvaluationId::new(),
        wave: 0,
        gate: name.into(),
        phase: GatePhase::AfterWave,
        attempt,
    }
}

/// An outcome recorded now.
fn outcome(outcome: GateOutcome, decided_by: Option<Actor>) -> GateOutcomeRecord {
    GateOutcomeRecord {
        outcome,
        reason: Some(format!("said {}", outcome.as_str())),
        recheck_at: None,
        decided_by,
        at: now(),
    }
}

cases!(
    /// A change computed from an old version is refused with
    /// `Conflict("rollout_version: ...")` and writes nothing: no state, pin, audit
    /// record or version moves.
    pub async fn rollouts_stale_version_conflicts_and_writes_nothing(store: &dyn Store) {
        let fixture = released(store, "s", OnNewVersion::Queue).await;
        mk_object(store, fixture.stack, "2").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let current = apply(store, keep(&queued)).await;
        assert_eq!(current.version, queued.version + 1);
        let audit = all_audit(store).await.len();
        let stale = start(&queued, &[fixture.a], &[fixture.a]);
        match store.apply_rollout_change(DRIVER, stale).await {
            Err(Error::Conflict(message)) => {
                assert!(message.starts_with("rollout_version"), "{message}");
            }
            other => panic!("expected rollout_version, got {other:?}"),
        }
        assert_eq!(store.get_rollout(queued.id).await.unwrap(), current);
        let details = store.rollout_details(queued.id).await.unwrap();
        assert!(details.waves.is_empty() && details.agents.is_empty());
        assert_eq!(all_audit(store).await.len(), audit);
        let state = super::support::target_state(store, fixture.a).await;
        let entry = state
            .entries
            .iter()
            .find(|e| e.stack_id == fixture.stack)
            .unwrap();
        assert_eq!(entry.deployment_object.id, fixture.v1, "no pin");
        let unknown = RolloutChange {
            rollout_id: RolloutId::new(),
            ..keep(&current)
        };
        expect_not_found(store.apply_rollout_change(DRIVER, unknown).await, "rollout");
    }

    /// Claims lease due rollouts: two claimants at once never get the same one, a
    /// lease keeps others off until it expires or is released, and a rollout not due
    /// is not claimed.
    pub async fn rollouts_two_claimants_never_hold_the_same_rollout(store: &dyn Store) {
        let mut ids = Vec::new();
        for n in 0..6 {
            let fixture = released(store, &format!("s{n}"), OnNewVersion::Queue).await;
            mk_object(store, fixture.stack, "2").await;
            ids.push(
                the_rollout(store, fixture.stack, RolloutState::Queued)
                    .await
                    .id,
            );
        }
        // One more, not due for an hour.
        let fixture = released(store, "later", OnNewVersion::Queue).await;
        mk_object(store, fixture.stack, "2").await;
        let waiting = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        apply(store, keep(&waiting)).await;

        let at = now() + Duration::seconds(1);
        let until = at + Duration::seconds(30);
        let (one, two) = futures::join!(
            store.claim_due_rollouts("one", at, until, 4),
            store.claim_due_rollouts("two", at, until, 4),
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(
            one.iter().all(|id| !two.contains(id)),
            "{one:?} and {two:?} overlap"
        );
        let mut claimed: Vec<RolloutId> = one.iter().chain(&two).copied().collect();
        claimed.sort();
        ids.sort();
        assert_eq!(
            claimed, ids,
            "every due rollout, and only those, claimed once"
        );
        let third = store
            .claim_due_rollouts("three", at, until, 10)
            .await
            .unwrap();
        assert!(third.is_empty(), "leases hold: {third:?}");
        store.release_rollout_lease("one", one[0]).await.unwrap();
        store.release_rollout_lease("three", two[0]).await.unwrap();
        let third = store
            .claim_due_rollouts("three", at, until, 10)
            .await
            .unwrap();
        assert_eq!(third, vec![one[0]], "only the lease its holder released");
        let expired = store
            .claim_due_rollouts("four", until, until + Duration::seconds(30), 10)
            .await
            .unwrap();
        assert_eq!(expired.len(), ids.len(), "expired leases are claimed again");
        let unknown = store.release_rollout_lease("one", RolloutId::new()).await;
        expect_not_found(unknown, "rollout");
    }

    /// A snapshot holds the rollout, its waves and agents, the fleet (agents placed on
    /// the stack and agents of the rollout, with what they reported), its gate
    /// evaluations, the commands not taken up, and whether the active slot is free.
    pub async fn rollouts_snapshot_holds_rollout_fleet_and_reports(store: &dyn Store) {
        let (fixture, rollout) = running(store, "s", OnNewVersion::Queue, true).await;
        let c = mk_agent(store, "c").await.id;
        let mut with_c = keep(&rollout);
        with_c.agents = vec![rollout_agent(c, RolloutAgentState::Waiting, now())];
        with_c.start_gates = vec![gate("slo", 1)];
        let rollout = apply(store, with_c).await;
        let applied = mk_event(
            store,
            fixture.a,
            rollout.candidate,
            EventType::Apply,
            EventStatus::Success,
        )
        .await;
        let failed = mk_event(
            store,
            fixture.b,
            fixture.v1,
            EventType::Apply,
            EventStatus::Failure,
        )
        .await;
        mk_event(
            store,
            fixture.b,
            fixture.v1,
            EventType::Delete,
            EventStatus::Success,
        )
        .await;
        let report = mk_health(
            store,
            fixture.a,
            rollout.candidate,
            vec![workload("web", HealthStatus::Degraded)],
        )
        .await;
        let command = store
            .give_rollout_command(&ADMIN, rollout.id, RolloutCommandKind::Pause)
            .await
            .unwrap();

        let snapshot = store.rollout_snapshot(rollout.id).await.unwrap();
        assert_eq!(snapshot.rollout.id, rollout.id);
        assert_eq!(snapshot.waves.len(), 1);
        let mut agents: Vec<_> = [fixture.a, fixture.b, c].to_vec();
        agents.sort();
        let ids: Vec<_> = snapshot.agents.iter().map(|a| a.agent_id).collect();
        assert_eq!(ids, agents, "the rollout's agents by id");
        let fleet: Vec<_> = snapshot.fleet.iter().map(|v| v.agent_id).collect();
        assert_eq!(fleet, agents, "placed agents and the rollout's, by id");
        let view = |id| snapshot.fleet.iter().find(|v| v.agent_id == id).unwrap();
        let (a, b, c) = (view(fixture.a), view(fixture.b), view(c));
        assert!(a.placed && b.placed && !c.placed);
        assert_eq!(a.name, "s-a");
        assert_eq!(
            a.candidate_event.map(|e| (e.status, e.at)),
            Some((EventStatus::Success, applied.created_at))
        );
        assert_eq!(a.baseline_event, None);
        assert_eq!(b.candidate_event, None);
        assert_eq!(
            b.baseline_event.map(|e| (e.status, e.at)),
            Some((EventStatus::Failure, failed.created_at)),
            "a deletion is not an apply of the baseline"
        );
        let health = a.health.unwrap();
        assert_eq!(
            (health.deployment_object_id, health.status, health.at),
            (
                rollout.candidate,
                HealthStatus::Degraded,
                report.reported_at
            )
        );
        assert_eq!(b.health, None);
        assert_eq!(snapshot.gate_evaluations.len(), 1);
        assert_eq!(snapshot.commands, vec![command]);
        assert!(snapshot.slot_free);

        mk_object(store, fixture.stack, "3").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let behind = store.rollout_snapshot(queued.id).await.unwrap();
        assert!(!behind.slot_free, "the running rollout holds the slot");
        assert!(behind.waves.is_empty() && behind.agents.is_empty());
        expect_not_found(store.rollout_snapshot(RolloutId::new()).await, "rollout");
    }

    /// A queued rollout cannot start while another is active; when that one reaches
    /// a final state its queued successor is due at once, takes the released object
    /// as its baseline, and starts.
    pub async fn rollouts_final_state_frees_the_slot(store: &dyn Store) {
        let (fixture, active) = running(store, "s", OnNewVersion::Queue, false).await;
        mk_object(store, fixture.stack, "3").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let queued = apply(store, keep(&queued)).await;
        let early = start(&queued, &[fixture.a], &[]);
        let refused = store.apply_rollout_change(DRIVER, early).await;
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        assert_eq!(store.get_rollout(queued.id).await.unwrap(), queued);

        let done = apply(store, succeed(&active)).await;
        assert_eq!(
            (done.state, done.next_eval_at),
            (RolloutState::Succeeded, None)
        );
        let next = store.get_rollout(queued.id).await.unwrap();
        assert!(next.next_eval_at.is_some_and(|at| at <= now()), "due now");
        assert_eq!(next.baseline, Some(active.candidate));
        let started = apply(store, start(&next, &[fixture.a], &[])).await;
        assert_eq!(started.state, RolloutState::Running);
        assert_eq!(started.baseline, Some(active.candidate));
    }

    /// A change writes one audit record per transition (`update`) and per agent
    /// pinned (`assign`) or unpinned (`unassign`), all about the rollout, by the
    /// system.
    pub async fn rollouts_audit_each_transition_and_pin(store: &dyn Store) {
        let fixture = released(store, "s", OnNewVersion::Queue).await;
        mk_object(store, fixture.stack, "2").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let before = rollout_audit(store, queued.id).await;
        assert_eq!(
            before,
            vec![(AuditAction::Create, ADMIN)],
            "queued by the append"
        );
        let both = [fixture.a, fixture.b];
        let rollout = apply(store, start(&queued, &both, &both)).await;
        let system = Actor::System;
        let mut got = rollout_audit(store, queued.id).await.split_off(1);
        got.sort_by_key(|(action, _)| action.as_str());
        assert_eq!(
            got,
            vec![
                (AuditAction::Assign, system),
                (AuditAction::Assign, system),
                (AuditAction::Update, system),
                (AuditAction::Update, system),
            ]
        );
        let unpin = RolloutChange {
            unpin: vec![fixture.b],
            ..keep(&rollout)
        };
        apply(store, unpin).await;
        let last = rollout_audit(store, queued.id).await.pop();
        assert_eq!(last, Some((AuditAction::Unassign, system)));
        assert_eq!(rollout_audit(store, queued.id).await.len(), 6);
    }

    /// Each transition writes one webhook event about the rollout's stack:
    /// `rollout.state_changed` (also for the rollout an append queued) and
    /// `rollout.wave_changed`, with what changed.
    pub async fn rollouts_transitions_write_webhook_events(store: &dyn Store) {
        let hook = catch_all(store).await;
        let fixture = released(store, "s", OnNewVersion::Queue).await;
        let other = released(store, "other", OnNewVersion::Queue).await;
        let mut only_other = new_subscription(&[WebhookEventType::RolloutStateChanged]);
        only_other.stack_id = Some(other.stack);
        let only_other = mk_subscription(store, only_other).await;
        let mut seen = 0;
        new_events(store, hook.id, &mut seen).await;

        let v2 = mk_object(store, fixture.stack, "2").await.id;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let events = new_events(store, hook.id, &mut seen).await;
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                WebhookEventType::DeploymentObjectCreated,
                WebhookEventType::RolloutStateChanged
            ]
        );
        assert_eq!(events[1].stack_id, Some(fixture.stack));
        assert_eq!(
            events[1].data,
            json!({
                "rollout_id": queued.id,
                "candidate_deployment_object_id": v2,
                "baseline_deployment_object_id": fixture.v1,
                "from": null,
                "to": "queued",
                "reason": null,
            })
        );
        let mut change = start(&queued, &[fixture.a], &[]);
        change.transitions[1] = Transition::Wave {
            index: 0,
            from: WaveState::Pending,
            to: WaveState::Running,
            reason: Some("its turn".into()),
        };
        apply(store, change).await;
        let events = new_events(store, hook.id, &mut seen).await;
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                WebhookEventType::RolloutStateChanged,
                WebhookEventType::RolloutWaveChanged
            ]
        );
        assert_eq!(events[0].data["from"], json!("queued"));
        assert_eq!(events[0].data["to"], json!("running"));
        assert_eq!(
            events[1].data,
            json!({
                "rollout_id": queued.id,
                "candidate_deployment_object_id": v2,
                "wave": 0,
                "wave_name": "wave-0",
                "from": "pending",
                "to": "running",
                "reason": "its turn",
            })
        );
        assert!(events.iter().all(|e| e.stack_id == Some(fixture.stack)));
        let mut unseen = 0;
        let theirs = new_events(store, only_other.id, &mut unseen).await;
        assert!(theirs.is_empty(), "matched by stack: {theirs:?}");
    }

    /// A gate evaluation is written with the change that starts it (a change that
    /// starts it again with its id leaves it); its outcome is written once (a second
    /// answer gets the first back), makes the rollout due, and is audited when someone
    /// decided it.
    pub async fn rollouts_gate_outcome_is_written_once(store: &dyn Store) {
        let (_, rollout) = running(store, "s", OnNewVersion::Queue, false).await;
        let (slo, approval) = (gate("slo", 1), gate("prod-ok", 1));
        let mut change = keep(&rollout);
        change.start_gates = vec![slo.clone(), approval.clone()];
        let at = change.at;
        let rollout = apply(store, change).await;
        let details = store.rollout_details(rollout.id).await.unwrap();
        let written = details
            .gate_evaluations
            .iter()
            .find(|g| g.id == slo.id)
            .unwrap();
        assert_eq!((written.outcome, written.started_at), (None, at));
        assert_eq!(
            (written.gate.as_str(), written.phase, written.attempt),
            ("slo", GatePhase::AfterWave, 1)
        );

        let audit = all_audit(store).await.len();
        let first = store
            .record_gate_outcome(slo.id, outcome(GateOutcome::Pass, None))
            .await
            .unwrap();
        assert_eq!(first.outcome, Some(GateOutcome::Pass));
        assert!(first.finished_at.is_some());
        assert_eq!(all_audit(store).await.len(), audit, "a gate's own answer");
        let due = store.get_rollout(rollout.id).await.unwrap();
        assert!(
            due.next_eval_at.is_some_and(|next| next <= now()),
            "due now"
        );
        let again = store
            .record_gate_outcome(slo.id, outcome(GateOutcome::Fail, None))
            .await
            .unwrap();
        assert_eq!(again, first, "written once");
        let mut rerun = keep(&store.get_rollout(rollout.id).await.unwrap());
        rerun.start_gates = vec![slo.clone()];
        apply(store, rerun).await;
        let details = store.rollout_details(rollout.id).await.unwrap();
        let kept = details
            .gate_evaluations
            .iter()
            .find(|g| g.id == slo.id)
            .unwrap();
        assert_eq!(
            kept, &first,
            "started again with its id, it keeps its outcome"
        );

        store
            .record_gate_outcome(approval.id, outcome(GateOutcome::Pass, Some(ADMIN)))
            .await
            .unwrap();
        let decided = rollout_audit(store, rollout.id).await.pop();
        assert_eq!(
            decided,
            Some((AuditAction::Update, ADMIN)),
            "an approval is audited"
        );
        let unknown = store
            .record_gate_outcome(GateEvaluationId::new(), outcome(GateOutcome::Pass, None))
            .await;
        expect_not_found(unknown, "gate evaluation");
    }

    /// A command is recorded (audited, the rollout due now) and listed until a change
    /// takes it up, which records when and what it did; a final rollout takes none.
    pub async fn rollouts_commands_are_recorded_and_consumed(store: &dyn Store) {
        let (_, rollout) = running(store, "s", OnNewVersion::Queue, false).await;
        let rollout = apply(store, keep(&rollout)).await;
        let pause = store
            .give_rollout_command(&ADMIN, rollout.id, RolloutCommandKind::Pause)
            .await
            .unwrap();
        assert_eq!(
            (pause.kind, pause.actor, pause.consumed_at),
            (RolloutCommandKind::Pause, ADMIN, None)
        );
        let due = store.get_rollout(rollout.id).await.unwrap();
        assert!(
            due.next_eval_at.is_some_and(|next| next <= now()),
            "due now"
        );
        assert_eq!(
            rollout_audit(store, rollout.id).await.pop(),
            Some((AuditAction::Update, ADMIN))
        );
        let snapshot = store.rollout_snapshot(rollout.id).await.unwrap();
        assert_eq!(snapshot.commands, vec![pause.clone()]);

        let mut change = keep(&snapshot.rollout);
        change.state = RolloutState::Paused;
        change.consumed_commands = vec![
            ConsumedCommand {
                id: pause.id,
                outcome: "paused".into(),
            },
            ConsumedCommand {
                id: RolloutCommandId::new(),
                outcome: "unknown".into(),
            },
        ];
        let at = change.at;
        let paused = apply(store, change).await;
        assert_eq!(paused.state, RolloutState::Paused);
        let snapshot = store.rollout_snapshot(rollout.id).await.unwrap();
        assert!(snapshot.commands.is_empty(), "taken up");
        let details = store.rollout_details(rollout.id).await.unwrap();
        let taken = &details.commands[0];
        assert_eq!(
            (taken.consumed_at, taken.outcome.as_deref()),
            (Some(at), Some("paused"))
        );

        let mut end = keep(&paused);
        end.state = RolloutState::Cancelled;
        end.next_eval_at = None;
        end.finished_at = Some(now());
        apply(store, end).await;
        match store
            .give_rollout_command(&ADMIN, rollout.id, RolloutCommandKind::Resume)
            .await
        {
            Err(Error::Conflict(message)) => {
                assert!(message.starts_with("rollout_final"), "{message}")
            }
            other => panic!("expected rollout_final, got {other:?}"),
        }
        let unknown = store
            .give_rollout_command(&ADMIN, RolloutId::new(), RolloutCommandKind::Pause)
            .await;
        expect_not_found(unknown, "rollout");
    }

    /// A change writes waves and agents whole (replacing rows of the same index or
    /// agent; given twice, the last wins) and answers the rollout as stored; details
    /// list agents by wave.
    pub async fn rollouts_changes_write_waves_and_agents_whole(store: &dyn Store) {
        let (fixture, rollout) = running(store, "s", OnNewVersion::Queue, true).await;
        let at = now();
        let mut change = keep(&rollout);
        let mut baking = wave(0, WaveState::Baking, at);
        baking.all_healthy_since = Some(at);
        let mut next = wave(1, WaveState::Pending, at);
        next.started_at = None;
        // A row given twice: the last one written wins.
        change.waves = vec![
            wave(0, WaveState::Running, at),
            baking.clone(),
            next.clone(),
        ];
        let mut healthy = rollout_agent(fixture.a, RolloutAgentState::Healthy, at);
        healthy.healthy_since = Some(at);
        let mut moved = rollout_agent(fixture.b, RolloutAgentState::Waiting, at);
        moved.wave = 1;
        let stale = rollout_agent(fixture.a, RolloutAgentState::Pinned, at);
        change.agents = vec![stale, healthy.clone(), moved.clone()];
        change.pin = vec![fixture.b, fixture.b];
        change.state_reason = Some("baking".into());
        let pins_before = rollout_audit(store, rollout.id).await.len();
        let written = apply(store, change.clone()).await;
        let pinned = rollout_audit(store, rollout.id).await.len() - pins_before;
        assert_eq!(
            pinned, 1,
            "an agent listed twice is pinned (and audited) once"
        );
        assert_eq!(written.version, rollout.version + 1);
        assert_eq!(written.state_reason.as_deref(), Some("baking"));
        assert_eq!(written.next_eval_at, change.next_eval_at);
        assert_eq!(written.updated_at, change.at);
        assert_eq!(store.get_rollout(rollout.id).await.unwrap(), written);
        let details = store.rollout_details(rollout.id).await.unwrap();
        assert_eq!(details.waves, vec![baking, next]);
        assert_eq!(details.agents, vec![healthy, moved]);
    }
);
