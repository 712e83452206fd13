//! Guard cases over the seeded world alone: its held placement decision, and a dry run
//! of every guarded mutation.

use serde_json::json;

use super::common::{Backend, Req, TestApp};
use super::conflict;

/// A decision the guard holds shows with the stack's placement until an admin releases
/// it, once; a generator cannot.
pub async fn a_held_decision_is_shown_and_released(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = app.world.clone();
    let placement = format!("/api/v1/stacks/{}/placement", w.guarded_stack);
    let shown = app.get(&placement, &w.generator_key).await;
    shown.expect(200);
    let held = &shown.json()["held"];
    assert_eq!(held["plan_id"], w.held_plan.to_string(), "{held}");
    assert_eq!(held["origin"], "held");
    assert_eq!(
        held["change"],
        json!({"change": "placement_decision", "chosen": []})
    );

    let confirm = format!("/api/v1/plans/{}/confirm", w.held_plan);
    let refused = app
        .send(Req::new("POST", confirm.clone()).key(&w.generator_key))
        .await;
    refused.expect(403);
    let released = app
        .send(Req::new("POST", confirm.clone()).key(&w.admin_key))
        .await;
    released.expect(200);
    assert!(
        released.json()["consumed_at"].is_string(),
        "{}",
        released.text
    );
    let shown = app.get(&placement, &w.admin_key).await;
    assert!(shown.json().get("held").is_none(), "{}", shown.text);
    let again = app.send(Req::new("POST", confirm).key(&w.admin_key)).await;
    let details = conflict(&again, "plan_consumed");
    assert_eq!(details["plan_id"], w.held_plan.to_string());

    // A plan someone asked for is confirmed by repeating its change instead.
    let asked = format!("/api/v1/plans/{}/confirm", w.plan);
    let resp = app.send(Req::new("POST", asked).key(&w.admin_key)).await;
    resp.expect(422);
    assert_eq!(resp.json()["code"], "not_held");
    app.teardown().await;
}

/// Every guarded mutation answers its plan on a dry run and changes nothing.
pub async fn every_guarded_mutation_has_a_dry_run(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = app.world.clone();
    let before = app.audit_count().await;
    let stack = w.stack.to_string();
    let policy = json!({"agent_selector": {"matchLabels": {"tier": "web"}}});
    let cases = [
        (
            "PUT",
            format!("/stacks/{stack}/placement"),
            Some(policy),
            "placement",
        ),
        (
            "DELETE",
            format!("/stacks/{stack}/placement"),
            None,
            "remove_placement",
        ),
        (
            "DELETE",
            format!("/agents/{}/targets/{stack}", w.agent),
            None,
            "unassign",
        ),
        ("DELETE", format!("/stacks/{stack}"), None, "delete"),
        (
            "POST",
            format!("/stacks/{stack}/deployment-objects"),
            Some(json!({"is_deletion_marker": true})),
            "deletion_marker",
        ),
    ];
    for (method, path, body, change) in cases {
        let mut req = Req::new(method, format!("/api/v1{path}?dry_run=true")).key(&w.admin_key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = app.send(req).await;
        assert_eq!(resp.status, 200, "{method} {path}: {}", resp.text);
        let plan = resp.json();
        assert_eq!(plan["change"]["change"], change, "{method} {path}: {plan}");
        assert_eq!(plan["stack_id"], stack.as_str());
        assert!(plan["plan_id"].is_string(), "{method} {path}: {plan}");
    }
    // Five plans stored, nothing else: the stack, its placement and target stay.
    assert_eq!(app.audit_count().await, before + 5);
    app.get(&format!("/api/v1/stacks/{stack}/placement"), &w.admin_key)
        .await
        .expect(200);
    let targets = app
        .get(&format!("/api/v1/agents/{}/targets", w.agent), &w.admin_key)
        .await;
    let live = targets.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|t| t["stack_id"] == stack.as_str() && t.get("removed_at").is_none())
        .count();
    assert_eq!(live, 1);
    app.teardown().await;
}
