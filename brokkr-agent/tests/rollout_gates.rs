//! Rollout gates end to end (ROLLOUTS.md section 12, scenario 10 and the gate half of
//! scenario 6), on SQLite and PostgreSQL: the reference server in this process, real
//! agent loops over `MemoryApplier`s long-polling over HTTP on loopback, and a webhook
//! gate answered by a scripted receiver on loopback that checks every request's
//! signature. Gates answer pass, fail, wait, pause, 500 and nothing in time; an
//! approval holds a wave; an operator pauses and resumes; deadlines revert; a server
//! killed while a gate is asked asks again with the same delivery id.

#[path = "rollouts/fleet.rs"]
#[allow(dead_code)]
#[macro_use]
mod fleet;
#[path = "rollouts/gated.rs"]
#[allow(dead_code)]
mod gated;
#[path = "../../brokkr-server/tests/common/pg_database.rs"]
#[allow(dead_code)]
mod pg;
#[path = "../../brokkr-server/tests/common/receiver.rs"]
#[allow(dead_code)]
mod receiver;

#[path = "rollout_gates/holds.rs"]
mod holds;

use std::time::{Duration, Instant};

use fleet::{Backend, eventually};
use gated::{
    ASKED, Gated, all, assert_reverted_in_wave_0, delivery, evaluations, id, ring_policy, time,
    verdict, webhook,
};
use holds::*;
use receiver::Answer;
use serde_json::{Value, json};

/// A passing `after_wave` gate is asked once per wave, after its bake, with a signed
/// evaluation of that wave; each pass lets the next wave start; the evaluations show in
/// `GET /rollouts/{id}` with the delivery ids the receiver saw.
async fn a_passing_gate_is_signed_and_lets_every_wave_through(backend: Backend) {
    let Some(g) = Gated::start(backend, |r| {
        ring_policy(json!([webhook(r, "after_wave", &[], json!({}))]), |p| {
            p["bake_time"] = json!("1s")
        })
    })
    .await
    else {
        return;
    };
    g.receiver.script([
        verdict(json!({"verdict": "pass"})),
        Answer::Json(204, String::new()),
    ]);
    let (v2, rollout) = g.roll_out_v2().await;
    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let received = g.receiver.received();
    assert_eq!(received.len(), 2, "one evaluation per wave: {received:#?}");
    let evaluations = evaluations(&details);
    assert_eq!(evaluations.len(), 2, "{details}");
    for (wave, request) in received.iter().enumerate() {
        let body = g.assert_gate_request(request, &rollout, &v2, (wave, "after_wave"));
        assert_eq!(body["attempt"], 1);
        for agent in body["agents"].as_array().expect("agents") {
            assert_eq!(agent["state"], "healthy", "asked after the bake: {body}");
            assert_eq!(agent["health"], "healthy", "{body}");
        }
        let evaluation = &evaluations[wave];
        assert_eq!(evaluation["id"], delivery(request), "{details}");
        assert_eq!(evaluation["gate"], "slo");
        assert_eq!(evaluation["wave"], wave);
        assert_eq!(evaluation["phase"], "after_wave");
        assert_eq!(evaluation["outcome"], "pass", "{details}");
        // Asked only once the wave had baked for a second.
        let baked =
            time(&details["waves"][wave]["all_healthy_since"]) + chrono::Duration::seconds(1);
        assert!(time(&evaluation["started_at"]) >= baked, "{details}");
    }
    assert!(
        time(&details["waves"][1]["started_at"]) >= time(&evaluations[0]["finished_at"]),
        "wave 1 started before wave 0's gate passed: {details}"
    );
    assert_eq!(g.fleet.broker.pins().await, 0);
    g.fleet.wait_applied(&all(&g.fleet), id(&v2)).await;
    g.teardown().await;
}

/// A `fail` fails the wave and reverts: no pin left, every agent on the baseline, the
/// later wave never saw the candidate.
async fn a_failing_gate_fails_the_wave_and_reverts(backend: Backend) {
    let Some(g) = Gated::start(backend, |r| {
        ring_policy(
            json!([webhook(r, "after_wave", &["ring-0"], json!({}))]),
            |_| {},
        )
    })
    .await
    else {
        return;
    };
    g.receiver.script([verdict(
        json!({"verdict": "fail", "reason": "error rate 4%"}),
    )]);
    let (v2, rollout) = g.roll_out_v2().await;
    let details = g.fleet.wait_state(&rollout, "reverted").await;
    let received = g.receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    g.assert_gate_request(&received[0], &rollout, &v2, (0, "after_wave"));
    assert_eq!(details["waves"][0]["state"], "failed", "{details}");
    assert_eq!(
        details["waves"][0]["reason"], "gate slo failed: error rate 4%",
        "{details}"
    );
    assert_eq!(details["waves"][1]["state"], "pending", "{details}");
    let evaluation = &evaluations(&details)[0];
    assert_eq!(evaluation["outcome"], "fail");
    assert_eq!(evaluation["reason"], "error rate 4%");
    assert_reverted_in_wave_0(&g, &v2).await;
    g.teardown().await;
}

/// A `wait` is asked again `recheck_after_seconds` later, as a new evaluation (attempt
/// 2, its own delivery id: a delivery id is stable across runs of one evaluation, not
/// across evaluations); the wave waits meanwhile, then passes.
async fn a_waiting_gate_is_asked_again_after_its_recheck(backend: Backend) {
    let Some(g) = Gated::start(backend, |r| {
        ring_policy(
            json!([webhook(r, "after_wave", &["ring-0"], json!({}))]),
            |_| {},
        )
    })
    .await
    else {
        return;
    };
    g.receiver.script([
        verdict(json!({"verdict": "wait", "reason": "warming up", "recheck_after_seconds": 2})),
        verdict(json!({"verdict": "pass"})),
    ]);
    let (v2, rollout) = g.roll_out_v2().await;
    g.receiver.wait_for(1, ASKED).await;
    let first_at = Instant::now();
    let waiting = eventually("the wait recorded", || async {
        let details = g.fleet.rollout(&rollout).await;
        (evaluations(&details).first().map(|e| e["outcome"].clone()) == Some(json!("wait")))
            .then_some(details)
    })
    .await;
    assert_eq!(waiting["waves"][0]["state"], "verifying", "{waiting}");
    assert_eq!(
        waiting["rollout"]["state_reason"], "wave 0 (ring-0) waits for gate slo",
        "{waiting}"
    );
    let evaluation = &evaluations(&waiting)[0];
    let recheck = time(&evaluation["recheck_at"]) - time(&evaluation["finished_at"]);
    assert_eq!(recheck.num_seconds(), 2, "{waiting}");

    let received = g.receiver.wait_for(2, ASKED).await;
    let gap = first_at.elapsed();
    assert!(
        gap >= Duration::from_millis(1800) && gap < Duration::from_secs(4),
        "asked again after {gap:?}, not about 2 s"
    );
    let bodies: Vec<Value> = received
        .iter()
        .map(|r| g.assert_gate_request(r, &rollout, &v2, (0, "after_wave")))
        .collect();
    assert_eq!(
        (bodies[0]["attempt"].clone(), bodies[1]["attempt"].clone()),
        (json!(1), json!(2))
    );
    assert_ne!(delivery(&received[0]), delivery(&received[1]));
    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let outcomes: Vec<Value> = evaluations(&details)
        .iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("wait"), json!("pass")], "{details}");
    g.teardown().await;
}

/// A `pause` pauses the rollout with the gate's reason; nothing more is pinned; the
/// gate is asked again 30 s later (`GATE_PAUSE_RECHECK`) and its pass resumes the
/// rollout by itself.
async fn a_pausing_gate_pauses_until_it_passes(backend: Backend) {
    let Some(g) = Gated::start(backend, |r| {
        ring_policy(
            json!([webhook(r, "after_wave", &["ring-0"], json!({}))]),
            |_| {},
        )
    })
    .await
    else {
        return;
    };
    g.receiver.script([
        verdict(json!({"verdict": "pause", "reason": "change freeze"})),
        verdict(json!({"verdict": "pass"})),
    ]);
    let (v2, rollout) = g.roll_out_v2().await;
    let paused = g.fleet.wait_state(&rollout, "paused").await;
    let first_at = Instant::now();
    assert_eq!(
        paused["rollout"]["state_reason"], "gate slo paused the rollout: change freeze",
        "{paused}"
    );
    assert_eq!(paused["waves"][1]["state"], "pending", "{paused}");
    let received = g.receiver.wait_for(2, ASKED).await;
    let gap = first_at.elapsed();
    assert!(
        gap >= Duration::from_secs(28) && gap < Duration::from_secs(33),
        "asked again after {gap:?}, not 30 s"
    );
    g.assert_gate_request(&received[1], &rollout, &v2, (0, "after_wave"));
    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let v2_id = id(&v2).parse().unwrap();
    for sim in &g.fleet.agents[gated::PER_RING..] {
        assert!(sim.applied().contains(&v2_id), "{} on v2", sim.name);
    }
    assert_eq!(evaluations(&details).len(), 2, "{details}");
    g.teardown().await;
}

/// A 500 and an answer slower than the gate's timeout are errors, not failures: the
/// wave waits, the gate is asked again 10 s later, and `error_limit` (2) errors in a
/// row pause the rollout (`on_gate_error` defaults to `pause`). An operator's resume
/// asks it again at once; it passes and the rollout succeeds.
async fn gate_errors_pause_the_rollout_at_the_error_limit(backend: Backend) {
    let Some(g) = Gated::start(backend, |r| {
        let gate = webhook(
            r,
            "after_wave",
            &["ring-0"],
            json!({"timeout": "1s", "error_limit": 2}),
        );
        ring_policy(json!([gate]), |_| {})
    })
    .await
    else {
        return;
    };
    g.receiver.script([
        Answer::Status(500),
        Answer::Sleep(Duration::from_secs(5)),
        verdict(json!({"verdict": "pass"})),
    ]);
    let (v2, rollout) = g.roll_out_v2().await;
    g.receiver.wait_for(1, ASKED).await;
    let first_at = Instant::now();
    let erred = eventually("the first error recorded", || async {
        let details = g.fleet.rollout(&rollout).await;
        (evaluations(&details).first().map(|e| e["outcome"].clone()) == Some(json!("error")))
            .then_some(details)
    })
    .await;
    assert_eq!(
        erred["rollout"]["state"], "running",
        "an error is not a verdict: {erred}"
    );
    assert_eq!(erred["waves"][0]["state"], "verifying", "{erred}");
    g.receiver.wait_for(2, ASKED).await;
    let gap = first_at.elapsed();
    assert!(
        gap >= Duration::from_millis(9800) && gap < Duration::from_secs(13),
        "retried after {gap:?}, not 10 s"
    );
    let paused = g.fleet.wait_state(&rollout, "paused").await;
    let reason = paused["rollout"]["state_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("gate slo could not answer 2 times in a row")
            && reason.contains("no answer within")
            && reason.ends_with("resume to ask it again"),
        "{paused}"
    );
    assert_eq!(
        paused["waves"][0]["state"], "verifying",
        "not failed: {paused}"
    );
    let errors = evaluations(&paused);
    assert!(
        errors[0]["reason"].as_str().unwrap().contains("500"),
        "{paused}"
    );
    assert_eq!(errors[1]["outcome"], "error", "{paused}");
    assert_eq!(g.receiver.received().len(), 2, "no third ask while paused");

    g.fleet
        .broker
        .post(&format!("/rollouts/{rollout}/resume"), json!({}))
        .await;
    let received = g.receiver.wait_for(3, ASKED).await;
    for request in &received {
        g.assert_gate_request(request, &rollout, &v2, (0, "after_wave"));
    }
    // Each retry after an error is an evaluation of its own, with its own delivery.
    let deliveries: std::collections::BTreeSet<String> = received.iter().map(delivery).collect();
    assert_eq!(deliveries.len(), 3, "{received:#?}");
    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let attempts: Vec<Value> = evaluations(&details)
        .iter()
        .map(|e| e["attempt"].clone())
        .collect();
    assert_eq!(attempts, [json!(1), json!(2), json!(3)], "{details}");
    assert_eq!(details["commands"][0]["outcome"], "resumed", "{details}");
    g.teardown().await;
}

/// With `on_gate_error: fail`, reaching the error limit fails the wave and reverts.
async fn gate_errors_fail_the_wave_when_told_to(backend: Backend) {
    let Some(g) = Gated::start(backend, |r| {
        let gate = webhook(r, "after_wave", &["ring-0"], json!({"error_limit": 1}));
        ring_policy(json!([gate]), |p| p["on_gate_error"] = json!("fail"))
    })
    .await
    else {
        return;
    };
    g.receiver.script([Answer::Status(500)]);
    let (v2, rollout) = g.roll_out_v2().await;
    let details = g.fleet.wait_state(&rollout, "reverted").await;
    let reason = details["waves"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("gate slo could not answer 1 times in a row") && reason.contains("500"),
        "{details}"
    );
    assert_eq!(details["waves"][0]["state"], "failed", "{details}");
    assert_reverted_in_wave_0(&g, &v2).await;
    g.teardown().await;
}

on_both_backends!(
    a_pausing_gate_pauses_until_it_passes,
    gate_errors_pause_the_rollout_at_the_error_limit,
    a_passing_gate_is_signed_and_lets_every_wave_through,
    a_failing_gate_fails_the_wave_and_reverts,
    a_waiting_gate_is_asked_again_after_its_recheck,
    gate_errors_fail_the_wave_when_told_to,
    an_approval_holds_its_wave_until_approved,
    an_operator_pauses_and_resumes_mid_wave,
    a_progress_deadline_fails_the_wave,
    a_rollout_deadline_reverts,
    a_restart_during_a_gate_asks_again_with_the_same_delivery,
    a_named_replica_restarted_during_a_gate_asks_again_at_once,
);
