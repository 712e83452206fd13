//! What holds or stops a rollout besides a webhook's verdict: an approval, an
//! operator's pause, the progress and rollout deadlines; and a server killed while a
//! gate is asked.

use std::time::Duration;

use brokkr_core::ObjectKey;
use brokkr_core::health::HealthStatus;
use serde_json::{Value, json};

use super::fleet::{Backend, eventually};
use super::gated::{
    self, ASKED, Gated, agent, all, assert_reverted_in_wave_0, delivery, evaluations,
    expire_leases, id, ring_policy, time, verdict, webhook,
};
use super::receiver::Answer;

/// Waits until wave `wave` is in `state`; the details then.
async fn wait_wave(g: &Gated, rollout: &str, wave: usize, state: &str) -> Value {
    eventually(&format!("wave {wave} {state}"), || async {
        let details = g.fleet.rollout(rollout).await;
        (details["waves"][wave]["state"] == state).then_some(details)
    })
    .await
}

/// An approval on `ring-1` holds that wave in `gating` until
/// `POST /rollouts/{id}/approve {"wave": 1}`; approving a wave that waits for no
/// approval is 409 `no_approval_pending`.
pub async fn an_approval_holds_its_wave_until_approved(backend: Backend) {
    let Some(g) = Gated::start(backend, |_| {
        let gate = json!({"name": "prod-ok", "type": "approval", "phase": "before_wave", "waves": ["ring-1"]});
        ring_policy(json!([gate]), |_| {})
    })
    .await
    else {
        return;
    };
    let (v2, rollout) = g.roll_out_v2().await;
    let approve = |wave: u32| {
        let path = format!("/rollouts/{rollout}/approve");
        let broker = &g.fleet.broker;
        async move {
            broker
                .call(reqwest::Method::POST, &path, Some(json!({"wave": wave})))
                .await
        }
    };
    let (status, body) = approve(1).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("no_approval_pending")),
        "{body}"
    );

    let gating = wait_wave(&g, &rollout, 1, "gating").await;
    assert_eq!(
        gating["rollout"]["state_reason"], "wave 1 (ring-1) waits for gate prod-ok (approval)",
        "{gating}"
    );
    // It holds: a second later still gating, ring 1 still without the candidate.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = g.fleet.rollout(&rollout).await;
    assert_eq!(held["waves"][1]["state"], "gating", "{held}");
    let v2_id = id(&v2).parse().unwrap();
    for sim in &g.fleet.agents[gated::PER_RING..] {
        assert!(
            !sim.applied().contains(&v2_id),
            "{} before approval",
            sim.name
        );
    }
    let (status, body) = approve(0).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("no_approval_pending")),
        "{body}"
    );
    let (status, body) = approve(1).await;
    assert!(status < 300, "{status} {body}");

    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let evaluation = &evaluations(&details)[0];
    assert_eq!(evaluation["gate"], "prod-ok");
    assert_eq!(evaluation["outcome"], "pass", "{details}");
    assert_eq!(evaluation["decided_by"], "admin", "{details}");
    assert!(
        g.receiver.received().is_empty(),
        "an approval sends nothing"
    );
    let (status, _) = approve(1).await;
    assert_eq!(status, 409, "nothing to approve after the rollout");
    g.teardown().await;
}

/// An operator pauses mid-wave: the pins stay, nothing new is pinned; resume goes on.
pub async fn an_operator_pauses_and_resumes_mid_wave(backend: Backend) {
    let Some(g) = Gated::start(backend, |_| {
        let mut policy = ring_policy(json!([]), |p| p["max_concurrency"] = json!(1));
        policy["waves"] = json!([{"name": "all", "select": {"remaining": true}}]);
        policy
    })
    .await
    else {
        return;
    };
    let (v2, rollout) = g.roll_out_v2().await;
    let not_waiting = |details: &Value| -> Vec<String> {
        details["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .filter(|a| a["state"] != "waiting")
            .map(|a| a["agent_id"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually("a first pin", || async {
        let details = g.fleet.rollout(&rollout).await;
        (!not_waiting(&details).is_empty()).then_some(())
    })
    .await;
    g.fleet
        .broker
        .post(&format!("/rollouts/{rollout}/pause"), json!({}))
        .await;
    let paused = g.fleet.wait_state(&rollout, "paused").await;
    assert_eq!(
        paused["rollout"]["state_reason"], "paused by an operator",
        "{paused}"
    );
    let started = not_waiting(&paused);
    assert!(started.len() < g.fleet.agents.len(), "{paused}");
    let pins = g.fleet.broker.pins().await;
    assert!(pins >= 1, "the pins stay");
    // Paused, its pinned agents still count: once they are healthy the budget has
    // room, and a running rollout would pin the next agent within a poll.
    eventually("the pinned agents healthy while paused", || async {
        let details = g.fleet.rollout(&rollout).await;
        let healthy = details["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .filter(|a| a["state"] == "healthy")
            .count();
        (healthy == started.len()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = g.fleet.rollout(&rollout).await;
    assert_eq!(still["rollout"]["state"], "paused", "{still}");
    assert_eq!(not_waiting(&still), started, "pinned while paused: {still}");
    assert_eq!(g.fleet.broker.pins().await, pins);

    g.fleet
        .broker
        .post(&format!("/rollouts/{rollout}/resume"), json!({}))
        .await;
    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let outcomes: Vec<&str> = details["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| c["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["paused", "resumed"], "{details}");
    g.fleet.wait_applied(&all(&g.fleet), id(&v2)).await;
    g.teardown().await;
}

/// An agent that never gets healthy on the candidate times out at
/// `progress_deadline` and fails its wave; with `on_failure: halt` the pins stay for
/// the operator, whose `abort` reverts.
pub async fn a_progress_deadline_fails_the_wave(backend: Backend) {
    let Some(g) = Gated::start(backend, |_| {
        ring_policy(json!([]), |p| {
            p["progress_deadline"] = json!("3s");
            p["on_failure"] = json!("halt");
        })
    })
    .await
    else {
        return;
    };
    let web = ObjectKey {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: "web".into(),
    };
    let stuck = &g.fleet.agents[0];
    stuck
        .cluster
        .set_health(&web, HealthStatus::Progressing, "0/1 replicas ready");
    let (v2, rollout) = g.roll_out_v2().await;
    let halted = g.fleet.wait_state(&rollout, "halted").await;
    assert_eq!(halted["waves"][0]["state"], "failed", "{halted}");
    assert_eq!(halted["waves"][1]["state"], "pending", "{halted}");
    let timed_out = agent(&halted, &stuck.id);
    assert_eq!(timed_out["state"], "timed_out", "{halted}");
    let waited = time(&halted["waves"][0]["finished_at"]) - time(&timed_out["pinned_at"]);
    assert!(
        (3_000..5_000).contains(&waited.num_milliseconds()),
        "failed {waited} after the pin, not at the 3 s deadline: {halted}"
    );
    assert!(g.fleet.broker.pins().await > 0, "a halt keeps the pins");

    g.fleet
        .broker
        .post(&format!("/rollouts/{rollout}/abort"), json!({}))
        .await;
    g.fleet.wait_state(&rollout, "reverted").await;
    assert_reverted_in_wave_0(&g, &v2).await;
    g.teardown().await;
}

/// A rollout still running at `rollout_deadline` reverts.
pub async fn a_rollout_deadline_reverts(backend: Backend) {
    let Some(g) = Gated::start(backend, |_| {
        ring_policy(json!([]), |p| {
            p["bake_time"] = json!("30s");
            p["rollout_deadline"] = json!("3s");
        })
    })
    .await
    else {
        return;
    };
    let (v2, rollout) = g.roll_out_v2().await;
    let details = g.fleet.wait_state(&rollout, "reverted").await;
    let r = &details["rollout"];
    let deadline = time(&r["deadline_at"]) - time(&r["started_at"]);
    assert_eq!(deadline.num_seconds(), 3, "{details}");
    let reverted_at = details["waves"][0]["finished_at"].clone();
    let late = time(&reverted_at) - time(&r["deadline_at"]);
    assert!(
        (0..1_500).contains(&late.num_milliseconds()),
        "reverted {late} after the deadline: {details}"
    );
    let reason = details["waves"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rollout deadline"), "{details}");
    assert_reverted_in_wave_0(&g, &v2).await;
    g.teardown().await;
}

/// A rollout of v2 whose after-wave gate of ring 0 is being asked: the receiver holds
/// the first request 40 s (past its 30 s timeout) and passes the next. The server is
/// named `replica` when given. Answers the fleet, v2, the rollout and the held request.
async fn held_at_a_gate(
    backend: Backend,
    replica: Option<&'static str>,
) -> Option<(Gated, Value, String, Vec<super::receiver::Received>)> {
    let g = Gated::start_as(backend, replica, |r| {
        let gate = webhook(r, "after_wave", &["ring-0"], json!({"timeout": "30s"}));
        ring_policy(json!([gate]), |_| {})
    })
    .await?;
    g.receiver.script([
        Answer::Sleep(Duration::from_secs(40)),
        verdict(json!({"verdict": "pass"})),
    ]);
    let (v2, rollout) = g.roll_out_v2().await;
    let held = g.receiver.wait_for(1, ASKED).await;
    Some((g, v2, rollout, held))
}

/// Scenario 6, the gate half: the server is killed while a gate is being asked (the
/// receiver holds the request), and started again on the same database. The killed
/// server's lease on the rollout holds it until it runs out (at least 61 s, as a lease
/// must outlast the slowest gate); the test runs it out in the database, as the clock
/// would. The evaluation that had no verdict is asked again with the same delivery id,
/// attempt and body, and the rollout completes.
pub async fn a_restart_during_a_gate_asks_again_with_the_same_delivery(backend: Backend) {
    let Some((mut g, v2, rollout, held)) = held_at_a_gate(backend, None).await else {
        return;
    };
    let asked = g.fleet.rollout(&rollout).await;
    let pending = &evaluations(&asked)[0];
    assert_eq!(pending["id"], delivery(&held[0]), "{asked}");
    assert!(pending.get("outcome").is_none(), "no verdict yet: {asked}");

    g.fleet.broker.kill();
    g.fleet.broker.serve().await;
    // The dead server's lease still holds the rollout: nobody asks meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        g.receiver.received().len(),
        1,
        "asked under another's lease"
    );
    expire_leases(&g.fleet.broker).await;
    let received = g.receiver.wait_for(2, Duration::from_secs(10)).await;
    g.assert_gate_request(&received[1], &rollout, &v2, (0, "after_wave"));
    assert_eq!(
        delivery(&received[1]),
        delivery(&received[0]),
        "the same delivery"
    );
    assert_eq!(received[1].body, received[0].body, "the same evaluation");

    let details = g.fleet.wait_state(&rollout, "succeeded").await;
    let evaluations = evaluations(&details);
    assert_eq!(
        evaluations.len(),
        1,
        "run again, not started again: {details}"
    );
    assert_eq!(evaluations[0]["outcome"], "pass", "{details}");
    g.fleet.wait_applied(&all(&g.fleet), id(&v2)).await;
    g.teardown().await;
}

/// The same with `[server] replica_name` set: the restarted server is the replica that
/// held the lease, so it takes the rollout back at once and asks again, with the same
/// delivery, without waiting for the lease to run out.
pub async fn a_named_replica_restarted_during_a_gate_asks_again_at_once(backend: Backend) {
    let Some((mut g, v2, rollout, _)) = held_at_a_gate(backend, Some("brokkr-0")).await else {
        return;
    };
    g.fleet.broker.kill();
    let restarted = std::time::Instant::now();
    g.fleet.broker.serve().await;
    // Well within the lease (at least 61 s): only a claim of its own lease explains it.
    let received = g.receiver.wait_for(2, Duration::from_secs(15)).await;
    assert!(
        restarted.elapsed() < Duration::from_secs(15),
        "asked again {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(
        delivery(&received[1]),
        delivery(&received[0]),
        "the same delivery"
    );
    g.fleet.wait_state(&rollout, "succeeded").await;
    g.fleet.wait_applied(&all(&g.fleet), id(&v2)).await;
    g.teardown().await;
}
