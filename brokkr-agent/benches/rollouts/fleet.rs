//! The simulated fleet, as the fleet bench runs it: agents registered through the
//! admin API with the simulator's `register`, then real agent loops over
//! `MemoryApplier`s (the simulator's), long-polling over real HTTP with their own keys.
//! Agents long-poll for 30 s, heartbeat every 30 s, resync and report health hourly, as
//! in the fleet bench; an agent reports health at once after an apply, which is what
//! moves a rollout.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_agent::config::{AgentSection, Secret};
use brokkr_agent::simulate::{self, Applied, Options, Simulator};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::Result;
use crate::admin::Admin;
use crate::sideload;

/// Longest wait, beyond the ramp's length, for every agent to be in a long poll.
const START_SLACK: Duration = Duration::from_secs(120);
/// Admin calls in flight while setting up.
pub const ADMIN_CONCURRENCY: usize = 16;

pub struct Fleet {
    pub simulator: Simulator,
    /// Agent ids, by index.
    pub ids: Vec<String>,
    /// Index of each agent id.
    pub index: HashMap<String, usize>,
    keys: Vec<String>,
    pub applies: mpsc::UnboundedReceiver<Applied>,
}

impl Fleet {
    /// Registers `n` agents named `{prefix}-{i}` and starts them at `ramp` a second;
    /// returns once all but 0.1% wait in a long poll.
    pub async fn start(admin: &Admin, n: usize, ramp: u32, prefix: &str) -> Result<Fleet> {
        let labels = BTreeMap::from([("fleet".to_owned(), prefix.to_owned())]);
        let started = Instant::now();
        let registered = simulate::register(
            &admin.base,
            &Secret::new(admin.key.clone()),
            prefix,
            0..n,
            &labels,
        )
        .await?;
        let ids: Vec<String> = registered.iter().map(|r| r.id.to_string()).collect();
        let keys: Vec<String> = registered
            .iter()
            .map(|r| r.key.expose().to_owned())
            .collect();
        let options = Options {
            broker_url: admin.base.clone(),
            agents: n,
            labels,
            ramp_per_sec: ramp,
            agent: AgentSection {
                poll_wait_secs: 30,
                heartbeat_interval_secs: 30,
                resync_period_secs: 3600,
                health_interval_secs: 3600,
                max_backoff_secs: 5,
                shutdown_grace_secs: 10,
                ..AgentSection::default()
            },
            ..Options::default()
        };
        let simulator =
            Simulator::start(&options, registered.into_iter().map(|r| r.key).collect())?;
        let applies = simulator.subscribe();
        let limit = Duration::from_secs_f64(n as f64 / f64::from(ramp.max(1))) + START_SLACK;
        let settled = admin.settle(n, limit).await?;
        println!(
            "  {n} agents registered and started at {ramp}/s; {} in a long poll after {:.1?}",
            if settled { "all" } else { "not all" },
            started.elapsed()
        );
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        Ok(Fleet {
            simulator,
            ids,
            index,
            keys,
            applies,
        })
    }

    /// The agents as the side load reads as them.
    pub fn readers(&self) -> sideload::Agents {
        Arc::new(
            self.ids
                .iter()
                .cloned()
                .zip(self.keys.iter().cloned())
                .collect(),
        )
    }

    /// Drops the applies received so far.
    pub fn drain(&mut self) {
        while self.applies.try_recv().is_ok() {}
    }

    /// Collects applies until `done` says enough, `stop` turns true, or `timeout`;
    /// answers them all.
    pub async fn collect(
        &mut self,
        timeout: Duration,
        mut stop: Option<watch::Receiver<bool>>,
        mut done: impl FnMut(&Applied) -> bool,
    ) -> Vec<Applied> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let stopped = async {
                match stop.as_mut() {
                    Some(stop) => {
                        let _ = stop.wait_for(|s| *s).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let applied = tokio::select! {
                applied = tokio::time::timeout_at(deadline, self.applies.recv()) => applied,
                () = stopped => break,
            };
            let Ok(Some(applied)) = applied else { break };
            let enough = done(&applied);
            got.push(applied);
            if enough {
                break;
            }
        }
        got
    }

    /// Waits until `agents` distinct agents applied `object`, at most `timeout`;
    /// answers how many did.
    pub async fn wait_applied(&mut self, object: &str, agents: usize, timeout: Duration) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.collect(timeout, None, |applied| {
            if applied.object.to_string() == object {
                seen.insert(applied.agent);
            }
            seen.len() >= agents
        })
        .await;
        seen.len()
    }

    /// Assigns `stack` to the agents of `indices`, through the admin API.
    pub async fn assign(
        &self,
        admin: &Admin,
        pairs: impl IntoIterator<Item = (String, usize)>,
    ) -> Result {
        let calls: Vec<Result<serde_json::Value>> = futures::stream::iter(pairs)
            .map(|(stack, i)| {
                let path = format!("/agents/{}/targets", self.ids[i]);
                async move { admin.post(&path, json!({ "stack_id": stack })).await }
            })
            .buffer_unordered(ADMIN_CONCURRENCY)
            .collect()
            .await;
        calls.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(())
    }

    pub async fn stop(self) {
        let stopping = Instant::now();
        let n = self.ids.len();
        let last = self.simulator.stop().await;
        println!(
            "  {n} agents stopped in {:.1?} ({} stopped early, {} failed calls in all)",
            stopping.elapsed(),
            last.agents.stopped,
            last.errors_total
        );
    }
}

/// An application `app` in the `default` namespace: a ConfigMap and a Deployment
/// carrying `version`, and with `bad` a Secret too, which the agents told to refuse
/// Secrets fail on. Each stack names its own objects: a cluster refuses an object
/// another stack's label is on.
pub fn manifest(app: &str, version: usize, bad: bool) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\n  namespace: default\ndata:\n  version: \"{version}\"\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n    spec:\n      containers:\n        - name: {app}\n          image: nginx:1.27.{version}\n"
    );
    if bad {
        yaml.push_str(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: bench-token\n  namespace: default\nstringData:\n  token: bench\n",
        );
    }
    yaml
}

/// A policy of `waves` equal waves (a split of every agent, ordered by agent id), no
/// bake unless `bake` says, nothing else but the defaults.
pub fn policy(waves: usize, bake: &str) -> serde_json::Value {
    let waves = waves.max(1);
    let mut wave = json!({"name": "wave", "select": {"remaining": true}});
    if waves > 1 {
        wave["split"] = json!(format!("{}%", 100 / waves));
    }
    json!({"waves": [wave], "bake_time": bake, "progress_deadline": "10m"})
}
