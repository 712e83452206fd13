//! A fleet whose rollouts are judged by a webhook gate: the loopback receiver of the
//! server's tests answers from a script, the server is configured to sign for it
//! (`[rollouts] gate_secrets`) and to send to it (`[webhooks] allowed_hosts`), and
//! every request it gets is checked as a receiver holding the secret would.

use std::collections::BTreeMap;
use std::sync::Arc;

use brokkr_core::webhook::signature;
use serde_json::{Value, json};

use super::fleet::{Backend, Fleet, app, eventually};
use super::receiver::{Answer, Received, Receiver};

/// The gates' signing secret, shared with the receiver.
pub const SECRET: &str = "a-gate-secret-shared-with-the-receiver";
/// Its name in `[rollouts] gate_secrets`, as policies name it.
pub const SECRET_REF: &str = "slo-hmac";

/// Agents per ring: ring 0 is wave 0 (`ring-0`), ring 1 wave 1 (`ring-1`).
pub const PER_RING: usize = 2;

/// A fleet of two rings on `v1`, a receiver, and the stack's policy set.
pub struct Gated {
    pub fleet: Fleet,
    pub receiver: Receiver,
    pub stack: String,
    pub v1: Value,
}

/// The two-ring policy with `gates` and no bake, changed by `adjust`.
pub fn ring_policy(gates: Value, adjust: impl FnOnce(&mut Value)) -> Value {
    let mut policy = json!({
        "waves": [
            {"name": "ring-0", "select": {"match_labels": {"ring": "0"}}},
            {"name": "ring-1", "select": {"remaining": true}}
        ],
        "bake_time": "0s",
        "progress_deadline": "20s",
        "gates": gates
    });
    adjust(&mut policy);
    policy
}

/// A webhook gate named `slo` at the receiver's `/gate`, in `phase`, for `waves`
/// (none: every wave), with `extra` fields.
pub fn webhook(receiver: &Receiver, phase: &str, waves: &[&str], extra: Value) -> Value {
    let mut gate = json!({
        "name": "slo", "type": "webhook", "phase": phase,
        "url": receiver.url("/gate"), "secret_ref": SECRET_REF, "timeout": "5s"
    });
    if !waves.is_empty() {
        gate["waves"] = json!(waves);
    }
    for (key, value) in extra.as_object().into_iter().flatten() {
        gate[key] = value.clone();
    }
    gate
}

/// A 200 answering `verdict`.
pub fn verdict(verdict: Value) -> Answer {
    Answer::Json(200, verdict.to_string())
}

impl Gated {
    /// Starts the receiver, then the fleet with a server that may send to it, puts
    /// every agent on `v1` and sets the policy `policy(&receiver)`.
    pub async fn start(backend: Backend, policy: impl FnOnce(&Receiver) -> Value) -> Option<Self> {
        Self::start_as(backend, None, policy).await
    }

    /// [`Gated::start`], the server named `replica` (`[server] replica_name`) in every
    /// start when given.
    pub async fn start_as(
        backend: Backend,
        replica: Option<&'static str>,
        policy: impl FnOnce(&Receiver) -> Value,
    ) -> Option<Self> {
        let receiver = Receiver::start().await;
        let allowed = receiver.host_port();
        let configure = Arc::new(move |config: &mut brokkr_server::config::Config| {
            config.webhooks.allowed_hosts = vec![allowed.clone()];
            config.rollouts.gate_secrets =
                BTreeMap::from([(SECRET_REF.to_owned(), SECRET.to_owned())]);
            config.server.replica_name = replica.map(str::to_owned);
        });
        let labels = |i: usize| BTreeMap::from([("ring".to_owned(), (i / PER_RING).to_string())]);
        let fleet = Fleet::start_with(backend, 2 * PER_RING, labels, configure).await?;
        let stack = fleet.stack_on_all("shop").await;
        let v1 = deploy(&fleet, &stack, "1").await;
        fleet.wait_applied(&all(&fleet), id(&v1)).await;
        fleet
            .broker
            .put(
                &format!("/stacks/{stack}/rollout-policy"),
                policy(&receiver),
            )
            .await;
        Some(Self {
            fleet,
            receiver,
            stack,
            v1,
        })
    }

    /// Appends `v2`: the object and its rollout's id.
    pub async fn roll_out_v2(&self) -> (Value, String) {
        let v2 = deploy(&self.fleet, &self.stack, "2").await;
        let rollout = self.fleet.newest_rollout(&self.stack).await;
        assert_eq!(rollout["candidate_deployment_object_id"], v2["id"]);
        (v2, rollout["id"].as_str().expect("rollout id").to_owned())
    }

    /// The names of ring `ring`'s agents, sorted.
    pub fn ring(&self, ring: usize) -> Vec<String> {
        self.fleet.agents[ring * PER_RING..(ring + 1) * PER_RING]
            .iter()
            .map(|agent| agent.name.clone())
            .collect()
    }

    /// Checks `request` as the gate's receiver would: a signed `POST` of a
    /// `brokkr.gate.v1` evaluation of `phase` for wave `wave` of `rollout`, candidate
    /// `v2` and baseline `v1`, listing the wave's agents. Answers the body.
    pub fn assert_gate_request(
        &self,
        request: &Received,
        rollout: &str,
        v2: &Value,
        (wave, phase): (usize, &str),
    ) -> Value {
        assert_signed(request);
        let body = request.json();
        assert_eq!(body["kind"], "brokkr.gate.v1", "{body}");
        assert_eq!(body["rollout_id"], rollout, "{body}");
        assert_eq!(body["phase"], phase, "{body}");
        assert_eq!(body["stack"]["name"], "shop", "{body}");
        for (field, object) in [("candidate", v2), ("baseline", &self.v1)] {
            assert_eq!(body[field]["id"], object["id"], "{field}: {body}");
            assert_eq!(
                body[field]["sequence_id"], object["sequence_id"],
                "{field}: {body}"
            );
            assert_eq!(
                body[field]["checksum"], object["yaml_checksum"],
                "{field}: {body}"
            );
        }
        assert_eq!(
            body["wave"],
            json!({"index": wave, "name": format!("ring-{wave}")}),
            "{body}"
        );
        let mut names: Vec<String> = body["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|agent| {
                assert_eq!(agent["labels"]["ring"], wave.to_string(), "{body}");
                agent["name"].as_str().expect("a name").to_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names, self.ring(wave), "the wave's agents: {body}");
        body
    }

    pub async fn teardown(self) {
        self.fleet.teardown().await;
    }
}

/// A `POST` of JSON to `/gate`, delivered as an evaluation, signed with the shared
/// secret over `timestamp + "." + body`, the timestamp within the tolerance.
pub fn assert_signed(request: &Received) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/gate");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let delivery = request.header("x-brokkr-delivery").expect("a delivery id");
    assert!(
        delivery.parse::<uuid::Uuid>().is_ok(),
        "delivery {delivery:?}"
    );
    let timestamp: i64 = request
        .header("x-brokkr-timestamp")
        .expect("a timestamp")
        .parse()
        .expect("seconds since the epoch");
    let header = request.header("x-brokkr-signature").expect("a signature");
    assert_eq!(
        header,
        signature::sign(SECRET.as_bytes(), timestamp, &request.body),
        "HMAC-SHA256 of timestamp.body under the shared secret"
    );
    signature::verify(
        SECRET.as_bytes(),
        timestamp,
        &request.body,
        header,
        chrono::Utc::now().timestamp(),
        signature::DEFAULT_TOLERANCE,
    )
    .expect("the receiver verifies the signature");
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    assert!(
        signature::verify(
            SECRET.as_bytes(),
            timestamp,
            &tampered,
            header,
            chrono::Utc::now().timestamp(),
            signature::DEFAULT_TOLERANCE,
        )
        .is_err(),
        "the signature covers the body"
    );
}

/// The `X-Brokkr-Delivery` of a request.
pub fn delivery(request: &Received) -> String {
    request
        .header("x-brokkr-delivery")
        .expect("a delivery id")
        .to_owned()
}

/// The gate evaluations of a rollout's details.
pub fn evaluations(details: &Value) -> Vec<Value> {
    details["gate_evaluations"]
        .as_array()
        .expect("gate evaluations")
        .clone()
}

/// Appends the app at `version`: the object as the server answers it.
pub async fn deploy(fleet: &Fleet, stack: &str, version: &str) -> Value {
    fleet
        .broker
        .post(
            &format!("/stacks/{stack}/deployment-objects"),
            json!({"yaml_content": app("shop", version)}),
        )
        .await
}

/// An object's id.
pub fn id(object: &Value) -> &str {
    object["id"].as_str().expect("an object id")
}

/// Every agent's index.
pub fn all(fleet: &Fleet) -> Vec<usize> {
    (0..fleet.agents.len()).collect()
}

/// Longest wait for a request the receiver expects.
pub const ASKED: std::time::Duration = std::time::Duration::from_secs(45);

/// A time of the API.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    serde_json::from_value(value.clone()).unwrap_or_else(|_| panic!("a time: {value}"))
}

/// One agent of a rollout's details.
pub fn agent<'d>(details: &'d Value, agent_id: &str) -> &'d Value {
    details["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|agent| agent["agent_id"] == agent_id)
        .expect("the agent is in the rollout")
}

/// No agent of ring 1 ever applied `v2`, and every one of ring 0 that did is back on
/// `v1`: what a revert in wave 0 leaves.
pub async fn assert_reverted_in_wave_0(g: &Gated, v2: &Value) {
    let (v1_id, v2_id) = (id(&g.v1).parse().unwrap(), id(v2).parse().unwrap());
    assert_eq!(g.fleet.broker.pins().await, 0, "pins left after the revert");
    for sim in &g.fleet.agents[PER_RING..] {
        assert!(!sim.applied().contains(&v2_id), "{} saw v2", sim.name);
    }
    g.fleet.wait_applied(&all(&g.fleet), id(&g.v1)).await;
    for sim in &g.fleet.agents[..PER_RING] {
        if sim.applied().contains(&v2_id) {
            eventually(&format!("{} back on v1", sim.name), || async {
                (sim.applied().last() == Some(&v1_id)).then_some(())
            })
            .await;
        }
    }
}
/// Runs out every rollout lease, as time would for a server that died holding them.
pub async fn expire_leases(broker: &super::fleet::Broker) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let connection = Database::connect(broker.database_url())
        .await
        .expect("connect");
    let backend = connection.get_database_backend();
    connection
        .execute_raw(Statement::from_string(
            backend,
            "UPDATE rollouts SET lease_owner = NULL, lease_until = NULL",
        ))
        .await
        .expect("run the leases out");
    let _ = connection.close().await;
}
