//! A side load of target-state reads: `workers` loops, each a plain
//! `GET /api/v1/agents/{id}/target-state` (no `If-None-Match`, so never a long poll)
//! with the agent's own key, agents taken in turn, until told to stop or `limit` runs
//! out. The same load runs with no rollout and during one, to compare.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::stats::Figures;

/// What a run of the side load measured.
pub struct SideLoad {
    pub figures: Figures,
    pub errors: u64,
    pub elapsed: Duration,
}

impl SideLoad {
    pub fn line(&mut self) -> String {
        let rate = self.figures.len() as f64 / self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{:.0} reads/s over {:.1} s, p50 {:.1} ms, p99 {:.1} ms, {} errors",
            rate,
            self.elapsed.as_secs_f64(),
            self.figures.pct(0.5),
            self.figures.pct(0.99),
            self.errors
        )
    }

    pub fn p99(&mut self) -> f64 {
        self.figures.pct(0.99)
    }

    pub fn rate(&self) -> f64 {
        self.figures.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Agents (id, key) the load reads as.
pub type Agents = Arc<Vec<(String, String)>>;

/// Runs the load until `stop` turns true or `limit` passes.
pub async fn run(
    base: String,
    agents: Agents,
    workers: usize,
    limit: Duration,
    stop: watch::Receiver<bool>,
) -> SideLoad {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + limit;
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|worker| {
            let http = http.clone();
            let agents = Arc::clone(&agents);
            let base = base.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut figures = Figures::default();
                let mut errors = 0u64;
                let mut next = worker;
                while !*stop.borrow() && Instant::now() < deadline && !agents.is_empty() {
                    let (id, key) = &agents[next % agents.len()];
                    next += workers;
                    let sent = Instant::now();
                    let request = http
                        .get(format!("{base}/api/v1/agents/{id}/target-state"))
                        .bearer_auth(key)
                        .timeout(Duration::from_secs(10))
                        .send();
                    let outcome = tokio::select! {
                        outcome = request => outcome,
                        _ = stop.changed() => break,
                    };
                    match outcome {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            figures.push_duration(sent.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (figures, errors)
            })
        })
        .collect();
    let mut load = SideLoad {
        figures: Figures::default(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        if let Ok((figures, errors)) = task.await {
            load.figures.extend(figures);
            load.errors += errors;
        }
    }
    load.elapsed = started.elapsed();
    load
}
