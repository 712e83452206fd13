//! The blast-radius guard over HTTP, on every backend: a change that would remove a
//! stack from most of its agents, or prune a protected kind, answers 409
//! `blast_radius_exceeded` with its plan and changes nothing; only an admin confirms,
//! once, while the world is as planned; a dry run answers the plan and stores nothing
//! else (on every guarded mutation); plans read back to their owner only; a stack's
//! limits are tightened by its generator and loosened by an admin only; a held
//! placement decision shows with the placement until an admin releases it.
//!
//! Agents "apply" by reporting successful events through the agent API, as real agents
//! do: what they reported is what the plan starts from.

mod common;

use common::{Backend, Req, Resp, TestApp};
use serde_json::{Value, json};

#[path = "guard/seeded.rs"]
mod seeded;

use seeded::{a_held_decision_is_shown_and_released, every_guarded_mutation_has_a_dry_run};

const FLEET: usize = 12;

/// `configmaps` ConfigMaps holding `version`, and a PersistentVolumeClaim with `pvc`.
fn yaml(configmaps: usize, version: u32, pvc: bool) -> String {
    let mut out = String::new();
    for i in 0..configmaps {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: app\ndata:\n  v: '{version}'\n"
        ));
    }
    if pvc {
        out.push_str(
            "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: app\n\
             spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n",
        );
    }
    out
}

/// An agent registered through the admin API.
struct Agent {
    id: String,
    key: String,
}

struct Scenario {
    app: TestApp,
    agents: Vec<Agent>,
}

impl Scenario {
    async fn start(backend: Backend) -> Option<Scenario> {
        let app = TestApp::start(backend).await?;
        let mut agents = Vec::new();
        for i in 0..FLEET {
            let resp = app
                .admin_post(
                    "/api/v1/agents",
                    &json!({"name": format!("edge-{i}"), "cluster_name": format!("cluster-{i}")}),
                )
                .await;
            resp.expect(201);
            let body = resp.json();
            agents.push(Agent {
                id: body["agent"]["id"].as_str().expect("id").to_owned(),
                key: body["initial_pak"].as_str().expect("key").to_owned(),
            });
        }
        Some(Scenario { app, agents })
    }

    fn admin(&self) -> String {
        self.app.world.admin_key.clone()
    }

    fn generator(&self) -> String {
        self.app.world.generator_key.clone()
    }

    async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
        let mut req = Req::new(method, format!("/api/v1{path}")).key(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.app.send(req).await
    }

    /// Appends `yaml` to `stack` as `key`, answered 201; the new object's id.
    async fn append(&self, stack: &str, key: &str, yaml: String) -> String {
        let resp = self
            .send(
                "POST",
                &format!("/stacks/{stack}/deployment-objects"),
                key,
                Some(json!({"yaml_content": yaml})),
            )
            .await;
        resp.expect(201);
        resp.json()["id"].as_str().expect("id").to_owned()
    }

    /// Agent `i` reports applying `object`.
    async fn applied(&self, i: usize, object: &str) {
        let agent = &self.agents[i];
        self.send(
            "POST",
            &format!("/agents/{}/events", agent.id),
            &agent.key,
            Some(
                json!({"deployment_object_id": object, "event_type": "apply", "status": "success"}),
            ),
        )
        .await
        .expect(201);
    }

    /// A stack of the world's generator, assigned to the whole fleet, which applied
    /// `yaml`: its id and the object's.
    async fn applied_stack(&self, name: &str, yaml: String) -> (String, String) {
        let generator = self.generator();
        let resp = self
            .send("POST", "/stacks", &generator, Some(json!({"name": name})))
            .await;
        resp.expect(201);
        let stack = resp.json()["id"].as_str().expect("id").to_owned();
        for agent in &self.agents {
            self.send(
                "POST",
                &format!("/agents/{}/targets", agent.id),
                &generator,
                Some(json!({"stack_id": stack})),
            )
            .await
            .expect(201);
        }
        let object = self.append(&stack, &generator, yaml).await;
        for i in 0..self.agents.len() {
            self.applied(i, &object).await;
        }
        (stack, object)
    }

    /// Audit records matching `query`.
    async fn audited(&self, query: &str) -> usize {
        self.app
            .count_all(&format!("/api/v1/admin/audit-logs?{query}"))
            .await
    }
}

/// A 409 `code`, with its details.
#[track_caller]
fn conflict(resp: &Resp, code: &str) -> Value {
    resp.expect(409);
    let body = resp.json();
    assert_eq!(body["code"], code, "{body}");
    body["details"].clone()
}

/// A 409 `blast_radius_exceeded`: its plan id, after checking the violations and
/// summary it names.
#[track_caller]
fn stopped(resp: &Resp, violations: Value, removed: u64) -> String {
    let details = conflict(resp, "blast_radius_exceeded");
    let message = resp.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("admin may confirm"), "{message}");
    assert_eq!(details["violations"], violations, "{details}");
    assert_eq!(details["summary"]["agents_current"], FLEET as u64);
    assert_eq!(details["summary"]["agents_removed"], removed, "{details}");
    let plan = details["plan_id"].as_str().expect("plan_id").to_owned();
    assert!(message.contains(&plan), "{message}");
    plan
}

/// A deletion that removes the stack from all 12 agents is stopped until an admin
/// confirms its plan; a dry run stores nothing but the plan; plans read back to their
/// owner only.
async fn a_mass_deletion_waits_for_an_admin(backend: Backend) {
    let Some(s) = Scenario::start(backend).await else {
        return;
    };
    let (admin, generator) = (s.admin(), s.generator());
    let (stack, object) = s.applied_stack("shop", yaml(2, 1, false)).await;
    let stack_path = format!("/stacks/{stack}");
    let whole_fleet =
        json!([{"rule": "max_removed_fraction", "limit": 0.25, "actual": 1.0, "removed": 12}]);

    // The owner deletes: stopped, only the plan stored.
    let resp = s.send("DELETE", &stack_path, &generator, None).await;
    let plan = stopped(&resp, whole_fleet.clone(), 12);
    s.send("GET", &stack_path, &admin, None).await.expect(200);

    // The plan reads back to its owner, not to another generator.
    let read = s
        .send("GET", &format!("/plans/{plan}"), &generator, None)
        .await;
    read.expect(200);
    let read = read.json();
    assert_eq!(read["plan_id"], plan.as_str());
    assert_eq!(read["stack_id"], stack.as_str());
    assert_eq!(read["origin"], "requested");
    assert_eq!(read["change"], json!({"change": "delete"}));
    assert_eq!(read["guard"]["verdict"], "confirmation_required");
    assert_eq!(read["guard"]["violations"], whole_fleet);
    assert!(
        read["digest"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:")
    );
    assert!(read.get("consumed_at").is_none(), "{read}");
    let groups = read["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "one move for all: {read}");
    assert_eq!(groups[0]["action"], "lose");
    assert_eq!(groups[0]["from"], object.as_str());
    assert!(groups[0].get("to").is_none());
    assert_eq!(groups[0]["to_proposed"], false);
    assert_eq!(groups[0]["agents"].as_array().map(Vec::len), Some(FLEET));
    let pruned: Vec<&str> = groups[0]["objects"]["prune"]
        .as_array()
        .expect("prune")
        .iter()
        .map(|o| o["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(pruned, ["cm-0", "cm-1"]);
    let other = s.app.world.other_generator_key.clone();
    let hidden = s.send("GET", &format!("/plans/{plan}"), &other, None).await;
    hidden.expect(404);
    assert_eq!(hidden.json()["code"], "not_found");

    // A dry run answers a plan and changes nothing: no deletion, no record of one.
    let dry = s
        .send(
            "DELETE",
            &format!("{stack_path}?dry_run=true"),
            &admin,
            None,
        )
        .await;
    dry.expect(200);
    let dry = dry.json();
    assert_ne!(dry["plan_id"], plan.as_str());
    assert_eq!(dry["summary"]["agents_removed"], 12);
    assert_eq!(dry["summary"]["removed_fraction"], 1.0);
    assert!(dry.get("is_deletion_marker").is_none(), "a plan: {dry}");
    s.send("GET", &stack_path, &admin, None).await.expect(200);
    let deletions = format!("resource_type=stack&resource_id={stack}&action=delete");
    assert_eq!(s.audited(&deletions).await, 0);

    // Confirming is admin-only.
    let confirm = format!("{stack_path}?confirm_plan_id={plan}");
    let refused = s.send("DELETE", &confirm, &generator, None).await;
    refused.expect(403);
    assert_eq!(refused.json()["code"], "forbidden");
    s.send("GET", &stack_path, &admin, None).await.expect(200);

    // An admin confirms: the stack is deleted, the confirmation audited.
    let deleted = s.send("DELETE", &confirm, &admin, None).await;
    deleted.expect(200);
    let marker = deleted.json();
    assert_eq!(marker["is_deletion_marker"], true, "{marker}");
    assert_eq!(marker["stack_id"], stack.as_str());
    s.send("GET", &stack_path, &admin, None).await.expect(404);
    assert_eq!(s.audited(&deletions).await, 1);
    let confirmed = format!("resource_type=plan&resource_id={plan}&action=confirm");
    assert_eq!(s.audited(&confirmed).await, 1);
    let used = s.send("GET", &format!("/plans/{plan}"), &admin, None).await;
    assert!(used.json()["consumed_at"].is_string(), "{}", used.text);

    s.app.teardown().await;
}

/// A plan confirms one change, and only while what the agents run is what it was
/// planned from.
async fn a_plan_is_single_use_and_goes_stale(backend: Backend) {
    let Some(s) = Scenario::start(backend).await else {
        return;
    };
    let admin = s.admin();
    let (stack, _) = s.applied_stack("shop", yaml(1, 1, false)).await;
    let objects = format!("/stacks/{stack}/deployment-objects");
    let marker = json!({"is_deletion_marker": true});
    let whole_fleet =
        json!([{"rule": "max_removed_fraction", "limit": 0.25, "actual": 1.0, "removed": 12}]);

    // Stale: the plan is made, then an agent reports another version.
    let resp = s.send("POST", &objects, &admin, Some(marker.clone())).await;
    let stale = stopped(&resp, whole_fleet.clone(), 12);
    let v2 = s.append(&stack, &admin, yaml(1, 2, false)).await;
    s.applied(0, &v2).await;
    let resp = s
        .send(
            "POST",
            &format!("{objects}?confirm_plan_id={stale}"),
            &admin,
            Some(marker.clone()),
        )
        .await;
    let details = conflict(&resp, "plan_stale");
    assert_eq!(details["plan_id"], stale.as_str());
    assert!(details["reason"].is_string(), "{details}");

    // Planned again from the world as it is: confirmed once, refused after.
    let resp = s.send("POST", &objects, &admin, Some(marker.clone())).await;
    let plan = stopped(&resp, whole_fleet, 12);
    assert_ne!(plan, stale);
    let confirm = format!("{objects}?confirm_plan_id={plan}");
    let appended = s.send("POST", &confirm, &admin, Some(marker.clone())).await;
    appended.expect(201);
    assert_eq!(appended.json()["is_deletion_marker"], true);
    let again = s.send("POST", &confirm, &admin, Some(marker)).await;
    let details = conflict(&again, "plan_consumed");
    assert_eq!(details["plan_id"], plan.as_str());

    s.app.teardown().await;
}

/// Dropping a PersistentVolumeClaim from the YAML is stopped (a protected kind would
/// be pruned on every agent); a generator may tighten its stack's limits but not
/// loosen them; an admin may, and the change then passes.
async fn protected_kinds_and_the_stacks_own_limits(backend: Backend) {
    let Some(s) = Scenario::start(backend).await else {
        return;
    };
    let (admin, generator) = (s.admin(), s.generator());
    let (stack, _) = s.applied_stack("data", yaml(1, 1, true)).await;
    let objects = format!("/stacks/{stack}/deployment-objects");

    // The YAML body, as `curl --data-binary @app.yaml` sends it.
    let without_pvc = yaml(1, 1, false);
    let resp = s
        .app
        .send(
            Req::new("POST", format!("/api/v1{objects}"))
                .key(&generator)
                .raw(without_pvc.clone().into_bytes(), "application/yaml"),
        )
        .await;
    let details = conflict(&resp, "blast_radius_exceeded");
    assert_eq!(
        details["violations"],
        json!([{"rule": "protected_kinds", "kind": "PersistentVolumeClaim", "count": 12}])
    );
    assert_eq!(details["summary"]["agents_removed"], 0);
    assert_eq!(details["summary"]["objects"]["prune"], 12);

    // The stack's limits: defaults, no overrides.
    let policy_path = format!("/stacks/{stack}/guard-policy");
    let policy = s.send("GET", &policy_path, &generator, None).await;
    policy.expect(200);
    let defaults = json!({
        "max_removed_fraction": 0.25,
        "min_removed_agents": 2,
        "max_pruned_objects": 100,
        "protected_kinds": ["CustomResourceDefinition", "Namespace", "PersistentVolume", "PersistentVolumeClaim"],
    });
    assert_eq!(
        policy.json(),
        json!({"defaults": defaults, "overrides": {}, "effective": defaults})
    );

    // The owner may not loosen a limit, may tighten one.
    let loosen = json!({"protected_kinds": ["Namespace"]});
    let refused = s
        .send("PUT", &policy_path, &generator, Some(loosen.clone()))
        .await;
    refused.expect(403);
    let message = refused.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("protected_kinds"), "{message}");
    let tightened = s
        .send(
            "PUT",
            &policy_path,
            &generator,
            Some(json!({"max_removed_fraction": 0.1})),
        )
        .await;
    tightened.expect(200);
    let tightened = tightened.json();
    assert_eq!(tightened["overrides"], json!({"max_removed_fraction": 0.1}));
    assert_eq!(tightened["effective"]["max_removed_fraction"], 0.1);
    assert_eq!(tightened["effective"]["max_pruned_objects"], 100);

    // Unknown fields and out-of-range values are refused.
    let typo = s
        .send(
            "PUT",
            &policy_path,
            &admin,
            Some(json!({"max_removed_fractio": 0.9})),
        )
        .await;
    typo.expect(400);
    let out_of_range = s
        .send(
            "PUT",
            &policy_path,
            &admin,
            Some(json!({"max_removed_fraction": 2.0})),
        )
        .await;
    out_of_range.expect(422);
    assert_eq!(out_of_range.json()["code"], "invalid_guard");

    // An admin loosens: the same change now passes.
    let loosened = s.send("PUT", &policy_path, &admin, Some(loosen)).await;
    loosened.expect(200);
    assert_eq!(
        loosened.json()["effective"]["protected_kinds"],
        json!(["Namespace"])
    );
    let appended = s.append(&stack, &generator, without_pvc).await;
    assert!(!appended.is_empty());

    s.app.teardown().await;
}

/// `POST /stacks/{id}/plan` plans each kind of change without making it; an unknown
/// change or a missing field is a 422.
async fn plans_of_each_kind_change_nothing(backend: Backend) {
    let Some(s) = Scenario::start(backend).await else {
        return;
    };
    let (admin, generator) = (s.admin(), s.generator());
    let (stack, v1) = s.applied_stack("shop", yaml(2, 1, false)).await;
    let v2 = s.append(&stack, &generator, yaml(3, 2, false)).await;
    let plan_path = format!("/stacks/{stack}/plan");
    let plan = async |body: Value| s.send("POST", &plan_path, &generator, Some(body)).await;

    // A new version: every agent changes, one object created, two updated.
    let resp =
        plan(json!({"change": "deployment_object", "yaml_content": yaml(3, 3, false)})).await;
    resp.expect(201);
    let body = resp.json();
    assert_eq!(body["change"]["change"], "deployment_object");
    assert_eq!(
        body["guard"],
        json!({"verdict": "allowed", "violations": []})
    );
    assert_eq!(body["summary"]["agents_changing"], 12);
    let group = &body["groups"][0];
    assert_eq!(
        (group["action"].as_str(), group["to_proposed"].as_bool()),
        (Some("change"), Some(true)),
        "{group}"
    );
    assert_eq!(group["from"], v1.as_str());
    assert_eq!(group["objects"]["create"].as_array().map(Vec::len), Some(1));
    assert_eq!(group["objects"]["update"].as_array().map(Vec::len), Some(2));

    // A rollback to v1 while agents run v1: nobody moves.
    let resp = plan(json!({"change": "rollback", "to_deployment_object_id": v1})).await;
    resp.expect(201);
    assert_eq!(resp.json()["summary"]["agents_unchanged"], 12);
    assert_eq!(resp.json()["groups"], json!([]));

    // Unassigning one agent removes one of twelve: allowed.
    let agent = s.agents[0].id.clone();
    let resp = plan(json!({"change": "unassign", "agent_id": agent})).await;
    resp.expect(201);
    let body = resp.json();
    assert_eq!(body["summary"]["agents_removed"], 1);
    assert_eq!(body["guard"]["verdict"], "allowed");

    // From a registered generator.
    let resp = plan(json!({"change": "deployment_object", "generator": "configmap", "parameters": {"name": "gen"}})).await;
    resp.expect(201);
    assert_eq!(resp.json()["summary"]["agents_changing"], 12);

    // Bad requests.
    for (body, code) in [
        (json!({"change": "explode"}), "invalid_change"),
        (json!({"change": "rollback"}), "invalid_change"),
        (json!({}), "invalid_change"),
        (
            json!({"change": "deployment_object", "yaml_content": "x", "generator": "configmap"}),
            "validation_failed",
        ),
        (
            json!({"change": "placement", "policy": []}),
            "invalid_policy",
        ),
    ] {
        let resp = plan(body.clone()).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.text);
        assert_eq!(resp.json()["code"], code, "{body}: {}", resp.text);
    }

    // A rollback with ?dry_run answers the plan and appends nothing.
    let rollback = format!("/stacks/{stack}/rollback");
    let dry = s
        .send(
            "POST",
            &format!("{rollback}?dry_run=true"),
            &admin,
            Some(json!({"to_deployment_object_id": v1})),
        )
        .await;
    dry.expect(200);
    assert_eq!(dry.json()["change"]["to_deployment_object_id"], v1.as_str());
    let listing = s
        .send(
            "GET",
            &format!("/stacks/{stack}/deployment-objects"),
            &admin,
            None,
        )
        .await;
    let items = listing.json()["items"].as_array().map(Vec::len);
    assert_eq!(items, Some(2), "v1 and v2 only");
    let rolled = s
        .send(
            "POST",
            &rollback,
            &generator,
            Some(json!({"to_deployment_object_id": v1})),
        )
        .await;
    rolled.expect(201);
    let rolled = rolled.json();
    assert_ne!(rolled["id"], v1.as_str());
    assert_ne!(rolled["id"], v2.as_str());

    s.app.teardown().await;
}

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Memory).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Postgres).await;
            })*
        }
    };
}

on_every_backend!(
    a_mass_deletion_waits_for_an_admin,
    a_plan_is_single_use_and_goes_stale,
    protected_kinds_and_the_stacks_own_limits,
    plans_of_each_kind_change_nothing,
    a_held_decision_is_shown_and_released,
    every_guarded_mutation_has_a_dry_run,
);
