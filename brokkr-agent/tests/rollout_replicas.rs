//! Rollout scenario 7 (ROLLOUTS.md section 12): two server replicas on one PostgreSQL
//! database drive 50 rollouts at once, agents split between them, and the audit log
//! shows every transition and every pin exactly once. Both replicas' drivers claim due
//! rollouts every 100 ms and race for them; the lease and the version check must let
//! exactly one evaluation of each state land.

#[path = "rollouts/fleet.rs"]
#[allow(dead_code)]
#[macro_use]
mod fleet;
#[path = "../../brokkr-server/tests/common/pg_database.rs"]
#[allow(dead_code)]
mod pg;

use std::collections::{BTreeMap, BTreeSet};

use fleet::{Backend, Fleet, app, eventually};
use serde_json::{Value, json};

const STACKS: usize = 50;
const AGENTS: usize = 10;

/// Two waves: agents 0-4 (`ring: 0`), then the rest.
fn two_rings() -> Value {
    json!({
        "waves": [
            {"name": "first", "select": {"match_labels": {"ring": "0"}}},
            {"name": "rest", "select": {"remaining": true}}
        ],
        "max_concurrency": 5,
        "bake_time": "1s",
        "progress_deadline": "30s"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_audit_every_transition_once() {
    let labels = |i: usize| BTreeMap::from([("ring".to_owned(), (i / 5).to_string())]);
    let Some(mut fleet) = Fleet::start(Backend::Postgres, AGENTS, labels).await else {
        return;
    };
    let replica = fleet.broker.replica().await;
    // Every other agent talks to the second replica: reports reach both.
    for agent in fleet.agents.iter_mut().skip(1).step_by(2) {
        agent.go_offline();
        agent.start(&replica.url);
    }

    let mut stacks = Vec::with_capacity(STACKS);
    for n in 0..STACKS {
        stacks.push(fleet.stack_on_all(&tenant(n)).await);
    }
    let all: Vec<usize> = (0..AGENTS).collect();
    // Each tenant's objects in a namespace of its own: agents refuse objects another
    // stack owns.
    let mut firsts = Vec::with_capacity(STACKS);
    for (n, stack) in stacks.iter().enumerate() {
        firsts.push(fleet.deploy(stack, &app(&tenant(n), "1")).await);
    }
    for (stack, v1) in stacks.iter().zip(&firsts) {
        fleet.wait_applied(&all, v1).await;
        fleet
            .broker
            .put(&format!("/stacks/{stack}/rollout-policy"), two_rings())
            .await;
    }
    let started = std::time::Instant::now();

    let mut rollouts = Vec::with_capacity(STACKS);
    for (n, stack) in stacks.iter().enumerate() {
        fleet.deploy(stack, &app(&tenant(n), "2")).await;
        let rollout = fleet.newest_rollout(stack).await;
        rollouts.push(rollout["id"].as_str().expect("rollout id").to_owned());
    }
    for id in &rollouts {
        fleet.wait_state(id, "succeeded").await;
    }
    eprintln!("{STACKS} rollouts succeeded in {:?}", started.elapsed());
    for id in &rollouts {
        let summaries = audit_summaries(&fleet, id).await;
        let mut seen = BTreeSet::new();
        for summary in &summaries {
            assert!(
                seen.insert(summary.as_str()),
                "rollout {id}: audited twice: {summary}\n{summaries:#?}"
            );
        }
        let transitions = [
            "queued -> running",
            "running -> succeeded",
            "wave 0 pending -> running",
            "wave 1 pending -> running",
        ];
        for transition in transitions {
            let wanted = format!("rollout {id}: {transition}");
            let found = summaries.iter().filter(|s| s.starts_with(&wanted)).count();
            assert_eq!(found, 1, "rollout {id}: {transition}\n{summaries:#?}");
        }
        for wave in 0..2 {
            let done = summaries
                .iter()
                .filter(|s| {
                    s.starts_with(&format!("rollout {id}: wave {wave} "))
                        && s.contains("-> succeeded")
                })
                .count();
            assert_eq!(
                done, 1,
                "rollout {id}: wave {wave} succeeded\n{summaries:#?}"
            );
        }
        // One pin record per agent pinned; an agent too slow to heartbeat on a busy
        // machine may be skipped instead, and then has none.
        let details = fleet.rollout(id).await;
        for agent in details["agents"].as_array().expect("agents") {
            let agent_id = agent["agent_id"].as_str().expect("agent id");
            let pins = summaries
                .iter()
                .filter(|s| s.starts_with(&format!("pinned agent {agent_id} ")))
                .count();
            let wanted = usize::from(agent["state"] != "skipped");
            assert_eq!(
                pins,
                wanted,
                "rollout {id}: pins of {agent}\n{}",
                summaries.join("\n")
            );
        }
    }
    assert_eq!(fleet.broker.pins().await, 0, "no pin outlives its rollout");

    // Both replicas evaluated rollouts: the race this scenario is about took place.
    let http = reqwest::Client::new();
    for url in [&fleet.broker.url, &replica.url] {
        let evaluations = evaluations_by(&http, url).await;
        assert!(evaluations > 0, "the replica at {url} evaluated no rollout");
    }

    drop(replica);
    fleet.teardown().await;
}

fn tenant(n: usize) -> String {
    format!("tenant-{n:02}")
}

/// Every audit summary of one rollout, oldest first, all pages.
async fn audit_summaries(fleet: &Fleet, rollout: &str) -> Vec<String> {
    let mut summaries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            format!("/admin/audit-logs?resource_type=rollout&resource_id={rollout}&limit=100");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = fleet.broker.get(&path).await;
        for record in page["items"].as_array().expect("items") {
            summaries.push(record["summary"].as_str().expect("summary").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return summaries,
        }
    }
}

/// `brokkr_rollout_evaluations_total` of the server at `url`.
async fn evaluations_by(http: &reqwest::Client, url: &str) -> u64 {
    eventually(&format!("metrics of {url}"), || async {
        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("brokkr_rollout_evaluations_total "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value as u64)
    })
    .await
}
