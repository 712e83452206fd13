//! Figure 1: a good candidate released through the waves of a stack placed on every
//! agent, with no bake. Measures the time to release, each agent's pin → apply
//! latency per wave, the database writes per transition, and target-state reads under
//! a side load with and without the rollout.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::db::{Db, LOG_TABLES, STATE_TABLES, STATS_LAG, Writes};
use crate::fleet::{Fleet, manifest, policy};
use crate::stats::{Clock, Figures, millis, time, verdict};
use crate::{Result, Settings, sideload};

pub const WAKE_BUDGET_MS: f64 = 1000.0;
pub const WRITES_BUDGET: f64 = 3.0;

/// What the revert scenario reuses.
pub struct Released {
    pub stack: String,
    /// The release head now.
    pub head: String,
    /// Each agent's wave (by index), as the rollout placed it.
    pub wave_of: HashMap<usize, u64>,
}

/// The longest a rollout of `n` agents may take before the bench gives up on it.
pub fn rollout_timeout(n: usize) -> Duration {
    Duration::from_secs(120 + n as u64 / 50)
}

/// Creates the stack, assigns it to every agent, waits for its first version
/// everywhere and sets the policy; answers the stack and its release head.
pub async fn setup(
    admin: &Admin,
    fleet: &mut Fleet,
    settings: &Settings,
) -> Result<(String, String)> {
    let n = fleet.ids.len();
    let stack = admin.stack("bench").await?;
    let baseline = admin.deploy(&stack, manifest("bench", 0, false)).await?;
    let started = Instant::now();
    fleet
        .assign(admin, (0..n).map(|i| (stack.clone(), i)))
        .await?;
    let applied = fleet.wait_applied(&baseline, n, rollout_timeout(n)).await;
    println!(
        "  stack assigned to each agent, first version applied by {applied}/{n} in {:.1?}",
        started.elapsed()
    );
    admin
        .put(
            &format!("/stacks/{stack}/rollout-policy"),
            policy(settings.waves, "0s"),
        )
        .await?;
    Ok((stack, baseline))
}

/// One good rollout of version `version`.
pub async fn round(
    admin: &Admin,
    db: &Db,
    fleet: &mut Fleet,
    settings: &Settings,
    stack: &str,
    version: usize,
) -> Result<Released> {
    let n = fleet.ids.len();
    let stack = stack.to_owned();
    admin.settle(n, Duration::from_secs(60)).await?;
    println!("  release of version {version}:");
    let (_never, no_stop) = watch::channel(false);
    let mut quiet = sideload::run(
        admin.base.clone(),
        fleet.readers(),
        settings.side_workers,
        settings.side_load,
        no_stop,
    )
    .await;
    println!("  side load, no rollout:     {}", quiet.line());

    // PostgreSQL publishes a backend's counts up to 10 s after it went idle.
    let before = stats_after_lag(db).await?;
    let counts_before = admin.driver_counts().await?;

    fleet.drain();
    let (stop_load, stop_rx) = watch::channel(false);
    let load = tokio::spawn(sideload::run(
        admin.base.clone(),
        fleet.readers(),
        settings.side_workers,
        rollout_timeout(n),
        stop_rx,
    ));
    let clock = Clock::now();
    let t0 = Instant::now();
    let candidate = admin
        .deploy(&stack, manifest("bench", version, false))
        .await?;
    let mut seen = HashSet::new();
    let (applies, rollout) = tokio::join!(
        fleet.collect(rollout_timeout(n), None, |a| {
            if a.object.to_string() == candidate {
                seen.insert(a.agent);
            }
            seen.len() >= n
        }),
        admin.wait_final(&stack, rollout_timeout(n)),
    );
    let rollout = rollout?;
    let _ = stop_load.send(true);
    let mut during = load.await?;
    let observed = t0.elapsed();
    println!("  side load, during rollout: {}", during.line());

    let id = rollout["id"].as_str().ok_or("no rollout")?.to_owned();
    let state = rollout["state"].as_str().unwrap_or("?").to_owned();
    let details = admin.get(&format!("/rollouts/{id}")).await?;
    let start = clock.wall(t0);
    let release_ms = time(&rollout["finished_at"]).map(|f| millis(start, f));
    println!(
        "  rollout {id}: {state}; append -> {state} {} (seen by polling after {:.0} ms)",
        release_ms.map_or("never".into(), |ms| format!("{ms:.0} ms")),
        observed.as_secs_f64() * 1000.0
    );
    print_waves(&details, start);

    // Each agent's pin (its pinned_at, written by the step that pinned it) to its
    // MemoryApplier's apply of the candidate.
    let mut pinned = HashMap::new();
    let mut wave_of = HashMap::new();
    for agent in details["agents"].as_array().into_iter().flatten() {
        let (Some(id), Some(wave)) = (agent["agent_id"].as_str(), agent["wave"].as_u64()) else {
            continue;
        };
        let Some(&index) = fleet.index.get(id) else {
            continue;
        };
        wave_of.insert(index, wave);
        if let Some(at) = time(&agent["pinned_at"]) {
            pinned.insert(index, (wave, at));
        }
    }
    let mut first = HashMap::new();
    for applied in applies.iter().filter(|a| a.object.to_string() == candidate) {
        first.entry(applied.agent).or_insert(applied.at);
    }
    let waves = details["waves"].as_array().map_or(0, Vec::len);
    let mut per_wave = vec![Figures::default(); waves.max(1)];
    let mut overall = Figures::default();
    let last = per_wave.len() - 1;
    for (index, at) in &first {
        if let Some((wave, pinned_at)) = pinned.get(index) {
            let ms = millis(*pinned_at, clock.wall(*at));
            per_wave[(*wave as usize).min(last)].push(ms);
            overall.push(ms);
        }
    }
    println!("  pin -> agent apply, per wave (from each agent's pinned_at to its apply):");
    for (wave, figures) in per_wave.iter_mut().enumerate() {
        println!("    wave {wave}: {}", figures.line());
    }
    println!("    all:    {}", overall.line());
    println!(
        "    {} agents applied the candidate, {} were pinned, {} in the rollout",
        first.len(),
        pinned.len(),
        wave_of.len()
    );

    let counts_after = admin.driver_counts().await?;
    let after = stats_after_lag(db).await?;
    let healthy = details["agents"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["state"] == "healthy").count());
    let audits = db.audits_of(id.parse()?).await?;
    // Audited: each pin and each rollout or wave transition; not audited: each agent's
    // pinned -> applied -> healthy, two more per healthy agent.
    let transitions = audits as f64 + 2.0 * healthy as f64;
    let evaluations = counts_after.0.saturating_sub(counts_before.0);
    let state_changes = counts_after.1.saturating_sub(counts_before.1);
    println!(
        "  transitions: {transitions:.0} ({audits} audit records: pins and {state_changes} rollout and wave transitions; + 2 x {healthy} healthy agents' applied and healthy)"
    );
    println!(
        "  driver transactions (one per evaluation): {evaluations}, {:.3} per transition",
        evaluations as f64 / transitions.max(1.0)
    );
    let writes = writes_line(before, after, transitions);
    let p99 = overall.pct(0.99);
    println!(
        "  budgets: pin -> apply p99 {p99:.0} ms < {WAKE_BUDGET_MS:.0} ms: {}; {}; target-state p99 {:.1} ms during vs {:.1} ms without ({:.0} vs {:.0} reads/s)",
        verdict(p99 < WAKE_BUDGET_MS),
        writes,
        during.p99(),
        quiet.p99(),
        during.rate(),
        quiet.rate(),
    );
    Ok(Released {
        stack,
        head: candidate,
        wave_of,
    })
}

/// PostgreSQL's write counts once what came before is published (waits [`STATS_LAG`]).
async fn stats_after_lag(db: &Db) -> Result<Option<Writes>> {
    if !db.is_postgres() {
        return Ok(None);
    }
    tokio::time::sleep(STATS_LAG).await;
    db.writes().await
}

/// The rows-written figure and its budget, or why there is none.
fn writes_line(before: Option<Writes>, after: Option<Writes>, transitions: f64) -> String {
    let (Some(before), Some(after)) = (before, after) else {
        return "rows written per transition: not measured on SQLite (no statistics)".into();
    };
    let delta = after.since(&before);
    let state = delta.rows(&STATE_TABLES);
    let log = delta.rows(&LOG_TABLES);
    let t = transitions.max(1.0);
    let (state_per, all_per) = (state as f64 / t, (state + log) as f64 / t);
    println!(
        "  PostgreSQL during the rollout (+{} s of quiet): {} commits in all (agents' events, health and heartbeats included), {:.2} per transition",
        STATS_LAG.as_secs(),
        delta.commits,
        delta.commits as f64 / t
    );
    println!("    rows written per table: {}", delta.breakdown());
    println!(
        "    rollout state rows {state} ({state_per:.2} per transition); audit, audit chain and outbox rows {log} ({:.2} per transition; they include the agents' own events' records)",
        log as f64 / t
    );
    format!(
        "rollout state rows per transition {state_per:.2} <= {WRITES_BUDGET}: {}; with every audit, audit-chain and outbox row {all_per:.2} <= {WRITES_BUDGET}: {}",
        verdict(state_per <= WRITES_BUDGET),
        verdict(all_per <= WRITES_BUDGET)
    )
}

/// Each wave's start and end, from the append.
fn print_waves(details: &Value, start: chrono::DateTime<chrono::Utc>) {
    for wave in details["waves"].as_array().into_iter().flatten() {
        let at = |field: &str| {
            time(&wave[field]).map_or("-".to_owned(), |t| format!("{:.0} ms", millis(start, t)))
        };
        println!(
            "    wave {} {}: {}, started +{}, finished +{}",
            wave["index"],
            wave["name"].as_str().unwrap_or(""),
            wave["state"].as_str().unwrap_or(""),
            at("started_at"),
            at("finished_at")
        );
    }
}
